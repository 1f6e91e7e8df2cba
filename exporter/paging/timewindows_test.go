package paging

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wildix-export/wildix-export/exporter/pbx"
	"github.com/wildix-export/wildix-export/exporter/record"
	"github.com/wildix-export/wildix-export/internal/pbxsim"
)

// TestTimeWindows reads an hour of call history by time windows, in
// process: whole and once on a PBX honouring the time filter, whatever it
// does with the key filter and the sort, at pages too small for most
// windows; a PBX ignoring the time filter as well stops the read.
func TestTimeWindows(t *testing.T) {
	t.Parallel()
	startRe := regexp.MustCompile(`"start":"[^"]*"`)
	ignoresTime := func(_ *http.Request, status int, body []byte) (int, []byte) {
		return status, startRe.ReplaceAll(body, []byte(`"start":"1999-01-01 00:00:00"`))
	}
	longer := rewriteAnswer(func(_ url.Values, ids []int64, total string) ([]int64, string) {
		if len(ids) > 0 {
			ids = append(ids, ids[0])
		}
		return ids, "" // no total, which would be below the records sent
	})
	var answers atomic.Int64
	capLate := rewriteAnswer(func(_ url.Values, ids []int64, total string) ([]int64, string) {
		if answers.Add(1) > 2 && len(ids) > 5 {
			ids = ids[:5] // a cap appearing after pages were seen full
		}
		return ids, total
	})
	for _, tc := range []struct {
		name     string
		o        pbxsim.Options
		size     int
		err      string
		maxPages int
	}{
		{"pages of 10", pbxsim.Options{Calls: 150}, 10, "", 0},
		{"pages of 3, sort and id filter ignored", pbxsim.Options{Calls: 150, IgnoreSort: true, IgnoreFilter: []string{"id"}}, 3, "", 0},
		{"a busy second, pages of 2", pbxsim.Options{Calls: 60, CallGap: time.Second}, 2, "", 0},
		{"the time filter ignored", pbxsim.Options{Calls: 150, Rewrite: ignoresTime}, 10, "it ignores filter[start] as well", 0},
		{"more records than asked", pbxsim.Options{Calls: 150, Rewrite: longer}, 10, "records for count=10", 0},
		{"a cap appearing late", pbxsim.Options{Calls: 150, Rewrite: capLate}, 10, "", 0},
		{"more pages than allowed", pbxsim.Options{Calls: 150}, 10, "EXPORT_MAX_PAGES=2", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sim, l := newSim(tc.o)
			rd := newReader(l, tc.size, 1)
			if tc.maxPages > 0 {
				rd.MaxPages = tc.maxPages
			}
			from, to := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 1, 1, 1, 0, 0, 0, time.UTC)
			got := tally{}
			err := (&TimeWindows{Reader: rd}).Read(context.Background(), from, to, got.count)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want one saying %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want, wrong := got.notOnce(sim, "2026-01-01 00:00:00", "2026-01-01 01:00:00")
			if want == 0 || len(got) != want || len(wrong) > 0 {
				t.Fatalf("%d calls read, %d in the hour; read other than once: %v", len(got), want, wrong)
			}
		})
	}
}

// windowLog records the windows asked of a Lister.
type windowLog struct {
	Lister
	mu   sync.Mutex
	asks [][3]string // from, to, start
}

func (l *windowLog) List(ctx context.Context, path string, q url.Values, n *pbx.Counts) (*pbx.ListPage, error) {
	l.mu.Lock()
	l.asks = append(l.asks, [3]string{q.Get("filter[start][from]"), q.Get("filter[start][to]"), q.Get("start")})
	l.mu.Unlock()
	return l.Lister.List(ctx, path, q, n)
}

