package paging

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/wildix-export/wildix-export/internal/pbxsim"
)

// cutRecords plays a PBX whose page size is capped at n from its after-th
// call-history answer on, and which sends no total.
func cutRecords(n int, after int64) func(*http.Request, int, []byte) (int, []byte) {
	var seen atomic.Int64
	return func(r *http.Request, status int, body []byte) (int, []byte) {
		if !strings.Contains(strings.ToLower(r.URL.Path), "callhistory") || seen.Add(1) < after {
			return status, body
		}
		var env struct {
			Type   string `json:"type"`
			Result struct {
				Records []json.RawMessage `json:"records"`
			} `json:"result"`
		}
		if err := json.Unmarshal(body, &env); err != nil {
			panic(err)
		}
		if len(env.Result.Records) > n {
			env.Result.Records = env.Result.Records[:n]
		}
		out, err := json.Marshal(env)
		if err != nil {
			panic(err)
		}
		return status, out
	}
}

// TestKeyset reads the whole call history by key and checks the spans:
// contiguous from lo to hi, keys ascending, every call on the PBX once,
// and no more requests than the case allows; a PBX ignoring the key
// filter or the sort is found out (in process: Sim.List as the Lister).
func TestKeyset(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		o          pbxsim.Options
		size, conc int
		del        func(id int64) bool // calls deleted before the read
		maxReq     int64
		capped     bool
		ignored    Param // the IgnoredError wanted, none when 0
	}{
		{name: "dense, 4 at a time", o: pbxsim.Options{Calls: 1000}, size: 100, conc: 4, maxReq: 10},
		{name: "dense, one at a time", o: pbxsim.Options{Calls: 1000}, size: 100, conc: 1, maxReq: 10},
		{name: "cap 250, pages of 1000", o: pbxsim.Options{Calls: 3000, MaxCount: 250}, size: 1000, conc: 4, maxReq: 14, capped: true},
		{name: "cap 250, pages of 1000, one at a time", o: pbxsim.Options{Calls: 3000, MaxCount: 250}, size: 1000, conc: 1, maxReq: 14, capped: true},
		{name: "cap appearing late, no total", o: pbxsim.Options{Calls: 1000, Rewrite: cutRecords(30, 3)}, size: 100, conc: 4, maxReq: 80, capped: true},
		{name: "every third call deleted, no total", o: pbxsim.Options{Calls: 1000, Total: "absent"}, size: 100, conc: 4,
			del: func(id int64) bool { return id%3 == 0 }, maxReq: 30},
		{name: "oldest 900 purged", o: pbxsim.Options{Calls: 1000}, size: 10, conc: 4,
			del: func(id int64) bool { return id <= 900 }, maxReq: 25},
		{name: "exclusive upper bounds", o: pbxsim.Options{Calls: 1000, FilterToExclusive: true}, size: 100, conc: 4, maxReq: 25},
		{name: "id filter ignored", o: pbxsim.Options{Calls: 1000, IgnoreFilter: []string{"id"}}, size: 100, conc: 4, ignored: FilterParam},
		{name: "sort ignored", o: pbxsim.Options{Calls: 1000, IgnoreSort: true}, size: 100, conc: 4, ignored: SortParam},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sim, c := newSim(tc.o)
			if tc.del != nil {
				var ids []int64
				for id := int64(1); id <= sim.MaxCallID(); id++ {
					if tc.del(id) {
						ids = append(ids, id)
					}
				}
				sim.Delete(ids...)
			}
			r := newReader(c, tc.size, tc.conc)
			r.MaxPages = 10000
			n, sizes := r.Counters, r.Learnt
			var got []int64
			next := int64(1)
			err := keyset{&keyPages{Reader: r}}.read(context.Background(), Range{1, sim.MaxCallID()}, func(sp Span) error {
				if sp.Lo != next || sp.Hi < sp.Lo {
					t.Fatalf("span [%d, %d], want it to start at %d", sp.Lo, sp.Hi, next)
				}
				for _, r := range sp.Rows {
					if r.Cursor < sp.Lo || r.Cursor > sp.Hi || len(got) > 0 && r.Cursor <= got[len(got)-1] {
						t.Fatalf("key %d in span [%d, %d] after %v", r.Cursor, sp.Lo, sp.Hi, got[max(0, len(got)-3):])
					}
					got = append(got, r.Cursor)
				}
				next = sp.Hi + 1
				return nil
			})
			if tc.ignored != 0 {
				var le *IgnoredError
				if !errors.As(err, &le) || le.Param != tc.ignored {
					t.Fatalf("err = %v, want the PBX found to ignore its %s", err, tc.ignored)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if next != sim.MaxCallID()+1 {
				t.Fatalf("spans end at %d, want %d", next-1, sim.MaxCallID())
			}
			truth := sim.CallIDs()
			if len(got) != len(truth) {
				t.Fatalf("%d calls read, want %d", len(got), len(truth))
			}
			for i := range truth {
				if got[i] != truth[i] {
					t.Fatalf("call %d read where %d was wanted", got[i], truth[i])
				}
			}
			if r := n.Requests.Load(); r > tc.maxReq {
				t.Fatalf("%d requests, want at most %d", r, tc.maxReq)
			}
			if _, capped := sizes.Capped(); capped != tc.capped {
				t.Fatalf("capped = %v, want %v", capped, tc.capped)
			}
		})
	}
}

