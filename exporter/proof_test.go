package exporter_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wildix-export/wildix-export/auth"
	"github.com/wildix-export/wildix-export/exporter"
	"github.com/wildix-export/wildix-export/exporter/pbx"
	"github.com/wildix-export/wildix-export/exporter/record"
	"github.com/wildix-export/wildix-export/internal/pbxsim"
	"github.com/wildix-export/wildix-export/internal/pgtest"
	"github.com/wildix-export/wildix-export/sinks"
)

// The proof tests: a PBX whose answers cannot be proven complete by their
// total (time windows around a record dated in the future, a snapshot
// without a total while a record is deleted) must still give exactly the
// simulator's records, or fail; never ok and short.

// proofExporter serves the simulator through front, which may answer a
// request itself.
func proofExporter(t *testing.T, sim *pbxsim.Sim, sink exporter.Sink, pageSize int, front func(w http.ResponseWriter, r *http.Request) bool) *exporter.Exporter {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if front == nil || !front(w, r) {
			sim.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	rome, err := time.LoadLocation("Europe/Rome")
	if err != nil {
		t.Fatal(err)
	}
	c := &pbx.Client{HTTP: &http.Client{Transport: &auth.Transport{Source: auth.Static("wsk-v1-test")}}, Base: u,
		MaxAttempts: 12, Timeout: time.Minute, MinBackoff: 5 * time.Millisecond}
	return &exporter.Exporter{Client: c, Sink: sink, PBX: "pbx", Zone: rome, PageSize: pageSize, Concurrency: 4, BatchSize: 500, MaxPages: 100000}
}

// TestProofTimeWindowsFutureRecord: on a PBX read by time windows (it
// ignores filter[id] and sort=id), one call dated 20 hours ahead must not move the time
// cursor: the calls that arrive after it are exported by the next run,
// each call exactly once (the future one too), and the run says so.
func TestProofTimeWindowsFutureRecord(t *testing.T) {
	t.Parallel()
	for _, tg := range targets {
		t.Run(tg.name, func(t *testing.T) {
			t.Parallel()
			sink, exported := tg.open(t)
			const bogusID = "500"
			future := time.Now().UTC().Add(20 * time.Hour).Format("2006-01-02 15:04:05")
			var mu sync.Mutex
			var bogus map[string]any // call 500 as the PBX sends it, once seen
			o := pbxsim.Options{Calls: 1000, IgnoreFilter: []string{"id"}, IgnoreSort: true, Total: "number", APIKeys: []string{"wsk-v1-test"},
				// The PBX dates call 500 at future: it answers it in the
				// windows holding future, not in those of its real time.
				Rewrite: func(r *http.Request, st int, b []byte) (int, []byte) {
					mu.Lock()
					defer mu.Unlock()
					var env struct {
						Type   string `json:"type"`
						Result struct {
							Total   *float64         `json:"total,omitempty"`
							Records []map[string]any `json:"records"`
						} `json:"result"`
					}
					if st != http.StatusOK || json.Unmarshal(b, &env) != nil || env.Type != "result" {
						return st, b
					}
					q := r.URL.Query()
					from, to := q.Get("filter[start][from]"), q.Get("filter[start][to]")
					inWindow := from != "" && future >= from && future <= to
					kept := env.Result.Records[:0]
					found := false
					for _, rec := range env.Result.Records {
						if rec["id"] == bogusID {
							rec["start"] = future
							bogus = rec
							if from != "" && !inWindow {
								if env.Result.Total != nil {
									*env.Result.Total--
								}
								continue
							}
							found = true
						}
						kept = append(kept, rec)
					}
					env.Result.Records = kept
					if inWindow && bogus != nil && !found && q.Get("start") == "0" {
						// A full page leaves it out; its total still counts
						// it, so the window is split until it fits.
						if count, err := strconv.Atoi(q.Get("count")); err == nil && len(kept) < count {
							env.Result.Records = append(env.Result.Records, bogus)
						}
						if env.Result.Total != nil {
							*env.Result.Total++
						}
					}
					out, err := json.Marshal(env)
					if err != nil {
						panic(err)
					}
					return st, out
				}}
			sim := pbxsim.New(o)
			x := proofExporter(t, sim, sink, 100, nil)
			exactlyOnce := func(run int, r exporter.EndpointResult, rows int64) {
				t.Helper()
				if r.Err != nil || r.Rows != rows || r.Paging != "time-windows" {
					t.Fatalf("run %d: err %v, rows %d (want %d), paging %q (want time-windows), notes %q", run, r.Err, r.Rows, rows, r.Paging, r.Notes)
				}
				got := exported(t)
				want := sim.CallIDs()
				var missing, doubled []int64
				for _, id := range want {
					switch got[id] {
					case 0:
						missing = append(missing, id)
					case 1:
					default:
						doubled = append(doubled, id)
					}
				}
				if len(missing)+len(doubled) > 0 || len(got) != len(want) {
					t.Fatalf("run %d: PBX holds %d calls, exported %d distinct; missing %v, doubled %v", run, len(want), len(got), missing, doubled)
				}
			}
			r := runCalls(t, x)
			exactlyOnce(1, r, 1000)
			if !slices.ContainsFunc(r.Notes, func(s string) bool { return strings.HasPrefix(s, "1 records dated after now at the PBX") }) {
				t.Fatalf("run 1 notes %q: want the call dated in the future counted once", r.Notes)
			}
			sim.InsertCalls(50)
			exactlyOnce(2, runCalls(t, x), 50)
			sim.InsertCalls(7)
			exactlyOnce(3, runCalls(t, x), 7)
		})
	}
}

// colleagueEnvelope is a list answer, records kept as they came.
type colleagueEnvelope struct {
	Type   string `json:"type"`
	Result struct {
		Total   *int             `json:"total,omitempty"`
		Records []map[string]any `json:"records"`
	} `json:"result"`
}

// TestProofSnapshotNoTotalDeletion: a PBX deletes a colleague while the
// snapshot is paged, so that the later offsets shift and a surviving
// colleague falls between two pages: without a total to count against, or
// with a total that a colleague added at the same time keeps right (as
// many distinct keys as announced, one survivor unread). The run must
// commit exactly the survivors: in PostgreSQL only the deleted colleague
// is marked deleted, and the CSV snapshot holds the survivors, each once.
// A PBX where this happens during every read must fail the run with
// nothing committed: nobody is marked deleted, no snapshot file.
func TestProofSnapshotNoTotalDeletion(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		every bool // a colleague deleted after the first page of every read
		add   bool // a colleague added as well, and the total sent
		sink  string
	}{
		{"once/csv", false, false, "csv"}, {"once/postgres", false, false, "postgres"},
		{"every_read/csv", true, false, "csv"}, {"every_read/postgres", true, false, "postgres"},
		{"total_kept_by_an_addition/csv", false, true, "csv"}, {"total_kept_by_an_addition/postgres", false, true, "postgres"},
		{"total_kept_every_read/csv", true, true, "csv"}, {"total_kept_every_read/postgres", true, true, "postgres"},
	} {
		tg := tc.sink
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sim := pbxsim.New(pbxsim.Options{Calls: 10, Colleagues: 25, Total: "absent", APIKeys: []string{"wsk-v1-test"}})
			// all reads the simulator's colleagues in id order.
			all := func(r *http.Request) []map[string]any {
				q := r.URL.Query()
				q.Set("start", "0")
				q.Set("count", "1000")
				r2 := r.Clone(r.Context())
				r2.URL.RawQuery = q.Encode()
				rec := httptest.NewRecorder()
				sim.ServeHTTP(rec, r2)
				var env colleagueEnvelope
				if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &env) != nil || env.Type != "result" {
					panic("reading the simulator's colleagues: " + rec.Body.String())
				}
				return env.Result.Records
			}
			var mu sync.Mutex
			gone := map[string]bool{}  // the colleagues deleted
			var added []map[string]any // the colleagues added
			var armed atomic.Bool      // delete after the next first page
			front := func(w http.ResponseWriter, r *http.Request) bool {
				if !strings.HasSuffix(r.URL.Path, "/Colleagues") {
					return false
				}
				recs := all(r)
				mu.Lock()
				defer mu.Unlock()
				list := recs[:0]
				for _, rec := range recs {
					if id := idText(rec["id"]); !gone[id] {
						list = append(list, rec)
					}
				}
				list = append(list, added...)
				q := r.URL.Query()
				start, err1 := strconv.Atoi(q.Get("start"))
				count, err2 := strconv.Atoi(q.Get("count"))
				if err1 != nil || err2 != nil {
					http.Error(w, "bad start or count", http.StatusBadRequest)
					return true
				}
				page := list[min(start, len(list)):min(start+count, len(list))]
				total := len(list)
				if start == 0 && armed.Load() {
					gone[idText(list[3]["id"])] = true
					if tc.add {
						rec := maps.Clone(list[0])
						rec["id"] = strconv.Itoa(900000 + len(added))
						added = append(added, rec)
					}
					armed.Store(tc.every)
				}
				var env colleagueEnvelope
				env.Type = "result"
				env.Result.Records = page
				if tc.add {
					env.Result.Total = &total
				}
				if err := json.NewEncoder(w).Encode(env); err != nil {
					panic(err)
				}
				return true
			}
			var sink exporter.Sink
			var snapshotIDs func(t *testing.T) (live, deleted []string)
			if tg == "csv" {
				dir := t.TempDir()
				s, err := sinks.NewCSV(sinks.CSVOptions{Dir: dir})
				if err != nil {
					t.Fatal(err)
				}
				sink = s
				seen := map[string]bool{}
				// The snapshot committed since the last call: one new file.
				snapshotIDs = func(t *testing.T) (live, deleted []string) {
					files, err := filepath.Glob(filepath.Join(dir, "colleagues", "*.csv"))
					if err != nil {
						t.Fatal(err)
					}
					var fresh []string
					for _, f := range files {
						if !seen[f] {
							seen[f] = true
							fresh = append(fresh, f)
						}
					}
					if len(fresh) == 0 {
						return nil, nil
					}
					if len(fresh) != 1 {
						t.Fatalf("%d new colleagues files, want 1: %v", len(fresh), fresh)
					}
					b, err := os.ReadFile(fresh[0])
					if err != nil {
						t.Fatal(err)
					}
					recs, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
					if err != nil {
						t.Fatalf("%s: %v", fresh[0], err)
					}
					col := slices.Index(recs[0], "id")
					if col < 0 {
						t.Fatalf("%s: no id column in %q", fresh[0], recs[0])
					}
					for _, r := range recs[1:] {
						live = append(live, r[col])
					}
					return live, nil
				}
			} else {
				schema, pool := pgtest.Schema(t)
				p := sinks.NewPostgres(pool, schema, nil)
				if err := p.Migrate(context.Background(), record.Builtin()); err != nil {
					t.Fatal(err)
				}
				sink = p
				snapshotIDs = func(t *testing.T) (live, deleted []string) {
					rows, err := pool.Query(context.Background(), "SELECT id::text, deleted_at IS NOT NULL FROM colleagues WHERE pbx = 'pbx'")
					if err != nil {
						t.Fatal(err)
					}
					defer rows.Close()
					for rows.Next() {
						var id string
						var del bool
						if err := rows.Scan(&id, &del); err != nil {
							t.Fatal(err)
						}
						if del {
							deleted = append(deleted, id)
						} else {
							live = append(live, id)
						}
					}
					if err := rows.Err(); err != nil {
						t.Fatal(err)
					}
					return live, deleted
				}
			}
			x := proofExporter(t, sim, sink, 10, front)
			x.Concurrency = 1
			var col []record.Endpoint
			for _, e := range record.Builtin() {
				if e.Name == "colleagues" {
					col = append(col, e)
				}
			}
			truth := func() []string {
				var ids []string
				mu.Lock()
				defer mu.Unlock()
				req := httptest.NewRequest(http.MethodGet, "/api/v1/PBX/Colleagues?sort=id&dir=ASC", nil)
				req.Header.Set("Authorization", "Bearer wsk-v1-test")
				for _, rec := range append(all(req), added...) {
					if id := idText(rec["id"]); !gone[id] {
						ids = append(ids, id)
					}
				}
				slices.Sort(ids)
				return ids
			}
			// run exports the colleagues, then compares the sink with the
			// simulator less the colleague deleted meanwhile.
			run := func(n int, markedDeleted func() []string) {
				t.Helper()
				r := x.Run(t.Context(), exporter.NewRunID(time.Now()), "once", col)
				e := r.Endpoints[0]
				want := truth()
				if r.Status != "ok" || e.Err != nil || e.Rows != int64(len(want)) {
					t.Fatalf("run %d: status %s, err %v, rows %d (want %d), notes %q", n, r.Status, e.Err, e.Rows, len(want), e.Notes)
				}
				if !tc.add && !slices.ContainsFunc(e.Notes, func(s string) bool { return strings.Contains(s, "no total") }) {
					t.Fatalf("run %d: notes %q: want the second read noted", n, e.Notes)
				}
				live, deleted := snapshotIDs(t)
				slices.Sort(live)
				slices.Sort(deleted)
				if wantDeleted := markedDeleted(); !slices.Equal(live, want) || !slices.Equal(deleted, wantDeleted) {
					t.Fatalf("run %d: PBX holds %d colleagues %v; the sink holds %d %v, marked deleted %v (want %v)",
						n, len(want), want, len(live), live, deleted, wantDeleted)
				}
			}
			run(1, func() []string { return nil })
			if n := len(truth()); n != 25 {
				t.Fatalf("the simulator holds %d colleagues, want 25", n)
			}
			before := truth()
			armed.Store(true)
			if tc.every {
				r := x.Run(t.Context(), exporter.NewRunID(time.Now()), "once", col)
				e := r.Endpoints[0]
				if r.Status != "failed" || e.Err == nil || !strings.Contains(e.Err.Error(), "nothing was committed") || e.Rows != 0 {
					t.Fatalf("run 2: status %s, err %v, rows %d: want failed, nothing committed", r.Status, e.Err, e.Rows)
				}
				live, deleted := snapshotIDs(t)
				slices.Sort(live)
				if tg == "postgres" && !slices.Equal(live, before) || len(deleted) > 0 || tg == "csv" && live != nil {
					t.Fatalf("run 2 failed, yet the sink changed: live %v (want %v), marked deleted %v", live, before, deleted)
				}
				return
			}
			run(2, func() []string {
				mu.Lock()
				defer mu.Unlock()
				if len(gone) != 1 {
					t.Fatalf("%d colleagues deleted during run 2, want 1", len(gone))
				}
				if tg == "csv" {
					return nil // a CSV snapshot just leaves it out
				}
				return slices.Collect(maps.Keys(gone))
			})
		})
	}
}

