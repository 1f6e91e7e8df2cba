package exporter_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wildix-export/wildix-export/internal/pbxsim"
)

// States as the exporter of 2026-12-06 (main at b97beb1) wrote them: the
// CSV sink's state file of call_history, whose "state" member is the
// cursor's state, stored as is in PostgreSQL's export_state row. A new
// version must go on from each exactly.
const (
	// By key, from a PBX whose filter[id][from] excludes its bound.
	stateFromExclusive = `{"seq":1,"file":"pbx_20261206T142946Z-0d0483_0001.csv","state":{"cursor":30,"run_id":"20261206T142946Z-0d0483","at":"2026-12-06T14:29:46.649126633Z","from":"exclusive"}}`
	// By key, from a PBX that honours everything.
	stateFromInclusive = `{"seq":1,"file":"pbx_20261206T142946Z-4f9bb6_0001.csv","state":{"cursor":30,"run_id":"20261206T142946Z-4f9bb6","at":"2026-12-06T14:29:46.862201896Z","from":"inclusive"}}`
	// By time windows, from a PBX ignoring filter[id], calls arriving:
	// the newest time read and the keys exported within the look-back
	// before it (cut to the first 20 of 94 here).
	stateTimeWindows = `{"seq":1,"file":"pbx_20261206T142946Z-5d3a6b_0001.csv","state":{"cursor":0,"run_id":"20261206T142946Z-5d3a6b","at":"2026-12-06T14:29:46.835390815Z","time":"2026-01-01 01:48:16","recent":{"1":"2026-01-01 00:58:42","10":"2026-01-01 01:03:36","11":"2026-01-01 01:02:25","12":"2026-01-01 01:02:35","13":"2026-01-01 01:05:05","14":"2026-01-01 00:48:06","15":"2026-01-01 01:07:23","16":"2026-01-01 01:07:50","17":"2026-01-01 01:06:03","18":"2026-01-01 01:06:16","19":"2026-01-01 01:01:38","2":"2026-01-01 00:59:54","20":"2026-01-01 01:09:23","3":"2026-01-01 00:57:29","4":"2026-01-01 00:58:23","5":"2026-01-01 00:57:52","6":"2026-01-01 00:58:23","7":"2026-01-01 01:03:15","8":"2026-01-01 00:59:53","9":"2026-01-01 01:03:04"}}}`
)

// TestStateOfEarlierVersionsLoads: an incremental run goes on from a
// state file (CSV) or state row (PostgreSQL) written by the version of
// 2026-12-06, with what it says about the PBX: the from-bound's kind, or
// paging by time windows with the keys already exported.
func TestStateOfEarlierVersionsLoads(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		state string
		o     pbxsim.Options
		want  []int64 // the calls the run exports
		note  string
		reqs  int64 // the requests of a second run, with nothing new
		// zoneless: WILDIX_TIMEZONE not set, read by the records' offsets.
		zoneless bool
	}{
		{"from exclusive", stateFromExclusive, pbxsim.Options{Calls: 40, FilterFromExclusive: []string{"id"}}, span(31, 40),
			"the stored state says filter[id][from] excludes its bound", 1, false},
		{"from inclusive", stateFromInclusive, pbxsim.Options{Calls: 40}, span(31, 40), "", 1, false},
		{"time windows", stateTimeWindows, pbxsim.Options{Calls: 30, IgnoreFilter: []string{"id"}}, span(21, 30),
			"the stored state pages by time windows", 0, false},
		// A state stored before the PBX's UTC offset was kept: the
		// watermark is guessed (and noted) for one run.
		{"time windows, no WILDIX_TIMEZONE", stateTimeWindows, pbxsim.Options{Calls: 30, IgnoreFilter: []string{"id"}}, span(21, 30),
			"WILDIX_TIMEZONE is not set and no UTC offset of the PBX is stored yet", 0, true},
	} {
		for _, kind := range []string{"csv", "postgres"} {
			t.Run(tc.name+"/"+kind, func(t *testing.T) {
				t.Parallel()
				sink, dir, pool := openSink(t, kind)
				o := tc.o
				o.APIKeys = append(o.APIKeys, "wsk-v1-test")
				sim := pbxsim.New(o)
				x := proofExporter(t, sim, sink, 7, nil)
				if tc.zoneless {
					x.Zone = nil
				}
				if kind == "csv" {
					p := filepath.Join(dir, ".state", "pbx", "call_history.json")
					if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(p, []byte(tc.state), 0o644); err != nil {
						t.Fatal(err)
					}
				} else if _, err := pool.Exec(context.Background(), `INSERT INTO export_state (pbx, key, state, run_id, updated_at)
VALUES ('pbx', 'call_history', ($1::jsonb)->'state', ($1::jsonb)->'state'->>'run_id', now())`, tc.state); err != nil {
					t.Fatal(err)
				}
				r := runCalls(t, x)
				if r.Err != nil {
					t.Fatalf("run from the stored state: %v", r.Err)
				}
				if tc.note != "" {
					wantNote(t, r, tc.note)
				}
				got := heldIDs(t, dir, pool)
				if !slices.Equal(got, tc.want) {
					t.Fatalf("exported %v, want %v", got, tc.want)
				}
				if tc.reqs > 0 {
					if r = runCalls(t, x); r.Err != nil || r.Rows != 0 || r.Requests != tc.reqs {
						t.Fatalf("nothing new: rows %d, %d requests, err %v: want none in %d", r.Rows, r.Requests, r.Err, tc.reqs)
					}
				}
			})
		}
	}
}

// span is the keys lo to hi.
func span(lo, hi int64) []int64 {
	var out []int64
	for k := lo; k <= hi; k++ {
		out = append(out, k)
	}
	return out
}

// heldIDs lists the call ids a sink holds (the CSV files in dir, or the
// table through pool), ascending; a key held twice fails the test.
func heldIDs(t *testing.T, dir string, pool *pgxpool.Pool) []int64 {
	t.Helper()
	held := map[int64]int{}
	if pool == nil {
		held = csvIDs(t, dir)
	} else {
		rows, err := pool.Query(context.Background(), "SELECT id FROM call_history WHERE pbx = 'pbx'")
		if err != nil {
			t.Fatal(err)
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range ids {
			held[id]++
		}
	}
	var out []int64
	for k, n := range held {
		if n != 1 {
			t.Fatalf("call %d held %d times", k, n)
		}
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
