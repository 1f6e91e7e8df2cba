package sinks

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wildix-export/wildix-export/exporter"
	"github.com/wildix-export/wildix-export/exporter/record"
	"github.com/wildix-export/wildix-export/internal/pbxsim"
	"github.com/wildix-export/wildix-export/internal/pgtest"
	"github.com/wildix-export/wildix-export/simtest"
)

// runLoads reads a run's rows of call_history by path from the ledger.
func runLoads(t *testing.T, pool *pgxpool.Pool, runID string) Loads {
	t.Helper()
	var l Loads
	if err := pool.QueryRow(context.Background(), `SELECT rows_direct, rows_merged, direct_fallbacks FROM export_run_endpoints
WHERE run_id = $1 AND endpoint = 'call_history'`, runID).Scan(&l.Direct, &l.Merged, &l.Fallbacks); err != nil {
		t.Fatalf("ledger of run %s: %v", runID, err)
	}
	return l
}

// wallOf is the PBX-local start of a call, as backfill bounds take it.
func wallOf(t *testing.T, f *simtest.Fixture, id int64) time.Time {
	t.Helper()
	var m map[string]string
	if err := json.Unmarshal(f.Sim.CallJSON(id), &m); err != nil {
		t.Fatal(err)
	}
	w, err := time.Parse(time.DateTime, m["start"])
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// TestDirectCopyExactlyWhereSafe: a first export, then a backfill over a
// range reaching past the cursor, then an incremental run. No duplicate,
// no lost row, and the ledger shows the direct path taken for exactly the
// rows above every key already in the table: with the default chunks (a
// COPY per batch and path here) and with a COPY per page and path.
func TestDirectCopyExactlyWhereSafe(t *testing.T) {
	t.Parallel()
	for _, chunk := range []int{chunkBytes, 1} {
		t.Run(fmt.Sprintf("chunk=%d", chunk), func(t *testing.T) {
			t.Parallel()
			directCopyExactlyWhereSafe(t, chunk)
		})
	}
}

func directCopyExactlyWhereSafe(t *testing.T, chunk int) {
	p, pool := newPostgres(t)
	p.chunk = chunk
	f := simtest.New(t, pbxsim.Options{Calls: 2000, CallsStart: time.Date(2026, 5, 4, 8, 0, 0, 0, time.UTC), CallGap: 2 * time.Minute})
	x := newExporter(t, f, p)
	ctx := context.Background()
	eps := record.Builtin()[:1]

	r1 := x.Run(ctx, exporter.NewRunID(time.Now()), "once", eps)
	if err := r1.Err(); err != nil {
		t.Fatal(err)
	}
	if got := runLoads(t, pool, r1.ID); got != (Loads{Direct: 2000}) {
		t.Fatalf("first export: %+v, want all 2000 rows direct", got)
	}

	f.Sim.InsertCalls(1000) // 2001..3000, above the cursor
	from, to := wallOf(t, f, 1500), wallOf(t, f, 2500)
	rb := x.Backfill(ctx, exporter.NewRunID(time.Now()), eps, exporter.BackfillOptions{From: from, To: to, Window: 6 * time.Hour})
	if err := rb.Err(); err != nil {
		t.Fatal(err)
	}
	if got := runLoads(t, pool, rb.ID); got.Direct != 0 || got.Merged != rb.Endpoints[0].Rows || got.Merged == 0 {
		t.Fatalf("backfill: %+v for %d rows, want every row merged", got, rb.Endpoints[0].Rows)
	}
	var high int64
	if err := pool.QueryRow(ctx, "SELECT max(id) FROM call_history WHERE pbx = $1", x.PBX).Scan(&high); err != nil {
		t.Fatal(err)
	}
	if high <= 2000 || high >= 3000 {
		t.Fatalf("the backfill wrote up to id %d: the test needs it past the cursor (2000) and short of 3000", high)
	}

	r3 := x.Run(ctx, exporter.NewRunID(time.Now()), "once", eps)
	if err := r3.Err(); err != nil {
		t.Fatal(err)
	}
	want := Loads{Direct: 3000 - high, Merged: high - 2000}
	if got := runLoads(t, pool, r3.ID); got != want {
		t.Fatalf("incremental after the backfill: %+v, want %+v (direct exactly above id %d)", got, want, high)
	}
	if n := checkTable(t, pool, f.Sim, x.PBX); n != 3000 {
		t.Fatalf("table ends at id %d, want 3000", n)
	}
	if got, want := p.Loads(), (Loads{Direct: 2000 + 3000 - high, Merged: rb.Endpoints[0].Rows + high - 2000}); got != want {
		t.Fatalf("sink totals %+v, want %+v", got, want)
	}
}

// exportedRewound exports 1500 calls' history into a schema of its own,
// then puts its cursor back to 500: the next run reads 501.. again.
func exportedRewound(t *testing.T) (*Postgres, *pgxpool.Pool, *simtest.Fixture, *exporter.Exporter, []record.Endpoint) {
	t.Helper()
	p, pool := newPostgres(t)
	f := simtest.New(t, pbxsim.Options{Calls: 1500, CallsStart: time.Date(2026, 5, 4, 8, 0, 0, 0, time.UTC), CallGap: time.Minute})
	x := newExporter(t, f, p)
	ctx := context.Background()
	eps := record.Builtin()[:1]
	if err := x.Run(ctx, exporter.NewRunID(time.Now()), "once", eps).Err(); err != nil {
		t.Fatal(err)
	}
	tag, err := pool.Exec(ctx, `UPDATE export_state SET state = jsonb_set(state, '{cursor}', '500') WHERE pbx = $1 AND key = 'call_history'`, x.PBX)
	if err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("reset the cursor: %v (%d rows)", err, tag.RowsAffected())
	}
	return p, pool, f, x, eps
}

