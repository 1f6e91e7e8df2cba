package exporter_test

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wildix-export/wildix-export/exporter"
	"github.com/wildix-export/wildix-export/exporter/record"
	"github.com/wildix-export/wildix-export/internal/pbxsim"
)

// The tests of what the exporter takes on trust from a PBX's answers: the
// newest key (the run's upper bound), the order of pages of one record,
// and whether filter[id][from] includes its bound. Each plays a PBX
// through a proxy that rewrites the query, and compares the export with
// the simulator's ground truth, for both sinks.

// trustExporter puts a proxy in front of the simulator that may rewrite
// each request's query (proofExporter serves it).
func trustExporter(t *testing.T, o pbxsim.Options, sink exporter.Sink, pageSize, conc int, rewrite func(q url.Values)) (*pbxsim.Sim, *exporter.Exporter) {
	t.Helper()
	o.APIKeys = append(o.APIKeys, "wsk-v1-test")
	sim := pbxsim.New(o)
	x := proofExporter(t, sim, sink, pageSize, func(_ http.ResponseWriter, r *http.Request) bool {
		q := r.URL.Query()
		rewrite(q)
		r.URL.RawQuery = q.Encode()
		return false
	})
	x.Concurrency = conc
	return sim, x
}

// wantExact fails unless every call on the PBX was exported exactly once
// and nothing else was.
func wantExact(t *testing.T, sim *pbxsim.Sim, got map[int64]int) {
	t.Helper()
	want := sim.CallIDs()
	if len(want) == 0 {
		t.Fatal("the simulator holds no calls: the test proves nothing")
	}
	var missing, doubled []int64
	for _, id := range want {
		switch {
		case got[id] == 0:
			missing = append(missing, id)
		case got[id] > 1:
			doubled = append(doubled, id)
		}
	}
	var foreign []int64
	for id := range got {
		if !slices.Contains(want, id) {
			foreign = append(foreign, id)
		}
	}
	if len(missing)+len(doubled)+len(foreign) > 0 {
		t.Fatalf("the PBX holds %d calls; exported %d distinct; missing %v; doubled %v; never on the PBX %v",
			len(want), len(got), missing, doubled, foreign)
	}
}

func wantNote(t *testing.T, r exporter.EndpointResult, text string) {
	t.Helper()
	if !strings.Contains(strings.Join(r.Notes, "\n"), text) {
		t.Fatalf("notes %q: want one saying %q", r.Notes, text)
	}
}

// ascending plays a PBX that ignores dir: every answer ascending.
func ascending(q url.Values) {
	if q.Get("dir") != "" {
		q.Set("dir", "ASC")
	}
}

// TestUpperBoundOfAPBXIgnoringDir: the newest-key request (dir=DESC) is
// answered in ascending order, so its first record is the oldest call.
// The bound is confirmed by filter[id][from], found wrong, searched up:
// the first run exports all 300, the second none, the cursor is at 300.
func TestUpperBoundOfAPBXIgnoringDir(t *testing.T) {
	t.Parallel()
	for _, tg := range targets {
		t.Run(tg.name, func(t *testing.T) {
			t.Parallel()
			sink, exported := tg.open(t)
			sim, x := trustExporter(t, pbxsim.Options{Calls: 300}, sink, 50, 4, ascending)
			r := runCalls(t, x)
			if r.Err != nil || r.Rows != 300 || r.Cursor != 300 || r.Paging != "keyset" {
				t.Fatalf("first run: rows %d, cursor %d, paging %q, err %v: want 300 rows by key, cursor 300", r.Rows, r.Cursor, r.Paging, r.Err)
			}
			wantNote(t, r, "ignores dir or sort")
			wantNote(t, r, "not the newest id: 300")
			sim.InsertCalls(7)
			if r = runCalls(t, x); r.Err != nil || r.Rows != 7 || r.Cursor != 307 {
				t.Fatalf("second run: rows %d, cursor %d, err %v: want the 7 new calls, cursor 307", r.Rows, r.Cursor, r.Err)
			}
			wantExact(t, sim, exported(t))
		})
	}
}

