package sinks

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/wildix-export/wildix-export/exporter"
	"github.com/wildix-export/wildix-export/exporter/record"
	"github.com/wildix-export/wildix-export/sinks/recstore"
)

// pendingSink is a sink whose prunes are tested: Postgres, CSV.
type pendingSink interface {
	exporter.Sink
	pendingStore
	Prune(ctx context.Context, pbx string, eps []record.Endpoint, cut time.Time, o PruneOptions) (Pruned, error)
	FinishPrune(ctx context.Context, pbx string, eps []record.Endpoint, o PruneOptions) (Pruned, time.Time, error)
}

// stoppedPrune is a sink holding 10 recordings' rows of PBX "p" (6 of
// calls before cut, 4 after), their files in store, after a prune at cut
// stopped at stop: rows (recording → object, of the rows there) and
// stored (whether a file is) read them.
type stoppedPrune struct {
	s       pendingSink
	store   *recstore.Dir
	root    string            // store's folder
	where   string            // store's identity (PruneOptions.Store)
	objects map[string]string // recording → object, of the 10
	rows    func() map[string]string
	stored  func(name string) bool
}

// stopPoints are where TestPruneStoppedAfterRemovingFiles stops a prune
// at cut, with the rows and stored files each leaves (Batch 4: on
// PostgreSQL the first batch is 4 rows).
var stopPoints = []struct {
	name string
	stop func(t *testing.T, sp *stoppedPrune, cut time.Time)
	rows int // rows left of the 10
	gone int // of them, naming a file gone
}{
	{"before any removal", func(t *testing.T, sp *stoppedPrune, cut time.Time) { sp.stopAt(t, cut, 1) }, 10, 0},
	{"after some files", func(t *testing.T, sp *stoppedPrune, cut time.Time) { sp.stopAt(t, cut, 3) }, 10, 2},
	// PostgreSQL: the first batch's 4 rows gone with their files, one
	// file of the second batch; CSV: 5 files, no row.
	{"after a batch's rows", func(t *testing.T, sp *stoppedPrune, cut time.Time) { sp.stopAt(t, cut, 6) }, -1, -1},
	// Every file and row gone, killed before the record was cleared.
	{"after every row", func(t *testing.T, sp *stoppedPrune, cut time.Time) {
		rec := &namingRemover{failingRemover: failingRemover{store: sp.store}}
		if _, err := sp.s.Prune(context.Background(), "p", record.Builtin(), cut, PruneOptions{Batch: 4, Recordings: rec, Store: sp.where}); err != nil {
			t.Fatal(err)
		}
		if err := sp.s.setPending(context.Background(), "p", &pendingPrune{Cut: cut, Names: rec.names, Store: sp.where}); err != nil {
			t.Fatal(err)
		}
	}, 4, 0},
	// A record of 8c65ea7: the cut only, stored at the prune's start.
	{"a record without names", func(t *testing.T, sp *stoppedPrune, cut time.Time) {
		sp.stopAt(t, cut, 3)
		if err := sp.s.setPending(context.Background(), "p", &pendingPrune{Cut: cut}); err != nil {
			t.Fatal(err)
		}
	}, 10, 2},
}

// namingRemover records the names it removes.
type namingRemover struct {
	failingRemover
	names []string
}

func (r *namingRemover) Remove(ctx context.Context, name string) error {
	r.names = append(r.names, name)
	return r.failingRemover.Remove(ctx, name)
}

// stopAt runs a prune at cut whose store fails at its failAt-th file.
func (sp *stoppedPrune) stopAt(t *testing.T, cut time.Time, failAt int) {
	t.Helper()
	if _, err := sp.s.Prune(context.Background(), "p", record.Builtin(), cut, PruneOptions{Batch: 4, Recordings: &failingRemover{store: sp.store, failAt: failAt}, Store: sp.where}); err == nil {
		t.Fatal("the store's failure was not reported")
	}
}

