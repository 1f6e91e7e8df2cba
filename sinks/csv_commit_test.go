package sinks

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wildix-export/wildix-export/exporter"
	"github.com/wildix-export/wildix-export/exporter/record"
	"github.com/wildix-export/wildix-export/internal/safefile"
)

// TestCSVCommitSyncsItsFolderOnceBeforeTheManifests: completing a commit
// that rewrites one data file and adds another renames both into place,
// then syncs their folder once, before any manifest, the key index or
// the state names them (a power cut must never keep those and lose a
// rename); the syncs are not one a file. Fails when recoverPath syncs the
// folder after each rename (two syncs, the first with the new file still
// under its temporary name) or writes a manifest before the sync.
func TestCSVCommitSyncsItsFolderOnceBeforeTheManifests(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	folder := filepath.Join(dir, "call_history")
	commit := csvCommitter(t, dir)
	ep := record.Builtin()[0]
	if err := commit(false, nil, exporter.BatchInfo{PBX: "p", RunID: "r1", StateKey: ep.Name, Seq: 1}, map[int]string{1: "a", 2: "b", 3: "c"}); err != nil {
		t.Fatal(err)
	}
	// What the folder held at each of its syncs after the pending record
	// was written.
	type seen struct {
		tmps, manifests []string
		index           string
	}
	var after []seen
	watch := func(s *CSV) {
		s.syncDir = func(d string) error {
			pending, _ := filepath.Glob(filepath.Join(dir, ".state", "p", "*.pending.json"))
			if d == folder && len(pending) > 0 {
				tmps, _ := filepath.Glob(filepath.Join(folder, ".p~*.tmp-*"))
				mans, _ := filepath.Glob(filepath.Join(folder, "p_r2_*.manifest.json"))
				index, _ := os.ReadFile(filepath.Join(dir, ".state", "p", "call_history~keys.json"))
				after = append(after, seen{tmps: tmps, manifests: mans, index: string(index)})
			}
			return safefile.SyncDir(d)
		}
	}
	// Call 2 changed on the PBX (its file rewritten in place), call 4 new
	// (a new data file).
	if err := commit(false, watch, exporter.BatchInfo{PBX: "p", RunID: "r2", StateKey: ep.Name, Seq: 1}, map[int]string{2: "b v2", 4: "d"}); err != nil {
		t.Fatal(err)
	}
	news, _ := filepath.Glob(filepath.Join(folder, "p_r2_*.csv"))
	if len(news) != 1 {
		t.Fatalf("new data files %v, want one: the test no longer makes a commit of two files", news)
	}
	if len(after) != 1 {
		t.Fatalf("the folder was synced %d times while completing the commit, want once for both files: %+v", len(after), after)
	}
	got := after[0]
	if len(got.tmps) > 0 {
		t.Errorf("the folder was synced with %v still under temporary names", got.tmps)
	}
	if len(got.manifests) > 0 {
		t.Errorf("the manifest %v was written before the folder holding its file was synced", got.manifests)
	}
	if strings.Contains(got.index, filepath.Base(news[0])) {
		t.Errorf("the key index named %s before the folder holding it was synced", filepath.Base(news[0]))
	}
}