// TestKeysetAtTheEdgesOfInt64: ranges at the top of int64 end, without
// overflowing into negative keys or looping.
func TestKeysetAtTheEdgesOfInt64(t *testing.T) {
	t.Parallel()
	_, c := newSim(pbxsim.Options{Calls: 10})
	for _, r := range [][2]int64{{math.MaxInt64 - 5, math.MaxInt64}, {math.MaxInt64, math.MaxInt64}, {1, math.MaxInt64}} {
		rd := newReader(c, 3, 4)
		rd.MaxPages = 100
		var rows int
		last := r[0] - 1
		err := keyset{&keyPages{Reader: rd}}.read(context.Background(), Range{r[0], r[1]}, func(sp Span) error {
			if sp.Lo != last+1 {
				t.Fatalf("range %v: span [%d, %d] after %d", r, sp.Lo, sp.Hi, last)
			}
			last = sp.Hi
			rows += len(sp.Rows)
			return nil
		})
		if err != nil {
			t.Fatalf("range %v: %v", r, err)
		}
		if last != r[1] {
			t.Fatalf("range %v: read to %d", r, last)
		}
		want := 0
		if r[0] == 1 {
			want = 10
		}
		if rows != want {
			t.Fatalf("range %v: %d rows, want %d", r, rows, want)
		}
	}
}

// rewriteAnswer rewrites a call-history answer: edit changes its records and
// total ("" leaves the total out, as some PBXes do).
func rewriteAnswer(edit func(q url.Values, ids []int64, total string) ([]int64, string)) func(*http.Request, int, []byte) (int, []byte) {
	return func(r *http.Request, status int, body []byte) (int, []byte) {
		var env struct {
			Type   string `json:"type"`
			Result struct {
				Total   json.RawMessage   `json:"total"`
				Records []json.RawMessage `json:"records"`
			} `json:"result"`
		}
		if err := json.Unmarshal(body, &env); err != nil {
			panic(err)
		}
		byID := map[int64]json.RawMessage{}
		var ids []int64
		for _, rec := range env.Result.Records {
			var m struct {
				ID json.Number `json:"id"`
			}
			if err := json.Unmarshal(rec, &m); err != nil {
				panic(err)
			}
			id, _ := m.ID.Int64()
			byID[id] = rec
			ids = append(ids, id)
		}
		var total string
		_ = json.Unmarshal(env.Result.Total, &total)
		ids, total = edit(r.URL.Query(), ids, total)
		env.Result.Records = env.Result.Records[:0]
		for _, id := range ids {
			env.Result.Records = append(env.Result.Records, byID[id])
		}
		env.Result.Total = nil
		if total != "" {
			env.Result.Total, _ = json.Marshal(total)
		}
		out, err := json.Marshal(env)
		if err != nil {
			panic(err)
		}
		return status, out
	}
}

