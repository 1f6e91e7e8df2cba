package exporter

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"net/url"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/wildix-export/wildix-export/exporter/pbx"
	"github.com/wildix-export/wildix-export/exporter/record"
)

// keyReader reads every record of a closed key range [lo, hi] by key:
// each request asks for the records after the last key read
// (filter[key][from]=last+1, filter[key][to]=hi, sort=key ascending,
// start=0), never for an offset, so a record deleted or inserted anywhere
// cannot shift a page.
//
// After a first page over the whole range, the rest is split into
// sub-ranges as wide as a page, read side by side (up to Concurrency
// requests at once, 2×Concurrency sub-ranges ahead) and handed over in key
// order. A sub-range is complete when a page reaches its upper bound or
// comes back empty. A page shorter than asked is not the end by itself:
// the next request, from its last key, must come back empty (unless the
// PBX's total says nothing is left and the PBX has been seen to fill a
// page); if more come, the PBX caps its page size, and later requests and
// sub-ranges use that size.
//
// The answers are checked: a key outside the asked bounds means the PBX
// ignores the key filter, keys out of order mean it ignores the sort; both
// end the read with a *ladderError, and the caller chooses another way.
type keyReader struct {
	Client      Lister
	Endpoint    *record.Endpoint
	Query       url.Values // further filters (a backfill window's time bounds)
	Concurrency int        // 1 reads sub-range after sub-range
	MaxPages    int
	Counters    *Counters
	Log         *slog.Logger
	Rows        func([]json.RawMessage) ([]record.Row, error)
	Learnt      *learnt

	// Unsorted: the PBX ignores sort=key but honours filter[key]; each
	// sub-range is read whole (wholeRange), width keys wide.
	Unsorted bool
	width    atomic.Int64

	pages atomic.Int64
	sem   chan struct{} // bounds the requests in flight while sub-ranges are read side by side
}

// learnt is what the PBX's answers have taught (page sizes, the kind of
// its from-bound), shared by an endpoint's requests. Safe for concurrent
// use.
type learnt struct {
	mu        sync.Mutex
	ask       int64 // the count to ask for
	delivered int64 // the most records one answer held
	isCapped  bool
	// from is what filter[key][from] was seen to do with its bound
	// (exclusive also when the key asked went meanwhile). Exclusive: each
	// request asks from one below and drops that key, so none is lost.
	from bound
	// way is how the endpoint's ranges are read, as far as the PBX's
	// answers have shown (backfill windows go on with it).
	way strategy
}

// readBy records that the endpoint's ranges are read by w from now on.
func (s *learnt) readBy(w strategy) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.way = w
}

// strategy is how the endpoint's ranges are read now.
func (s *learnt) strategy() strategy {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.way
}

// setFrom records what filter[key][from] does; it reports whether this is
// news.
func (s *learnt) setFrom(kind bound) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	news := s.from != kind
	s.from = kind
	return news
}

func (s *learnt) fromBound() bound {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.from
}

func (s *learnt) exclusiveFrom() bool { return s.fromBound() == boundExclusive }

func newLearnt(size int) *learnt { return &learnt{ask: int64(max(1, size))} }

func (s *learnt) get() (ask, delivered int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ask, s.delivered
}

func (s *learnt) saw(n int64) {
	s.mu.Lock()
	s.delivered = max(s.delivered, n)
	s.mu.Unlock()
}

// capped reports the page size the PBX was found to cap at, if it was.
func (s *learnt) capped() (int64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ask, s.isCapped
}

// capAt records that the PBX answers at most n records a page; it reports
// whether this is news.
func (s *learnt) capAt(n int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n <= 0 || n >= s.ask {
		return false
	}
	s.ask, s.isCapped = n, true
	return true
}

// span is a piece of the key range read in full: every record with a key
// in [Lo, Hi] is in Rows, in key order.
type span struct {
	Lo, Hi int64
	Rows   []record.Row
	Total  int64 // the total the PBX announced on the span's first page, -1 if none
	Dups   int64 // records sent twice, dropped
	Splits int   // unsorted: how many times a range was halved to be read whole
	err    error
}

func (k *keyReader) log() *slog.Logger {
	if k.Log != nil {
		return k.Log
	}
	return slog.New(slog.DiscardHandler)
}