// TestTimeWindowsLeaveOutTheUnsettled: the calls dated in the unsettled
// gap (the watermark to the horizon) are never handed over, whether a
// window holding them was answered whole in one page (pages of 1,000) or
// cut (pages of 10, 4 at a time), no window is asked within the gap, and
// every other call of the range is handed over once; the whole range in
// one page costs at most 3 requests.
func TestTimeWindowsLeaveOutTheUnsettled(t *testing.T) {
	t.Parallel()
	for _, size := range []int{1000, 10} {
		t.Run(strconv.Itoa(size), func(t *testing.T) {
			t.Parallel()
			sim, l := newSim(pbxsim.Options{Calls: 400})
			log := &windowLog{Lister: l}
			rd := newReader(log, size, 4)
			from, to := wall("2026-01-01 01:00:00"), wall("2026-01-01 05:00:00")
			gap := Gap{From: wall("2026-01-01 02:30:00"), To: wall("2026-01-01 03:00:00")}
			got := tally{}
			err := (&TimeWindows{Reader: rd, Unsettled: gap}).Read(context.Background(), from, to, got.count)
			if err != nil {
				t.Fatal(err)
			}
			in := 0
			for _, id := range sim.CallIDs() {
				s := callStart(sim, id)
				want := 0
				switch {
				case s < "2026-01-01 01:00:00" || s >= "2026-01-01 05:00:00":
				case s > "2026-01-01 02:30:00" && s <= "2026-01-01 03:00:00":
					in++
				default:
					want = 1
				}
				if got[id] != want {
					t.Fatalf("call %d (start %s) handed over %d times, want %d", id, s, got[id], want)
				}
			}
			if in == 0 {
				t.Fatal("no call in the gap: the case proves nothing")
			}
			for _, a := range log.asks {
				if a[0] > "2026-01-01 02:30:00" && a[1] <= "2026-01-01 03:00:01" && a[1] != "" {
					t.Fatalf("window %s to %s asked, within the gap", a[0], a[1])
				}
			}
			if size == 1000 && len(log.asks) > 3 {
				// The first answer is not proven (no page seen full yet):
				// it is cut in two where its calls fall, each piece then
				// holding fewer than it.
				t.Fatalf("%d requests for a range that fits a page, want at most 3", len(log.asks))
			}
			t.Logf("%d requests, %d calls in the gap", len(log.asks), in)
		})
	}
}

// TestTimeWindowsRequests: a first export by time windows, 4 requests at
// a time, costs at most so many times the requests of full pages, and 3
// more (the whole range asked first, the first window cut from it, the
// rest asked again past the calls): windows hold 85% of a page at the
// density seen, the last reaching to the end once the total says the
// rest fits, and, once 32 windows held what the density said within a
// few records (the simulator's calls come evenly), up to 95%: 112 - 115
// requests for 100 pages of 400, 120 with windows at 85% only. Windows of
// three quarters of a page took 277 requests for 200 pages of 100;
// halving alone, 673 against the PBX of the issue; widths from the last
// window's count alone (not the last few windows'), 244.
func TestTimeWindowsRequests(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		calls, size int
		limit       float64 // × full pages
	}{
		{20000, 100, 1.2},
		{20000, 1000, 1.2},
		{40000, 400, 1.16},
	} {
		t.Run(fmt.Sprintf("%d/%d", tc.calls, tc.size), func(t *testing.T) {
			t.Parallel()
			_, l := newSim(pbxsim.Options{Calls: int64(tc.calls), IgnoreFilter: []string{"id"}, CacheCalls: true})
			rd := newReader(l, tc.size, 4)
			from, to := time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 12, 8, 0, 0, 0, 0, time.UTC)
			n := 0
			err := (&TimeWindows{Reader: rd}).Read(context.Background(), from, to, func(rows []record.Row) error {
				n += len(rows)
				return nil
			})
			pages := int64(tc.calls / tc.size)
			if err != nil || n != tc.calls {
				t.Fatalf("%d calls handed over, err %v; want %d", n, err, tc.calls)
			}
			if got, limit := rd.Counters.Requests.Load(), int64(tc.limit*float64(pages))+3; got > limit {
				t.Fatalf("%d requests, want at most %d (full pages: %d)", got, limit, pages)
			}
			t.Logf("%d requests (full pages: %d)", rd.Counters.Requests.Load(), pages)
		})
	}
}

