package exporter_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/wildix-export/wildix-export/auth"
	"github.com/wildix-export/wildix-export/exporter"
	"github.com/wildix-export/wildix-export/exporter/pbx"
	"github.com/wildix-export/wildix-export/exporter/record"
	"github.com/wildix-export/wildix-export/internal/pbxsim"
	"github.com/wildix-export/wildix-export/internal/pgtest"
	"github.com/wildix-export/wildix-export/simtest"
	"github.com/wildix-export/wildix-export/sinks"
)

// The end-to-end paging tests: the simulator over HTTP, plays a PBX that
// deletes, ignores or caps, while calls arrive; the export is compared
// with the simulator's ground truth, for both sinks.

// target is a sink under test and a way to read back what it holds.
type target struct {
	name string
	open func(t *testing.T) (exporter.Sink, func(t *testing.T) map[int64]int)
}

var targets = []target{
	{"csv", func(t *testing.T) (exporter.Sink, func(t *testing.T) map[int64]int) {
		s, dir, _ := openSink(t, "csv")
		return s, func(t *testing.T) map[int64]int { return csvIDs(t, dir) }
	}},
	{"postgres", func(t *testing.T) (exporter.Sink, func(t *testing.T) map[int64]int) {
		s, _, pool := openSink(t, "postgres")
		return s, func(t *testing.T) map[int64]int {
			rows, err := pool.Query(context.Background(), "SELECT id FROM call_history WHERE pbx = 'pbx'")
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			out := map[int64]int{}
			for rows.Next() {
				var id int64
				if err := rows.Scan(&id); err != nil {
					t.Fatal(err)
				}
				out[id]++
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			return out
		}
	}},
}

// openSink opens a fresh sink of kind, "csv" (in dir) or "postgres" (a
// schema of its own, migrated, read through pool).
func openSink(t *testing.T, kind string) (sink exporter.Sink, dir string, pool *pgxpool.Pool) {
	t.Helper()
	if kind == "csv" {
		dir = t.TempDir()
		s, err := sinks.NewCSV(sinks.CSVOptions{Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		return s, dir, nil
	}
	schema, pool := pgtest.Schema(t)
	p := sinks.NewPostgres(pool, schema, nil)
	if err := p.Migrate(context.Background(), record.Builtin()); err != nil {
		t.Fatal(err)
	}
	return p, "", pool
}

// csvIDs counts each call id in the committed CSV files.
func csvIDs(t *testing.T, dir string) map[int64]int {
	t.Helper()
	out := map[int64]int{}
	files, err := filepath.Glob(filepath.Join(dir, "call_history", "*.csv"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		recs, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		for _, r := range recs[1:] {
			id, err := strconv.ParseInt(r[0], 10, 64)
			if err != nil {
				t.Fatalf("%s: id %q", p, r[0])
			}
			out[id]++
		}
	}
	return out
}

// pagingCase is one PBX behaviour.
type pagingCase struct {
	name     string
	o        pbxsim.Options
	pageSize int
	paging   string // the EndpointResult.Paging wanted after the first run
	note     string // a note the first run must make, "" for none
	// timeWindows: paged by time, the cursor is not a key.
	timeWindows bool
}

// TestPagingEndToEnd runs each case twice: the first run with calls
// arriving (and, where the case says, deleted) while it reads, the second
// on a quiet PBX. Then every call on the PBX was exported exactly once,
// nothing was handed to the sink twice, and the keyset cursor is at the
// newest call.
func TestPagingEndToEnd(t *testing.T) {
	t.Parallel()
	cases := []pagingCase{
		{name: "purge and random deletions during the first export", pageSize: 100, paging: "keyset",
			o: pbxsim.Options{Calls: 6000, DeleteAfter: 5, DeleteOldest: 1000, DeleteRandom: 50}},
		{name: "id filter ignored", pageSize: 100, paging: "time-windows", note: "ignores filter[id]", timeWindows: true,
			o: pbxsim.Options{Calls: 1000, IgnoreFilter: []string{"id"}}},
		{name: "sort and id filter ignored", pageSize: 100, paging: "time-windows", note: "ignores", timeWindows: true,
			o: pbxsim.Options{Calls: 1000, IgnoreFilter: []string{"id"}, IgnoreSort: true}},
		{name: "id filter ignored, filter[start][from] exclusive", pageSize: 100, paging: "time-windows", note: "the bound is taken as exclusive", timeWindows: true,
			o: pbxsim.Options{Calls: 1000, IgnoreFilter: []string{"id"}, FilterFromExclusive: []string{"start"}}},
		{name: "sort ignored", pageSize: 100, paging: "key-ranges", note: "ignores sort=id but honours filter[id]",
			o: pbxsim.Options{Calls: 1000, IgnoreSort: true}},
		{name: "sort ignored, purge and random deletions during the first export", pageSize: 100, paging: "key-ranges", note: "ignores sort=id but honours filter[id]",
			o: pbxsim.Options{Calls: 6000, IgnoreSort: true, DeleteAfter: 20, DeleteOldest: 1000, DeleteRandom: 50}},
		{name: "sort and time filter ignored", pageSize: 100, paging: "key-ranges", note: "ignores sort=id but honours filter[id]",
			o: pbxsim.Options{Calls: 1000, IgnoreSort: true, IgnoreFilter: []string{"start"}}},
		{name: "sort ignored and count capped at 40, no total", pageSize: 100, paging: "key-ranges", note: "at most 40 records a page",
			o: pbxsim.Options{Calls: 1000, IgnoreSort: true, MaxCount: 40, Total: "absent"}},
		{name: "count capped at 250 under pages of 1000", pageSize: 1000, paging: "keyset-capped", note: "at most 250 records a page",
			o: pbxsim.Options{Calls: 3000, MaxCount: 250}},
		{name: "id filter ignored and count capped at 40", pageSize: 100, paging: "time-windows", note: "ignores filter[id]", timeWindows: true,
			o: pbxsim.Options{Calls: 1000, IgnoreFilter: []string{"id"}, MaxCount: 40, Total: "absent"}},
		{name: "total as a number", pageSize: 100, paging: "keyset", o: pbxsim.Options{Calls: 1000, Total: "number"}},
		{name: "total absent", pageSize: 100, paging: "keyset", o: pbxsim.Options{Calls: 1000, Total: "absent"}},
	}
	for _, tc := range cases {
		for _, tg := range targets {
			t.Run(tc.name+"/"+tg.name, func(t *testing.T) {
				t.Parallel()
				testPaging(t, tc, tg)
			})
		}
	}
}

// live inserts calls during the first run: 3 after the 1st, 5th, 9th, …
// call-history request (the first is the upper bound: calls arrive before
// the range is read), until stopped.
type live struct {
	sim *pbxsim.Sim
	on  atomic.Bool
	n   atomic.Int64
}

func (l *live) rewrite(r *http.Request, status int, body []byte) (int, []byte) {
	if l.on.Load() && strings.Contains(strings.ToLower(r.URL.Path), "callhistory") && l.n.Add(1)%4 == 1 {
		l.sim.InsertCalls(3)
	}
	return status, body
}

func newPagingExporter(t *testing.T, o pbxsim.Options, sink exporter.Sink, pageSize int) (*simtest.Fixture, *exporter.Exporter, *live) {
	t.Helper()
	l := &live{}
	o.Rewrite = l.rewrite
	o.APIKeys = append(o.APIKeys, "wsk-v1-test")
	f := simtest.New(t, o)
	l.sim = f.Sim
	rome, err := time.LoadLocation("Europe/Rome")
	if err != nil {
		t.Fatal(err)
	}
	c := f.Client(&http.Client{Transport: &auth.Transport{Source: auth.Static("wsk-v1-test")}})
	// These tests count requests, not time: DeleteAfter and the live
	// inserts fire at the n-th call-history request, and a retry after the
	// fixture's 2 s timeout (a slow request under -race on a busy machine)
	// is one more request. Retries before the first count of the range
	// moved the deletions ahead of it (vanished 0, every survivor read:
	// right, but not the case the test means), so no timeout retries here.
	c.Timeout = time.Minute
	return f, &exporter.Exporter{Client: c, Sink: sink, PBX: "pbx", Zone: rome,
		PageSize: pageSize, Concurrency: 4, BatchSize: 500, MaxPages: 100000}, l
}

func runCalls(t *testing.T, x *exporter.Exporter) exporter.EndpointResult {
	t.Helper()
	r := x.Run(context.Background(), exporter.NewRunID(time.Now()), "once", record.Builtin()[:1])
	return r.Endpoints[0]
}

func testPaging(t *testing.T, tc pagingCase, tg target) {
	sink, exported := tg.open(t)
	f, x, l := newPagingExporter(t, tc.o, sink, tc.pageSize)
	l.on.Store(true)
	r1 := runCalls(t, x)
	l.on.Store(false)
	if r1.Err != nil {
		t.Fatalf("first run: %v", r1.Err)
	}
	if f.Sim.Stats.LiveInserted.Load() == 0 {
		t.Fatal("no call arrived during the first run: the case proves nothing")
	}
	if r1.Paging != tc.paging {
		t.Fatalf("first run paged %q, want %q (notes %q)", r1.Paging, tc.paging, r1.Notes)
	}
	if tc.note != "" && !strings.Contains(strings.Join(r1.Notes, "\n"), tc.note) {
		t.Fatalf("notes %q, want one saying %q", r1.Notes, tc.note)
	}
	if tc.note == "" && len(r1.Notes) != 0 {
		t.Fatalf("notes %q, want none", r1.Notes)
	}
	if tc.o.DeleteAfter == 0 && r1.Vanished != 0 {
		t.Fatalf("vanished %d, want 0: nothing was deleted", r1.Vanished)
	}
	if tc.o.DeleteAfter > 0 {
		if r1.Retries != 0 {
			t.Fatalf("%d retries in the first run: the deletions after call-history request %d no longer fall where the case puts them", r1.Retries, tc.o.DeleteAfter)
		}
		if f.Sim.Stats.Deleted.Load() == 0 {
			t.Fatal("nothing was deleted during the first run")
		}
		if r1.Vanished <= 0 || r1.Vanished > tc.o.DeleteOldest+int64(tc.o.DeleteRandom) {
			t.Fatalf("vanished %d, want between 1 and %d", r1.Vanished, tc.o.DeleteOldest+int64(tc.o.DeleteRandom))
		}
	}
	r2 := runCalls(t, x)
	if r2.Err != nil {
		t.Fatalf("second run: %v", r2.Err)
	}
	got := exported(t)
	truth := f.Sim.CallIDs()
	for _, id := range truth {
		if got[id] != 1 {
			t.Fatalf("call %d exported %d times (first run %+v, second %+v)", id, got[id], r1, r2)
		}
	}
	for id, n := range got {
		if n != 1 {
			t.Fatalf("call %d exported %d times", id, n)
		}
		if id < 1 || id > f.Sim.MaxCallID() {
			t.Fatalf("call %d exported, never on the PBX", id)
		}
	}
	// Handed to the sink once each: a record rewritten by the second run
	// would count twice here (PostgreSQL's upsert would hide it).
	if r1.Rows+r2.Rows != int64(len(got)) {
		t.Fatalf("rows handed over: %d + %d, want %d (each exported call once)", r1.Rows, r2.Rows, len(got))
	}
	if !tc.timeWindows && r2.Cursor != truth[len(truth)-1] {
		t.Fatalf("cursor %d, want %d (the newest call)", r2.Cursor, truth[len(truth)-1])
	}
	// A third run on the quiet PBX exports nothing.
	if r3 := runCalls(t, x); r3.Err != nil || r3.Rows != 0 {
		t.Fatalf("third run: %d rows, %v; want none", r3.Rows, r3.Err)
	}
}

// TestOldestDeletedAfterFirstPage is issue 11's case in miniature: 10
// calls, pages of 3, the oldest deleted right after page 0 was answered:
// the 9 survivors are exported and the cursor is at 10.
func TestOldestDeletedAfterFirstPage(t *testing.T) {
	t.Parallel()
	for _, tg := range targets {
		t.Run(tg.name, func(t *testing.T) {
			t.Parallel()
			sink, exported := tg.open(t)
			// Request 1 looks for an id below 1, request 2 is the upper
			// bound, request 3 its confirmation, request 4 page 0 (ids 1
			// to 3); call 1 is deleted right after.
			f, x, _ := newPagingExporter(t, pbxsim.Options{Calls: 10, DeleteAfter: 4, DeleteOldest: 1}, sink, 3)
			r := runCalls(t, x)
			if f.Sim.Exists(1) || f.Sim.CallCount() != 9 {
				t.Fatalf("the simulator did not delete call 1 (%d calls)", f.Sim.CallCount())
			}
			got := exported(t)
			// Call 1 exported proves page 0 was read before the deletion:
			// the case the test is about, not a deletion before any page.
			if got[1] != 1 {
				t.Fatalf("call 1 exported %d times: the deletion did not come after page 0 (requests are counted differently?); got %v", got[1], got)
			}
			if r.Err != nil || r.Cursor != 10 || r.Rows != 10 || r.Vanished != 0 {
				t.Fatalf("rows %d, cursor %d, vanished %d, err %v; want call 1 (read before it went) and the 9 survivors, cursor 10", r.Rows, r.Cursor, r.Vanished, r.Err)
			}
			for id := int64(2); id <= 10; id++ {
				if got[id] != 1 {
					t.Fatalf("call %d exported %d times; got %v", id, got[id], got)
				}
			}
			var st struct{ Cursor int64 }
			b, err := sink.State(context.Background(), "pbx", "call_history")
			if err != nil || json.Unmarshal(b, &st) != nil || st.Cursor != 10 {
				t.Fatalf("state %s, %v: want cursor 10", b, err)
			}
		})
	}
}

// TestKeyAtTheEdgeOfInt64: a newest key of the largest int64 (here sent
// by the upper-bound request) is passed over, so the cursor stays where
// records are, and later runs go on exporting.
func TestKeyAtTheEdgeOfInt64(t *testing.T) {
	t.Parallel()
	var edge atomic.Bool
	edge.Store(true)
	maxID := func(r *http.Request, status int, body []byte) (int, []byte) {
		q := r.URL.Query()
		if edge.Load() && q.Get("dir") == "DESC" && q.Get("count") == "2" {
			body = []byte(strings.Replace(string(body), `"id":"1000"`, `"id":"9223372036854775807"`, 1))
		}
		return status, body
	}
	f, x, dir, _ := setup(t, pbxsim.Options{Calls: 1000, Rewrite: maxID})
	r := run(t, x)
	if r.Err != nil || r.Cursor != 999 {
		t.Fatalf("cursor %d, err %v: want 999, the key of the largest int64 passed over", r.Cursor, r.Err)
	}
	edge.Store(false)
	f.Sim.InsertCalls(5)
	if r = run(t, x); r.Err != nil || r.Cursor != 1005 || r.Rows != 6 {
		t.Fatalf("next run: cursor %d, rows %d, err %v; want 1005 and the 6 calls after 999", r.Cursor, r.Rows, r.Err)
	}
	wantAll(t, dir, 1005)
}

// TestNegativeKeys: a record with a negative key stops the run with a
// message naming it; the pages before it stay committed with their cursor,
// nothing after it.
func TestNegativeKeys(t *testing.T) {
	t.Parallel()
	negative := func(_ *http.Request, status int, body []byte) (int, []byte) {
		return status, []byte(strings.Replace(string(body), `"id":"205"`, `"id":"-205"`, 1))
	}
	_, x, dir, sink := setup(t, pbxsim.Options{Calls: 300, Rewrite: negative})
	x.Concurrency = 1
	r := run(t, x)
	if r.Err == nil || !strings.Contains(r.Err.Error(), "key -205") {
		t.Fatalf("err = %v, want the negative key named", r.Err)
	}
	st, err := sink.State(context.Background(), "pbx", "call_history")
	var cur struct{ Cursor int64 }
	if err != nil || json.Unmarshal(st, &cur) != nil || cur.Cursor != 200 {
		t.Fatalf("state %s, %v: want the cursor at 200, before the bad page", st, err)
	}
	wantAll(t, dir, 200)
}

// TestBackfillWindowsByKey backfills four days, window by window: read by
// key inside each window (by time windows from a PBX ignoring the id filter),
// with calls deleted during the backfill; every surviving call of the
// range is exported exactly once and each window is marked done.
func TestBackfillWindowsByKey(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		o      pbxsim.Options
		paging string
	}{
		{"by key", pbxsim.Options{}, "keyset"},
		{"by key, calls deleted", pbxsim.Options{DeleteAfter: 4, DeleteRandom: 200}, "keyset"},
		{"id filter ignored", pbxsim.Options{IgnoreFilter: []string{"id"}}, "time-windows"},
		{"id filter ignored, filter[start][from] exclusive", pbxsim.Options{IgnoreFilter: []string{"id"}, FilterFromExclusive: []string{"start"}}, "time-windows"},
		// Every window gets every call: those outside it are dropped,
		// counted as filtered, and noted.
		{"time filter ignored", pbxsim.Options{IgnoreFilter: []string{"start"}}, "keyset"},
		{"sort ignored", pbxsim.Options{IgnoreSort: true}, "key-ranges"},
		{"sort ignored, calls deleted", pbxsim.Options{IgnoreSort: true, DeleteAfter: 6, DeleteRandom: 200}, "key-ranges"},
		{"sort and time filter ignored", pbxsim.Options{IgnoreSort: true, IgnoreFilter: []string{"start"}}, "key-ranges"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.o.Calls, tc.o.CallsStart, tc.o.CallGap = 4000, time.Date(2026, 3, 27, 0, 0, 0, 0, time.UTC), 2*time.Minute
			f, x, dir, sink := setup(t, tc.o)
			from, to := time.Date(2026, 3, 28, 0, 0, 0, 0, time.UTC), time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
			r := x.Backfill(context.Background(), "bf", record.Builtin()[:1], exporter.BackfillOptions{From: from, To: to, Window: 24 * time.Hour})
			res := r.Endpoints[0]
			if res.Err != nil || res.Windows != 4 || res.Paging != tc.paging {
				t.Fatalf("%+v: want 4 windows, paged %q", res, tc.paging)
			}
			inRange := func(id int64) bool {
				var m map[string]string
				if err := json.Unmarshal(f.Sim.CallJSON(id), &m); err != nil {
					t.Fatal(err)
				}
				return m["start"] >= "2026-03-28 00:00:00" && m["start"] < "2026-04-01 00:00:00"
			}
			// Each window is asked for [From, To]; the PBX honouring the
			// time filter sends nothing outside it.
			var filtered int64
			if slices.Contains(tc.o.IgnoreFilter, "start") {
				for _, w := range exporter.Windows(from, to, 24*time.Hour) {
					for _, id := range f.Sim.CallIDs() {
						var m map[string]string
						if err := json.Unmarshal(f.Sim.CallJSON(id), &m); err != nil {
							t.Fatal(err)
						}
						if m["start"] < w.From || m["start"] > w.To {
							filtered++
						}
					}
				}
				if filtered == 0 || !strings.Contains(strings.Join(res.Notes, "\n"), "outside the asked window") {
					t.Fatalf("filtered %d, notes %q: want calls outside the windows, noted", filtered, res.Notes)
				}
			}
			if res.Filtered != filtered {
				t.Fatalf("filtered %d, want %d", res.Filtered, filtered)
			}
			got := ids(t, dir)
			for _, id := range f.Sim.CallIDs() {
				if n := got[strconv.FormatInt(id, 10)]; inRange(id) && n != 1 {
					t.Fatalf("call %d exported %d times", id, n)
				}
			}
			for s, n := range got {
				id, _ := strconv.ParseInt(s, 10, 64)
				if n != 1 || !inRange(id) {
					t.Fatalf("call %s exported %d times (in range: %v)", s, n, inRange(id))
				}
			}
			if tc.o.DeleteRandom > 0 && f.Sim.Stats.Deleted.Load() == 0 {
				t.Fatal("nothing was deleted during the backfill")
			}
			for _, w := range exporter.Windows(from, to, 24*time.Hour) {
				b, err := sink.State(context.Background(), "pbx", w.StateKey("call_history"))
				if err != nil || !strings.Contains(string(b), `"done":true`) {
					t.Fatalf("window %s: state %s, %v", w.From, b, err)
				}
			}
		})
	}
}

// TestOneSecondWindowByOffset: a PBX that ignores filter[id] is read by
// filter[start] windows; a second holding more calls than a page is read
// by offset inside it, where a call of that second deleted after its first
// page shifts the next and hides a survivor. The second is read until two
// reads agree: a deletion during the first read by offset makes it differ
// from the second, and the third agrees: every survivor exactly once. When it changes during every
// read, the run fails instead, and a run on the quiet PBX then exports
// every survivor exactly once.
func TestOneSecondWindowByOffset(t *testing.T) {
	t.Parallel()
	for _, every := range []bool{false, true} {
		for _, tg := range targets {
			name := "once/" + tg.name
			if every {
				name = "every_read/" + tg.name
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				sink, exported := tg.open(t)
				var sim atomic.Pointer[pbxsim.Sim]
				var on atomic.Bool
				var mu sync.Mutex
				hit := map[string]int{} // page-0 requests per one-second window
				deleted := 0
				rewrite := func(r *http.Request, status int, body []byte) (int, []byte) {
					q := r.URL.Query()
					from, to := q.Get("filter[start][from]"), q.Get("filter[start][to]")
					a, err1 := time.Parse("2006-01-02 15:04:05", from)
					b, err2 := time.Parse("2006-01-02 15:04:05", to)
					if !on.Load() || err1 != nil || err2 != nil || !oneSecond(a, b) || q.Get("start") != "0" {
						return status, body
					}
					var pg struct {
						Result struct {
							Records []struct{ ID string }
						}
					}
					if json.Unmarshal(body, &pg) != nil || len(pg.Result.Records) < 2 {
						return status, body
					}
					mu.Lock()
					defer mu.Unlock()
					// The first page 0 of a second is the window's own
					// read (a full page: the second is read by offset);
					// the second page 0 is the first read by offset.
					// Once: a deletion there makes that read and the next
					// differ, and the third agree with the second.
					hit[from]++
					if !every && hit[from] != 2 {
						return status, body
					}
					id, err := strconv.ParseInt(pg.Result.Records[0].ID, 10, 64)
					if err != nil {
						panic(err)
					}
					deleted += sim.Load().Delete(id)
					return status, body
				}
				f := simtest.New(t, pbxsim.Options{Calls: 300, CallGap: time.Second, IgnoreFilter: []string{"id"},
					APIKeys: []string{"wsk-v1-test"}, Rewrite: rewrite})
				sim.Store(f.Sim)
				rome, err := time.LoadLocation("Europe/Rome")
				if err != nil {
					t.Fatal(err)
				}
				c := f.Client(&http.Client{Transport: &auth.Transport{Source: auth.Static("wsk-v1-test")}})
				x := &exporter.Exporter{Client: c, Sink: sink, PBX: "pbx", Zone: rome, PageSize: 2, Concurrency: 4, BatchSize: 500, MaxPages: 100000}
				on.Store(true)
				r1 := runCalls(t, x)
				on.Store(false)
				mu.Lock()
				n := deleted
				mu.Unlock()
				if n == 0 {
					t.Fatal("no second held more than a page: the case proves nothing")
				}
				if r1.Paging != "time-windows" {
					t.Fatalf("paged %q, want time-windows (notes %q)", r1.Paging, r1.Notes)
				}
				switch {
				case every && (r1.Err == nil || !strings.Contains(r1.Err.Error(), "changed during each of three reads")):
					t.Fatalf("a second changing during every read: err %v, want the run to fail saying so", r1.Err)
				case !every && r1.Err != nil:
					t.Fatalf("first run: %v", r1.Err)
				case !every:
					// Whole after the first run, not thanks to the next
					// run's look-back.
					got := exported(t)
					for _, id := range f.Sim.CallIDs() {
						if got[id] != 1 {
							t.Fatalf("after the first run, call %d exported %d times (%d calls deleted during it)", id, got[id], n)
						}
					}
				}
				r2 := runCalls(t, x)
				if r2.Err != nil {
					t.Fatalf("second run, quiet PBX: %v", r2.Err)
				}
				got := exported(t)
				for _, id := range f.Sim.CallIDs() {
					if got[id] != 1 {
						t.Fatalf("call %d exported %d times (%d calls deleted during the first run; first run %+v)", id, got[id], n, r1)
					}
				}
				for id, k := range got {
					if k != 1 {
						t.Fatalf("call %d exported %d times", id, k)
					}
				}
			})
		}
	}
}

// oneSecond reports whether a request for filter[start] from a to b asks
// for one second: [a, a+1s], or [a, a] once the PBX's filter[to] was seen
// to be inclusive (paging.TimeWindows' busy second).
func oneSecond(a, b time.Time) bool {
	d := b.Sub(a)
	return d == time.Second || d == 0
}

// TestOneSecondWindowIgnoringStart: a second holding more than a page, from
// a PBX that answers every start with the first page, stops the run with
// a message saying so, instead of reading the same page until
// EXPORT_MAX_PAGES.
func TestOneSecondWindowIgnoringStart(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	first := map[string][]byte{} // a second's page for start=0
	rewrite := func(r *http.Request, status int, body []byte) (int, []byte) {
		q := r.URL.Query()
		from, to := q.Get("filter[start][from]"), q.Get("filter[start][to]")
		a, err1 := time.Parse("2006-01-02 15:04:05", from)
		b, err2 := time.Parse("2006-01-02 15:04:05", to)
		if err1 != nil || err2 != nil || !oneSecond(a, b) {
			return status, body
		}
		mu.Lock()
		defer mu.Unlock()
		if q.Get("start") == "0" {
			first[from] = body
		} else if p, ok := first[from]; ok {
			return status, p
		}
		return status, body
	}
	f := simtest.New(t, pbxsim.Options{Calls: 300, CallGap: time.Second, IgnoreFilter: []string{"id"},
		APIKeys: []string{"wsk-v1-test"}, Rewrite: rewrite})
	c := f.Client(&http.Client{Transport: &auth.Transport{Source: auth.Static("wsk-v1-test")}})
	sink, err := sinks.NewCSV(sinks.CSVOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	x := &exporter.Exporter{Client: c, Sink: sink, PBX: "pbx", Zone: time.UTC, PageSize: 2, Concurrency: 4, BatchSize: 500, MaxPages: 100000}
	r := runCalls(t, x)
	if r.Err == nil || !strings.Contains(r.Err.Error(), "it ignores start") {
		t.Fatalf("err %v, want the run stopped saying the PBX ignores start", r.Err)
	}
	if r.Pages > 1000 {
		t.Fatalf("%d pages read before stopping", r.Pages)
	}
}

// TestKeyRangesRequests: on a PBX that ignores sort=id, ranges of ids are
// read whole, each a page of ids wide while every id is there, else as
// wide as should hold 85% of a page at the density the last one showed:
// the whole export takes at most 1.35 times the requests of full pages
// (ranges of three quarters of a page took 1.38 times; widths that chase
// the density seen, not the width that showed it, swing and take more).
// Exactness is TestPagingEndToEnd's.
func TestKeyRangesRequests(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		o    pbxsim.Options
		page int64 // the page size the PBX delivers
	}{
		{"dense", pbxsim.Options{Calls: 20000, IgnoreSort: true}, 100},
		{"capped at 40, no total", pbxsim.Options{Calls: 20000, IgnoreSort: true, MaxCount: 40, Total: "absent"}, 40},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sink, exported := targets[0].open(t)
			_, x, _ := newPagingExporter(t, tc.o, sink, 100)
			// This test counts requests, not time: a request over 20,000
			// unsorted calls may take the simulator more than the fixture's
			// 2 s under -race on a busy machine, and a timeout would fail it
			// for no fault of the paging.
			x.Client.(*pbx.Client).Timeout = time.Minute
			r := runCalls(t, x)
			if r.Err != nil || r.Paging != "key-ranges" || len(exported(t)) != 20000 {
				t.Fatalf("%+v: want 20000 calls by key ranges", r)
			}
			if limit := 135 * 20000 / tc.page / 100; r.Requests > limit {
				t.Fatalf("%d requests, want at most %d", r.Requests, limit)
			}
			t.Logf("%d requests (full pages: %d)", r.Requests, 20000/tc.page)
		})
	}
}
