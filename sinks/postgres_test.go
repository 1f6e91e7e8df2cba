package sinks

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wildix-export/wildix-export/exporter"
	"github.com/wildix-export/wildix-export/exporter/record"
	"github.com/wildix-export/wildix-export/internal/pbxsim"
	"github.com/wildix-export/wildix-export/internal/pgtest"
	"github.com/wildix-export/wildix-export/simtest"
)

func newPostgres(t *testing.T) (*Postgres, *pgxpool.Pool) {
	t.Helper()
	schema, pool := pgtest.Schema(t)
	p := NewPostgres(pool, schema, nil)
	if err := p.Migrate(context.Background(), record.Builtin()); err != nil {
		t.Fatal(err)
	}
	return p, pool
}

// checkTable compares call_history with the simulator's truth: ids 1..n
// once each, typed values equal.
func checkTable(t *testing.T, pool *pgxpool.Pool, sim *pbxsim.Sim, pbx string) int64 {
	t.Helper()
	ctx := context.Background()
	var n, maxID, distinct int64
	if err := pool.QueryRow(ctx, "SELECT count(*), coalesce(max(id), 0), count(DISTINCT id) FROM call_history WHERE pbx = $1", pbx).Scan(&n, &maxID, &distinct); err != nil {
		t.Fatal(err)
	}
	if n != maxID || distinct != n {
		t.Fatalf("call_history has %d rows (%d distinct) up to id %d: want each id from 1 once", n, distinct, maxID)
	}
	rows, err := pool.Query(ctx, `SELECT id, start_time, answer_time, end_time, duration, billsec, cost::text, from_name, disposition, raw
FROM call_history WHERE pbx = $1 ORDER BY id`, pbx)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id, dur, bill    int64
			start, end       time.Time
			answer           *time.Time
			cost, from, disp string
			raw              json.RawMessage
		)
		if err := rows.Scan(&id, &start, &answer, &end, &dur, &bill, &cost, &from, &disp, &raw); err != nil {
			t.Fatal(err)
		}
		c := sim.Call(id)
		var truth map[string]string
		json.Unmarshal(sim.CallJSON(id), &truth)
		var got map[string]string
		json.Unmarshal(raw, &got)
		switch {
		case !start.Equal(c.Start) || !end.Equal(c.End):
			t.Fatalf("call %d: start %v end %v, truth %v %v", id, start.UTC(), end.UTC(), c.Start, c.End)
		case (answer == nil) != c.Answer.IsZero() || (answer != nil && !answer.Equal(c.Answer)):
			t.Fatalf("call %d: answer %v, truth %v", id, answer, c.Answer)
		case dur != c.Duration || bill != c.Billsec || disp != c.Disposition || from != truth["from_name"]:
			t.Fatalf("call %d: %d %d %q %q, truth %d %d %q %q", id, dur, bill, disp, from, c.Duration, c.Billsec, c.Disposition, truth["from_name"])
		case !numEqual(cost, c.Cost):
			t.Fatalf("call %d: cost %s, truth %s", id, cost, c.Cost)
		case len(got) != len(truth) || got["lastdata"] != truth["lastdata"]:
			t.Fatalf("call %d: raw %s differs from what the PBX sent", id, raw)
		}
	}
	return maxID
}

func numEqual(a, b string) bool {
	return strings.TrimRight(strings.TrimRight(a, "0"), ".") == strings.TrimRight(strings.TrimRight(b, "0"), ".")
}