// serve plays a PBX sending, for the requests pick names keys for, those
// of its records (asked again of the simulator with room for all of
// them), with the total the simulator counts; other requests as they are.
func serve(sim **pbxsim.Sim, pick func(q url.Values) []int64) func(*http.Request, int, []byte) (int, []byte) {
	return func(r *http.Request, status int, body []byte) (int, []byte) {
		q := r.URL.Query()
		keys := pick(q)
		if keys == nil || q.Get("fields") != "" {
			return status, body
		}
		q.Set("count", "1000")
		status, body = (*sim).List(r.URL.Path, q)
		return rewriteAnswer(func(_ url.Values, ids []int64, total string) ([]int64, string) {
			return slices.DeleteFunc(ids, func(id int64) bool { return !slices.Contains(keys, id) }), total
		})(r, status, body)
	}
}

// TestKeysetRecount reads a range over several pages from a PBX ignoring
// the sort whose pages come in order by chance, skipping keys: a span
// ended at a full page's last key without all its keys, and a span read
// to its end over several pages with fewer records than counted at its
// start, are counted again, and the skipped keys found (the sort taken as
// ignored). Each case fails when its recount is skipped.
func TestKeysetRecount(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		calls     int64
		r         Range
		ask       int64
		untilFull bool
		first     bool
		pick      func(q url.Values) []int64
	}{
		{"ended at a full page's last key", 20, Range{1, 20}, 4, true, true, func(q url.Values) []int64 {
			if q.Get("filter[id][from]") == "1" {
				return []int64{2, 5, 7, 9}
			}
			return nil
		}},
		{"read to its end over pages", 10, Range{1, 10}, 3, false, false, func(q url.Values) []int64 {
			if q.Get("filter[id][from]") == "1" {
				return []int64{1, 2, 4}
			}
			return nil
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var sim *pbxsim.Sim
			sim, l := newSim(pbxsim.Options{Calls: tc.calls, Rewrite: serve(&sim, tc.pick)})
			rd := newReader(l, int(tc.ask), 1)
			k := &keyPages{Reader: rd}
			if !tc.first {
				k.pages.Store(1)
			}
			sp := keyset{k}.readSpan(context.Background(), tc.r, tc.untilFull)
			var ie *IgnoredError
			if !errors.As(sp.err, &ie) || ie.Param != SortParam {
				t.Fatalf("span %v of %d rows, err %v: want the sort found ignored", sp.Range, len(sp.Rows), sp.err)
			}
		})
	}
}