// page reads up to ask records with keys in [from, to] and checks them.
// It asks up to to+1, so that a PBX whose upper bound is exclusive still
// sends to; beyond reports a record past to, which proves every key up to
// to was sent (the page is sorted), and is dropped.
func (k *keyReader) page(ctx context.Context, from, to, ask int64) (pg *pbx.ListPage, kept []record.Row, dups int64, beyond, below bool, err error) {
	field := k.Endpoint.Cursor
	askTo := to
	if to < math.MaxInt64 {
		askTo = to + 1
	}
	// A PBX whose lower bound is exclusive is asked from one below; the
	// key one below, if it comes back, is dropped.
	askFrom := k.askFrom(from)
	q := k.query(askFrom, askTo, ask)
	where := fmt.Sprintf("page from %s %d", field, from)
	n := k.pages.Add(1)
	if k.MaxPages > 0 && n > int64(k.MaxPages) {
		return nil, nil, 0, false, false, fmt.Errorf("%s: more than EXPORT_MAX_PAGES=%d pages: stopped; raise it if this PBX really holds that much", where, k.MaxPages)
	}
	if n == 1 && !k.Unsorted {
		// The first request asks for the range exactly, so that its total
		// counts the records of the range (the run's vanished records are
		// reckoned from it). A PBX whose bound is exclusive leaves out the
		// last key, and the page is then short: a follow-up asks past it.
		askTo = to
		q.Set("filter["+field+"][to]", strconv.FormatInt(askTo, 10))
	}
	if k.sem != nil {
		// Only the request itself takes a slot: conversion and checks run
		// beside the next requests.
		select {
		case k.sem <- struct{}{}:
		case <-ctx.Done():
			return nil, nil, 0, false, false, fmt.Errorf("%s: %w", where, ctx.Err())
		}
	}
	pg, err = k.Client.List(ctx, k.Endpoint.Path, q, &k.Counters.Counts)
	if k.sem != nil {
		<-k.sem
		// The reader waiting for the slot was woken on this goroutine's
		// processor, where it would wait for this page's conversion: let it
		// send its request first.
		runtime.Gosched()
	}
	if err != nil {
		return nil, nil, 0, false, false, fmt.Errorf("%s: %w", where, err)
	}
	k.Counters.Pages.Add(1)
	k.log().Debug("page", "from", from, "to", to, "records", len(pg.Records), "total", pg.Total)
	if int64(len(pg.Records)) > ask {
		return nil, nil, 0, false, false, fmt.Errorf("%s: the PBX sent %d records for count=%d; paging on it would skip or repeat records", where, len(pg.Records), ask)
	}
	rows, err := k.Rows(pg.Records)
	if err != nil {
		return nil, nil, 0, false, false, fmt.Errorf("%s: %w", where, err)
	}
	k.Learnt.saw(int64(len(rows)))
	// Check the answer before trusting it: bounds, then order.
	kept = rows[:0]
	for i, row := range rows {
		if row.Cursor < askFrom || row.Cursor > askTo {
			return nil, nil, 0, false, false, &ladderError{Ignored: filterParam, Detail: fmt.Sprintf(
				"%s: the PBX sent %s %d for filter[%s][from]=%d&filter[%s][to]=%d: it ignores the filter", where, field, row.Cursor, field, askFrom, field, askTo)}
		}
		if !k.Unsorted && i > 0 && row.Cursor < rows[i-1].Cursor {
			return nil, nil, 0, false, false, &ladderError{Ignored: sortParam, Detail: fmt.Sprintf(
				"%s: the PBX sent %s %d after %d for sort=%s&dir=ASC: it ignores the sort", where, field, row.Cursor, rows[i-1].Cursor, field)}
		}
		switch {
		case row.Cursor < from:
			// The key one below, asked for an exclusive lower bound: not
			// this range's; it does not count in the page's total either.
			// It came back, so the bound is inclusive after all (the key
			// that showed it exclusive had gone meanwhile).
			if pg.Total > 0 {
				pg.Total--
			}
			below = true
			if k.Learnt.setFrom(boundInclusive) {
				k.log().Info("filter[key][from] brought back its bound: asking from the key itself again", "key", row.Cursor)
			}
		case row.Cursor > to:
			beyond = true
		case !k.Unsorted && i > 0 && row.Cursor == rows[i-1].Cursor:
			k.log().Warn("record sent twice; keeping the first", "key", row.Key)
			dups++
		default:
			kept = append(kept, row)
		}
	}
	return pg, kept, dups, beyond, below, nil
}

