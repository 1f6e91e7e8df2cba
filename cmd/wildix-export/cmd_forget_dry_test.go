package main

import (
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wildix-export/wildix-export/internal/pbxsim"
	"github.com/wildix-export/wildix-export/simtest"
)

// TestForgetDryRunChecksList (review 21, R21-2): forget --dry-run checks
// the suppression list as the erasure does, reading only: on a CSV folder
// whose .state was restored from a copy taken between two forgets (the
// later one's number in no row), it exits 2 naming the forget stamp, as
// the erasure would (before, it exited 0 and said nothing); and no dry
// run writes the check's mark of the manifests it read
// (.state/.suppressed.checked.json), nor changes the list.
func TestForgetDryRunChecksList(t *testing.T) {
	t.Parallel()
	const calls = 60
	f := simtest.New(t, pbxsim.Options{Calls: calls, CallGap: time.Minute})
	f.Authorize(t)
	dir := t.TempDir()
	kv := fixtureEnv(f, dir)
	if r := runCLI(t, kv, "run", "--once"); r.code != exitOK {
		t.Fatalf("run: exit %d: %v\n%s", r.code, r.err, r.stderr)
	}
	number := "+" + simNumber(t, f.Sim, calls)
	if r := runCLI(t, kv, "forget", "--number", number); r.code != exitOK {
		t.Fatalf("forget A: exit %d: %v\n%s%s", r.code, r.err, r.stdout, r.stderr)
	}
	mark := filepath.Join(dir, ".state", ".suppressed.checked.json")
	if err := os.Remove(mark); err != nil {
		t.Fatalf("forget wrote no mark of the manifests its check read (%v): the test proves nothing", err)
	}
	if r := runCLI(t, kv, "forget", "--number", number, "--dry-run"); r.code != exitOK {
		t.Fatalf("forget --dry-run: exit %d: %v\n%s%s", r.code, r.err, r.stdout, r.stderr)
	}
	if _, err := os.Stat(mark); !os.IsNotExist(err) {
		t.Errorf("forget --dry-run wrote the check's mark %s (%v)", mark, err)
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
	before := folderFiles(t, dir)
	r := runCLI(t, kv, "forget", "--number", "+393471100046", "--dry-run")
	if r.code != exitConfig || r.err == nil || !strings.Contains(r.err.Error(), ".suppressed.stamp.json") || !strings.Contains(r.err.Error(), "nothing was changed") {
		t.Fatalf("forget --dry-run on the restored list: exit %d, want %d naming the forget stamp: %v\n%s", r.code, exitConfig, r.err, r.stdout)
	}
	// Every file, not the check's mark alone (a refusing check never
	// writes it: review 30, R30-1): the list, the journal, the ledger.
	if after := folderFiles(t, dir); !maps.Equal(after, before) {
		t.Errorf("the refused dry run changed the folder:\nbefore %q\nafter  %q", before, after)
	}
}

// folderFiles is every file under dir, by path, with its content.
func folderFiles(t *testing.T, dir string) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		files[path] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}
