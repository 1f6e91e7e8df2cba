package paging

import (
	"context"
	"fmt"
	"math"
	"net/url"
	"runtime"
	"strconv"
	"sync/atomic"

	"github.com/wildix-export/wildix-export/exporter/pbx"
	"github.com/wildix-export/wildix-export/exporter/record"
)

// keyPages makes the requests of both ways of reading by key (keyset.go,
// keyranges.go) for one read: each asks for a key range, checked against
// its bounds. It counts the read's pages against MaxPages.
type keyPages struct {
	*Reader
	pages atomic.Int64
	sem   chan struct{} // bounds the requests in flight while sub-ranges are read side by side
}

// answer is a page of a key range, checked.
type answer struct {
	pg *pbx.ListPage
	// rows are the records of the range asked, in the order sent.
	rows []record.Row
	dups int64 // sorted: records sent twice in a row, dropped
	// beyond: a record past the range's upper bound came (asked for a PBX
	// whose upper bound is exclusive): on a sorted page every key up to
	// the bound was sent.
	beyond bool
	// below: the key one below came, asked for a PBX whose lower bound is
	// exclusive: the bound is inclusive after all.
	below bool
}

// page reads up to ask records with keys in [from, to] and checks them
// (bounds.check). It asks up to to+1, so that a PBX whose upper bound is
// exclusive still sends to, except on a sorted read's first request,
// which asks for the range exactly so that its total counts the records
// of the range.
func (k *keyPages) page(ctx context.Context, from, to, ask int64, sorted bool) (answer, error) {
	b := bounds{from: from, to: to, askFrom: k.askFrom(from), askTo: to, sorted: sorted,
		where: fmt.Sprintf("page from %s %d", k.Endpoint.Cursor, from)}
	n := k.pages.Add(1)
	if to < math.MaxInt64 && (n > 1 || !sorted) {
		// A PBX whose bound is exclusive leaves out the last key of the
		// first request, and the page is then short: a follow-up asks
		// past it.
		b.askTo = to + 1
	}
	if k.MaxPages > 0 && n > int64(k.MaxPages) {
		return answer{}, fmt.Errorf("%s: more than EXPORT_MAX_PAGES=%d pages: stopped; raise it if this PBX really holds that much", b.where, k.MaxPages)
	}
	pg, err := k.list(ctx, k.query(b.askFrom, b.askTo, ask))
	if err != nil {
		return answer{}, fmt.Errorf("%s: %w", b.where, err)
	}
	k.Counters.Pages.Add(1)
	k.log().Debug("page", "from", from, "to", to, "records", len(pg.Records), "total", pg.Total)
	if int64(len(pg.Records)) > ask {
		return answer{}, fmt.Errorf("%s: the PBX sent %d records for count=%d; paging on it would skip or repeat records", b.where, len(pg.Records), ask)
	}
	rows, err := k.Rows(pg.Records)
	if err != nil {
		return answer{}, fmt.Errorf("%s: %w", b.where, err)
	}
	k.Learnt.saw(int64(len(rows)), pg.Total)
	return k.check(b, pg, rows)
}

// bounds is what a page of a key range was asked for.
type bounds struct {
	from, to       int64 // the range
	askFrom, askTo int64 // as asked of the PBX: one below for an exclusive from, one past for an exclusive to
	sorted         bool  // sort=key is taken as honoured: keys must ascend
	where          string
}

// check checks a page's rows against b: a key outside the bounds asked
// is an *IgnoredError (the key filter), and, when sorted, so is a key
// lower than the one before (the sort). The key one below and the key past
// the range are dropped, and a key sent twice in a row.
func (k *keyPages) check(b bounds, pg *pbx.ListPage, rows []record.Row) (answer, error) {
	field := k.Endpoint.Cursor
	a := answer{pg: pg, rows: rows[:0]}
	for i, row := range rows {
		if row.Cursor < b.askFrom || row.Cursor > b.askTo {
			return answer{}, ignored(FilterParam, "%s: the PBX sent %s %d for filter[%s][from]=%d&filter[%s][to]=%d: it ignores the filter",
				b.where, field, row.Cursor, field, b.askFrom, field, b.askTo)
		}
		if b.sorted && i > 0 && row.Cursor < rows[i-1].Cursor {
			return answer{}, ignored(SortParam, "%s: the PBX sent %s %d after %d for sort=%s&dir=ASC: it ignores the sort",
				b.where, field, row.Cursor, rows[i-1].Cursor, field)
		}
		switch {
		case row.Cursor < b.from:
			// The key one below, asked for an exclusive lower bound: not
			// this range's; it does not count in the page's total either.
			// It came back, so the bound is inclusive after all (the key
			// that showed it exclusive had gone meanwhile).
			if pg.Total > 0 {
				pg.Total--
			}
			a.below = true
			if k.Learnt.SetFrom(BoundInclusive) {
				k.log().Info("filter[key][from] brought back its bound: asking from the key itself again", "key", row.Cursor)
			}
		case row.Cursor > b.to:
			a.beyond = true
		case b.sorted && i > 0 && row.Cursor == rows[i-1].Cursor:
			k.log().Warn("record sent twice; keeping the first", "key", row.Key)
			a.dups++
		default:
			a.rows = append(a.rows, row)
		}
	}
	return a, nil
}