// idText is a record's id as text, whether the PBX sent a string or a number.
func idText(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	return ""
}

// TestProofBackfillNoTotalDeletion: a backfill window of a PBX that
// ignores filter[id] and sends no total, a call deleted after the
// window's first answer: the window must not be marked done short. Read by
// time windows, each asked whole in one page, the deletion shifts no page:
// the window is done with every survivor exactly. (Read by offset, as
// before, the two reads differed and the window failed, redone next run.)
func TestProofBackfillNoTotalDeletion(t *testing.T) {
	t.Parallel()
	for _, tg := range targets {
		t.Run(tg.name, func(t *testing.T) {
			t.Parallel()
			sink, exported := tg.open(t)
			sim := pbxsim.New(pbxsim.Options{Calls: 300, IgnoreFilter: []string{"id"}, Total: "absent", APIKeys: []string{"wsk-v1-test"}})
			var armed atomic.Bool
			var deleted atomic.Int64
			armed.Store(true)
			front := func(w http.ResponseWriter, r *http.Request) bool {
				q := r.URL.Query()
				// A read by offset: a window, no id lower bound, the first page.
				if !strings.Contains(r.URL.Path, "/CallHistory") || q.Get("filter[start][from]") == "" || q.Get("filter[id][from]") != "" || q.Get("start") != "0" {
					return false
				}
				rec := httptest.NewRecorder()
				sim.ServeHTTP(rec, r)
				var env colleagueEnvelope
				if rec.Code == http.StatusOK && json.Unmarshal(rec.Body.Bytes(), &env) == nil && len(env.Result.Records) > 3 && armed.CompareAndSwap(true, false) {
					id, err := strconv.ParseInt(idText(env.Result.Records[1]["id"]), 10, 64)
					if err != nil || sim.Delete(id) != 1 {
						panic("deleting a call during the window's read")
					}
					deleted.Store(id)
				}
				w.WriteHeader(rec.Code)
				if _, err := w.Write(rec.Body.Bytes()); err != nil {
					panic(err)
				}
				return true
			}
			x := proofExporter(t, sim, sink, 50, front)
			o := exporter.BackfillOptions{From: time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC), To: time.Now().UTC().Add(48 * time.Hour), Window: 100 * 365 * 24 * time.Hour}
			r := x.Backfill(t.Context(), exporter.NewRunID(time.Now()), record.Builtin()[:1], o)
			e := r.Endpoints[0]
			if deleted.Load() == 0 {
				t.Fatalf("no call was deleted during the backfill (paging %q, err %v)", e.Paging, e.Err)
			}
			want := sim.CallIDs()
			if r.Status != "ok" || e.Windows != 1 || e.Rows != int64(len(want)) || e.Paging != "time-windows" {
				t.Fatalf("backfill: status %s, err %v, windows %d, rows %d (want %d), paging %q", r.Status, e.Err, e.Windows, e.Rows, len(want), e.Paging)
			}
			wantExact(t, sim, exported(t))
		})
	}
}