// newStoppedPrune is stoppedPrune's sink of kind ("csv", "postgres"),
// before the prune.
func newStoppedPrune(t *testing.T, kind string, cut time.Time) *stoppedPrune {
	t.Helper()
	ctx := context.Background()
	root := t.TempDir()
	store, err := recstore.OpenDir(root, recstore.DirOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sp := &stoppedPrune{store: store, root: root, where: "folder " + root, objects: map[string]string{}, stored: func(name string) bool {
		_, err := os.Stat(filepath.Join(root, filepath.FromSlash(name)))
		return err == nil
	}}
	ep := record.Builtin()[len(record.Builtin())-1]
	var rows []record.Row
	for i := 0; i < 10; i++ {
		id, start := fmt.Sprintf("rec%d", i), cut.Add(time.Duration(i-6)*24*time.Hour) // 6 old, 4 newer
		name, _ := recstore.Name("p", start, id)
		if _, err := store.Put(ctx, name, bytes.NewReader([]byte("RIFF")), recstore.Want{}); err != nil {
			t.Fatal(err)
		}
		sp.objects[id] = name
		vals := make([]any, len(ep.Columns))
		vals[ep.Column("recording")], vals[ep.Column("start_time")], vals[ep.Column("object")] = id, start, name
		vals[ep.Column("status")] = "copied"
		rows = append(rows, record.Row{Key: id, Values: vals, Raw: json.RawMessage(`{}`)})
	}
	if kind == "csv" {
		dir := t.TempDir()
		c, _ := NewCSV(CSVOptions{Dir: dir})
		sp.s, sp.rows = c, func() map[string]string { return csvObjects(t, dir) }
	} else {
		p, pool := newPostgres(t)
		sp.s, sp.rows = p, func() map[string]string {
			out := map[string]string{}
			r, _ := pool.Query(ctx, "SELECT recording, object FROM recordings WHERE pbx = 'p'")
			var k, o string
			if _, err := pgx.ForEachRow(r, []any{&k, &o}, func() error { out[k] = o; return nil }); err != nil {
				t.Fatal(err)
			}
			return out
		}
	}
	b, err := sp.s.Begin(ctx, exporter.BatchInfo{PBX: "p", RunID: "r1", Endpoint: &ep, StateKey: ep.Name, Seq: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Write(ctx, rows); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(ctx, []byte(`{"cursor":0}`), exporter.Progress{}); err != nil {
		t.Fatal(err)
	}
	return sp
}

// state is the recordings whose rows are there and, of the 10, those
// whose files are stored.
func (sp *stoppedPrune) state() (rows, stored []string) {
	rows = slices.Sorted(maps.Keys(sp.rows()))
	for _, id := range slices.Sorted(maps.Keys(sp.objects)) {
		if sp.stored(sp.objects[id]) {
			stored = append(stored, id)
		}
	}
	return rows, stored
}

// TestPruneStoppedAfterRemovingFiles: a prune stopped (the store fails
// at a file, as a SIGKILL would stop it) at each point, before any file
// is removed, after some files, after some or all of their rows, leaves
// rows naming files that are gone, and a pending record. The next prune
// settles it whatever its limit: with the same limit every recording
// before the cut goes; with a longer one (an earlier cut) or none
// (FinishPrune, a run with EXPORT_RETENTION off) exactly the rows whose
// files are gone go, no file is removed and no row whose file is
// stored. Every row left names a stored file; nothing is pending after.
// Before, the pending cut was stored at every prune's start and
// completed whole: recordings the new setting keeps were removed, rows
// and files (review 6, R6-2); and before that, with a longer limit or
// none, the rows stayed `copied` naming absent files (attack 4, F6). On
// both sinks. It stays whole: each case's state after the stop is
// checked before the next prune, its expectations are derived from it.
func TestPruneStoppedAfterRemovingFiles(t *testing.T) {
	t.Parallel()
	cut := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, kind := range []string{"csv", "postgres"} {
		for _, at := range stopPoints {
			for _, next := range []string{"same limit", "longer limit", "no limit"} {
				t.Run(kind+"/"+at.name+"/"+next, func(t *testing.T) {
					t.Parallel()
					ctx := context.Background()
					sp := newStoppedPrune(t, kind, cut)
					at.stop(t, sp, cut)
					rows, stored := sp.state()
					gone := slices.DeleteFunc(slices.Clone(rows), func(id string) bool { return slices.Contains(stored, id) })
					wantRows, wantGone := at.rows, at.gone
					if wantRows < 0 { // after a batch's rows
						wantRows, wantGone = 6, 1
						if kind == "csv" {
							wantRows, wantGone = 10, 5
						}
					}
					if len(rows) != wantRows || len(gone) != wantGone {
						t.Fatalf("stopped: rows %v, %v of them naming a file gone; want %d rows, %d naming a file gone (the state the test is about)",
							rows, gone, wantRows, wantGone)
					}
					if pp, err := sp.s.pending(ctx, "p"); err != nil || pp == nil {
						t.Fatalf("stopped: no pending prune (%v)", err)
					}
					o := PruneOptions{Batch: 4, Recordings: sp.store, Store: sp.where}
					var err error
					switch next {
					case "same limit":
						_, err = sp.s.Prune(ctx, "p", record.Builtin(), cut, o)
					case "longer limit":
						_, err = sp.s.Prune(ctx, "p", record.Builtin(), cut.Add(-30*24*time.Hour), o)
					case "no limit":
						var got Pruned
						var was time.Time
						got, was, err = sp.s.FinishPrune(ctx, "p", record.Builtin(), o)
						if !was.Equal(cut) {
							t.Errorf("FinishPrune: pending cut %v, want %v (pruned %+v)", was, cut, got)
						}
					}
					if err != nil {
						t.Fatal(err)
					}
					wantRows2 := slices.DeleteFunc(slices.Clone(rows), func(id string) bool { return slices.Contains(gone, id) })
					wantStored := stored
					if next == "same limit" {
						wantRows2 = []string{"rec6", "rec7", "rec8", "rec9"}
						wantStored = wantRows2
					}
					rows2, stored2 := sp.state()
					if fmt.Sprint(rows2) != fmt.Sprint(wantRows2) {
						t.Errorf("rows %v, want %v (stopped with %v, %v naming a file gone)", rows2, wantRows2, rows, gone)
					}
					if fmt.Sprint(stored2) != fmt.Sprint(wantStored) {
						t.Errorf("files stored of %v, want %v (a file the limit keeps removed)", stored2, wantStored)
					}
					for id, name := range sp.rows() {
						if !sp.stored(name) {
							t.Errorf("recording %s: its row names %s, not stored", id, name)
						}
					}
					if got, was, err := sp.s.FinishPrune(ctx, "p", record.Builtin(), o); err != nil || !was.IsZero() || len(got) != 0 {
						t.Errorf("a prune still pending after: %v %+v %v", was, got, err)
					}
				})
			}
		}
	}
}

// TestPendingPruneWithoutStore: a stopped prune's rows are left as they
// are by a run without a recordings store, with EXPORT_RETENTION off
// (FinishPrune) or longer (Prune): which of the files are gone only the
// store can tell, and removing every row the prune was at would leave
// the files it had not reached with no row naming them. The result says
// so, the prune stays pending, and the next run with the store settles
// it (review 6, R6-7). On both sinks.
func TestPendingPruneWithoutStore(t *testing.T) {
	t.Parallel()
	cut := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, kind := range []string{"csv", "postgres"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			sp := newStoppedPrune(t, kind, cut)
			sp.stopAt(t, cut, 3)
			rows, stored := sp.state()
			if len(rows) != 10 || len(stored) != 8 {
				t.Fatalf("stopped: rows %v, stored %v; want 10 rows, 8 files", rows, stored)
			}
			removing := 6 // CSV: the endpoint's; PostgreSQL: the batch's
			if kind == "postgres" {
				removing = 4
			}
			got, was, err := sp.s.FinishPrune(ctx, "p", record.Builtin(), PruneOptions{})
			if err != nil || !was.Equal(cut) || len(got) != 1 || got[0].Rows != 0 || !strings.Contains(got[0].Detail,
				fmt.Sprintf("is left pending: which of the %d files it was removing are gone only the recordings store can tell, and none is configured", removing)) {
				t.Fatalf("FinishPrune without a store: %+v %v %v", got, was, err)
			}
			got, err = sp.s.Prune(ctx, "p", record.Builtin(), cut.Add(-30*24*time.Hour), PruneOptions{})
			if err != nil || len(got) == 0 || !strings.Contains(got[0].Detail, "is left pending") {
				t.Fatalf("Prune without a store: %+v %v", got, err)
			}
			if rows2, stored2 := sp.state(); fmt.Sprint(rows2, stored2) != fmt.Sprint(rows, stored) {
				t.Fatalf("without a store: rows %v, stored %v; want them as they were: %v, %v", rows2, stored2, rows, stored)
			}
			got, was, err = sp.s.FinishPrune(ctx, "p", record.Builtin(), PruneOptions{Recordings: sp.store, Store: sp.where})
			if err != nil || !was.Equal(cut) {
				t.Fatalf("FinishPrune with the store: %+v %v %v", got, was, err)
			}
			rows2, stored2 := sp.state()
			if fmt.Sprint(rows2) != fmt.Sprint(stored) || fmt.Sprint(stored2) != fmt.Sprint(stored) {
				t.Errorf("with the store: rows %v, stored %v; want the rows of the %v stored, nothing removed", rows2, stored2, stored)
			}
		})
	}
}

// TestPendingPruneOtherStore: a prune stopped after removing 2 files is
// left as it is by a run whose recordings store is another one (a new
// folder, bucket or prefix), with EXPORT_RETENTION off (FinishPrune) or
// the same (Prune): every file looks gone from that store, and removing
// their rows would leave the files still in the first store with no row
// naming them; with a record of an earlier version (no store; cut only,
// 8c65ea7: every row before its cut) as long as none of the files is in
// the store. No row and no file is removed, the record stays as it was,
// the result says so and what to do; the next run with the first store
// settles it exactly: the rows of the 2 files gone (review 9, R9-6). On
// both sinks.
func TestPendingPruneOtherStore(t *testing.T) {
	t.Parallel()
	cut := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	records := []struct {
		name string
		old  func(pp *pendingPrune) *pendingPrune // the record as an earlier version wrote it; nil: as stored
		want string                               // in the note
	}{
		{"with its store", nil, "it was made with the recordings store folder "},
		{"without store (b065c36)", func(pp *pendingPrune) *pendingPrune { return &pendingPrune{Cut: pp.Cut, Names: pp.Names} },
			"its record, written by an earlier version, does not say which recordings store it was made with, and none of the"},
		{"cut only (8c65ea7)", func(pp *pendingPrune) *pendingPrune { return &pendingPrune{Cut: pp.Cut} },
			"its record, written by an earlier version, does not say which recordings store it was made with, and none of the"},
	}
	for _, kind := range []string{"csv", "postgres"} {
		for _, rec := range records {
			for _, next := range []string{"no limit", "same limit"} {
				t.Run(kind+"/"+rec.name+"/"+next, func(t *testing.T) {
					t.Parallel()
					ctx := context.Background()
					sp := newStoppedPrune(t, kind, cut)
					sp.stopAt(t, cut, 3)
					pp, err := sp.s.pending(ctx, "p")
					if err != nil || pp == nil || pp.Store != sp.where {
						t.Fatalf("stopped: pending %+v (%v), want one made with %s", pp, err, sp.where)
					}
					if rec.old != nil {
						if err := sp.s.setPending(ctx, "p", rec.old(pp)); err != nil {
							t.Fatal(err)
						}
					}
					kept, _ := sp.s.pending(ctx, "p")
					rows, stored := sp.state()
					if len(rows) != 10 || len(stored) != 8 {
						t.Fatalf("stopped: rows %v, stored %v; want 10 rows, 8 files", rows, stored)
					}
					root := t.TempDir()
					other, err := recstore.OpenDir(root, recstore.DirOptions{})
					if err != nil {
						t.Fatal(err)
					}
					o := PruneOptions{Batch: 4, Recordings: other, Store: "folder " + root}
					var got Pruned
					if next == "no limit" {
						var was time.Time
						got, was, err = sp.s.FinishPrune(ctx, "p", record.Builtin(), o)
						if !was.Equal(cut) {
							t.Errorf("FinishPrune: pending cut %v, want %v", was, cut)
						}
					} else {
						got, err = sp.s.Prune(ctx, "p", record.Builtin(), cut, o)
					}
					if err != nil || !got.Held() || !strings.Contains(got[0].Detail, "is left pending: "+rec.want) ||
						!strings.Contains(got[0].Detail, "folder "+root) || !strings.Contains(got[0].Detail, "retention~pending.json") &&
						!strings.Contains(got[0].Detail, "retention pending prune") {
						t.Fatalf("with another store: %+v %v; want it left pending, saying so", got, err)
					}
					if rows2, stored2 := sp.state(); fmt.Sprint(rows2, stored2) != fmt.Sprint(rows, stored) {
						t.Fatalf("with another store: rows %v, stored %v; want them as they were: %v, %v", rows2, stored2, rows, stored)
					}
					if pp2, err := sp.s.pending(ctx, "p"); err != nil || fmt.Sprint(pp2) != fmt.Sprint(kept) {
						t.Fatalf("with another store: pending %+v (%v), want it kept: %+v", pp2, err, kept)
					}
					got, was, err := sp.s.FinishPrune(ctx, "p", record.Builtin(), PruneOptions{Recordings: sp.store, Store: sp.where})
					if err != nil || !was.Equal(cut) || got.Held() {
						t.Fatalf("FinishPrune with the first store: %+v %v %v", got, was, err)
					}
					rows2, stored2 := sp.state()
					if fmt.Sprint(rows2) != fmt.Sprint(stored) || fmt.Sprint(stored2) != fmt.Sprint(stored) {
						t.Errorf("with the first store: rows %v, stored %v; want the rows of the %v stored, nothing removed", rows2, stored2, stored)
					}
					if pp, err := sp.s.pending(ctx, "p"); err != nil || pp != nil {
						t.Errorf("with the first store: still pending %+v (%v)", pp, err)
					}
				})
			}
		}
	}
}

// csvObjects is the object of each recording's row in the CSV folder dir.
func csvObjects(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	files, _ := filepath.Glob(filepath.Join(dir, "recordings", "*.csv"))
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		recs, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		k, o := slices.Index(recs[0], "recording"), slices.Index(recs[0], "object")
		for _, r := range recs[1:] {
			out[r[k]] = r[o]
		}
	}
	return out
}
