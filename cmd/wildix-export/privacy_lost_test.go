package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wildix-export/wildix-export/internal/pbxsim"
)

// TestRunRefusesFolderWithoutStateOrManifests is review 26's finding: a
// CSV folder whose .state and data files' manifests are both lost, its
// .csv files kept, was taken by `run` for a first export (exit 0), which
// wrote every call again in clear beside the pseudonymised copies. Now
// the run is refused (exit 2), under each rule and with --force too,
// naming a data file and what to do, and changes no data file; forget
// already refused such a folder (sinks.CSVDataFile, shared).
func TestRunRefusesFolderWithoutStateOrManifests(t *testing.T) {
	t.Parallel()
	f := authorized(t, pbxsim.Options{Calls: 40})
	dir := t.TempDir()
	clear := fixtureEnv(f, dir, "EXPORT_ENDPOINTS=call_history,colleagues")
	numbers := append(append([]string(nil), clear...), "EXPORT_PSEUDONYMIZE=numbers", "EXPORT_PSEUDONYM_KEY="+testKey1)
	if r := runCLI(t, numbers, "run", "--once"); r.code != 0 {
		t.Fatalf("first run: exit %d: %v\n%s", r.code, r.err, r.stderr)
	}
	if err := os.RemoveAll(filepath.Join(dir, ".state")); err != nil {
		t.Fatal(err)
	}
	mans, _ := filepath.Glob(filepath.Join(dir, "*", "*.manifest.json"))
	if len(mans) == 0 {
		t.Fatal("no manifest written: the case is not the review's")
	}
	for _, m := range mans {
		if err := os.Remove(m); err != nil {
			t.Fatal(err)
		}
	}
	before := dataFiles(t, dir)
	for _, tc := range []struct {
		name string
		kv   []string
		args []string
	}{
		{"in clear", clear, []string{"run", "--once"}},
		{"in clear, forced", clear, []string{"run", "--once", "--force"}},
		{"under the rows' rule", numbers, []string{"run", "--once"}},
	} {
		r := runCLI(t, tc.kv, tc.args...)
		if r.code != exitConfig {
			t.Fatalf("%s: exit %d, %v; want 2\n%s", tc.name, r.code, r.err, r.stderr)
		}
		for _, w := range []string{"holds data files (call_history" + string(filepath.Separator), ".csv, for one) but neither PBX", "manifests", "--force or not", "restore the state folder and the manifests", "Nothing was changed"} {
			if !strings.Contains(r.err.Error(), w) {
				t.Errorf("%s: %v; want it to say %q", tc.name, r.err, w)
			}
		}
		if dataFiles(t, dir) != before {
			t.Fatalf("%s: the refused run changed the data files", tc.name)
		}
	}
}

// TestRunRefusesOlderRecordOfTheRule is review 27's R27-2: an older copy
// of .state, taken while the folder was in clear, restored with its dot
// files after pseudonymisation was turned on (forced): its record says
// none, and a run in clear was accepted (exit 0), writing rows in clear
// beside the pseudonymised ones. Now the record is weighed against the
// data files' manifests: the run in clear is refused (exit 2), saying the
// record is older than the rows and naming the file, and changes no data
// file; a run under numbers is accepted and stores the record again, and
// then a run in clear is refused as a change.
func TestRunRefusesOlderRecordOfTheRule(t *testing.T) {
	t.Parallel()
	f := authorized(t, pbxsim.Options{Calls: 40})
	dir := t.TempDir()
	clear := fixtureEnv(f, dir, "EXPORT_ENDPOINTS=call_history,colleagues")
	numbers := append(append([]string(nil), clear...), "EXPORT_PSEUDONYMIZE=numbers", "EXPORT_PSEUDONYM_KEY="+testKey1)
	if r := runCLI(t, clear, "run", "--once"); r.code != 0 {
		t.Fatalf("run in clear: exit %d: %v\n%s", r.code, r.err, r.stderr)
	}
	old := filepath.Join(t.TempDir(), "state")
	if err := os.CopyFS(old, os.DirFS(filepath.Join(dir, ".state"))); err != nil {
		t.Fatal(err)
	}
	if r := runCLI(t, numbers, "run", "--once", "--force"); r.code != 0 {
		t.Fatalf("forced run under numbers: exit %d: %v\n%s", r.code, r.err, r.stderr)
	}
	if err := os.RemoveAll(filepath.Join(dir, ".state")); err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(filepath.Join(dir, ".state"), os.DirFS(old)); err != nil {
		t.Fatal(err)
	}
	before := dataFiles(t, dir)
	r := runCLI(t, clear, "run", "--once")
	if r.code != exitConfig {
		t.Fatalf("older state restored, run in clear: exit %d, %v; want 2\n%s", r.code, r.err, r.stderr)
	}
	for _, w := range []string{"EXPORT_PSEUDONYMIZE changed", ".privacy.json) says rule none, but is older than the rows", "the manifest of data file colleagues" + string(filepath.Separator),
		"says its rows are written under rule numbers k:", "restore the whole state folder from the backup", "--force"} {
		if !strings.Contains(r.err.Error(), w) {
			t.Errorf("older state restored, run in clear: %v; want it to say %q", r.err, w)
		}
	}
	if dataFiles(t, dir) != before {
		t.Fatal("the refused run changed the data files")
	}
	if r := runCLI(t, numbers, "run", "--once"); r.code != 0 || !strings.Contains(r.stderr, "is older than the data files (it says none") {
		t.Fatalf("older state restored, run under numbers: exit %d: %v; want 0 and a warning\n%s", r.code, r.err, r.stderr)
	}
	if r := runCLI(t, clear, "run", "--once"); r.code != exitConfig || !strings.Contains(r.err.Error(), "EXPORT_PSEUDONYMIZE changed: the") {
		t.Fatalf("record stored again, run in clear: exit %d, %v; want 2 as a change", r.code, r.err)
	}
}
