//go:build unix

package sinks

import (
	"context"
	"io/fs"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wildix-export/wildix-export/exporter"
	"github.com/wildix-export/wildix-export/exporter/record"
	"github.com/wildix-export/wildix-export/internal/pbxsim"
	"github.com/wildix-export/wildix-export/simtest"
)

// TestCSVFilesNeverWiderThanTheUmask: every file the CSV sink creates
// (data, manifests, state, the run log, the lock) is 0600, less what the
// umask takes away: not 0644 under the usual 022 (every local user would
// read names and numbers), nor widened past a stricter umask. Not
// parallel: the umask is the process's; parallel tests start after it.
func TestCSVFilesNeverWiderThanTheUmask(t *testing.T) {
	for _, umask := range []int{0o022, 0o277} {
		old := syscall.Umask(umask)
		f := simtest.New(t, pbxsim.Options{Calls: 30})
		dir := t.TempDir()
		sink, err := NewCSV(CSVOptions{Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		x := newExporter(t, f, sink)
		x.BatchSize = 10
		unlock, err := sink.LockPBX(context.Background(), "pbx")
		if err != nil {
			t.Fatal(err)
		}
		r := x.Run(context.Background(), exporter.NewRunID(time.Now()), "once", record.Builtin()[:1])
		unlock()
		syscall.Umask(old)
		if err := r.Err(); err != nil {
			t.Fatal(err)
		}
		want := fs.FileMode(0o600 &^ umask)
		kinds := map[string]bool{}
		filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			for _, k := range []string{".csv", ".manifest.json", "call_history.json", "runs.jsonl", "export.lock"} {
				kinds[k] = kinds[k] || strings.HasSuffix(p, k)
			}
			if info, err := d.Info(); err != nil || info.Mode().Perm() != want {
				t.Errorf("umask %04o: %s is %v, want %v", umask, p, info.Mode().Perm(), want)
			}
			return nil
		})
		if len(kinds) != 5 || slices.Contains(slices.Collect(maps.Values(kinds)), false) {
			t.Fatalf("umask %04o: checked %v, want the data, manifests, state, run log and lock", umask, kinds)
		}
	}
}
