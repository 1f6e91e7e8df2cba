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