// step reads one page of [from, hi] and says what it proves: done when
// the range is read to its end; short (the page's size) when the page was
// shorter than asked and may have been cut, so that only the next page,
// asked from the last key, can tell a cap (more come) from the end (none).
// A short page ends the range without that request only when the PBX's
// total says nothing is left and the PBX has been seen to fill a page.
func (k *keyReader) step(ctx context.Context, from, hi int64) (stepResult, error) {
	ask, _ := k.Learnt.get()
	exact := k.pages.Load() == 0 // the first request (alone: nothing runs beside it yet) asks for hi exactly
	pg, rows, dups, beyond, below, err := k.page(ctx, from, hi, ask)
	if err == nil && below && len(rows) == 0 && !beyond && int64(len(pg.Records)) >= ask {
		// The key below filled the page: ask again, from the key itself.
		pg, rows, dups, beyond, _, err = k.page(ctx, from, hi, ask)
		exact = false
	}
	if err != nil {
		return stepResult{}, err
	}
	r := stepResult{rows: rows, dups: dups, n: int64(len(pg.Records)), total: pg.Total}
	if len(rows) > 0 && (beyond || rows[len(rows)-1].Cursor >= hi) {
		// The page reached the range's end, which on a PBX that sorts
		// means it holds every key of the range: check that against the
		// PBX's count, as a few keys may come in order by chance.
		if err := k.reachedEnd(ctx, from, hi, pg.Total, rows, dups, beyond, exact); err != nil {
			return stepResult{}, err
		}
	}
	if len(rows) == 0 || beyond {
		r.done = true
		return r, nil
	}
	r.last = rows[len(rows)-1].Cursor
	_, delivered := k.Learnt.get()
	if rows[0].Cursor > from && (len(rows) == 1 && delivered < 2 || pg.Total < 0 && delivered < orderShown) {
		// A page of one record shows no order, and a few keys may
		// ascend by chance: until the PBX has sent a page of two or more
		// (of orderShown or more when it sends no total to count
		// against), whether it sorts is proven by asking for the keys
		// this page claims are absent.
		if err := k.gapCheck(ctx, from, rows[0].Cursor-1); err != nil {
			return stepResult{}, err
		}
	}
	switch {
	case r.last >= hi:
		r.done = true
	case r.n >= ask:
	case !exact && pg.Total >= 0 && pg.Total <= r.n && delivered >= ask:
		// The PBX says none is left in the range, and has been seen to
		// fill a page: this one is the last.
		r.done = true
	default:
		r.short = r.n
	}
	return r, nil
}

// reachedEnd checks a page that reached the end of [from, hi] against
// the records the PBX counts for it (total, -1 when it sends none). The
// page was asked up to hi+1: the PBX counts the key past the range, when
// it sent it (beyond), or perhaps when the page was cut before it. That
// one record of doubt is settled by the range's keys all being there, or
// by asking the PBX how many it holds in [from, hi]. More counted than
// sent means the keys only happened to come in order: a PBX ignoring the
// sort skipped some.
func (k *keyReader) reachedEnd(ctx context.Context, from, hi, total int64, rows []record.Row, dups int64, beyond, exact bool) error {
	if total < 0 {
		return nil
	}
	sent := int64(len(rows)) + dups
	if beyond {
		sent++
	}
	if total <= sent {
		return nil
	}
	if total == sent+1 && !beyond && !exact {
		if holdsEveryKey(len(rows), from, hi) {
			return nil
		}
		// The one more may be the key past the range: count the range.
		return k.recount(ctx, span{Lo: from, Hi: hi, Rows: rows})
	}
	field := k.Endpoint.Cursor
	return &ladderError{Ignored: sortParam, Detail: fmt.Sprintf(
		"page from %s %d: the PBX sent %d records reaching %s %d, but counts %d in the range: it ignores the sort",
		field, from, len(rows), field, hi, total)}
}

// orderShown is the size of page whose keys, all in order, show that a
// PBX sorts: a handful of keys in order may be chance.
const orderShown = 8

