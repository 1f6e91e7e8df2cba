package sinks

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/wildix-export/wildix-export/exporter"
	"github.com/wildix-export/wildix-export/exporter/record"
)

// writeCalls commits a call_history row for pbx per start (nil: a call
// whose start is unknown, NULL or an empty cell), ids from 1.
func writeCalls(t *testing.T, s exporter.Sink, pbx string, starts []any) {
	t.Helper()
	ctx := context.Background()
	ep := record.Builtin()[0]
	b, err := s.Begin(ctx, exporter.BatchInfo{PBX: pbx, RunID: "r1", Endpoint: &ep, StateKey: ep.Name, Seq: 1})
	if err != nil {
		t.Fatal(err)
	}
	var rows []record.Row
	for i, start := range starts {
		vals := make([]any, len(ep.Columns))
		vals[ep.Column("id")], vals[ep.Column("start_time")] = int64(i+1), start
		rows = append(rows, record.Row{Key: fmt.Sprint(i + 1), Values: vals, Raw: []byte(fmt.Sprintf(`{"id":"%d"}`, i+1))})
	}
	if err := b.Write(ctx, rows); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(ctx, []byte(`{"cursor":0}`), exporter.Progress{}); err != nil {
		t.Fatal(err)
	}
}

// TestPruneEdges: on both sinks, a prune removes the call started a
// second before the cut and keeps the one exactly at the cut (README,
// Retention: strictly before), the one whose start is unknown (its age is
// not known), the newer one, and another PBX's old call (each PBX prunes
// its own). Review 30-retention F3.
func TestPruneEdges(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cut := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	starts := []any{cut.Add(-time.Second), cut, nil, cut.Add(time.Hour)}
	want := []string{"2", "3", "4"} // ids kept
	other := []any{cut.AddDate(0, 0, -30)}
	for _, tc := range []struct {
		name string
		open func(t *testing.T) (exporter.Sink, func(pbx string) []string)
	}{
		{"csv", func(t *testing.T) (exporter.Sink, func(string) []string) {
			dir := t.TempDir()
			s, err := NewCSV(CSVOptions{Dir: dir})
			if err != nil {
				t.Fatal(err)
			}
			return s, func(pbx string) []string {
				var ids []string
				for _, rows := range callFiles(t, dir) {
					for _, r := range rows {
						if r["pbx"] == pbx || r["pbx"] == "" {
							ids = append(ids, r["id"])
						}
					}
				}
				slices.Sort(ids)
				return ids
			}
		}},
		{"postgres", func(t *testing.T) (exporter.Sink, func(string) []string) {
			p, pool := newPostgres(t)
			return p, func(pbx string) []string {
				ids, err := pgx.CollectRows(must(pool.Query(ctx, "SELECT id::text FROM call_history WHERE pbx = $1 ORDER BY id", pbx)), pgx.RowTo[string])
				if err != nil {
					t.Fatal(err)
				}
				return ids
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, ids := tc.open(t)
			writeCalls(t, s, "p1", starts)
			if tc.name == "postgres" { // a CSV folder holds one PBX's files per folder: see TestCSVPrune
				writeCalls(t, s, "p2", other)
			}
			got, err := s.(interface {
				Prune(context.Context, string, []record.Endpoint, time.Time, PruneOptions) (Pruned, error)
			}).Prune(ctx, "p1", record.Builtin(), cut, PruneOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if n := got.Total(); n != 1 {
				t.Fatalf("%d rows pruned (%+v), want the one before the cut", n, got)
			}
			if kept := ids("p1"); fmt.Sprint(kept) != fmt.Sprint(want) {
				t.Fatalf("calls kept %v, want %v (at the cut, unknown, newer)", kept, want)
			}
			if tc.name == "postgres" {
				if kept := ids("p2"); fmt.Sprint(kept) != "[1]" {
					t.Fatalf("another PBX's calls %v, want its old call kept", kept)
				}
			}
		})
	}
}