// TestDirectCopyMeetingAnExistingKeyFallsBack: direct copies forced onto
// keys already in the table are undone and merged; the run ends exact.
func TestDirectCopyMeetingAnExistingKeyFallsBack(t *testing.T) {
	t.Parallel()
	p, pool, f, x, eps := exportedRewound(t)
	ctx := context.Background()
	// The sink believes no key exists. The rows above the cursor are made
	// stale, so that only a merge that really rewrites them (not a
	// fallback that drops the rows of the colliding COPY) leaves the table
	// equal to the PBX's truth.
	tag, err := pool.Exec(ctx, `UPDATE call_history SET from_name = 'stale', disposition = 'STALE' WHERE pbx = $1 AND id > 500`, x.PBX)
	if err != nil || tag.RowsAffected() != 1000 {
		t.Fatalf("make rows stale: %v (%d rows)", err, tag.RowsAffected())
	}
	p.forceDirect = true
	f.Sim.InsertCalls(200)
	r := x.Run(ctx, exporter.NewRunID(time.Now()), "once", eps)
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	got := runLoads(t, pool, r.ID)
	if got.Fallbacks == 0 || got.Direct != 0 || got.Merged != 1200 {
		t.Fatalf("forced direct copies over existing keys: %+v, want fallbacks and all 1200 rows merged", got)
	}
	if n := checkTable(t, pool, f.Sim, x.PBX); n != 1700 {
		t.Fatalf("table ends at id %d, want 1700", n)
	}
}

// TestDirectCopyFallbackInALaterChunk: a batch whose first chunks go
// straight into the table and a later one meets existing keys. The
// colliding chunk is undone and merged with the rest of the batch, the
// chunks already copied stay, and the table ends equal to the PBX.
func TestDirectCopyFallbackInALaterChunk(t *testing.T) {
	t.Parallel()
	p, pool, f, x, eps := exportedRewound(t)
	ctx := context.Background()
	// Rows 501..1000 are gone from the table (they can go direct), rows
	// 1001..1500 are there, made stale.
	if tag, err := pool.Exec(ctx, `DELETE FROM call_history WHERE pbx = $1 AND id BETWEEN 501 AND 1000`, x.PBX); err != nil || tag.RowsAffected() != 500 {
		t.Fatalf("delete rows: %v (%d rows)", err, tag.RowsAffected())
	}
	if tag, err := pool.Exec(ctx, `UPDATE call_history SET from_name = 'stale', disposition = 'STALE' WHERE pbx = $1 AND id > 1000`, x.PBX); err != nil || tag.RowsAffected() != 500 {
		t.Fatalf("make rows stale: %v (%d rows)", err, tag.RowsAffected())
	}
	p.forceDirect = true
	p.chunk = 1 // a COPY per page and path
	r := x.Run(ctx, exporter.NewRunID(time.Now()), "once", eps)
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	got := runLoads(t, pool, r.ID)
	// Each batch tries the direct path afresh, so a fallback per batch
	// that meets the stale rows.
	if got.Fallbacks == 0 || got.Direct == 0 || got.Direct > 500 || got.Direct+got.Merged != 1000 {
		t.Fatalf("chunks copied direct, then ones meeting existing keys: %+v, want fallbacks, up to 500 rows direct, 1000 in all", got)
	}
	if n := checkTable(t, pool, f.Sim, x.PBX); n != 1500 {
		t.Fatalf("table ends at id %d, want 1500", n)
	}
}

