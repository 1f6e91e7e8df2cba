package sinks

import (
	"context"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/wildix-export/wildix-export/exporter"
	"github.com/wildix-export/wildix-export/exporter/record"
)

// TestNamedObjects: on both sinks, with the rows of two PBXs committed
// (CSV: one gzip-compressed file among them), NamedObjects finds every
// name a row names, of either PBX and any status (a vanished row's name
// too), and no other; a sink whose recordings were never written names
// none.
func TestNamedObjects(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ep := record.Builtin()[len(record.Builtin())-1]
	day := time.Date(2026, 1, 1, 3, 25, 54, 0, time.UTC)
	rows := map[string][]struct{ key, object, status string }{
		"x":   {{"1", "x/2026/01/01/1.wav", "copied"}, {"2", "x/2026/01/01/2.wav", "skipped"}, {"3", "x/2026/01/01/3.wav", "vanished"}, {"4", "", "erased"}},
		"x-2": {{"1", "x-2/2026/01/01/1.wav", "copied"}},
	}
	ask := []string{"x/2026/01/01/1.wav", "x/2026/01/01/2.wav", "x/2026/01/01/3.wav", "x-2/2026/01/01/1.wav", "x/2026/01/01/5.wav", "x/2026/01/02/1.wav", ""}
	want := []string{"x-2/2026/01/01/1.wav", "x/2026/01/01/1.wav", "x/2026/01/01/2.wav", "x/2026/01/01/3.wav"}
	type namer interface {
		exporter.Sink
		NamedObjects(ctx context.Context, ep *record.Endpoint, names []string) (map[string]bool, error)
	}
	for _, kind := range []string{"csv", "postgres"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			var s namer
			dir := t.TempDir()
			if kind == "csv" {
				c, err := NewCSV(CSVOptions{Dir: dir})
				if err != nil {
					t.Fatal(err)
				}
				s = c
			} else {
				p, _ := newPostgres(t)
				if err := p.Migrate(ctx, record.Builtin()); err != nil {
					t.Fatal(err)
				}
				s = p
			}
			if got, err := s.NamedObjects(ctx, &ep, ask); err != nil || len(got) != 0 {
				t.Fatalf("nothing written: %v, %v; want none named", got, err)
			}
			for _, pbx := range []string{"x", "x-2"} {
				var recs []record.Row
				for i, r := range rows[pbx] {
					vals := make([]any, len(ep.Columns))
					for c, v := range map[string]any{"recording": r.key, "object": r.object, "status": r.status, "start_time": day.Add(time.Duration(i) * time.Minute)} {
						if v != "" {
							vals[ep.Column(c)] = v
						}
					}
					recs = append(recs, record.Row{Key: r.key, Values: vals, Raw: json.RawMessage(`{}`)})
				}
				if kind == "csv" && pbx == "x-2" {
					c, err := NewCSV(CSVOptions{Dir: dir, Gzip: true})
					if err != nil {
						t.Fatal(err)
					}
					s = c
				}
				b, err := s.Begin(ctx, exporter.BatchInfo{PBX: pbx, RunID: "r1", Endpoint: &ep, StateKey: ep.Name, Seq: 1})
				if err != nil {
					t.Fatal(err)
				}
				if err := b.Write(ctx, recs); err != nil {
					t.Fatal(err)
				}
				if err := b.Commit(ctx, []byte(`{}`), exporter.Progress{Rows: int64(len(recs))}); err != nil {
					t.Fatal(err)
				}
			}
			if kind == "csv" {
				gz, _ := filepath.Glob(filepath.Join(dir, ep.Name, "*.csv.gz"))
				plain, _ := filepath.Glob(filepath.Join(dir, ep.Name, "*.csv"))
				if len(gz) != 1 || len(plain) != 1 {
					t.Fatalf("data files: %q and %q; want one of each", gz, plain)
				}
			}
			got, err := s.NamedObjects(ctx, &ep, ask)
			if err != nil {
				t.Fatal(err)
			}
			if names := slices.Sorted(maps.Keys(got)); !slices.Equal(names, want) {
				t.Fatalf("named: %q; want %q", names, want)
			}
		})
	}
}

// TestCSVNamedObjectsForeignFile (review 34, R34-2): a CSV file in the
// recordings folder with no object column (one put there by hand) names
// no file, and does not fail NamedObjects; the rows of the sink's own
// files still name theirs. A torn file of the sink's still fails.
func TestCSVNamedObjectsForeignFile(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ep := record.Builtin()[len(record.Builtin())-1]
	dir := t.TempDir()
	c, err := NewCSV(CSVOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	vals := make([]any, len(ep.Columns))
	vals[ep.Column("recording")], vals[ep.Column("object")], vals[ep.Column("status")] = "1", "x/2026/01/01/1.wav", "copied"
	vals[ep.Column("start_time")] = time.Date(2026, 1, 1, 3, 25, 54, 0, time.UTC)
	b, err := c.Begin(ctx, exporter.BatchInfo{PBX: "x", RunID: "r1", Endpoint: &ep, StateKey: ep.Name, Seq: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Write(ctx, []record.Row{{Key: "1", Values: vals, Raw: json.RawMessage(`{}`)}}); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(ctx, []byte(`{}`), exporter.Progress{Rows: 1}); err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{"january-report.csv": "caller,minutes\nx/2026/01/01/2.wav,3\n", "empty.csv": ""} {
		if err := os.WriteFile(filepath.Join(dir, ep.Name, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := c.NamedObjects(ctx, &ep, []string{"x/2026/01/01/1.wav", "x/2026/01/01/2.wav"})
	if err != nil || len(got) != 1 || !got["x/2026/01/01/1.wav"] {
		t.Fatalf("NamedObjects with a CSV file of no object column beside: %v, %v; want only x/2026/01/01/1.wav named, no error", got, err)
	}
	torn := filepath.Join(dir, ep.Name, "torn.csv")
	if err := os.WriteFile(torn, []byte("object,status\n\"x/2026/01/01/2.wav,copied\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := c.NamedObjects(ctx, &ep, []string{"x/2026/01/01/2.wav"}); err == nil {
		t.Fatal("NamedObjects with a torn file of an object column: no error; want it failed (the file may hold a row)")
	}
}