func TestPostgresExactlyOnceUnderFaults(t *testing.T) {
	t.Parallel()
	p, pool := newPostgres(t)
	f := simtest.New(t, hostile(3000, time.Date(2026, 10, 24, 20, 0, 0, 0, time.UTC)))
	x := newExporter(t, f, p)
	ctx := context.Background()
	r := x.Run(ctx, exporter.NewRunID(time.Now()), "once", defaultEndpoints())
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	after1 := f.Sim.CallCount()
	max1 := checkTable(t, pool, f.Sim, f.URL.Host)
	r2 := x.Run(ctx, exporter.NewRunID(time.Now()), "once", record.Builtin()[:1])
	if err := r2.Err(); err != nil {
		t.Fatal(err)
	}
	max2 := checkTable(t, pool, f.Sim, f.URL.Host)
	if max2 < after1 || r2.Endpoints[0].Rows != max2-max1 {
		t.Fatalf("second run: %d rows up to %d, want the records after %d", r2.Endpoints[0].Rows, max2, max1)
	}
	var cursor int64
	pool.QueryRow(ctx, "SELECT (state->>'cursor')::bigint FROM export_state WHERE pbx = $1 AND key = 'call_history'", f.URL.Host).Scan(&cursor)
	if cursor < max2 {
		t.Fatalf("cursor %d behind the rows %d", cursor, max2)
	}
	for _, name := range []string{"colleagues", "phonebooks", "contacts", "devices"} {
		var n int
		pool.QueryRow(ctx, "SELECT count(*) FROM "+name+" WHERE deleted_at IS NULL").Scan(&n)
		if n != len(f.Sim.Records(name)) {
			t.Fatalf("%s: %d rows, want %d", name, n, len(f.Sim.Records(name)))
		}
	}
	var status string
	var rows int64
	pool.QueryRow(ctx, "SELECT status, rows FROM export_runs WHERE run_id = $1", r.ID).Scan(&status, &rows)
	if status != "ok" || rows < max1 {
		t.Fatalf("ledger: %s %d", status, rows)
	}
}