// TestTimeWindowsAim: stepped windows are planned at 85% of a page until
// 32 were compared with what they should have held, then nearer a page
// the less their counts varied, never above 95%.
func TestTimeWindowsAim(t *testing.T) {
	t.Parallel()
	even := func(n int, spread float64) []float64 {
		r := make([]float64, n)
		for i := range r {
			r[i] = 1 + spread*float64(i%3-1) // 1-spread, 1, 1+spread
		}
		return r
	}
	for _, tc := range []struct {
		name   string
		ratios []float64
		want   int64
	}{
		{"none compared yet", nil, 85},
		{"31 windows as the density said", even(31, 0), 85},
		{"32 windows as the density said", even(32, 0), 95},
		{"counts within 1%", even(32, 0.01), 95},
		{"counts within 3%", even(32, 0.03), 91},
		{"counts within 10%", even(32, 0.1), 85},
		{"a window four times what it should have held", append(even(31, 0), 4), 85},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &plan{ratios: tc.ratios}
			if got := p.aim(); got != tc.want {
				t.Fatalf("aim = %d hundredths of a page, want %d", got, tc.want)
			}
		})
	}
}

// TestTimeWindowsOneSecondRange: a range of one second is read whole,
// each call once, when it holds more calls than a page and when it holds
// one call, answered short by a PBX never seen to send more: nothing can
// be cut from it, so it is read by offset.
func TestTimeWindowsOneSecondRange(t *testing.T) {
	t.Parallel()
	sim, l := newSim(pbxsim.Options{Calls: 400, CallGap: time.Second})
	per := map[string][]int64{}
	for _, id := range sim.CallIDs() {
		per[callStart(sim, id)] = append(per[callStart(sim, id)], id)
	}
	for _, calls := range []int{3, 1} {
		var second string
		for s, ids := range per {
			w, _ := time.Parse(record.WallLayout, s)
			// The second after it is asked for too (filter[to] may be
			// inclusive): it holds none.
			after := len(per[w.Add(time.Second).Format(record.WallLayout)])
			if len(ids) == calls && after == 0 && (second == "" || s < second) {
				second = s
			}
		}
		if second == "" {
			t.Fatalf("no second holds %d calls: the case proves nothing", calls)
		}
		rd := newReader(l, 2, 4)
		rd.MaxPages = 100
		a, _ := time.Parse(record.WallLayout, second)
		got := tally{}
		err := (&TimeWindows{Reader: rd}).Read(context.Background(), a, a.Add(time.Second), got.count)
		if err != nil {
			t.Fatalf("the second %s holding %d calls: %v", second, calls, err)
		}
		for _, id := range per[second] {
			if got[id] != 1 {
				t.Fatalf("call %d of the second %s handed over %d times; got %v", id, second, got[id], got)
			}
		}
		if len(got) != calls {
			t.Fatalf("%d calls handed over, the second %s holds %d", len(got), second, calls)
		}
	}
}

// pairLister holds the first request asked until a second one is asked
// beside it.
type pairLister struct {
	Lister
	asked  atomic.Int32
	second chan struct{}
}

func (l *pairLister) List(ctx context.Context, path string, q url.Values, n *pbx.Counts) (*pbx.ListPage, error) {
	switch l.asked.Add(1) {
	case 1:
		select {
		case <-l.second:
		case <-time.After(time.Minute):
			return nil, errors.New("no second request was asked while the first was in flight")
		}
	case 2:
		close(l.second)
	}
	return l.Lister.List(ctx, path, q, n)
}

// TestTimeWindowsPiecesSideBySide: the pieces of a window that came back
// full are asked side by side (the first piece's answer waits for the
// second's request, else the read fails after a minute), and the window is
// read whole, each call once.
func TestTimeWindowsPiecesSideBySide(t *testing.T) {
	t.Parallel()
	sim, l := newSim(pbxsim.Options{Calls: 400})
	rd := newReader(l, 10, 4)
	tw := &TimeWindows{Reader: rd, slots: newSlots(4)}
	w := window{wall("2026-01-01 01:00:00"), wall("2026-01-01 02:00:00")}
	ans, err := tw.ask(context.Background(), w)
	if err != nil || tw.proven(ans) {
		t.Fatalf("the hour's answer: err %v, proven %v; want a full page", err, err == nil && tw.proven(ans))
	}
	tw.Lister = &pairLister{Lister: l, second: make(chan struct{})}
	rows, err := tw.whole(context.Background(), w, ans)
	if err != nil {
		t.Fatal(err)
	}
	got := tally{}
	got.count(rows)
	want, wrong := got.notOnce(sim, "2026-01-01 01:00:00", "2026-01-01 02:00:00")
	if len(wrong) > 0 || len(got) != want || want <= 10 {
		t.Fatalf("%d calls read, the hour holds %d (more than a page: %v); read other than once: %v", len(got), want, want > 10, wrong)
	}
}