// gapCheck asks for [from, to] after a page of one record from from
// brought to+1: a PBX that sorts has none there. It takes a slot like a
// page.
func (k *keyReader) gapCheck(ctx context.Context, from, to int64) error {
	field := k.Endpoint.Cursor
	askFrom := k.askFrom(from)
	q := k.query(askFrom, to, 1)
	q.Set("fields", field)
	where := fmt.Sprintf("order check from %s %d", field, from)
	if k.sem != nil {
		select {
		case k.sem <- struct{}{}:
		case <-ctx.Done():
			return fmt.Errorf("%s: %w", where, ctx.Err())
		}
	}
	pg, err := k.Client.List(ctx, k.Endpoint.Path, q, &k.Counters.Counts)
	if k.sem != nil {
		<-k.sem
	}
	if err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	keys, err := recordKeys(pg, field)
	if err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	for _, key := range keys {
		switch {
		case key < askFrom || key > to+1:
			return &ladderError{Ignored: filterParam, Detail: fmt.Sprintf(
				"%s: the PBX sent %s %d for filter[%s][from]=%d&filter[%s][to]=%d: it ignores the filter", where, field, key, field, askFrom, field, to)}
		case key >= from && key <= to:
			return &ladderError{Ignored: sortParam, Detail: fmt.Sprintf(
				"%s: the PBX sent %s %d alone for sort=%s&dir=ASC&count=1 from %d, yet holds %d: it ignores the sort", where, field, to+1, field, from, key)}
		}
	}
	return nil
}

type stepResult struct {
	rows           []record.Row
	dups, n, total int64
	last           int64
	done           bool
	short          int64
}

// readSpan reads [lo, hi] page after page, each from the last key read,
// to its end; with untilFull it stops after the first full page, and the
// span then ends at that page's last key.
func (k *keyReader) readSpan(ctx context.Context, lo, hi int64, untilFull bool) span {
	sp := span{Lo: lo, Hi: hi, Total: -1}
	from, prevShort := lo, int64(0)
	for {
		st, err := k.step(ctx, from, hi)
		if err != nil {
			sp.err = err
			return sp
		}
		if from == lo {
			sp.Total = st.total
		}
		// Records of the range after a short page: the PBX cut it.
		if prevShort > 0 && len(st.rows) > 0 && k.Learnt.capAt(prevShort) {
			k.log().Info("the PBX answers fewer records than asked; paging at its size", "got", prevShort)
		}
		sp.Rows, sp.Dups = append(sp.Rows, st.rows...), sp.Dups+st.dups
		if st.done {
			if from != lo && sp.Total > int64(len(sp.Rows))+sp.Dups {
				sp.err = k.recount(ctx, sp)
			}
			return sp
		}
		from, prevShort = st.last+1, st.short
		if untilFull && st.short == 0 {
			// The span ends at the page's last key: every key below it
			// was sent if the PBX sorts. Unless each came, the PBX's
			// count says whether some were skipped.
			sp.Hi = st.last
			if sp.Total >= 0 && !holdsEveryKey(len(sp.Rows), sp.Lo, sp.Hi) {
				sp.err = k.recount(ctx, sp)
			}
			return sp
		}
	}
}

// recount settles a span that may have skipped records: read over
// several pages, with fewer than the PBX counted in it at its first page;
// ended at a full page's last key with room for more; or one page that
// the PBX counts one record more than it sent. Records deleted
// meanwhile are gone from a new count; records the PBX still counts were
// skipped, which only a PBX ignoring the sort does (each page's keys
// having come in order by chance).
func (k *keyReader) recount(ctx context.Context, sp span) error {
	n, err := k.rangeTotal(ctx, sp.Lo, sp.Hi)
	if err != nil || n <= int64(len(sp.Rows)) {
		return err
	}
	field := k.Endpoint.Cursor
	return &ladderError{Ignored: sortParam, Detail: fmt.Sprintf(
		"%s %d to %d: %d records read to its end, but the PBX counts %d there: it ignores the sort",
		field, sp.Lo, sp.Hi, len(sp.Rows), n)}
}