// TestBackfillUpperBoundOfAPBXIgnoringDir: a backfill reads each window up
// to the run's upper bound; from a PBX ignoring dir that bound was the
// oldest call and every window was marked done without its calls.
func TestBackfillUpperBoundOfAPBXIgnoringDir(t *testing.T) {
	t.Parallel()
	for _, tg := range targets {
		t.Run(tg.name, func(t *testing.T) {
			t.Parallel()
			sink, exported := tg.open(t)
			sim, x := trustExporter(t, pbxsim.Options{Calls: 300}, sink, 50, 4, ascending)
			// The 300 calls end 30 s apart from 2026-01-01: all in range.
			from, to := time.Date(2025, 12, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
			r := x.Backfill(t.Context(), exporter.NewRunID(time.Now()), record.Builtin()[:1],
				exporter.BackfillOptions{From: from, To: to, Window: 7 * 24 * time.Hour})
			e := r.Endpoints[0]
			if r.Status != "ok" || e.Err != nil || e.Rows != 300 || e.Windows != 9 {
				t.Fatalf("status %s, rows %d, windows %d, err %v: want 300 rows in 9 windows", r.Status, e.Rows, e.Windows, e.Err)
			}
			wantNote(t, e, "ignores dir or sort")
			wantExact(t, sim, exported(t))
		})
	}
}

// TestIgnoredSortInPagesOfOne: a PBX ignoring sort (its own order: start
// descending) read one record a page, by EXPORT_PAGE_SIZE=1 or by the
// PBX's cap: a page of one shows no order, so the keys a page skipped
// are asked for once; one comes back, and the calls are read by time.
func TestIgnoredSortInPagesOfOne(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		pageSize int
		o        pbxsim.Options
	}{
		{"page_size_1", 1, pbxsim.Options{Calls: 60, IgnoreSort: true}},
		{"count_capped_at_1", 100, pbxsim.Options{Calls: 60, IgnoreSort: true, MaxCount: 1}},
	} {
		for _, tg := range targets {
			t.Run(tc.name+"/"+tg.name, func(t *testing.T) {
				t.Parallel()
				sink, exported := tg.open(t)
				sim, x := trustExporter(t, tc.o, sink, tc.pageSize, 2, func(url.Values) {})
				r := runCalls(t, x)
				if r.Err != nil || r.Rows != 60 || r.Paging != "time-windows" {
					t.Fatalf("rows %d, paging %q, err %v, notes %q: want 60 rows by time windows", r.Rows, r.Paging, r.Err, r.Notes)
				}
				wantNote(t, r, "ignores sort=id")
				wantExact(t, sim, exported(t))
			})
		}
	}
}