// TestTimeWindowsAdaptAfterPieces: a stepped window read in pieces sets
// the next windows' width from its count, known once it was read whole,
// when that says less than half its width: four times what the next
// windows should hold, a quarter of its width (halving alone asks the
// next windows twice as wide as they should be, and they come back full
// again); twice, half; none, half.
func TestTimeWindowsAdaptAfterPieces(t *testing.T) {
	t.Parallel()
	a := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		held int
		want time.Duration
	}{
		{3400, time.Hour},
		{1700, 2 * time.Hour},
		{0, 2 * time.Hour},
	} {
		t.Run(strconv.Itoa(tc.held), func(t *testing.T) {
			p := &plan{page: 1000, per: 850}
			p.adapt(windowRows{step: step{w: window{a, a.Add(4 * time.Hour)}, stepped: true, per: 850}, rows: make([]record.Row, tc.held), cut: true})
			if p.width != tc.want {
				t.Fatalf("after a window of 4 h read in pieces holding %d records: next width %v, want %v", tc.held, p.width, tc.want)
			}
		})
	}
}

// countLister counts requests and closes third as the third is sent.
type countLister struct {
	Lister
	asked atomic.Int32
	third chan struct{}
}

func (l *countLister) List(ctx context.Context, path string, q url.Values, n *pbx.Counts) (*pbx.ListPage, error) {
	if l.asked.Add(1) == 3 {
		close(l.third)
	}
	return l.Lister.List(ctx, path, q, n)
}

// TestTimeWindowsConvertOutsideTheSlot: converting an answer does not
// hold the request slot. One request at a time, the first window's answer
// (the second answer; the first is the whole range's) is converted only
// once the next window has been asked for: with the slot held through
// the conversion the read fails after a minute. Every call of the range
// is then handed over once.
func TestTimeWindowsConvertOutsideTheSlot(t *testing.T) {
	t.Parallel()
	sim, l := newSim(pbxsim.Options{Calls: 400})
	cl := &countLister{Lister: l, third: make(chan struct{})}
	rd := newReader(cl, 10, 1)
	convert := rd.Rows
	var converted atomic.Int32
	rd.Rows = func(raws []json.RawMessage) ([]record.Row, error) {
		if converted.Add(1) == 2 {
			select {
			case <-cl.third:
			case <-time.After(time.Minute):
				return nil, errors.New("no request was sent while an answer was converted")
			}
		}
		return convert(raws)
	}
	got := tally{}
	err := (&TimeWindows{Reader: rd}).Read(context.Background(), wall("2026-01-01 00:00:00"), wall("2026-01-01 04:00:00"), got.count)
	if err != nil {
		t.Fatal(err)
	}
	want, wrong := got.notOnce(sim, "2026-01-01 00:00:00", "2026-01-01 04:00:00")
	if len(wrong) > 0 || len(got) != want || want <= 20 {
		t.Fatalf("%d calls handed over, the range holds %d (more than two pages: %v); handed over other than once: %v", len(got), want, want > 20, wrong)
	}
}