// Read reads [lo, hi] and calls fn with its spans in key order; fn's
// error stops the read and is returned. The spans handed over before an
// error are complete.
func (k *keyReader) Read(ctx context.Context, lo, hi int64, fn func(span) error) error {
	if k.Unsorted {
		ask, _ := k.Learnt.get()
		k.width.Store(max(1, ask/2))
		_, err := k.readSplit(ctx, lo, hi, fn)
		return err
	}
	// The first page(s) over the whole range find where records begin
	// (after a purge, far above lo) and check the PBX's answers and page
	// size before anything runs side by side.
	for lo <= hi {
		sp := k.readSpan(ctx, lo, hi, true)
		if sp.err != nil {
			return sp.err
		}
		if err := fn(sp); err != nil {
			return err
		}
		if sp.Hi >= hi {
			return nil
		}
		lo = sp.Hi + 1
		if k.Concurrency > 1 {
			next, err := k.readSplit(ctx, lo, hi, fn)
			if err != nil || next > hi {
				return err
			}
			lo = next // a gap: find where records begin again
		}
	}
	return nil
}

// readSplit reads [lo, hi] as sub-ranges a page wide, side by side, and
// hands them over in order. After 2×Concurrency empty sub-ranges in a row
// (a gap, as a retention purge leaves) it stops and returns where the next
// one would start, so that one request over the rest finds the next key;
// otherwise it returns hi+1, or the first error.
func (k *keyReader) readSplit(ctx context.Context, lo, hi int64, fn func(span) error) (int64, error) {
	ctx, cancel := context.WithCancel(ctx)
	conc := max(1, k.Concurrency)
	k.sem = make(chan struct{}, conc)
	defer func() { k.sem = nil }()
	type pending struct {
		lo int64
		ch chan span
	}
	var queue []pending
	next, exhausted := lo, false
	launch := func() {
		for !exhausted && len(queue) < 2*conc {
			width, _ := k.Learnt.get()
			if k.Unsorted {
				width = k.width.Load()
			}
			a, b := next, hi
			if uint64(hi-a) >= uint64(width) { // unsigned: no overflow near the edges of int64
				b = a + width - 1
			}
			if b >= hi {
				exhausted = true
			} else {
				next = b + 1
			}
			ch := make(chan span, 1)
			queue = append(queue, pending{a, ch})
			go func() {
				if k.Unsorted {
					ch <- k.wholeRange(ctx, a, b)
				} else {
					ch <- k.readSpan(ctx, a, b, false)
				}
			}()
		}
	}
	defer func() {
		// Stop and wait for the readers still running, so none outlives Read.
		cancel()
		for _, p := range queue {
			<-p.ch
		}
	}()
	empty := 0
	for {
		launch()
		if len(queue) == 0 {
			return hi + 1, nil
		}
		if empty >= 2*conc && !k.Unsorted {
			return queue[0].lo, nil
		}
		sp := <-queue[0].ch
		queue = queue[1:]
		if sp.err != nil {
			return 0, sp.err
		}
		if err := fn(sp); err != nil {
			return 0, err
		}
		if len(sp.Rows) == 0 {
			empty++
		} else {
			empty = 0
		}
		if k.Unsorted {
			k.adapt(sp)
		}
	}
}

// wholeRange reads [lo, hi] on a PBX that ignores the sort: with no
// order, an answer proves a range only when it holds all of it: fewer
// records than asked, no more than its total says, from a PBX seen to
// send as many as asked (or more than this answer), so that no cap cut
// it. Any other range is halved, each half read whole in turn. Keys do
// not change, so a record deleted or added in one range cannot hide one
// in another. The span's rows are sorted by key.
func (k *keyReader) wholeRange(ctx context.Context, lo, hi int64) span {
	sp := span{Lo: lo, Hi: hi, Total: -1}
	seen := map[int64]bool{}
	var read func(lo, hi int64, first bool) error
	read = func(lo, hi int64, first bool) error {
		ask, _ := k.Learnt.get()
		pg, rows, _, _, below, err := k.page(ctx, lo, hi, ask)
		if err != nil {
			return err
		}
		if first {
			sp.Total = pg.Total
		}
		got := int64(len(pg.Records))
		total := pg.Total
		if below && total >= 0 {
			total++ // page took the key below out of it; got counts it
		}
		_, delivered := k.Learnt.get()
		whole := got < ask && (total < 0 || total <= got) && (delivered >= ask || got < delivered || got == 0)
		if !whole {
			// Every key of the range came, whatever a cap cut (one key's
			// range, asked with room for the key past it, after a PBX has
			// sent no more than two); rows may hold a key twice here.
			whole = holdsEveryKey(distinctKeys(rows), lo, hi)
		}
		if whole {
			for _, row := range rows {
				if seen[row.Cursor] {
					k.log().Warn("record sent twice; keeping the first", "key", row.Key)
					sp.Dups++
					continue
				}
				seen[row.Cursor] = true
				sp.Rows = append(sp.Rows, row)
			}
			return nil
		}
		if lo == hi {
			// Asked with room for a bound the PBX may exclude, one key's
			// range may bring three records: pages this small prove
			// nothing without an order.
			return &ladderError{Ignored: sortParam, Detail: fmt.Sprintf(
				"%s %d: the PBX ignores sort=%s and sent %d records of %d asked for one key: pages this small cannot be proven whole by key",
				k.Endpoint.Cursor, lo, k.Endpoint.Cursor, got, ask)}
		}
		sp.Splits++
		mid := lo + (hi-lo)/2
		before := len(sp.Rows)
		if err := read(lo, mid, false); err != nil {
			return err
		}
		if err := read(mid+1, hi, false); err != nil {
			return err
		}
		if kept := int64(len(sp.Rows) - before); got < ask && kept > int64(len(rows)) && k.Learnt.capAt(got) {
			// The halves hold more than the answer sent, which was
			// shorter than asked: the PBX cut it.
			k.log().Info("the PBX answers fewer records than asked; paging at its size", "got", got)
		}
		return nil
	}
	if sp.err = read(lo, hi, true); sp.err == nil {
		slices.SortFunc(sp.Rows, func(a, b record.Row) int { return cmp.Compare(a.Cursor, b.Cursor) })
	}
	return sp
}

