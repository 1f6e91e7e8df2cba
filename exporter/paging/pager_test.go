package paging

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/wildix-export/wildix-export/exporter/record"
	"github.com/wildix-export/wildix-export/internal/pbxsim"
)

// TestPagerHugeTotal: a total of the largest int64 is refused with a
// message naming it, not a panic or an overflowed page count.
func TestPagerHugeTotal(t *testing.T) {
	t.Parallel()
	huge := func(_ *http.Request, status int, body []byte) (int, []byte) {
		return status, []byte(strings.Replace(string(body), `"total":"25"`, `"total":9223372036854775807`, 1))
	}
	_, c := newSim(pbxsim.Options{Calls: 1, Rewrite: huge})
	ep := record.Builtin()[1] // colleagues: 25 of them
	p := &pager{Lister: c, Path: ep.Path, PageSize: 10, Concurrency: 2, MaxPages: 1000, Counters: &Counters{}}
	_, err := p.Run(context.Background(), func(offsetPage) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "9223372036854775807") {
		t.Fatalf("err = %v, want the total refused", err)
	}
}

// TestPagerRefusals: the pages by offset of an answer that cannot be
// paged on (a PBX ignoring start, more records than asked, no records
// while the total says some) stop with an error naming it; records removed
// while paging end the read incomplete; EXPORT_MAX_PAGES bounds a read
// with or without a total.
func TestPagerRefusals(t *testing.T) {
	t.Parallel()
	sameFirst := func() func(*http.Request, int, []byte) (int, []byte) {
		var mu sync.Mutex
		var first []byte
		return func(_ *http.Request, status int, body []byte) (int, []byte) {
			mu.Lock()
			defer mu.Unlock()
			if first == nil {
				first = body
			}
			return status, first
		}
	}
	at := func(start string, edit func(url.Values, []int64, string) ([]int64, string)) func(*http.Request, int, []byte) (int, []byte) {
		return rewriteAnswer(func(q url.Values, ids []int64, total string) ([]int64, string) {
			if q.Get("start") != start {
				return ids, total
			}
			return edit(q, ids, total)
		})
	}
	for _, tc := range []struct {
		name     string
		o        pbxsim.Options
		maxPages int
		err      string // "" for no error
		complete bool
	}{
		{"start ignored", pbxsim.Options{Rewrite: sameFirst()}, 100, "same page again", false},
		{"start ignored, no total", pbxsim.Options{Total: "absent", Rewrite: sameFirst()}, 100, "same page again", false},
		{"a later page longer than count", pbxsim.Options{Rewrite: at("10", func(_ url.Values, ids []int64, t string) ([]int64, string) {
			return append(ids, ids[0]), t
		})}, 100, "11 records for count=10", false},
		{"the first page longer than count", pbxsim.Options{Rewrite: at("0", func(_ url.Values, ids []int64, t string) ([]int64, string) {
			return append(ids, ids[0]), t
		})}, 100, "11 records for count=10", false},
		{"no records, a total", pbxsim.Options{Rewrite: at("0", func(_ url.Values, _ []int64, t string) ([]int64, string) {
			return nil, t
		})}, 100, "no records, but total says 25", false},
		{"records removed while paging", pbxsim.Options{Rewrite: at("10", func(_ url.Values, ids []int64, t string) ([]int64, string) {
			return ids[:5], t
		})}, 100, "", false},
		{"more pages than allowed", pbxsim.Options{}, 1, "EXPORT_MAX_PAGES=1", false},
		{"more pages than allowed, no total", pbxsim.Options{Total: "absent"}, 1, "EXPORT_MAX_PAGES=1", false},
		{"whole", pbxsim.Options{}, 100, "", true},
		{"whole, no total", pbxsim.Options{Total: "absent"}, 100, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o := tc.o
			o.Calls = 25
			_, l := newSim(o)
			ep := calls()
			p := &pager{Lister: l, Path: ep.Path, Query: url.Values{"sort": {"id"}, "dir": {"ASC"}}, PageSize: 10, Concurrency: 2,
				MaxPages: tc.maxPages, Counters: &Counters{}}
			res, err := p.Run(context.Background(), func(offsetPage) error { return nil })
			switch {
			case tc.err == "" && err != nil:
				t.Fatal(err)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Fatalf("err = %v, want one saying %q", err, tc.err)
			case res.Complete != tc.complete:
				t.Fatalf("complete = %v, want %v (%+v)", res.Complete, tc.complete, res)
			}
		})
	}
}

// TestPagerStopsOnTheCallersError: the caller's error on any page stops
// the read and is returned, wrapped with the page.
func TestPagerStopsOnTheCallersError(t *testing.T) {
	t.Parallel()
	errSink := errors.New("the sink failed")
	for _, total := range []string{"", "absent"} {
		for _, at := range []int{0, 1} {
			_, l := newSim(pbxsim.Options{Calls: 25, Total: total})
			p := &pager{Lister: l, Path: calls().Path, Query: url.Values{"sort": {"id"}, "dir": {"ASC"}}, PageSize: 10, Concurrency: 2,
				MaxPages: 100, Counters: &Counters{}}
			_, err := p.Run(context.Background(), func(pg offsetPage) error {
				if pg.Number == at {
					return errSink
				}
				return nil
			})
			if !errors.Is(err, errSink) || !strings.Contains(err.Error(), fmt.Sprintf("page %d", at)) {
				t.Fatalf("total %q, failing at page %d: err = %v", total, at, err)
			}
		}
	}
}
