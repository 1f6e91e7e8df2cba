package pbxsim

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// startIndex is each call's start as sent, by id, read once per call (a
// record is a pure function of its id and the options): a query on start
// or sorted by it then costs a comparison a call in its id range, as a
// PBX answers from an index, not a record built for each call in range
// and request. Ids only grow, so the index only grows; its slices are
// appended to, never changed, so a request may keep reading those it
// took.
type startIndex struct {
	mu    sync.Mutex
	walls []string // by id, [0] unused: the start field as sent
	nums  []int64  // by id: the wall as the number sortList orders by
	// odd is set when a start is not read as a number by sortNumber:
	// sorting by start then goes the general way.
	odd bool
	// numeric is set when a start parses as an integer, which
	// compareValues then compares as a number: filtering by start then
	// compares as it does (matchValue), not as text.
	numeric bool
}

// starts returns the start index of calls 1..n.
func (s *Sim) starts(n int64) (walls []string, nums []int64, odd, numeric bool) {
	x := &s.startIdx
	x.mu.Lock()
	defer x.mu.Unlock()
	for id := max(int64(len(x.walls)), 1); id <= n; id++ {
		x.add(id, s.startWall(s.call(id)))
	}
	return x.walls, x.nums, x.odd, x.numeric
}

// add indexes the start of call id, the next one; x.mu held or x not yet
// shared.
func (x *startIndex) add(id int64, wall string) {
	if len(x.walls) == 0 {
		x.walls, x.nums = []string{""}, []int64{0}
	}
	if id != int64(len(x.walls)) {
		panic(fmt.Sprintf("pbxsim: start of call %d indexed after %d calls", id, len(x.walls)-1))
	}
	num, ok := sortNumber(wall, true)
	x.walls, x.nums = append(x.walls, wall), append(x.nums, num)
	x.odd = x.odd || !ok
	if _, err := strconv.ParseInt(wall, 10, 64); err == nil {
		x.numeric = true
	}
}

// indexed answers a call-history query from the start index, when its
// filters are on id (whose bounds lo..hi already hold, del being the
// deleted ids) and start, and its sort is id or start: the calls in lo..hi
// whose start passes the filters, in the query's order. It reports false
// for any other query, which the general path answers.
func (s *Sim) indexed(q query, lo, hi int64, del []int64) ([]int64, bool) {
	var onStart []filter
	for _, f := range q.filters {
		switch f.field {
		case "id":
			if _, err := strconv.ParseInt(f.value, 10, 64); err != nil {
				return nil, false
			}
		case "start":
			onStart = append(onStart, f)
		default:
			return nil, false
		}
	}
	if q.sort != "id" && q.sort != "start" {
		return nil, false
	}
	walls, nums, odd, numeric := s.starts(hi)
	if q.sort == "start" && odd {
		return nil, false
	}
	list := []int64{}
	d := 0
	for id := lo; id <= hi; id++ {
		for d < len(del) && del[d] < id {
			d++
		}
		if d < len(del) && del[d] == id {
			continue
		}
		ok := true
		for _, f := range onStart {
			w := walls[id]
			switch {
			case numeric:
				ok = s.matchValue(f, w)
			default:
				// No start reads as a number: compareValues compares
				// as text, without its failed parse a call.
				ok = w != "" && s.passes(f, strings.Compare(w, f.value))
			}
			if !ok {
				break
			}
		}
		if ok {
			list = append(list, id-1)
		}
	}
	sortIndexed(list, q, nums)
	return list, true
}

// sortIndexed orders indexed's list (positions, id-1) as sortList does:
// by the key, descending if asked, ties by position; nums are the
// starts as numbers, by id.
func sortIndexed(list []int64, q query, nums []int64) {
	desc := q.dir == "DESC"
	switch {
	case q.sort == "id" && desc:
		slices.Reverse(list)
	case q.sort == "start":
		slices.SortFunc(list, func(a, b int64) int {
			c := cmp.Compare(nums[a+1], nums[b+1])
			if desc {
				c = -c
			}
			if c == 0 {
				c = cmp.Compare(a, b)
			}
			return c
		})
	}
}
