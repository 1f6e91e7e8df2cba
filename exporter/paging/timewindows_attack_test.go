package paging

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/wildix-export/wildix-export/exporter/record"
	"github.com/wildix-export/wildix-export/internal/pbxsim"
)

// TestTimeWindowsRandomRanges reads random ranges by time windows, with
// an unsettled gap or none, from PBXes drawn from a seed (caps, the sort,
// the key filter and the total ignored or absent, an exclusive filter[to],
// dense seconds, calls arriving while it reads), at random page sizes
// and concurrency. Every call on the PBX when the read starts, dated in
// the range and outside the gap, is handed over once; no call outside
// them, none twice; and when a read fails, what was handed over is a
// prefix in time: every call dated before one handed over was handed over
// (the caller commits up to the newest time handed over).
func TestTimeWindowsRandomRanges(t *testing.T) {
	t.Parallel()
	seeds := []uint64{123, 463} // a request storm before cut stepped back from an answer sent newest first
	n := uint64(60)
	if raceEnabled {
		n = 20
	}
	for seed := range n {
		seeds = append(seeds, seed)
	}
	for _, seed := range seeds {
		r := rand.New(rand.NewPCG(seed, 0x7177))
		o := pbxsim.Options{Seed: int64(seed), Calls: 50 + r.Int64N(400), CacheCalls: true,
			CallGap: []time.Duration{time.Second, 2 * time.Second, 30 * time.Second}[r.IntN(3)]}
		o.IgnoreSort = r.IntN(2) == 0
		if r.IntN(2) == 0 {
			o.IgnoreFilter = []string{"id"}
		}
		o.FilterToExclusive = r.IntN(2) == 0
		o.MaxCount = []int{0, 0, 3, 7, 37}[r.IntN(5)]
		o.Total = []string{"", "number", "absent"}[r.IntN(3)]
		arriving := r.IntN(3) == 0
		if arriving {
			o.LiveInsertEvery, o.LiveInsertBatch, o.LiveInsertMax = 1+r.IntN(3), 1+r.IntN(4), 1+r.Int64N(200)
		}
		size := []int{2, 5, 10, 50, 1000}[r.IntN(5)]
		conc := 1 + r.IntN(4)
		sim, l := newSim(o)
		before := map[int64]string{}
		var walls []string
		for _, id := range sim.CallIDs() {
			before[id] = callStart(sim, id)
			walls = append(walls, before[id])
		}
		slices.Sort(walls)
		pick := func() time.Time {
			return wall(walls[r.IntN(len(walls))]).Add(time.Duration(r.IntN(3)-1) * time.Second)
		}
		from, to := pick(), pick()
		if to.Before(from) {
			from, to = to, from
		}
		to = to.Add(time.Second)
		if r.IntN(4) == 0 {
			from = time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)
		}
		var gap Gap
		if r.IntN(2) == 0 {
			gap.From, gap.To = pick(), pick()
			if gap.To.Before(gap.From) {
				gap.From, gap.To = gap.To, gap.From
			}
			if r.IntN(3) == 0 {
				gap.To = to.Add(time.Hour) // reaching past the range, as the caller's does
			}
		}
		name := fmt.Sprintf("seed %d: %+v size %d conc %d range %s to %s gap %s to %s arriving %v", seed,
			struct {
				Calls                  int64
				Gap                    time.Duration
				Sort, ToExcl           bool
				Filter                 []string
				Cap                    int
				Total                  string
				Every, Batch, InsertMx int64
			}{o.Calls, o.CallGap, o.IgnoreSort, o.FilterToExclusive, o.IgnoreFilter, o.MaxCount, o.Total, int64(o.LiveInsertEvery), int64(o.LiveInsertBatch), o.LiveInsertMax},
			size, conc, from.Format(record.WallLayout), to.Format(record.WallLayout),
			gap.From.Format(record.WallLayout), gap.To.Format(record.WallLayout), arriving)
		inRange := func(s string) bool {
			return s >= from.Format(record.WallLayout) && s < to.Format(record.WallLayout) &&
				(gap.To.IsZero() || s <= gap.From.Format(record.WallLayout) || s > gap.To.Format(record.WallLayout))
		}
		rd := newReader(l, size, conc)
		rd.MaxPages = 5000
		got := tally{}
		var newest string
		err := (&TimeWindows{Reader: rd, Unsettled: gap}).Read(context.Background(), from, to, func(rows []record.Row) error {
			for _, row := range rows {
				got[row.Cursor]++
				newest = max(newest, row.Wall)
			}
			return nil
		})
		if err != nil && !(arriving && errors.Is(err, ErrChanged)) {
			t.Errorf("%s: %v", name, err)
			continue
		}
		for id, n := range got {
			s := callStart(sim, id)
			if n > 1 || !inRange(s) {
				t.Errorf("%s: call %d (start %s) handed over %d times, in the range and outside the gap: %v", name, id, s, n, inRange(s))
			}
		}
		for id, s := range before {
			if !inRange(s) || got[id] == 1 {
				continue
			}
			if err == nil || s < newest {
				t.Errorf("%s: call %d (start %s) not handed over (newest handed over %s, err %v)", name, id, s, newest, err)
			}
		}
		if err != nil {
			t.Logf("%s: %v", name, err)
		}
	}
}

