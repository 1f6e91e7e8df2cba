package sinks

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/wildix-export/wildix-export/exporter/record"
	"github.com/wildix-export/wildix-export/sinks/recstore"
)

// keptCount is the count of table in got, failing when there is none.
func keptCount(t *testing.T, got Pruned, table string) PrunedCount {
	t.Helper()
	for _, c := range got {
		if c.Table == table && (c.Rows > 0 || c.Kept > 0) {
			return c
		}
	}
	t.Fatalf("pruned %+v: no count of %s", got, table)
	return PrunedCount{}
}

// TestPruneKeepsRowsOfAnotherStore: with EXPORT_RECORDINGS_* pointed at
// another store (a new folder, bucket or prefix) the recordings' rows
// before the cut name files the new store does not hold. A prune keeps
// them (the files are in the first store: their rows gone, nothing would
// name them, and no prune nor forget would find them), counts them kept
// and says what to do, storing no pending record. Once the files are
// moved into the new store, names unchanged, or a run points at the
// first store, the next prune removes them with their rows; files gone
// from every store are settled by the record the note gives, against
// this store only. Before, the rows were removed, the store asked to
// remove files it did not hold. On both sinks. It stays whole: each step
// starts from the state the one before left (one sink, two stores).
func TestPruneKeepsRowsOfAnotherStore(t *testing.T) {
	t.Parallel()
	cut := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, kind := range []string{"csv", "postgres"} {
		for _, then := range []string{"moved", "gone"} {
			t.Run(kind+"/"+then, func(t *testing.T) {
				t.Parallel()
				ctx := context.Background()
				sp := newStoppedPrune(t, kind, cut)
				root := t.TempDir()
				other, err := recstore.OpenDir(root, recstore.DirOptions{})
				if err != nil {
					t.Fatal(err)
				}
				inOther := PruneOptions{Batch: 4, Recordings: other, Store: "folder " + root}
				first := PruneOptions{Batch: 4, Recordings: sp.store, Store: sp.where}
				all := "[rec0 rec1 rec2 rec3 rec4 rec5 rec6 rec7 rec8 rec9]"
				got, err := sp.s.Prune(ctx, "p", record.Builtin(), cut, inOther)
				if err != nil {
					t.Fatal(err)
				}
				rows, stored := sp.state()
				if fmt.Sprint(rows) != all || fmt.Sprint(stored) != all {
					t.Fatalf("another store: rows %v, stored %v; want every row kept with its file in the first store (pruned %+v)", rows, stored, got)
				}
				c := keptCount(t, got, "recordings")
				if c.Rows != 0 || c.Kept != 6 || !got.Incomplete() || !strings.Contains(c.Detail, "6 rows kept: the files they name are not in this run's recordings store (folder "+root+")") {
					t.Fatalf("another store: %+v; want the 6 rows counted kept, saying why", c)
				}
				if pp, err := sp.s.pending(ctx, "p"); err != nil || pp != nil {
					t.Fatalf("another store: pending %+v (%v), want none", pp, err)
				}
				switch then {
				case "moved":
					// Two of the old files moved into the new store:
					// they go with their rows, the others stay kept.
					for _, id := range []string{"rec0", "rec1"} {
						name := sp.objects[id]
						if err := os.MkdirAll(filepath.Dir(filepath.Join(root, name)), 0o700); err != nil {
							t.Fatal(err)
						}
						if err := os.Rename(filepath.Join(sp.root, name), filepath.Join(root, name)); err != nil {
							t.Fatal(err)
						}
					}
					got, err = sp.s.Prune(ctx, "p", record.Builtin(), cut, inOther)
					if c := keptCount(t, got, "recordings"); err != nil || c.Rows != 2 || c.Kept != 4 {
						t.Fatalf("2 files moved: %+v %v; want 2 rows removed, 4 kept", got, err)
					}
					if left, _ := filepath.Glob(filepath.Join(root, "*", "*", "*", "*", "*")); len(left) != 0 {
						t.Fatalf("2 files moved: %v left in the new store, want them removed", left)
					}
					// A run pointed at the first store prunes the rest.
					got, err = sp.s.Prune(ctx, "p", record.Builtin(), cut, first)
					if c := keptCount(t, got, "recordings"); err != nil || c.Rows != 4 || c.Kept != 0 || got.Incomplete() {
						t.Fatalf("the first store: %+v %v; want the 4 rows removed, none kept", got, err)
					}
				case "gone":
					// Four old files deleted by hand from the first
					// store: a prune with it removes the 2 whose files it
					// holds and keeps the 4, giving the record to write.
					for _, id := range []string{"rec0", "rec1", "rec2", "rec3"} {
						if err := os.Remove(filepath.Join(sp.root, sp.objects[id])); err != nil {
							t.Fatal(err)
						}
					}
					got, err = sp.s.Prune(ctx, "p", record.Builtin(), cut, first)
					c := keptCount(t, got, "recordings")
					if err != nil || c.Rows != 2 || c.Kept != 4 {
						t.Fatalf("4 files gone: %+v %v; want 2 rows removed, 4 kept", got, err)
					}
					writeHint(t, sp, c.Detail)
					got, err = sp.s.Prune(ctx, "p", record.Builtin(), cut, first)
					if err != nil || got.Incomplete() || !strings.Contains(fmt.Sprint(got), "the rows of the 4 files gone") {
						t.Fatalf("after the record: %+v %v; want the 4 rows of files gone removed", got, err)
					}
				}
				rows, stored = sp.state()
				if want := "[rec6 rec7 rec8 rec9]"; fmt.Sprint(rows) != want || fmt.Sprint(stored) != want {
					t.Fatalf("rows %v, stored %v; want %s", rows, stored, want)
				}
				if pp, err := sp.s.pending(ctx, "p"); err != nil || pp != nil {
					t.Fatalf("pending %+v (%v), want none", pp, err)
				}
			})
		}
	}
}

