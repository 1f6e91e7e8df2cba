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
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/wildix-export/wildix-export/exporter"
	"github.com/wildix-export/wildix-export/exporter/record"
	"github.com/wildix-export/wildix-export/sinks/recstore"
)

// TestPruneStoppedAfterRemovingFiles: a prune stopped (here: the store
// fails at its third file, as a SIGKILL would stop it) after removing
// recordings' files and before their rows went leaves rows naming files
// that are gone. The next prune completes it whatever its limit: the
// same, a longer one (an earlier cut), or none (FinishPrune, a run with
// EXPORT_RETENTION off): every row left names a stored file, the old
// recordings' rows and files are gone, the newer ones' stay; nothing is
// pending after. Before, with a longer limit or none, the rows stayed
// `copied` naming absent files for good (attack 4, F6). On both sinks.
func TestPruneStoppedAfterRemovingFiles(t *testing.T) {
	t.Parallel()
	cut := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, kind := range []string{"csv", "postgres"} {
		for _, next := range []string{"same limit", "longer limit", "no limit"} {
			t.Run(kind+"/"+next, func(t *testing.T) {
				t.Parallel()
				ctx := context.Background()
				root := t.TempDir()
				store, err := recstore.OpenDir(root, recstore.DirOptions{})
				if err != nil {
					t.Fatal(err)
				}
				ep := record.Builtin()[len(record.Builtin())-1]
				var rows []record.Row
				objects := map[string]string{}
				for i := 0; i < 10; i++ {
					id, start := fmt.Sprintf("rec%d", i), cut.Add(time.Duration(i-6)*24*time.Hour) // 6 old, 4 newer
					name, _ := recstore.Name("p", start, id)
					if _, err := store.Put(ctx, name, bytes.NewReader([]byte("RIFF")), recstore.Want{}); err != nil {
						t.Fatal(err)
					}
					objects[id] = name
					vals := make([]any, len(ep.Columns))
					vals[ep.Column("recording")], vals[ep.Column("start_time")], vals[ep.Column("object")] = id, start, name
					vals[ep.Column("status")] = "copied"
					rows = append(rows, record.Row{Key: id, Values: vals, Raw: json.RawMessage(`{}`)})
				}
				var s interface {
					exporter.Sink
					Prune(ctx context.Context, pbx string, eps []record.Endpoint, cut time.Time, o PruneOptions) (Pruned, error)
					FinishPrune(ctx context.Context, pbx string, eps []record.Endpoint, o PruneOptions) (Pruned, time.Time, error)
				}
				var left func() map[string]string // recording → object
				if kind == "csv" {
					dir := t.TempDir()
					c, _ := NewCSV(CSVOptions{Dir: dir})
					s, left = c, func() map[string]string { return csvObjects(t, dir) }
				} else {
					p, pool := newPostgres(t)
					s, left = p, func() map[string]string {
						out := map[string]string{}
						r, _ := pool.Query(ctx, "SELECT recording, object FROM recordings WHERE pbx = 'p'")
						var k, o string
						if _, err := pgx.ForEachRow(r, []any{&k, &o}, func() error { out[k] = o; return nil }); err != nil {
							t.Fatal(err)
						}
						return out
					}
				}
				b, err := s.Begin(ctx, exporter.BatchInfo{PBX: "p", RunID: "r1", Endpoint: &ep, StateKey: ep.Name, Seq: 1})
				if err != nil {
					t.Fatal(err)
				}
				if err := b.Write(ctx, rows); err != nil {
					t.Fatal(err)
				}
				if err := b.Commit(ctx, []byte(`{"cursor":0}`), exporter.Progress{}); err != nil {
					t.Fatal(err)
				}
				eps := record.Builtin()
				if _, err := s.Prune(ctx, "p", eps, cut, PruneOptions{Batch: 4, Recordings: &failingRemover{store: store, failAt: 3}}); err == nil {
					t.Fatal("the store's failure was not reported")
				}
				stored := func(name string) bool {
					_, err := os.Stat(filepath.Join(root, filepath.FromSlash(name)))
					return err == nil
				}
				gone := 0
				for _, o := range left() {
					if !stored(o) {
						gone++
					}
				}
				if gone != 2 {
					t.Fatalf("stopped: %d rows name a file gone, want the 2 removed before the failure (the state the fix must repair)", gone)
				}
				o := PruneOptions{Batch: 4, Recordings: store}
				switch next {
				case "same limit":
					_, err = s.Prune(ctx, "p", eps, cut, o)
				case "longer limit":
					_, err = s.Prune(ctx, "p", eps, cut.Add(-30*24*time.Hour), o)
				case "no limit":
					var got Pruned
					var was time.Time
					got, was, err = s.FinishPrune(ctx, "p", eps, o)
					if !was.Equal(cut) {
						t.Errorf("FinishPrune: pending cut %v, want %v (pruned %+v)", was, cut, got)
					}
				}
				if err != nil {
					t.Fatal(err)
				}
				now := left()
				if want := []string{"rec6", "rec7", "rec8", "rec9"}; fmt.Sprint(slices.Sorted(maps.Keys(now))) != fmt.Sprint(want) {
					t.Errorf("rows %v, want %v", slices.Sorted(maps.Keys(now)), want)
				}
				for id, name := range objects {
					_, row := now[id]
					if stored(name) != row {
						t.Errorf("recording %s: row %v, file stored %v", id, row, stored(name))
					}
				}
				if got, was, err := s.FinishPrune(ctx, "p", eps, o); err != nil || !was.IsZero() || len(got) != 0 {
					t.Errorf("a prune still pending after: %v %+v %v", was, got, err)
				}
			})
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