// TestExclusiveFromBound: a PBX whose filter[id][from] excludes its bound
// (the simulator's FilterFromExclusive) left out the first call of every
// page. The newest-key check sees its
// own key not come back; every request then asks from one below.
func TestExclusiveFromBound(t *testing.T) {
	t.Parallel()
	for _, tg := range targets {
		t.Run("incremental/"+tg.name, func(t *testing.T) {
			t.Parallel()
			sink, exported := tg.open(t)
			sim, x := trustExporter(t, pbxsim.Options{Calls: 300, FilterFromExclusive: []string{"id"}}, sink, 50, 4, func(url.Values) {})
			r := runCalls(t, x)
			if r.Err != nil || r.Rows != 300 || r.Cursor != 300 || r.Vanished != 0 {
				t.Fatalf("rows %d, cursor %d, vanished %d, err %v: want 300 rows, cursor 300, none vanished", r.Rows, r.Cursor, r.Vanished, r.Err)
			}
			wantNote(t, r, "taken as exclusive")
			sim.InsertCalls(60)
			if r = runCalls(t, x); r.Err != nil || r.Rows != 60 || r.Cursor != 360 {
				t.Fatalf("second run: rows %d, cursor %d, err %v: want the 60 new calls, cursor 360", r.Rows, r.Cursor, r.Err)
			}
			// Known from the state: noted, and nothing new costs one request.
			wantNote(t, r, "excludes its bound")
			sim.InsertCalls(1)
			if r = runCalls(t, x); r.Err != nil || r.Rows != 1 || r.Cursor != 361 {
				t.Fatalf("third run: rows %d, cursor %d, err %v: want call 361 alone", r.Rows, r.Cursor, r.Err)
			}
			if r = runCalls(t, x); r.Err != nil || r.Rows != 0 || r.Requests != 1 {
				t.Fatalf("nothing new: rows %d, %d requests, err %v: want one request", r.Rows, r.Requests, r.Err)
			}
			wantExact(t, sim, exported(t))
		})
		t.Run("backfill/"+tg.name, func(t *testing.T) {
			t.Parallel()
			sink, exported := tg.open(t)
			sim, x := trustExporter(t, pbxsim.Options{Calls: 300, FilterFromExclusive: []string{"id"}}, sink, 50, 4, func(url.Values) {})
			from, to := time.Date(2025, 12, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
			r := x.Backfill(t.Context(), exporter.NewRunID(time.Now()), record.Builtin()[:1],
				exporter.BackfillOptions{From: from, To: to, Window: 7 * 24 * time.Hour})
			e := r.Endpoints[0]
			if r.Status != "ok" || e.Err != nil || e.Rows != 300 || e.Paging != "keyset" {
				t.Fatalf("status %s, rows %d, paging %q, err %v: want 300 rows by key", r.Status, e.Rows, e.Paging, e.Err)
			}
			wantNote(t, e, "taken as exclusive")
			wantExact(t, sim, exported(t))
		})
	}
}

// TestUpperBoundCostsOneRequestMore: on a PBX that honours everything,
// confirming the newest key is one request per run, not one per page,
// and notes nothing; a run with nothing new costs one request (the bound
// found inclusive is kept in the state, so asking above the cursor and
// getting nothing proves it).
func TestUpperBoundCostsOneRequestMore(t *testing.T) {
	t.Parallel()
	sink, exported := targets[0].open(t)
	sim, x := trustExporter(t, pbxsim.Options{Calls: 1000}, sink, 100, 4, func(url.Values) {})
	r := runCalls(t, x)
	if r.Err != nil || r.Rows != 1000 || len(r.Notes) != 0 {
		t.Fatalf("rows %d, err %v, notes %q: want 1000 rows, no note", r.Rows, r.Err, r.Notes)
	}
	if r.Requests != r.Pages+3 || r.Pages < 10 {
		t.Fatalf("%d requests for %d pages: want the pages, two for the newest key and one for an id below 1", r.Requests, r.Pages)
	}
	if r = runCalls(t, x); r.Err != nil || r.Rows != 0 || r.Requests != 1 || r.Cursor != 1000 {
		t.Fatalf("nothing new: rows %d, %d requests, cursor %d, err %v: want one request, cursor 1000", r.Rows, r.Requests, r.Cursor, r.Err)
	}
	wantExact(t, sim, exported(t))
}

// TestNewestKeyNeverSettles: a call arrives after every answer to the
// newest-key requests, so the newest key never holds still. From a PBX
// answering in order, the last one seen is a sound bound: the run reads up
// to it and says so; the next, on a quiet PBX, reads the rest.
func TestNewestKeyNeverSettles(t *testing.T) {
	t.Parallel()
	sink, exported := targets[0].open(t)
	var sim *pbxsim.Sim
	var busy atomic.Bool
	busy.Store(true)
	arrive := func(r *http.Request, status int, body []byte) (int, []byte) {
		if busy.Load() && r.URL.Query().Get("fields") == "id" {
			sim.InsertCalls(1)
		}
		return status, body
	}
	sim, x := trustExporter(t, pbxsim.Options{Calls: 300, Rewrite: arrive}, sink, 50, 4, func(url.Values) {})
	r := runCalls(t, x)
	if r.Err != nil || r.Rows < 300 || r.Cursor < 300 {
		t.Fatalf("rows %d, cursor %d, err %v: want the 300 calls and more", r.Rows, r.Cursor, r.Err)
	}
	wantNote(t, r, "records kept arriving")
	if sim.MaxCallID() < 500 {
		t.Fatalf("only %d calls arrived: the newest key was settled, the test proves nothing", sim.MaxCallID()-300)
	}
	busy.Store(false)
	if r2 := runCalls(t, x); r2.Err != nil || r2.Cursor != sim.MaxCallID() || r.Rows+r2.Rows != sim.CallCount() {
		t.Fatalf("second run: rows %d (first %d), cursor %d, err %v: want all %d calls, cursor at the newest", r2.Rows, r.Rows, r2.Cursor, r2.Err, sim.CallCount())
	}
	wantExact(t, sim, exported(t))
}

// TestNewestKeyGoneWhileConfirmed: the newest call is deleted right after
// the first answer named it, so the confirming request, asked from it,
// comes back empty, and filter[id][from] is taken as exclusive (asking
// from one id below). The PBX's bound is inclusive: the id below comes
// back, fills a page of one, and is asked past, not taken as the end.
func TestNewestKeyGoneWhileConfirmed(t *testing.T) {
	t.Parallel()
	for _, tg := range targets {
		t.Run(tg.name, func(t *testing.T) {
			t.Parallel()
			sink, exported := tg.open(t)
			var sim *pbxsim.Sim
			var first atomic.Bool
			gone := func(r *http.Request, status int, body []byte) (int, []byte) {
				if r.URL.Query().Has("filter[id][from]") && r.URL.Query().Get("fields") == "id" && first.CompareAndSwap(false, true) {
					if sim.Delete(30) != 1 {
						panic("call 30 was not there to delete")
					}
				}
				return status, body
			}
			sim, x := trustExporter(t, pbxsim.Options{Calls: 30, Rewrite: gone}, sink, 1, 2, func(url.Values) {})
			r := runCalls(t, x)
			if r.Err != nil || r.Rows != 29 || r.Cursor != 30 {
				t.Fatalf("rows %d, cursor %d, err %v, notes %q: want the 29 calls left, cursor 30 (the bound)", r.Rows, r.Cursor, r.Err, r.Notes)
			}
			wantNote(t, r, "taken as exclusive")
			wantExact(t, sim, exported(t))
		})
	}
}

// TestSortIgnoredKeysInOrderByChance: a PBX that ignores sort=id answers
// newest call first, and pages of two (a cap, or EXPORT_PAGE_SIZE=2)
// can hold keys that happen to ascend and reach the range's end. Each
// seed here made the run report ok with 2 to 7 of its calls and the
// cursor at or near the top (the others booked as vanished, or skipped by
// the time windows that took over above the cursor). The PBX's count of
// the range gives the skip away: the run reads by id ranges instead, or
// by time windows, and exports every call.
func TestSortIgnoredKeysInOrderByChance(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name           string
		calls, seed    int64
		maxCount, page int
		total          string
	}{
		{"cap 2 under pages of 1000, seed 3", 100, 3, 2, 1000, ""},
		{"pages of 2, seed 3", 100, 3, 0, 2, ""},
		{"pages of 2, seed 6", 100, 6, 0, 2, ""},
		{"pages of 2, seed 11", 100, 11, 0, 2, ""},
		// The first page, over the whole range, brings its last two keys.
		{"pages of 2, 200 calls, seed 7", 200, 7, 0, 2, ""},
		// No total to count against: a page that skips keys is followed
		// by a request for them until the PBX has shown its order.
		{"cap 2 under pages of 4, no total, 216 calls, seed 14", 216, 14, 2, 4, "absent"},
	}
	for _, tc := range cases {
		for _, tg := range targets {
			t.Run(tc.name+"/"+tg.name, func(t *testing.T) {
				t.Parallel()
				sink, exported := tg.open(t)
				o := pbxsim.Options{Calls: tc.calls, Seed: tc.seed, IgnoreSort: true, MaxCount: tc.maxCount, Total: tc.total}
				sim, x := trustExporter(t, o, sink, tc.page, 4, func(url.Values) {})
				r := runCalls(t, x)
				if r.Err != nil || r.Vanished != 0 {
					t.Fatalf("rows %d, cursor %d, vanished %d, err %v, notes %q: want every call, none vanished", r.Rows, r.Cursor, r.Vanished, r.Err, r.Notes)
				}
				wantNote(t, r, "ignores sort=id")
				wantExact(t, sim, exported(t))
			})
		}
	}
}