// distinctKeys counts the distinct keys among rows.
func distinctKeys(rows []record.Row) int {
	seen := make(map[int64]bool, len(rows))
	for _, row := range rows {
		seen[row.Cursor] = true
	}
	return len(seen)
}

// holdsEveryKey says whether n distinct keys of [lo, hi] are all of its
// keys: a range read whole whatever the order or a cap.
func holdsEveryKey(n int, lo, hi int64) bool {
	return uint64(n) > uint64(hi-lo) // unsigned: no overflow near the edges of int64
}

// rangeTotal asks how many records the PBX counts in [lo, hi], -1 when
// it sends no total: one record, its key only.
func (k *keyReader) rangeTotal(ctx context.Context, lo, hi int64) (int64, error) {
	q := k.query(k.askFrom(lo), hi, 1)
	q.Set("fields", k.Endpoint.Cursor)
	pg, err := k.Client.List(ctx, k.Endpoint.Path, q, &k.Counters.Counts)
	if err != nil {
		return 0, fmt.Errorf("count the records from %s %d to %d: %w", k.Endpoint.Cursor, lo, hi, err)
	}
	return pg.Total, nil
}

// adapt sets the width of the next sub-ranges from one read whole, so
// that most are read in one request: half its width after one that had to
// be halved; otherwise as wide as should hold three quarters of a page at
// the density it showed, within half to twice its width. It goes by the
// span's own width, not the current one: spans read ahead were cut
// before the last change.
func (k *keyReader) adapt(sp span) {
	ask, _ := k.Learnt.get()
	was := float64(sp.Hi) - float64(sp.Lo) + 1
	w := 2 * was
	switch n := float64(len(sp.Rows)); {
	case sp.Splits > 0:
		w = was / 2
	case n > 0:
		w = min(2*was, max(was/2, was*float64(3*ask/4)/n))
	}
	k.width.Store(int64(min(max(w, 1), math.MaxInt64/4)))
}

// askFrom is the filter[key][from] that asks for keys from from: one
// below on a PBX whose lower bound is exclusive.
func (k *keyReader) askFrom(from int64) int64 {
	if from > math.MinInt64 && k.Learnt.exclusiveFrom() {
		return from - 1
	}
	return from
}

// query is k.Query with the key range [from, to] as the PBX is asked for
// it, ascending by key, count records from the first.
func (k *keyReader) query(from, to, count int64) url.Values {
	field := k.Endpoint.Cursor
	q := url.Values{}
	for key, v := range k.Query {
		q[key] = v
	}
	q.Set("filter["+field+"][from]", strconv.FormatInt(from, 10))
	q.Set("filter["+field+"][to]", strconv.FormatInt(to, 10))
	q.Set("sort", field)
	q.Set("dir", "ASC")
	q.Set("start", "0")
	q.Set("count", strconv.FormatInt(count, 10))
	return q
}