// TestTimeWindowsNewestFirstRequests: a PBX ignoring the sort as well as
// the key filter answers newest first, as call history does by default; a
// first export by time windows of 3,000 calls, pages of 100, 4 at a time,
// costs at most twice the requests of full pages, and 3 more. Before cut
// stepped back from such an answer's earliest record, the windows before
// it were read a few records at a time from their end: 426 requests for
// 30 pages (1,214 for 82 under a cap of 37), and a range whose newest
// records lay on its end was stepped through from 1970 a few seconds at a
// time until EXPORT_MAX_PAGES (TestTimeWindowsRandomRanges, seeds 123 and
// 463).
func TestTimeWindowsNewestFirstRequests(t *testing.T) {
	t.Parallel()
	_, l := newSim(pbxsim.Options{Calls: 3000, IgnoreSort: true, IgnoreFilter: []string{"id"}, CacheCalls: true})
	rd := newReader(l, 100, 4)
	n := 0
	err := (&TimeWindows{Reader: rd}).Read(context.Background(), time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 12, 8, 0, 0, 0, 0, time.UTC), func(rows []record.Row) error {
		n += len(rows)
		return nil
	})
	if err != nil || n != 3000 {
		t.Fatalf("%d calls handed over, err %v; want 3,000", n, err)
	}
	if got, limit := rd.Counters.Requests.Load(), int64(2*30+3); got > limit {
		t.Fatalf("%d requests, want at most %d (full pages: 30)", got, limit)
	}
	t.Logf("%d requests (full pages: 30)", rd.Counters.Requests.Load())
}

// TestTimeWindowsNewestFirstNightly: a PBX ignoring the sort and the key
// filter, a day of calls and the look-back within a page, read as the
// nightly run does: at most 3 requests with a total (the whole range in
// one, then cut where its calls fall): windows before the earliest call
// are cut only from an answer that may leave calls out. Without a total,
// a first answer as long as the most any held may be a cap's, so one
// more window, before its earliest call, is asked: at most 4.
func TestTimeWindowsNewestFirstNightly(t *testing.T) {
	t.Parallel()
	for _, total := range []string{"", "absent"} {
		_, l := newSim(pbxsim.Options{Calls: 60, CallGap: 30 * time.Minute, IgnoreSort: true, IgnoreFilter: []string{"id"}, Total: total})
		rd := newReader(l, 100, 4)
		n := 0
		err := (&TimeWindows{Reader: rd}).Read(context.Background(), time.Date(2025, 12, 31, 0, 0, 0, 0, time.UTC), time.Date(2026, 12, 8, 0, 0, 0, 0, time.UTC), func(rows []record.Row) error {
			n += len(rows)
			return nil
		})
		if err != nil || n != 60 {
			t.Fatalf("total %q: %d calls handed over, err %v; want 60", total, n, err)
		}
		limit := int64(3)
		if total == "absent" {
			limit = 4
		}
		if got := rd.Counters.Requests.Load(); got > limit {
			t.Fatalf("total %q: %d requests, want at most %d", total, got, limit)
		}
	}
}