func TestPostgresRerunChangesNothingAndSnapshotsMarkDeletes(t *testing.T) {
	t.Parallel()
	p, pool := newPostgres(t)
	f := simtest.New(t, pbxsim.Options{Calls: 800, CallGap: 5 * time.Minute})
	x := newExporter(t, f, p)
	ctx := context.Background()
	from, to := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 1, 3, 0, 0, 0, 0, time.UTC)
	bf := func(id string) {
		if err := x.Backfill(ctx, id, record.Builtin()[:1], exporter.BackfillOptions{From: from, To: to, Force: true}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	bf("first")
	bf("second")
	var changed int
	pool.QueryRow(ctx, "SELECT count(*) FROM call_history WHERE run_id <> 'first'").Scan(&changed)
	if changed != 0 {
		t.Fatalf("a rerun of the same window rewrote %d unchanged rows", changed)
	}
	// Snapshots: a colleague removed on the PBX is marked, not deleted;
	// renamed, updated; an unchanged one keeps its run.
	run := func(id string) {
		if err := x.Run(ctx, id, "once", record.Builtin()[1:2]).Err(); err != nil {
			t.Fatal(err)
		}
	}
	run("s1")
	f.Sim.RemoveRecord("colleagues", "2951882")
	f.Sim.RenameRecord("colleagues", "2951883", "New Name")
	run("s2")
	var deleted, renamedRun, otherRun string
	pool.QueryRow(ctx, "SELECT coalesce(deleted_at::text, '') FROM colleagues WHERE id = 2951882").Scan(&deleted)
	pool.QueryRow(ctx, "SELECT run_id FROM colleagues WHERE id = 2951883 AND name = 'New Name'").Scan(&renamedRun)
	pool.QueryRow(ctx, "SELECT run_id FROM colleagues WHERE id = 2951881").Scan(&otherRun)
	if deleted == "" || renamedRun != "s2" || otherRun != "s1" {
		t.Fatalf("deleted_at %q, renamed row's run %q (want s2), unchanged row's run %q (want s1)", deleted, renamedRun, otherRun)
	}
}

func TestTwoPBXesStayApart(t *testing.T) {
	t.Parallel()
	p, pool := newPostgres(t)
	ctx := context.Background()
	a := simtest.New(t, pbxsim.Options{Calls: 300, Seed: 1})
	b := simtest.New(t, pbxsim.Options{Calls: 500, Seed: 2})
	for _, f := range []*simtest.Fixture{a, b} {
		if err := newExporter(t, f, p).Run(ctx, exporter.NewRunID(time.Now()), "once", defaultEndpoints()).Err(); err != nil {
			t.Fatal(err)
		}
	}
	checkTable(t, pool, a.Sim, a.URL.Host)
	checkTable(t, pool, b.Sim, b.URL.Host)
	var pbxes int
	pool.QueryRow(ctx, "SELECT count(DISTINCT pbx) FROM colleagues").Scan(&pbxes)
	if pbxes != 2 {
		t.Fatalf("colleagues from %d PBXes, want 2", pbxes)
	}
}

func TestMigrateIsAdditiveAndRefusesTypeChanges(t *testing.T) {
	t.Parallel()
	p, pool := newPostgres(t)
	ctx := context.Background()
	// A dependent view of a user's BI tool must survive migrations.
	if _, err := pool.Exec(ctx, "CREATE VIEW my_report AS SELECT day, sum(calls) AS calls FROM calls_daily GROUP BY day"); err != nil {
		t.Fatal(err)
	}
	eps := record.Builtin()
	eps[0].Columns = append(eps[0].Columns, record.Column{Name: "tags", Field: "tags", Type: record.Text})
	if err := p.Migrate(ctx, eps); err != nil {
		t.Fatal(err)
	}
	var n int
	pool.QueryRow(ctx, "SELECT count(*) FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = 'call_history' AND column_name = 'tags'").Scan(&n)
	if n != 1 {
		t.Fatal("new catalog column was not added")
	}
	if _, err := pool.Exec(ctx, "SELECT * FROM my_report"); err != nil {
		t.Fatalf("dependent view broken: %v", err)
	}
	eps[0].Columns[1].Type = record.Text // start_time as text
	err := p.Migrate(ctx, eps)
	if err == nil || !strings.Contains(err.Error(), "never changes a column's type") {
		t.Fatalf("type change: %v", err)
	}
}

// TestDuplicateKeysInABatch: should the PBX send a key twice in a batch
// (a PBX that does not sort, so the exporter cannot see it), the merge
// still loads one row per key.
func TestDuplicateKeysInABatch(t *testing.T) {
	t.Parallel()
	p, pool := newPostgres(t)
	ctx := context.Background()
	ep := record.Builtin()[1] // colleagues
	b, err := p.Begin(ctx, exporter.BatchInfo{PBX: "x", RunID: "r", Endpoint: &ep, StateKey: "colleagues"})
	if err != nil {
		t.Fatal(err)
	}
	conv := &record.Converter{Endpoint: &ep}
	var rows []record.Row
	for _, rec := range []string{`{"id":"1","name":"first"}`, `{"id":"2","name":"other"}`, `{"id":"1","name":"again"}`} {
		r, err := conv.Convert(0, json.RawMessage(rec))
		if err != nil {
			t.Fatal(err)
		}
		rows = append(rows, r)
	}
	if err := b.Write(ctx, rows); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(ctx, []byte(`{}`), exporter.Progress{Rows: 3}); err != nil {
		t.Fatal(err)
	}
	var n int
	pool.QueryRow(ctx, "SELECT count(*) FROM colleagues WHERE pbx = 'x'").Scan(&n)
	if n != 2 {
		t.Fatalf("%d rows, want 2", n)
	}
}

// TestNULBytesAreCleaned: PostgreSQL refuses NUL in text and \u0000 in
// jsonb; they become U+FFFD (the converter does it, the same for every
// sink) instead of failing the batch.
func TestNULBytesAreCleaned(t *testing.T) {
	t.Parallel()
	p, pool := newPostgres(t)
	ctx := context.Background()
	ep := record.Builtin()[1] // colleagues
	b, err := p.Begin(ctx, exporter.BatchInfo{PBX: "x", RunID: "r", Endpoint: &ep, StateKey: "colleagues", Snapshot: true})
	if err != nil {
		t.Fatal(err)
	}
	row, err := (&record.Converter{Endpoint: &ep, Warnings: &record.Warnings{}}).Convert(0, json.RawMessage(`{"id":"5","name":"a\u0000b","x\u0000y":"z\u0000"}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Write(ctx, []record.Row{row}); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(ctx, []byte(`{}`), exporter.Progress{Rows: 1}); err != nil {
		t.Fatal(err)
	}
	var name, rawName string
	pool.QueryRow(ctx, "SELECT name, raw->>'name' FROM colleagues WHERE id = 5").Scan(&name, &rawName)
	if name != "a\uFFFDb" || rawName != "a\uFFFDb" {
		t.Fatalf("name %q, raw name %q", name, rawName)
	}
}

// defaultEndpoints is the built-in endpoints but the opt-in ones
// (recordings needs a recordings store).
func defaultEndpoints() []record.Endpoint {
	return slices.DeleteFunc(record.Builtin(), func(e record.Endpoint) bool { return e.OptIn })
}
