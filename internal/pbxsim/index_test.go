package pbxsim

import (
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"
)

// testSeed is TEST_SEED when set (to replay a failure), else the clock's.
func testSeed(t *testing.T) uint64 {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("TEST_SEED"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("TEST_SEED %q: expected an unsigned integer", v)
		}
		seed = n
	}
	t.Logf("seed %d (replay with TEST_SEED=%d)", seed, seed)
	return seed
}

// TestIndexedSelectionIsTheScan: a query on id and start, sorted by id or
// start, answered from the start index selects and orders the same calls
// as every record built and matched (matches, sortList): random windows
// (wall times and dates, one bound or two, an exact start), id bounds,
// both orders, exclusive bounds, spoilt (empty) starts, seconds shared by
// many calls, deletions, and calls inserted between queries.
func TestIndexedSelectionIsTheScan(t *testing.T) {
	t.Parallel()
	seed := testSeed(t)
	for _, tc := range []struct {
		name string
		o    Options
	}{
		{"default", Options{}},
		{"exclusive bounds", Options{FilterToExclusive: true, FilterFromExclusive: []string{"start", "id"}}},
		{"spoilt starts", Options{GroupFields: GroupFields{GroupIDs: true, Malformed: true}}},
		{"a call a second", Options{CallGap: time.Second}},
		{"other zone", Options{Location: time.UTC, CallGap: 5 * time.Minute}},
		{"JSON built at the start", Options{CacheCallJSON: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o := tc.o
			o.Seed, o.Calls, o.CacheCalls = int64(seed), 1500, true
			s := New(o)
			rng := rand.New(rand.NewPCG(seed, 28))
			s.Delete(3, 4, 5, 700, int64(1+rng.IntN(1500)))
			first, last := s.call(1).End.Add(-5*time.Hour), s.call(1500).End.Add(time.Hour)
			wall := func() string {
				t := first.Add(time.Duration(rng.Int64N(int64(last.Sub(first)))))
				return s.wall(t.Truncate(time.Second))
			}
			for i := range 80 {
				if i == 40 {
					s.InsertCalls(37) // the index grows with the calls
				}
				q := query{sort: []string{"id", "start"}[rng.IntN(2)], dir: []string{"ASC", "DESC"}[rng.IntN(2)]}
				a, b := wall(), wall()
				if a > b {
					a, b = b, a
				}
				if rng.IntN(5) == 0 {
					a = a[:10] // a date: compared as text, as the PBX's filter is here
				}
				switch rng.IntN(6) {
				case 0:
					q.filters = []filter{{"start", "from", a}}
				case 1:
					q.filters = []filter{{"start", "to", b}}
				case 2:
					q.filters = []filter{{"start", "eq", s.startWall(s.call(int64(1 + rng.IntN(1500))))}}
				default:
					q.filters = []filter{{"start", "from", a}, {"start", "to", b}}
				}
				if rng.IntN(3) == 0 {
					lo := 1 + rng.IntN(1500)
					q.filters = append([]filter{{"id", "from", strconv.Itoa(lo)}, {"id", "to", strconv.Itoa(lo + rng.IntN(400))}}, q.filters...)
				}
				want := scanSelection(s, q)
				sel := s.selectCalls(q, nil, "all")
				got := make([]int64, sel.total())
				for i := range got {
					got[i] = sel.at(int64(i))
				}
				if !slices.Equal(got, want) {
					t.Fatalf("query %d %+v: %d calls from the index, %d by the scan\n got %v\nwant %v", i, q, len(got), len(want), head(got), head(want))
				}
				if _, ok := s.indexed(q, 1, s.calls.Load(), s.deletedIDs()); !ok {
					t.Fatalf("query %+v was not answered from the index", q)
				}
			}
		})
	}
}

// scanSelection is the positions q selects, every call's record built and
// matched, in q's order.
func scanSelection(s *Sim, q query) []int64 {
	del := s.deletedIDs()
	list := []int64{}
	for id := int64(1); id <= s.calls.Load(); id++ {
		if _, gone := slices.BinarySearch(del, id); !gone && s.matches(s.callRecord(id), q.filters, nil) {
			list = append(list, id-1)
		}
	}
	s.sortList(callTable{s}, list, q)
	return list
}

func head(xs []int64) []int64 { return xs[:min(len(xs), 30)] }
