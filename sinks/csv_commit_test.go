package sinks

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
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

// TestCSVCommitKilledBetweenItsFinishingWrites: completing a commit
// writes its files' manifests, the key index and the state side by side
// (finishCommit); a process killed while they are written leaves any of
// them done and the others not. For each such set (the crash hook stops
// each write of the set, review 6, R6-6: it stopped only once all were
// written, and what recovery does then was untested), the folder holds
// exactly what the set says, and the next process completes the commit
// exactly: the state advanced, every data file with a manifest matching
// its content, each call once with its new form, and a key index that
// lets the next batch write only its new call.
func TestCSVCommitKilledBetweenItsFinishingWrites(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ep := record.Builtin()[0]
	commit := func(t *testing.T, s *CSV, run string, cursor int, calls map[int]string) error {
		t.Helper()
		conv := &record.Converter{Endpoint: &ep}
		b, err := s.Begin(ctx, exporter.BatchInfo{PBX: "p", RunID: run, Endpoint: &ep, StateKey: ep.Name, Seq: 1})
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range slices.Sorted(maps.Keys(calls)) {
			r, err := conv.Convert(0, json.RawMessage(fmt.Sprintf(`{"id":"%d","start":"2026-01-01 10:00:00","timezone":"+0100","to_name":%q}`, id, calls[id])))
			if err != nil {
				t.Fatal(err)
			}
			if err := b.Write(ctx, []record.Row{r}); err != nil {
				t.Fatal(err)
			}
		}
		return b.Commit(ctx, []byte(fmt.Sprintf(`{"cursor":%d}`, cursor)), exporter.Progress{})
	}
	first := map[int]string{1: "a", 2: "b", 3: "c"}
	second := map[int]string{2: "b v2", 4: "d"} // call 2 changed (its file rewritten in place), 4 new (a new file)
	// The finishing writes, in finishCommit's order: the rewritten
	// file's manifest, the new file's, the key index, the rule and state.
	const writes = 4
	// The crash hook's questions in a whole commit: the finishing writes'
	// are the last writes+1 (the last: before the record is removed).
	points := func() int {
		s, _ := NewCSV(CSVOptions{Dir: t.TempDir()})
		if err := commit(t, s, "r1", 1, first); err != nil {
			t.Fatal(err)
		}
		n := 0
		s.crash = func() bool { n++; return false }
		if err := commit(t, s, "r2", 2, second); err != nil {
			t.Fatal(err)
		}
		return n
	}()
	before := points - writes - 1
	if before < 0 {
		t.Fatalf("the crash hook was asked %d times in a commit: fewer than its %d finishing writes", points, writes)
	}
	for stopped := 1; stopped < 1<<writes; stopped++ {
		t.Run(fmt.Sprintf("stopped=%04b", stopped), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			folder := filepath.Join(dir, "call_history")
			s, _ := NewCSV(CSVOptions{Dir: dir})
			if err := commit(t, s, "r1", 1, first); err != nil {
				t.Fatal(err)
			}
			n := 0
			s.crash = func() bool {
				n++
				i := n - 1 - before
				return i >= 0 && i < writes && stopped&(1<<i) != 0
			}
			err := commit(t, s, "r2", 2, second)
			if err == nil || !strings.Contains(err.Error(), errCrashed.Error()) {
				t.Fatalf("the commit: %v; want it stopped", err)
			}
			// What the killed process left: each write stopped undone,
			// the others done.
			old, nw := filepath.Join(folder, "p_r1_0001.csv"), filepath.Join(folder, "p_r2_0001.csv")
			exists := func(p string) bool { _, err := os.Stat(p); return err == nil }
			index, _ := os.ReadFile(filepath.Join(dir, ".state", "p", "call_history~keys.json"))
			state, _ := os.ReadFile(filepath.Join(dir, ".state", "p", "call_history.json"))
			for i, done := range []bool{
				exists(manifestPath(old)), exists(manifestPath(nw)),
				strings.Contains(string(index), filepath.Base(nw)), strings.Contains(string(state), `{"cursor":2}`),
			} {
				if want := stopped&(1<<i) == 0; done != want {
					t.Fatalf("write %d of the finishing writes: done %v, want %v (manifests %v %v, index %s, state %s)",
						i, done, want, exists(manifestPath(old)), exists(manifestPath(nw)), index, state)
				}
			}
			if !exists(filepath.Join(dir, ".state", "p", "call_history.pending.json")) {
				t.Fatal("the pending record is gone, the commit stopped before its writes were all done")
			}
			// The next process completes the commit.
			s2, _ := NewCSV(CSVOptions{Dir: dir})
			st, err := s2.State(ctx, "p", ep.Name)
			if err != nil || string(st) != `{"cursor":2}` {
				t.Fatalf("state after the restart: %s, %v; want {\"cursor\":2}", st, err)
			}
			if p, _ := filepath.Glob(filepath.Join(dir, ".state", "p", "*.pending.json")); len(p) > 0 {
				t.Fatalf("pending records left after the restart: %v", p)
			}
			exact := func(when string, want map[string]string, files int) {
				t.Helper()
				data, _ := filepath.Glob(filepath.Join(folder, "*.csv"))
				if len(data) != files {
					t.Fatalf("%s: data files %v, want %d", when, data, files)
				}
				for _, f := range data {
					var m struct {
						Rows   int64  `json:"rows"`
						SHA256 string `json:"sha256"`
					}
					b, err := os.ReadFile(manifestPath(f))
					if err != nil || json.Unmarshal(b, &m) != nil {
						t.Fatalf("%s: %s has no manifest: %v", when, filepath.Base(f), err)
					}
					sum, _ := fileSHA256(f)
					if rows := int64(len(readCSVFile(t, f))); m.SHA256 != sum || m.Rows != rows {
						t.Fatalf("%s: %s's manifest says %d rows, sha256 %s; the file holds %d, %s", when, filepath.Base(f), m.Rows, m.SHA256, rows, sum)
					}
				}
				got := map[string]string{}
				for _, r := range readCSV(t, dir, "call_history") {
					if _, twice := got[r["id"]]; twice {
						t.Fatalf("%s: call %s twice", when, r["id"])
					}
					got[r["id"]] = r["to_name"]
				}
				if !maps.Equal(got, want) {
					t.Fatalf("%s: the folder holds %v, want %v", when, got, want)
				}
			}
			want := map[string]string{"1": "a", "2": "b v2", "3": "c", "4": "d"}
			exact("after the restart", want, 2)
			// The next batch sends every call again and a new one: the
			// key index must know where each is.
			again := map[int]string{5: "e"}
			for id, name := range want {
				k, _ := strconv.Atoi(id)
				again[k] = name
			}
			if err := commit(t, s2, "r3", 3, again); err != nil {
				t.Fatal(err)
			}
			want["5"] = "e"
			exact("after the next batch", want, 3)
			if rows := readCSVFile(t, filepath.Join(folder, "p_r3_0001.csv")); len(rows) != 1 || rows[0]["id"] != "5" {
				t.Fatalf("the next batch's file holds %v, want call 5 alone", rows)
			}
		})
	}
}
