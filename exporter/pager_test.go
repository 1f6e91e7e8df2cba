package exporter

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wildix-export/wildix-export/exporter/pbx"
	"github.com/wildix-export/wildix-export/exporter/record"
	"github.com/wildix-export/wildix-export/internal/pbxsim"
)

// keyed adds the simulator's API key to each request.
type keyed struct{}

func (keyed) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer wsk-v1-test")
	return http.DefaultTransport.RoundTrip(r)
}

// simClient starts a simulator over HTTP on loopback and returns a client
// of it.
func simClient(t *testing.T, o pbxsim.Options) (*pbxsim.Sim, *pbx.Client) {
	t.Helper()
	o.APIKeys = append(o.APIKeys, "wsk-v1-test")
	sim := pbxsim.New(o)
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	return sim, &pbx.Client{HTTP: &http.Client{Transport: keyed{}}, Base: u, MaxAttempts: 2, Timeout: 5 * time.Second, MinBackoff: time.Millisecond}
}

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

// TestKeyReader reads the whole call history by key and checks the spans:
// contiguous from lo to hi, keys ascending, every call on the PBX once,
// and no more requests than the case allows.
func TestKeyReader(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		o          pbxsim.Options
		size, conc int
		del        func(id int64) bool // calls deleted before the read
		maxReq     int64
		capped     bool
		ignored    param // the ladderError wanted, none when 0
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
		{name: "id filter ignored", o: pbxsim.Options{Calls: 1000, IgnoreFilter: []string{"id"}}, size: 100, conc: 4, ignored: filterParam},
		{name: "sort ignored", o: pbxsim.Options{Calls: 1000, IgnoreSort: true}, size: 100, conc: 4, ignored: sortParam},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sim, c := simClient(t, tc.o)
			if tc.del != nil {
				var ids []int64
				for id := int64(1); id <= sim.MaxCallID(); id++ {
					if tc.del(id) {
						ids = append(ids, id)
					}
				}
				sim.Delete(ids...)
			}
			ep := record.Builtin()[0]
			n := &Counters{}
			sizes := newLearnt(tc.size)
			k := &keyReader{Client: c, Endpoint: &ep, Concurrency: tc.conc, MaxPages: 10000, Counters: n,
				Rows: (&record.Converter{Endpoint: &ep}).Rows, Learnt: sizes}
			var got []int64
			next := int64(1)
			err := k.Read(context.Background(), 1, sim.MaxCallID(), func(sp span) error {
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
				var le *ladderError
				if !errors.As(err, &le) || le.Ignored != tc.ignored {
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
			if _, capped := sizes.capped(); capped != tc.capped {
				t.Fatalf("capped = %v, want %v", capped, tc.capped)
			}
		})
	}
}

// TestKeyReaderAtTheEdgesOfInt64: ranges at the top of int64 end, without
// overflowing into negative keys or looping.
func TestKeyReaderAtTheEdgesOfInt64(t *testing.T) {
	t.Parallel()
	_, c := simClient(t, pbxsim.Options{Calls: 10})
	ep := record.Builtin()[0]
	for _, r := range [][2]int64{{math.MaxInt64 - 5, math.MaxInt64}, {math.MaxInt64, math.MaxInt64}, {1, math.MaxInt64}} {
		n := &Counters{}
		k := &keyReader{Client: c, Endpoint: &ep, Concurrency: 4, MaxPages: 100, Counters: n,
			Rows: (&record.Converter{Endpoint: &ep}).Rows, Learnt: newLearnt(3)}
		var rows int
		last := r[0] - 1
		err := k.Read(context.Background(), r[0], r[1], func(sp span) error {
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

// TestPagerHugeTotal: a total of the largest int64 is refused with a
// message naming it, not a panic or an overflowed page count.
func TestPagerHugeTotal(t *testing.T) {
	t.Parallel()
	huge := func(_ *http.Request, status int, body []byte) (int, []byte) {
		return status, []byte(strings.Replace(string(body), `"total":"25"`, `"total":9223372036854775807`, 1))
	}
	_, c := simClient(t, pbxsim.Options{Calls: 1, Rewrite: huge})
	ep := record.Builtin()[1] // colleagues: 25 of them
	p := &Pager{Client: c, Path: ep.Path, PageSize: 10, Concurrency: 2, MaxPages: 1000, Counters: &Counters{}}
	_, err := p.Run(context.Background(), func(Page) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "9223372036854775807") {
		t.Fatalf("err = %v, want the total refused", err)
	}
}