// list sends one request, within a slot while sub-ranges are read side by
// side: conversion and checks run beside the next requests.
func (k *keyPages) list(ctx context.Context, q url.Values) (*pbx.ListPage, error) {
	if k.sem != nil {
		select {
		case k.sem <- struct{}{}:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		defer func() {
			<-k.sem
			// The reader waiting for the slot was woken on this
			// goroutine's processor, where it would wait for this page's
			// conversion: let it send its request first.
			runtime.Gosched()
		}()
	}
	return k.Lister.List(ctx, k.Endpoint.Path, q, &k.Counters.Counts)
}

// rangeTotal asks how many records the PBX counts in r, -1 when it sends
// no total: one record, its key only.
func (k *keyPages) rangeTotal(ctx context.Context, r Range) (int64, error) {
	q := k.query(k.askFrom(r.Lo), r.Hi, 1)
	q.Set("fields", k.Endpoint.Cursor)
	pg, err := k.Lister.List(ctx, k.Endpoint.Path, q, &k.Counters.Counts)
	if err != nil {
		return 0, fmt.Errorf("count the records from %s %d to %d: %w", k.Endpoint.Cursor, r.Lo, r.Hi, err)
	}
	return pg.Total, nil
}

// askFrom is the filter[key][from] that asks for keys from from: one
// below on a PBX whose lower bound is exclusive.
func (k *keyPages) askFrom(from int64) int64 {
	if from > math.MinInt64 && k.Learnt.From() == BoundExclusive {
		return from - 1
	}
	return from
}

// query is the reader's Query with the key range [from, to] as the PBX is
// asked for it, ascending by key, count records from the first.
func (k *keyPages) query(from, to, count int64) url.Values {
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

// subRanges reads a range as sub-ranges side by side (up to Concurrency
// requests at once, 2×Concurrency sub-ranges ahead) and hands them over
// in key order.
type subRanges struct {
	k     *keyPages
	width func() int64                      // of the next sub-range
	read  func(context.Context, Range) Span // reads one sub-range whole
	// gap: after 2×Concurrency empty sub-ranges in a row (a gap, as a
	// retention purge leaves), stop and say where the next would start,
	// so that one request over the rest finds the next key.
	gap bool
	// after, when set, sees each span handed over (key ranges adapt their
	// width to it).
	after func(Span)
}

// run reads r and calls fn with its spans in order; it returns where the
// next sub-range would start after a gap, otherwise r.Hi+1, or the first
// error (fn's included).
func (s subRanges) run(ctx context.Context, r Range, fn func(Span) error) (int64, error) {
	ctx, cancel := context.WithCancel(ctx)
	conc := max(1, s.k.Concurrency)
	s.k.sem = make(chan struct{}, conc)
	defer func() { s.k.sem = nil }()
	type pending struct {
		lo int64
		ch chan Span
	}
	var queue []pending
	next, exhausted := r.Lo, false
	launch := func() {
		for !exhausted && len(queue) < 2*conc {
			a, b := next, r.Hi
			if width := s.width(); uint64(r.Hi-a) >= uint64(width) { // unsigned: no overflow near the edges of int64
				b = a + width - 1
			}
			if b >= r.Hi {
				exhausted = true
			} else {
				next = b + 1
			}
			ch := make(chan Span, 1)
			queue = append(queue, pending{a, ch})
			go func() { ch <- s.read(ctx, Range{a, b}) }()
		}
	}
	defer func() {
		// Stop and wait for the readers still running, so none outlives run.
		cancel()
		for _, p := range queue {
			<-p.ch
		}
	}()
	for empty := 0; ; {
		launch()
		if len(queue) == 0 {
			return r.Hi + 1, nil
		}
		if s.gap && empty >= 2*conc {
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
		empty++
		if len(sp.Rows) > 0 {
			empty = 0
		}
		if s.after != nil {
			s.after(sp)
		}
	}
}
