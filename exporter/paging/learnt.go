package paging

import (
	"fmt"
	"sync"
)

// Learnt is what a PBX's answers have shown about reading one endpoint:
// the count to ask for and whether the PBX caps its pages, what its
// filter[key][from] does with its bound, whether it honours the sort and
// the key filter (the rung of the ladder the endpoint is read on), and the
// form of its total. One value per endpoint and run, shared by the
// requests of its reads. Safe for concurrent use.
type Learnt struct {
	mu        sync.Mutex
	ask       int64 // the count to ask for
	delivered int64 // the most records one answer held
	capped    bool
	// from is what filter[key][from] was seen to do with its bound
	// (exclusive also when the key asked went meanwhile). Exclusive: each
	// request asks from one below and drops that key, so none is lost.
	from Bound
	// timeFrom is what filter[time][from] was seen to do with its bound
	// (TimeWindows): until it is seen inclusive, each window is asked
	// from a second before its start.
	timeFrom Bound
	way      Strategy
	total    TotalForm
}

// NewLearnt starts what is learnt with the configured page size (at least 1).
func NewLearnt(pageSize int) *Learnt { return &Learnt{ask: int64(max(1, pageSize))} }

// Bound is what filter[key][from] was seen to do with its bound. The
// cursor's state keeps it as "inclusive" or "exclusive", left out when
// unknown, as earlier versions wrote it.
type Bound uint8

// What filter[key][from] may do with its bound.
const (
	BoundUnknown Bound = iota
	BoundInclusive
	BoundExclusive
)

var boundNames = [...]string{"", "inclusive", "exclusive"}

func (b Bound) String() string { return boundNames[b] }

// MarshalText writes the bound as the state stores it.
func (b Bound) MarshalText() ([]byte, error) { return []byte(b.String()), nil }

// UnmarshalText reads a stored bound; one it does not know is unknown,
// as earlier versions took it, not an error.
func (b *Bound) UnmarshalText(text []byte) error {
	*b = BoundUnknown
	for i, name := range boundNames {
		if string(text) == name {
			*b = Bound(i)
		}
	}
	return nil
}

// Param is a query parameter that reading by key needs and a PBX may
// ignore.
type Param uint8

// The parameters reading by key needs.
const (
	SortParam   Param = iota + 1 // sort=key (and dir)
	FilterParam                  // filter[key][from] and [to]
)

func (p Param) String() string {
	if p == SortParam {
		return "sort"
	}
	return "filter"
}

// What names p for people, for the endpoint's key field.
func (p Param) What(field string) string {
	if p == SortParam {
		return "sort=" + field
	}
	return "filter[" + field + "]"
}

// IgnoredError says the PBX ignores a parameter reading by key needs: the
// ladder goes down a rung. Detail says what was seen, for people.
type IgnoredError struct {
	Param  Param
	Detail string
}

func (e *IgnoredError) Error() string { return e.Detail }

func ignored(p Param, format string, args ...any) *IgnoredError {
	return &IgnoredError{Param: p, Detail: fmt.Sprintf(format, args...)}
}

// Strategy is a way an endpoint's records are read, a rung of the ladder;
// its String is the run ledger's paging.
type Strategy uint8

// The ways, in the ladder's order (ByKeyCapped is ByKey on a PBX that caps
// its pages, for the ledger).
const (
	ByKey Strategy = iota
	ByKeyCapped
	ByKeyRanges
	ByTimeWindows
	ByOffset
)

var strategyNames = [...]string{"keyset", "keyset-capped", "key-ranges", "time-windows", "offset"}

func (s Strategy) String() string { return strategyNames[s] }

// TotalForm is whether the PBX sends a total with its answers.
type TotalForm uint8

// The forms a total was seen in.
const (
	TotalUnseen TotalForm = iota // no answer yet
	TotalSent                    // a count (as a string or a number)
	TotalAbsent                  // no total in the answer
)

// ReadBy records that the endpoint is read by s from now on.
func (l *Learnt) ReadBy(s Strategy) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.way = s
}

// Strategy is the rung the endpoint is read on now: ByKeyCapped for ByKey
// on a PBX found to cap its pages.
func (l *Learnt) Strategy() Strategy {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.way == ByKey && l.capped {
		return ByKeyCapped
	}
	return l.way
}

// SortHonoured reports whether the PBX is still taken to honour sort=key.
func (l *Learnt) SortHonoured() bool { return l.Strategy() <= ByKeyCapped }

// FilterHonoured reports whether the PBX is still taken to honour
// filter[key].
func (l *Learnt) FilterHonoured() bool { return l.Strategy() <= ByKeyRanges }

// SetFrom records what filter[key][from] does; it reports whether this is
// news.
func (l *Learnt) SetFrom(kind Bound) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	news := l.from != kind
	l.from = kind
	return news
}

// From is what filter[key][from] was seen to do with its bound.
func (l *Learnt) From() Bound {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.from
}

// setTimeFrom records what filter[time][from] does, once known (an
// inclusive bound seen later wins: the record asked for an exclusive one
// may have gone); it reports whether this is news.
func (l *Learnt) setTimeFrom(kind Bound) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.timeFrom == kind || l.timeFrom == BoundInclusive {
		return false
	}
	l.timeFrom = kind
	return true
}

// timeFromBound is what filter[time][from] was seen to do with its bound.
func (l *Learnt) timeFromBound() Bound {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.timeFrom
}

// Total is the form of the PBX's total in its last answer.
func (l *Learnt) Total() TotalForm {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.total
}

// sizes returns the count to ask for and the most records an answer held.
func (l *Learnt) sizes() (ask, delivered int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ask, l.delivered
}

// saw records an answer of n records, with total (-1 when absent).
func (l *Learnt) saw(n, total int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.delivered = max(l.delivered, n)
	l.total = TotalSent
	if total < 0 {
		l.total = TotalAbsent
	}
}

// Capped reports the page size the PBX was found to cap at, if it was.
func (l *Learnt) Capped() (int64, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ask, l.capped
}

// CapAt records that the PBX answers at most n records a page; it reports
// whether this is news.
func (l *Learnt) CapAt(n int64) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if n <= 0 || n >= l.ask {
		return false
	}
	l.ask, l.capped = n, true
	return true
}

// rung is the way the endpoint is read, caps aside.
func (l *Learnt) rung() Strategy {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.way
}