// TestKeysetProofPaths reads one range by key, not as the read's first
// request (asked one key past its bound), through each path of the proof
// of a page that reaches the range's end or comes back short, and checks
// what it decides and what it costs. Each case fails when the check it
// names is turned into an accept (or the accept into a refusal).
func TestKeysetProofPaths(t *testing.T) {
	t.Parallel()
	drop := func(key int64) func(url.Values, []int64, string) ([]int64, string) {
		return func(q url.Values, ids []int64, total string) ([]int64, string) {
			if q.Get("fields") != "" {
				return ids, total // the recount: the PBX counts every record
			}
			return slices.DeleteFunc(ids, func(id int64) bool { return id == key }), total
		}
	}
	pick := func(keys ...int64) func(url.Values, []int64, string) ([]int64, string) {
		return func(q url.Values, ids []int64, total string) ([]int64, string) {
			if q.Get("fields") != "" {
				return ids, total
			}
			return slices.DeleteFunc(ids, func(id int64) bool { return !slices.Contains(keys, id) }), total
		}
	}
	cut := func(n int) func(url.Values, []int64, string) ([]int64, string) {
		return func(_ url.Values, ids []int64, total string) ([]int64, string) { return ids[:min(len(ids), n)], total }
	}
	for _, tc := range []struct {
		name       string
		o          pbxsim.Options
		edit       func(url.Values, []int64, string) ([]int64, string)
		r          Range
		ask        int64
		delivered  int64 // the most records an answer held before this read
		first      bool  // the read's first request, asked for the range exactly
		ignoresErr bool  // an *IgnoredError (sort) wanted
		requests   int64
	}{
		// The one record of doubt: the PBX counts 11 in [1, 11], the
		// page holds 1 to 10, all the keys of [1, 10]: whole, no recount.
		{name: "one record of doubt, every key there", o: pbxsim.Options{Calls: 11}, r: Range{1, 10}, ask: 10, requests: 1},
		// The PBX counts 10 in [1, 11], sends 9 (it skipped 5, as a PBX
		// ignoring the sort may, its keys in order by chance): the recount
		// finds 10 in [1, 10].
		{name: "one record of doubt, a key skipped", o: pbxsim.Options{Calls: 10}, edit: drop(5), r: Range{1, 10}, ask: 10,
			ignoresErr: true, requests: 2},
		// A PBX ignoring the sort sends 2, 5, 9 and 10, in order by
		// chance, reaching the range's end; it counts 10 there: keys were
		// skipped.
		{name: "reaching the end, the PBX counting more", o: pbxsim.Options{Calls: 10}, edit: pick(2, 5, 9, 10), r: Range{1, 10}, ask: 10,
			ignoresErr: true, requests: 1},
		// Pages of one from a PBX ignoring the sort (newest first) and
		// sending no total: the page from 1 brings 10 alone; asked for 1
		// to 9, the PBX sends one of them.
		{name: "a page of one record skipping keys", o: pbxsim.Options{Calls: 10, IgnoreSort: true, Total: "absent"}, r: Range{1, 10}, ask: 1,
			ignoresErr: true, requests: 2},
		// A short page whose total says nothing is left, from a PBX seen
		// to fill a page: the end, without asking past it.
		{name: "short page, total says the end", o: pbxsim.Options{Calls: 5}, r: Range{1, 20}, ask: 10, delivered: 10, requests: 1},
		// The same from a PBX never seen to fill a page: it may be a cap,
		// and the next request from its last key tells.
		{name: "short page, never a full one", o: pbxsim.Options{Calls: 5}, r: Range{1, 20}, ask: 10, delivered: 6, requests: 2},
		// A short page while the total says more remain (a cap appearing
		// late): read on.
		{name: "short page, total says more", o: pbxsim.Options{Calls: 12}, edit: cut(5), r: Range{1, 20}, ask: 10, delivered: 10, requests: 3},
		// The read's first request asks for [1, 10] exactly; a PBX whose
		// upper bound is exclusive leaves 10 out and counts 9: not the end.
		{name: "short first page, upper bound exclusive", o: pbxsim.Options{Calls: 10, FilterToExclusive: true}, r: Range{1, 10}, ask: 20,
			delivered: 20, first: true, requests: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o := tc.o
			if tc.edit != nil {
				o.Rewrite = rewriteAnswer(tc.edit)
			}
			sim, l := newSim(o)
			rd := newReader(l, int(tc.ask), 1)
			rd.Learnt.saw(tc.delivered, 0)
			k := &keyPages{Reader: rd}
			if !tc.first {
				k.pages.Store(1)
			}
			sp := keyset{k}.readSpan(context.Background(), tc.r, false)
			if n := rd.Counters.Requests.Load(); n != tc.requests {
				t.Errorf("%d requests, want %d", n, tc.requests)
			}
			var ie *IgnoredError
			if tc.ignoresErr {
				if !errors.As(sp.err, &ie) || ie.Param != SortParam {
					t.Fatalf("err = %v, want the sort found ignored", sp.err)
				}
				return
			}
			if sp.err != nil {
				t.Fatal(sp.err)
			}
			var got []int64
			for _, row := range sp.Rows {
				got = append(got, row.Cursor)
			}
			var want []int64
			for _, id := range sim.CallIDs() {
				if id >= tc.r.Lo && id <= tc.r.Hi {
					want = append(want, id)
				}
			}
			if !slices.Equal(got, want) {
				t.Fatalf("span %v holds %v, want %v", sp.Range, got, want)
			}
		})
	}
}