// writeHint stores the pending record a kept count's detail gives, as
// someone would: the file written, or the statement run.
func writeHint(t *testing.T, sp *stoppedPrune, detail string) {
	t.Helper()
	if m := regexp.MustCompile(`write (\{[^}]*\}) to (.+?): the next run`).FindStringSubmatch(detail); m != nil {
		if err := os.WriteFile(m[2], []byte(m[1]), 0o600); err != nil {
			t.Fatal(err)
		}
		return
	}
	m := regexp.MustCompile(`run (INSERT INTO .+?\)): the next run`).FindStringSubmatch(detail)
	p, ok := sp.s.(*Postgres)
	if m == nil || !ok {
		t.Fatalf("no record to write in %q", detail)
	}
	if _, err := p.pool.Exec(context.Background(), m[1]); err != nil {
		t.Fatalf("%s: %v", m[1], err)
	}
}

// TestPendingPruneEmptyStore: a prune stopped after removing 2 files,
// then runs whose store is the one it was made with but holds nothing (a
// volume not mounted on its folder): every file its rows name looks gone,
// and so does every other recording's. The prune is left pending, with
// EXPORT_RETENTION off (FinishPrune) or the same (Prune), no row removed
// and the record kept, the note saying the store looks empty; once the
// files are back, the next run settles it exactly. Before, the rows of
// every file the record names were removed (PostgreSQL: a batch's 4,
// CSV: the endpoint's 6), their files left on the volume named by
// nothing. On both sinks. It stays whole: each case's steps start from
// the state the one before left.
func TestPendingPruneEmptyStore(t *testing.T) {
	t.Parallel()
	cut := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, kind := range []string{"csv", "postgres"} {
		for _, next := range []string{"no limit", "same limit"} {
			t.Run(kind+"/"+next, func(t *testing.T) {
				t.Parallel()
				ctx := context.Background()
				sp := newStoppedPrune(t, kind, cut)
				sp.stopAt(t, cut, 3)
				rows, stored := sp.state()
				kept, err := sp.s.pending(ctx, "p")
				if len(rows) != 10 || len(stored) != 8 || err != nil || kept == nil {
					t.Fatalf("stopped: rows %v, stored %v, pending %+v (%v); want 10 rows, 8 files, a record", rows, stored, kept, err)
				}
				// Unmounted: the folder is there, empty.
				away := t.TempDir()
				if err := os.Rename(filepath.Join(sp.root, "p"), filepath.Join(away, "p")); err != nil {
					t.Fatal(err)
				}
				o := PruneOptions{Batch: 4, Recordings: sp.store, Store: sp.where}
				var got Pruned
				if next == "no limit" {
					got, _, err = sp.s.FinishPrune(ctx, "p", record.Builtin(), o)
				} else {
					got, err = sp.s.Prune(ctx, "p", record.Builtin(), cut, o)
				}
				if err != nil || !got.Held() || !strings.Contains(got[0].Detail, "the store looks empty") {
					t.Fatalf("the store empty: %+v %v; want the prune left pending, saying the store looks empty", got, err)
				}
				if n := len(sp.rows()); n != 10 {
					t.Fatalf("the store empty: %d rows left, want the 10 kept", n)
				}
				if pp, err := sp.s.pending(ctx, "p"); err != nil || fmt.Sprint(pp) != fmt.Sprint(kept) {
					t.Fatalf("the store empty: pending %+v (%v), want it kept: %+v", pp, err, kept)
				}
				if err := os.Rename(filepath.Join(away, "p"), filepath.Join(sp.root, "p")); err != nil {
					t.Fatal(err)
				}
				if got, _, err := sp.s.FinishPrune(ctx, "p", record.Builtin(), o); err != nil || got.Held() {
					t.Fatalf("the store back: %+v %v", got, err)
				}
				rows2, stored2 := sp.state()
				if fmt.Sprint(rows2) != fmt.Sprint(stored) || fmt.Sprint(stored2) != fmt.Sprint(stored) {
					t.Errorf("the store back: rows %v, stored %v; want the rows of the %v stored, nothing removed", rows2, stored2, stored)
				}
			})
		}
		// Every file the record names gone, the other recordings' files
		// there: the store is not empty, and the prune is settled.
		t.Run(kind+"/its files gone", func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			sp := newStoppedPrune(t, kind, cut)
			sp.stopAt(t, cut, 3)
			pp, err := sp.s.pending(ctx, "p")
			if err != nil || pp == nil {
				t.Fatalf("stopped: pending %+v (%v)", pp, err)
			}
			for _, name := range pp.Names {
				if err := os.Remove(filepath.Join(sp.root, name)); err != nil && !os.IsNotExist(err) {
					t.Fatal(err)
				}
			}
			got, _, err := sp.s.FinishPrune(ctx, "p", record.Builtin(), PruneOptions{Batch: 4, Recordings: sp.store, Store: sp.where})
			if err != nil || got.Held() {
				t.Fatalf("its files gone: %+v %v; want it settled", got, err)
			}
			if rows, stored := sp.state(); len(rows) != 10-len(pp.Names) || fmt.Sprint(rows) != fmt.Sprint(stored) {
				t.Errorf("its files gone: rows %v, stored %v; want the %d rows of the record's files removed", rows, stored, len(pp.Names))
			}
		})
	}
}
