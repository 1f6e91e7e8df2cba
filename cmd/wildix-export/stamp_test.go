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

// TestForgetStampSurvivesStateRestore: a CSV folder's .state restored
// from the copy taken after forget A and before forget B, B's number in
// no row (so B rewrote no data file, R15-12), then forget C: C's forget
// exited 0 and so did the next run, which would write B's calls again
// (attack 7, F1). Now forget C exits 2 before it changes anything, as
// does the run, naming the forget stamp at the folder's top
// (.suppressed.stamp.json), which the restore of .state left as B wrote
// it.
func TestForgetStampSurvivesStateRestore(t *testing.T) {
	t.Parallel()
	const calls = 60
	f := simtest.New(t, pbxsim.Options{Calls: calls, CallGap: time.Minute})
	f.Authorize(t)
	dir := t.TempDir()
	kv, _ := onSink(t, "csv", fixtureEnv(f, dir))
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
	list, _ := os.ReadFile(filepath.Join(dir, ".state", ".suppressed.json"))

	r := runCLI(t, kv, "forget", "--number", "+393471100046")
	if r.code != exitConfig || !strings.Contains(r.err.Error(), ".suppressed.stamp.json") {
		t.Fatalf("forget C into the restored list: exit %d, want %d naming the forget stamp: %v\n%s", r.code, exitConfig, r.err, r.stdout)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, ".state", ".suppressed.json")); string(got) != string(list) {
		t.Errorf("the refused forget changed the list")
	}
	r = runCLI(t, kv, "run", "--once")
	if r.code != exitConfig || !strings.Contains(r.err.Error(), ".suppressed.stamp.json") || !strings.Contains(r.err.Error(), "1 of them missing") {
		t.Fatalf("run after the restore: exit %d, want %d naming the forget stamp: %v", r.code, exitConfig, r.err)
	}
}