// TestTimeWindowsBusySecondAlone: a second holding more calls than a page,
// followed by one holding calls too, is read whole by offset, each of its
// calls once; on a PBX whose filter[to] is inclusive (seen from the first
// answer) each read by offset asks for that second alone, not for the
// next one with it; on one whose filter[to] is exclusive, up to the next
// second.
func TestTimeWindowsBusySecondAlone(t *testing.T) {
	t.Parallel()
	for _, exclusive := range []bool{false, true} {
		t.Run(fmt.Sprintf("exclusive %v", exclusive), func(t *testing.T) {
			t.Parallel()
			sim, l := newSim(pbxsim.Options{Calls: 400, CallGap: time.Second, FilterToExclusive: exclusive})
			per := map[string][]int64{}
			for _, id := range sim.CallIDs() {
				per[callStart(sim, id)] = append(per[callStart(sim, id)], id)
			}
			var second string
			for s, ids := range per {
				w, _ := time.Parse(record.WallLayout, s)
				if len(ids) >= 3 && len(per[w.Add(time.Second).Format(record.WallLayout)]) >= 2 && (second == "" || s < second) {
					second = s
				}
			}
			if second == "" {
				t.Fatal("no busy second followed by calls: the case proves nothing")
			}
			log := &windowLog{Lister: l}
			rd := newReader(log, 2, 4)
			a, _ := time.Parse(record.WallLayout, second)
			got := tally{}
			err := (&TimeWindows{Reader: rd}).Read(context.Background(), a, a.Add(time.Second), got.count)
			if err != nil {
				t.Fatal(err)
			}
			for _, id := range per[second] {
				if got[id] != 1 {
					t.Fatalf("call %d of the second %s handed over %d times", id, second, got[id])
				}
			}
			if len(got) != len(per[second]) {
				t.Fatalf("%d calls handed over, the second %s holds %d", len(got), second, len(per[second]))
			}
			want := second
			if exclusive {
				want = a.Add(time.Second).Format(record.WallLayout)
			}
			offsets := 0
			for _, ask := range log.asks {
				if ask[2] != "0" {
					offsets++
					if ask[0] != second || ask[1] != want {
						t.Fatalf("read by offset as %s to %s (start %s), want %s to %s", ask[0], ask[1], ask[2], second, want)
					}
				}
			}
			if offsets == 0 {
				t.Fatal("nothing read by offset: the case proves nothing")
			}
		})
	}
}

// TestTimeWindowsFromExclusive: a PBX whose filter[start][from] excludes
// its bound loses no call on a window's start (windows are cut where calls
// fall, so each such window starts on one): every call of the range is
// handed over once, at calls 30 s apart and at busy seconds read by
// offset, pages of 10 and of 2, whatever filter[to] does, with the sort
// ignored, and with an unsettled gap left out (the nightly run's and the
// backfill's reads); the bound found exclusive is noted once. A one-second
// window is never asked as [a, a] by offset there (it would answer
// nothing). On a PBX including its bound nothing is noted.
func TestTimeWindowsFromExclusive(t *testing.T) {
	t.Parallel()
	gap := Gap{From: wall("2026-01-01 01:30:00"), To: wall("2026-01-01 02:00:00")}
	for _, tc := range []struct {
		name string
		o    pbxsim.Options
		size int
		gap  Gap
	}{
		{"calls 30 s apart, pages of 10", pbxsim.Options{Calls: 400}, 10, Gap{}},
		{"busy seconds, pages of 2", pbxsim.Options{Calls: 300, CallGap: time.Second}, 2, Gap{}},
		{"busy seconds, to exclusive, pages of 2", pbxsim.Options{Calls: 300, CallGap: time.Second, FilterToExclusive: true}, 2, Gap{}},
		{"sort and id filter ignored, pages of 10", pbxsim.Options{Calls: 400, IgnoreSort: true, IgnoreFilter: []string{"id"}}, 10, Gap{}},
		{"an unsettled gap, pages of 10", pbxsim.Options{Calls: 400}, 10, gap},
	} {
		for _, exclusive := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/exclusive %v", tc.name, exclusive), func(t *testing.T) {
				t.Parallel()
				o := tc.o
				if exclusive {
					o.FilterFromExclusive = []string{"start"}
				}
				sim, l := newSim(o)
				log := &windowLog{Lister: l}
				rd := newReader(log, tc.size, 4)
				var notes []string
				var mu sync.Mutex
				rd.Note = func(s string) { mu.Lock(); notes = append(notes, s); mu.Unlock() }
				from, to := wall("2026-01-01 00:00:00"), wall("2026-01-01 04:00:00")
				got := tally{}
				err := (&TimeWindows{Reader: rd, Unsettled: tc.gap}).Read(context.Background(), from, to, got.count)
				if err != nil {
					t.Fatal(err)
				}
				want := 0
				for _, id := range sim.CallIDs() {
					s := callStart(sim, id)
					n := 0
					if s >= "2026-01-01 00:00:00" && s < "2026-01-01 04:00:00" && !tc.gap.holds(wall(s)) {
						n = 1
					}
					if got[id] != n {
						t.Fatalf("call %d (start %s) handed over %d times, want %d (%d requests)", id, s, got[id], n, len(log.asks))
					}
					want += n
				}
				if len(got) != want || want == 0 {
					t.Fatalf("%d calls handed over, want %d", len(got), want)
				}
				noted := strings.Count(strings.Join(notes, "\n"), "taken as exclusive")
				if exclusive && noted != 1 || !exclusive && len(notes) != 0 {
					t.Fatalf("notes %q: want one saying the bound is taken as exclusive: %v", notes, exclusive)
				}
				for _, a := range log.asks {
					if exclusive && a[0] == a[1] && a[2] != "0" {
						t.Fatalf("a second read by offset as %s to %s (start %s) of a PBX excluding from", a[0], a[1], a[2])
					}
				}
				t.Logf("%d requests %v", len(log.asks), log.asks[:min(6, len(log.asks))])
			})
		}
	}
}