// TestProofTimeWindowsStoredFutureTime: a time cursor already stored in
// the future (by a version before the fix) is brought back to now at the
// PBX: the calls that arrive are exported, and the run says why.
func TestProofTimeWindowsStoredFutureTime(t *testing.T) {
	t.Parallel()
	schema, pool := pgtest.Schema(t)
	p := sinks.NewPostgres(pool, schema, nil)
	if err := p.Migrate(context.Background(), record.Builtin()); err != nil {
		t.Fatal(err)
	}
	rome, err := time.LoadLocation("Europe/Rome")
	if err != nil {
		t.Fatal(err)
	}
	// Calls a minute apart, the 300 first ending in the last 5 hours: the
	// 20 inserted later are dated now, as on a real PBX.
	sim := pbxsim.New(pbxsim.Options{Calls: 300, IgnoreFilter: []string{"id"}, IgnoreSort: true, APIKeys: []string{"wsk-v1-test"}, Location: rome,
		CallGap: time.Minute, CallsStart: time.Now().Add(-310 * time.Minute)})
	x := proofExporter(t, sim, p, 100, nil)
	if r := runCalls(t, x); r.Err != nil || r.Rows != 300 || r.Paging != "time-windows" {
		t.Fatalf("run 1: err %v, rows %d, paging %q", r.Err, r.Rows, r.Paging)
	}
	future := time.Now().UTC().Add(20 * time.Hour).Format("2006-01-02 15:04:05")
	tag, err := pool.Exec(context.Background(), `UPDATE export_state SET state = jsonb_set(state, '{time}', to_jsonb($1::text)) WHERE pbx = 'pbx' AND key = 'call_history'`, future)
	if err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("storing a future time: %v, %d rows", err, tag.RowsAffected())
	}
	sim.InsertCalls(20)
	// The 20 end up to 10 minutes from now: half an hour later, all are
	// settled.
	x.Now = func() time.Time { return time.Now().Add(30 * time.Minute) }
	r := runCalls(t, x)
	if r.Err != nil || r.Rows != 20 || !slices.ContainsFunc(r.Notes, func(s string) bool { return strings.Contains(s, "after now at the PBX") }) {
		t.Fatalf("run 2: err %v, rows %d (want 20), notes %q (want the stored time noted)", r.Err, r.Rows, r.Notes)
	}
	var n, distinct int
	if err := pool.QueryRow(context.Background(), "SELECT count(*), count(DISTINCT id) FROM call_history WHERE pbx = 'pbx'").Scan(&n, &distinct); err != nil {
		t.Fatal(err)
	}
	if want := len(sim.CallIDs()); n != want || distinct != want {
		t.Fatalf("call_history holds %d rows, %d distinct; the PBX holds %d calls", n, distinct, want)
	}
}
