package sinks

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
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
	// A torn file named otherwise than the sink's names what was read
	// of it; one named as the sink's fails (review 40, R40-2).
	torn := []byte("object,status\nx/2026/01/01/2.wav,copied\n\"x/2026/01/01/3.wav,copied\n")
	if err := os.WriteFile(filepath.Join(dir, ep.Name, "torn.csv"), torn, 0o644); err != nil {
		t.Fatal(err)
	}
	got, err = c.NamedObjects(ctx, &ep, []string{"x/2026/01/01/2.wav", "x/2026/01/01/3.wav"})
	if err != nil || len(got) != 1 || !got["x/2026/01/01/2.wav"] {
		t.Fatalf("NamedObjects with a torn file not named as the sink's: %v, %v; want x/2026/01/01/2.wav, read before the tear, named, no error", got, err)
	}
	if err := os.WriteFile(filepath.Join(dir, ep.Name, "x_"+exporter.NewRunID(time.Now())+"_0001.csv"), torn, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := c.NamedObjects(ctx, &ep, []string{"x/2026/01/01/2.wav"}); err == nil {
		t.Fatal("NamedObjects with a torn file of the sink's: no error; want it failed (the file may hold a row)")
	}
}

// TestCSVNamedObjectsDamagedHeader (review 40, R40-2): a data file of the
// sink's (named as CSV.Begin names them, plain or gzip-compressed) whose
// header lost its object column fails NamedObjects, naming the file and
// what to do: its rows may name stored files, which must be kept. It was
// skipped as a foreign file, and the files only it named were removable.
func TestCSVNamedObjectsDamagedHeader(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ep := record.Builtin()[len(record.Builtin())-1]
	for _, gz := range []bool{false, true} {
		dir := t.TempDir()
		c, err := NewCSV(CSVOptions{Dir: dir, Gzip: gz})
		if err != nil {
			t.Fatal(err)
		}
		vals := make([]any, len(ep.Columns))
		vals[ep.Column("recording")], vals[ep.Column("object")], vals[ep.Column("status")] = "1", "x/2026/01/01/1.wav", "copied"
		vals[ep.Column("start_time")] = time.Date(2026, 1, 1, 3, 25, 54, 0, time.UTC)
		b, err := c.Begin(ctx, exporter.BatchInfo{PBX: "x", RunID: exporter.NewRunID(time.Now()), Endpoint: &ep, StateKey: ep.Name, Seq: 1})
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Write(ctx, []record.Row{{Key: "1", Values: vals, Raw: json.RawMessage(`{}`)}}); err != nil {
			t.Fatal(err)
		}
		if err := b.Commit(ctx, []byte(`{}`), exporter.Progress{Rows: 1}); err != nil {
			t.Fatal(err)
		}
		files, _ := filepath.Glob(filepath.Join(dir, ep.Name, "x_*.csv*"))
		if len(files) != 1 {
			t.Fatalf("data files %q; want one", files)
		}
		f, err := openData(files[0])
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		damaged := bytes.Replace(body, []byte(",object,"), []byte(",obj\x00ct,"), 1)
		if bytes.Equal(damaged, body) {
			t.Fatalf("no object column in %s's header: %.200q", files[0], body)
		}
		if gz {
			var buf bytes.Buffer
			w := gzip.NewWriter(&buf)
			w.Write(damaged)
			w.Close()
			damaged = buf.Bytes()
		}
		if err := os.WriteFile(files[0], damaged, 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := c.NamedObjects(ctx, &ep, []string{"x/2026/01/01/1.wav"})
		if err == nil || !strings.Contains(err.Error(), filepath.Base(files[0])) || !strings.Contains(err.Error(), "no object column") {
			t.Errorf("gzip %v: NamedObjects with the sink's data file's header damaged: %v, %v; want an error naming the file and its header", gz, got, err)
		}
	}
}

// TestCSVPeekStateTouchesNothing: `check` reads the recordings state
// (its files pending removal) through PeekState, which may run beside an
// export going on in another process: it returns the committed state
// and leaves the temporary files that export is writing (in the
// endpoint's folder and the state folder, last written before check
// started), where State, completing crashed commits and removing what a
// killed process left, removes them: the running export's commit would
// then lose its files.
func TestCSVPeekStateTouchesNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ep := record.Builtin()[len(record.Builtin())-1]
	dir := t.TempDir()
	run, err := NewCSV(CSVOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	b, err := run.Begin(ctx, exporter.BatchInfo{PBX: "x", RunID: "r1", Endpoint: &ep, StateKey: ep.Name, Seq: 1})
	if err != nil {
		t.Fatal(err)
	}
	state := []byte(`{"time":"2026-01-01 03:25:54","pending":{"k-1":{"wall":"2026-01-01 03:25:54","names":["x/2026/01/01/k-1.wav"],"why":"the PBX answered 500"}}}`)
	if err := b.Commit(ctx, state, exporter.Progress{}); err != nil {
		t.Fatal(err)
	}
	// The running export's temporary files, written an hour ago.
	temps := []string{
		filepath.Join(dir, ep.Name, tmpName("x", "recordings-r2.csv")+"1"),
		filepath.Join(run.stateDir("x"), "."+ep.Name+".json.tmp-1"),
	}
	hourAgo := time.Now().Add(-time.Hour)
	for _, p := range temps {
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("rows being written"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, hourAgo, hourAgo); err != nil {
			t.Fatal(err)
		}
	}
	check, err := NewCSV(CSVOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	got, err := check.PeekState(ctx, "x", ep.Name)
	if err != nil || !bytes.Equal(got, state) {
		t.Fatalf("PeekState: %s, %v; want the committed %s", got, err, state)
	}
	for _, p := range temps {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("after PeekState: %v; want the running export's file left", err)
		}
	}
	// State does remove them (what PeekState must not do): the files
	// are ones a recovery takes for a killed process's.
	if _, err := check.State(ctx, "x", ep.Name); err != nil {
		t.Fatal(err)
	}
	for _, p := range temps {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("after State: %s left; the test's files are not what a recovery removes", p)
		}
	}
}