// offsetLister plays a PBX on the pages after the first of a read by
// offset (start above 0): ignoring start (the first page again), or, at
// the second page of each of the first deletes reads (-1: all), deleting
// the oldest call left of the second read (it was on the first page: the
// later offsets shift and hide a survivor).
type offsetLister struct {
	Lister
	ignoreStart bool
	sim         *pbxsim.Sim
	ids         []int64 // the second's calls, ascending
	deletes     int
	mu          sync.Mutex
	deleted     []int64
}

func (l *offsetLister) List(ctx context.Context, path string, q url.Values, n *pbx.Counts) (*pbx.ListPage, error) {
	switch start := q.Get("start"); {
	case start == "0":
	case l.ignoreStart:
		q = maps.Clone(q)
		q.Set("start", "0")
	case start == q.Get("count"):
		l.mu.Lock()
		if k := len(l.deleted); k < len(l.ids) && (l.deletes < 0 || k < l.deletes) {
			l.sim.Delete(l.ids[k])
			l.deleted = append(l.deleted, l.ids[k])
		}
		l.mu.Unlock()
	}
	return l.Lister.List(ctx, path, q, n)
}

// TestTimeWindowsBusySecondChecks reaches, in the paging package, the
// two checks of a second holding more calls than a page, read by offset:
// its records changing during the first read only, the second is read
// again until two reads agree, and every call of it is handed over once
// (accepting the first read loses one); changing during every read, the
// read stops with ErrChanged after three (accepting any read loses one);
// a PBX answering the same page whatever start says stops the read
// saying it ignores start (without the check, pages are read until
// EXPORT_MAX_PAGES).
func TestTimeWindowsBusySecondChecks(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name        string
		ignoreStart bool
		deletes     int
		err         string
	}{
		{"changed during the first read", false, 1, ""},
		{"changed during every read", false, -1, "changed during each of three reads by offset"},
		{"start ignored", true, 0, "it ignores start"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sim, l := newSim(pbxsim.Options{Calls: 2000, CallGap: time.Second})
			per := map[string][]int64{}
			for _, id := range sim.CallIDs() {
				per[callStart(sim, id)] = append(per[callStart(sim, id)], id)
			}
			second := ""
			for s, ids := range per {
				if len(ids) > len(per[second]) || len(ids) == len(per[second]) && s < second {
					second = s
				}
			}
			if len(per[second]) < 6 {
				t.Fatalf("the busiest second holds %d calls: the case proves nothing", len(per[second]))
			}
			ol := &offsetLister{Lister: l, ignoreStart: tc.ignoreStart, sim: sim, ids: per[second], deletes: tc.deletes}
			rd := newReader(ol, 2, 1)
			rd.MaxPages = 500
			a, _ := time.Parse(record.WallLayout, second)
			got := tally{}
			err := (&TimeWindows{Reader: rd}).Read(context.Background(), a, a.Add(time.Second), got.count)
			if len(ol.deleted) == 0 && !tc.ignoreStart {
				t.Fatal("nothing deleted during a read by offset: the case proves nothing")
			}
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || tc.deletes < 0 && !errors.Is(err, ErrChanged) {
					t.Fatalf("err = %v, want one saying %q (%d calls handed over)", err, tc.err, len(got))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			left := 0
			for _, id := range per[second] {
				if sim.Exists(id) {
					left++
					if got[id] != 1 {
						t.Fatalf("call %d of the second %s handed over %d times (deleted %v)", id, second, got[id], ol.deleted)
					}
				}
			}
			if len(got) != left {
				t.Fatalf("%d calls handed over, the second %s holds %d (deleted %v)", len(got), second, left, ol.deleted)
			}
		})
	}
}