// TestMigrationDropsIndexesNoViewUses: a schema whose call_history has the
// indexes of earlier versions loses those on src, dst, from_number and
// to_number (migration 5), keeps start_time's and every column; migration
// 12 adds channel's and uniqueid's.
func TestMigrationDropsIndexesNoViewUses(t *testing.T) {
	t.Parallel()
	schema, pool := pgtest.Schema(t)
	p := NewPostgres(pool, schema, nil)
	ctx := context.Background()
	old := record.Builtin()
	old[0].Index = []string{"start_time", "src", "dst", "from_number", "to_number"}
	if err := p.Migrate(ctx, old); err != nil {
		t.Fatal(err)
	}
	rows, err := pool.Query(ctx, `SELECT indexname FROM pg_indexes WHERE schemaname = $1 AND tablename = 'call_history' ORDER BY 1`, schema)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		got = append(got, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	// channel and uniqueid: migration 12's, which find a call's legs again.
	if want := []string{"call_history_channel_idx", "call_history_pkey", "call_history_start_time_idx", "call_history_uniqueid_idx"}; !slices.Equal(got, want) {
		t.Fatalf("call_history indexes %v, want %v", got, want)
	}
	var cols int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM information_schema.columns WHERE table_schema = $1 AND table_name = 'call_history'
AND column_name IN ('src', 'dst', 'from_number', 'to_number')`, schema).Scan(&cols); err != nil || cols != 4 {
		t.Fatalf("columns kept: %d, %v", cols, err)
	}
}

// TestFallbackWithAChunkInFlight: a direct chunk goes in; the next, sent
// while a third fills behind it, meets an existing key. The colliding chunk
// and the one behind it are merged, the first stays, and the counts say so.
func TestFallbackWithAChunkInFlight(t *testing.T) {
	t.Parallel()
	p, pool := newPostgres(t)
	ep := record.Builtin()[0]
	conv := &record.Converter{Endpoint: &ep}
	page := func(from, to int) []record.Row {
		var rows []record.Row
		for i := from; i <= to; i++ {
			r, err := conv.Convert(0, json.RawMessage(fmt.Sprintf(`{"id":"%d","start":"2026-01-01T00:00:00Z","src":"new"}`, i)))
			if err != nil {
				t.Fatal(err)
			}
			rows = append(rows, r)
		}
		return rows
	}
	ctx := context.Background()
	if _, err := pool.Exec(ctx, "INSERT INTO call_history (pbx, id, src, raw, run_id) VALUES ('x', 150, 'old', '{}', 'o')"); err != nil {
		t.Fatal(err)
	}
	p.forceDirect = true
	p.chunk = 1 // a chunk per page
	b, err := p.Begin(ctx, exporter.BatchInfo{PBX: "x", RunID: "r", Endpoint: &ep, StateKey: "k"})
	if err != nil {
		t.Fatal(err)
	}
	for _, rows := range [][]record.Row{page(1, 100), page(101, 200)} {
		if err := b.Write(ctx, rows); err != nil {
			t.Fatal(err)
		}
	}
	p.chunk = 1 << 30 // the third page stays in its chunk until the commit
	if err := b.Write(ctx, page(201, 250)); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(ctx, []byte(`{}`), exporter.Progress{}); err != nil {
		t.Fatal(err)
	}
	var n, stale int
	if err := pool.QueryRow(ctx, "SELECT count(*), count(*) FILTER (WHERE src <> 'new') FROM call_history WHERE pbx = 'x'").Scan(&n, &stale); err != nil {
		t.Fatal(err)
	}
	if got := p.Loads(); got != (Loads{Direct: 100, Merged: 150, Fallbacks: 1}) || n != 250 || stale != 0 {
		t.Fatalf("loads %+v, %d rows, %d stale: want 100 direct, 150 merged, 1 fallback, 250 rows, none stale", got, n, stale)
	}
}
