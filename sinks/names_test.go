package sinks

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wildix-export/wildix-export/exporter"
	"github.com/wildix-export/wildix-export/exporter/record"
)

// TestOwnNamesAreRefusedAsEndpoints: an endpoint named like one of the
// program's tables, views or index names is refused before the schema is
// touched, as a configuration error.
func TestOwnNamesAreRefusedAsEndpoints(t *testing.T) {
	t.Parallel()
	p, pool := newPostgres(t)
	ctx := context.Background()
	for _, name := range []string{"export_state", "export_runs", "oauth_tokens", "calls_daily", "data_quality", "call_history_pkey", "call_history_src_idx"} {
		ep := record.Builtin()[1]
		ep.Name = name
		err := p.Migrate(ctx, append(record.Builtin(), ep))
		if !errors.Is(err, record.ErrConfig) || !strings.Contains(err.Error(), name) {
			t.Fatalf("endpoint %q: %v, want a configuration error naming it", name, err)
		}
	}
	// The ledger is intact: a run can still be recorded.
	if err := p.StartRun(ctx, ledgerRun("after")); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM export_runs").Scan(&n); err != nil || n != 1 {
		t.Fatalf("export_runs after refused names: %d rows, %v", n, err)
	}
}

// TestLongEndpointNamesKeepTheirIndexes: names at PostgreSQL's 63-byte
// limit get index names of their own, distinct from the table's and from
// each other's.
func TestLongEndpointNamesKeepTheirIndexes(t *testing.T) {
	t.Parallel()
	p, pool := newPostgres(t)
	ctx := context.Background()
	var eps []record.Endpoint
	for _, last := range []string{"a", "b"} {
		ep := record.Builtin()[1] // colleagues, indexed on extension
		ep.Name = strings.Repeat("x", 62) + last
		eps = append(eps, ep)
	}
	if err := p.Migrate(ctx, eps); err != nil {
		t.Fatal(err)
	}
	for _, ep := range eps {
		var idx []string
		rows, err := pool.Query(ctx, `SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() AND tablename = $1 AND indexdef LIKE '%extension%'`, ep.Name)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				t.Fatal(err)
			}
			idx = append(idx, s)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		if len(idx) != 1 || idx[0] != indexName(ep.Name, "extension") || idx[0] == ep.Name {
			t.Fatalf("%s: indexes on extension %v, want one named %s", ep.Name, idx, indexName(ep.Name, "extension"))
		}
	}
	if indexName(eps[0].Name, "extension") == indexName(eps[1].Name, "extension") {
		t.Fatal("two long names share an index name")
	}
}

// TestCSVTimesOutsideRFC3339AreEmptyAndCounted: years RFC 3339 cannot
// write become empty cells, with a warning counting them.
func TestCSVTimesOutsideRFC3339AreEmptyAndCounted(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var logs bytes.Buffer
	s, err := NewCSV(CSVOptions{Dir: dir, Log: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ep := record.Builtin()[0]
	ctx := context.Background()
	b, err := s.Begin(ctx, exporter.BatchInfo{PBX: "p", RunID: "r", Endpoint: &ep, StateKey: ep.Name, Seq: 1})
	if err != nil {
		t.Fatal(err)
	}
	row := record.Row{Values: make([]any, len(ep.Columns)), Raw: []byte(`{}`)}
	row.Values[ep.Column("id")] = int64(1)
	row.Values[ep.Column("start_time")] = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
	row.Values[ep.Column("answer_time")] = time.Date(1, 1, 1, 0, 30, 0, 0, time.FixedZone("", 3600)) // year 0 in UTC
	row.Values[ep.Column("end_time")] = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)
	if err := b.Write(ctx, []record.Row{row}); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(ctx, []byte(`{"cursor":1}`), exporter.Progress{Rows: 1}); err != nil {
		t.Fatal(err)
	}
	rows := readCSV(t, dir, "call_history")
	if len(rows) != 1 {
		t.Fatalf("%d rows", len(rows))
	}
	if got := rows[0]; got["start_time"] != "" || got["answer_time"] != "" || got["end_time"] != "9999-12-31T23:59:59Z" {
		t.Fatalf("times written %q %q %q; want two empty cells and 9999-12-31T23:59:59Z", got["start_time"], got["answer_time"], got["end_time"])
	}
	if !strings.Contains(logs.String(), "times outside years 0001-9999") || !strings.Contains(logs.String(), "values=2") {
		t.Fatalf("no counted warning in the log:\n%s", logs.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "call_history")); err != nil {
		t.Fatal(err)
	}
}

// TestOwnNamesCoverTheSchema: every relation and type a fully migrated
// schema holds, but for the built-in endpoints' tables and names with an
// index's or constraint's suffix, is in ownNames, so that no endpoint can
// take its name (an endpoint named group_calls_deferred was accepted, and
// its table taken for migration 14's: every batch of call records failed).
func TestOwnNamesCoverTheSchema(t *testing.T) {
	t.Parallel()
	p, pool := newPostgres(t)
	known := map[string]bool{}
	for _, n := range ownNames {
		known[n] = true
	}
	for _, e := range record.Builtin() {
		known[e.Name] = true
	}
	var missing []string
	for _, n := range viewLines(t, pool, `SELECT c.relname FROM pg_class c WHERE c.relnamespace = current_schema()::regnamespace
UNION SELECT y.typname FROM pg_type y WHERE y.typnamespace = current_schema()::regnamespace AND y.typtype IN ('c', 'd', 'e', 'r') AND y.typrelid = 0
ORDER BY 1`) {
		suffixed := false
		for _, s := range ownSuffixes {
			suffixed = suffixed || strings.HasSuffix(n, s)
		}
		if !known[n] && !suffixed {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		t.Fatalf("relations and types of the schema an endpoint may still take the name of (add them to ownNames): %v", missing)
	}
	ep := record.Builtin()[1]
	ep.Name = "group_calls_deferred"
	if err := p.Migrate(context.Background(), append(record.Builtin(), ep)); !errors.Is(err, record.ErrConfig) {
		t.Fatalf("an endpoint named group_calls_deferred: %v, want a configuration error", err)
	}
}
