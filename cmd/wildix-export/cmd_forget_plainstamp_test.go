package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wildix-export/wildix-export/internal/pbxsim"
	"github.com/wildix-export/wildix-export/simtest"
)

// TestForgetStampSurvivesDotSkippingRestore (attack 8, F2 MEDIUM): a CSV
// folder's .state restored from the copy taken after forget A and before
// forget B (B's number in no row, so B rewrote no data file), by a
// restore that skips dot files: .suppressed.stamp.json, outside .state,
// is skipped too (here: gone). The next run exited 0 and would write B's
// calls again. Now each forget also writes wildix-export.forget-stamp.json (no
// dot), which such a restore keeps: the run exits 2 naming it.
func TestForgetStampSurvivesDotSkippingRestore(t *testing.T) {
	t.Parallel()
	const calls = 60
	f := simtest.New(t, pbxsim.Options{Calls: calls, CallGap: time.Minute})
	f.Authorize(t)
	dir := t.TempDir()
	kv := fixtureEnv(f, dir)
	if r := runCLI(t, kv, "run", "--once"); r.code != exitOK {
		t.Fatalf("run: exit %d: %v\n%s", r.code, r.err, r.stderr)
	}
	if r := runCLI(t, kv, "forget", "--number", "+"+simNumber(t, f.Sim, calls)); r.code != exitOK {
		t.Fatalf("forget A: exit %d: %v\n%s%s", r.code, r.err, r.stdout, r.stderr)
	}
	backup := filepath.Join(t.TempDir(), "state")
	if err := os.CopyFS(backup, os.DirFS(filepath.Join(dir, ".state"))); err != nil {
		t.Fatal(err)
	}
	if r := runCLI(t, kv, "forget", "--number", "+393471100037"); r.code != exitOK || !strings.Contains(r.stdout, "no row mentions the number") {
		t.Fatalf("forget B (in no row): exit %d: %v\n%s%s", r.code, r.err, r.stdout, r.stderr)
	}
	if err := os.RemoveAll(filepath.Join(dir, ".state")); err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(filepath.Join(dir, ".state"), os.DirFS(backup)); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, ".suppressed.stamp.json")); err != nil {
		t.Fatal(err)
	}
	r := runCLI(t, kv, "run", "--once")
	if r.code != exitConfig || r.err == nil || !strings.Contains(r.err.Error(), filepath.Join(dir, "wildix-export.forget-stamp.json")) || !strings.Contains(r.err.Error(), "1 of them missing") {
		t.Fatalf("run after the restore: exit %d, want %d naming wildix-export.forget-stamp.json: %v", r.code, exitConfig, r.err)
	}
}