// TestKeyRangeOfTwoAdjacentCalls: on a PBX ignoring sort=id, a range
// holding two neighbouring calls halves down to one key, asked with room
// for the key past it: the answer holds both, as many as the PBX has
// sent at most, and proves nothing by its length. The key itself came,
// and a one-key range holds nothing else: the range is whole, and the
// endpoint stays on id ranges (before, it fell to time windows for good).
func TestKeyRangeOfTwoAdjacentCalls(t *testing.T) {
	t.Parallel()
	for _, tg := range targets {
		t.Run(tg.name, func(t *testing.T) {
			t.Parallel()
			sink, exported := tg.open(t)
			sim, x := trustExporter(t, pbxsim.Options{Calls: 2, IgnoreSort: true}, sink, 100, 4, func(url.Values) {})
			for run := 1; run <= 2; run++ {
				r := runCalls(t, x)
				if r.Err != nil || r.Paging != exporter.PagingKeyRanges {
					t.Fatalf("run %d: rows %d, paging %q, err %v, notes %q: want paging by id ranges", run, r.Rows, r.Paging, r.Err, r.Notes)
				}
				if run == 1 {
					sim.InsertCalls(2)
				}
			}
			wantExact(t, sim, exported(t))
		})
	}
}

// TestKeyRangesAcrossAPurgeWithoutTotal: a PBX ignoring sort=id and
// sending no total, purging its oldest calls after the first request.
// Ranges widen across the emptied keys, and the first range past them
// comes back with a full page: only an answer shorter than asked may
// prove a range whole there (taking a full one as whole lost most calls).
func TestKeyRangesAcrossAPurgeWithoutTotal(t *testing.T) {
	t.Parallel()
	for _, tg := range targets {
		t.Run(tg.name, func(t *testing.T) {
			t.Parallel()
			sink, exported := tg.open(t)
			o := pbxsim.Options{Calls: 4000, IgnoreSort: true, Total: "absent", DeleteAfter: 1, DeleteOldest: 1000}
			sim, x := trustExporter(t, o, sink, 100, 1, func(url.Values) {})
			r := runCalls(t, x)
			if r.Err != nil || r.Paging != exporter.PagingKeyRanges || r.Rows != 3000 {
				t.Fatalf("rows %d, paging %q, err %v, notes %q: want the 3000 calls left, by id ranges", r.Rows, r.Paging, r.Err, r.Notes)
			}
			wantExact(t, sim, exported(t))
		})
	}
}
