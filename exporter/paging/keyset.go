package paging

import (
	"context"
	"fmt"

	"github.com/wildix-export/wildix-export/exporter/record"
)

// keyset reads every record of a key range on a PBX that honours
// filter[key] and sort=key: each request asks for the records after the
// last key read (filter[key][from]=last+1, filter[key][to]=hi, sort=key
// ascending, start=0), never for an offset, so a record deleted or
// inserted anywhere cannot shift a page.
//
// After a first page over the whole range, the rest is split into
// sub-ranges as wide as a page, read side by side and handed over in key
// order. A page shorter than asked is not the end by itself: the next
// request, from its last key, must come back empty (unless the PBX's total
// says nothing is left and the PBX has been seen to fill a page); if more
// come, the PBX caps its page size, and later requests and sub-ranges use
// that size.
//
// The proof that a span holds every key of its range, and each refusal:
//   - every key within the bounds asked, else *IgnoredError (filter);
//   - keys ascending, else *IgnoredError (sort);
//   - a page reaching the range's end holds no fewer records than the
//     PBX counts there (reachedEnd), else the sort is ignored: a few keys
//     may ascend by chance;
//   - a page of one record, or of a few without a total, shows no order:
//     the keys it skipped are asked for (gapCheck);
//   - a span read over several pages with fewer records than counted at
//     its start, or ended at a full page's last key with room for more,
//     is counted again (recount).
type keyset struct{ k *keyPages }

// orderShown is the size of page whose keys, all in order, show that a
// PBX sorts: a handful of keys in order may be chance.
const orderShown = 8

// stepResult is what one page of a range proves.
type stepResult struct {
	rows           []record.Row
	dups, n, total int64
	last           int64
	done           bool
	// short is the page's size when it was shorter than asked and may
	// have been cut: only the next page, asked from the last key, can
	// tell a cap (more come) from the end (none).
	short int64
}

// read reads r and calls fn with its spans in key order; fn's error
// stops the read and is returned. The spans handed over before an error
// are complete.
func (s keyset) read(ctx context.Context, r Range, fn func(Span) error) error {
	// The first page(s) over the whole range find where records begin
	// (after a purge, far above r.Lo) and check the PBX's answers and page
	// size before anything runs side by side.
	for r.Lo <= r.Hi {
		sp := s.readSpan(ctx, r, true)
		if sp.err != nil {
			return sp.err
		}
		if err := fn(sp); err != nil {
			return err
		}
		if sp.Hi >= r.Hi {
			return nil
		}
		r.Lo = sp.Hi + 1
		if s.k.Concurrency > 1 {
			sub := subRanges{k: s.k, gap: true, read: func(ctx context.Context, r Range) Span { return s.readSpan(ctx, r, false) },
				width: func() int64 { ask, _ := s.k.Learnt.sizes(); return ask }}
			next, err := sub.run(ctx, r, fn)
			if err != nil || next > r.Hi {
				return err
			}
			r.Lo = next // a gap: find where records begin again
		}
	}
	return nil
}

// readSpan reads r page after page, each from the last key read, to its
// end; with untilFull it stops after the first full page, and the span
// then ends at that page's last key.
func (s keyset) readSpan(ctx context.Context, r Range, untilFull bool) Span {
	sp := Span{Range: r, Total: -1}
	from, prevShort := r.Lo, int64(0)
	for {
		st, err := s.step(ctx, from, r.Hi)
		if err != nil {
			sp.err = err
			return sp
		}
		if from == r.Lo {
			sp.Total = st.total
		}
		// Records of the range after a short page: the PBX cut it.
		if prevShort > 0 && len(st.rows) > 0 && s.k.Learnt.CapAt(prevShort) {
			s.k.log().Info("the PBX answers fewer records than asked; paging at its size", "got", prevShort)
		}
		sp.Rows, sp.Dups = append(sp.Rows, st.rows...), sp.Dups+st.dups
		if st.done {
			if from != r.Lo && sp.Total > int64(len(sp.Rows))+sp.Dups {
				sp.err = s.recount(ctx, sp)
			}
			return sp
		}
		from, prevShort = st.last+1, st.short
		if untilFull && st.short == 0 {
			// The span ends at the page's last key: every key below it
			// was sent if the PBX sorts. Unless each came, the PBX's
			// count says whether some were skipped.
			sp.Hi = st.last
			if sp.Total >= 0 && !sp.Holds(len(sp.Rows)) {
				sp.err = s.recount(ctx, sp)
			}
			return sp
		}
	}
}

// step reads one page of [from, hi] and says what it proves: done when
// the range is read to its end; short when the page may have been cut. A
// short page ends the range without a further request only when the
// PBX's total says nothing is left and the PBX has been seen to fill a
// page.
func (s keyset) step(ctx context.Context, from, hi int64) (stepResult, error) {
	ask, _ := s.k.Learnt.sizes()
	exact := s.k.pages.Load() == 0 // the first request (alone: nothing runs beside it yet) asks for hi exactly
	a, err := s.k.page(ctx, from, hi, ask, true)
	if err == nil && a.below && len(a.rows) == 0 && !a.beyond && int64(len(a.pg.Records)) >= ask {
		// The key below filled the page: ask again, from the key itself.
		a, err = s.k.page(ctx, from, hi, ask, true)
		exact = false
	}
	if err != nil {
		return stepResult{}, err
	}
	rows := a.rows
	r := stepResult{rows: rows, dups: a.dups, n: int64(len(a.pg.Records)), total: a.pg.Total}
	if len(rows) > 0 && (a.beyond || rows[len(rows)-1].Cursor >= hi) {
		// The page reached the range's end, which on a PBX that sorts
		// means it holds every key of the range: check that against the
		// PBX's count, as a few keys may come in order by chance.
		if err := s.reachedEnd(ctx, Range{from, hi}, a, exact); err != nil {
			return stepResult{}, err
		}
	}
	if len(rows) == 0 || a.beyond {
		r.done = true
		return r, nil
	}
	r.last = rows[len(rows)-1].Cursor
	_, delivered := s.k.Learnt.sizes()
	if rows[0].Cursor > from && (len(rows) == 1 && delivered < 2 || a.pg.Total < 0 && delivered < orderShown) {
		// A page of one record shows no order, and a few keys may
		// ascend by chance: until the PBX has sent a page of two or more
		// (of orderShown or more when it sends no total to count
		// against), whether it sorts is proven by asking for the keys
		// this page claims are absent.
		if err := s.gapCheck(ctx, from, rows[0].Cursor-1); err != nil {
			return stepResult{}, err
		}
	}
	switch {
	case r.last >= hi:
		r.done = true
	case r.n >= ask:
	case !exact && a.pg.Total >= 0 && a.pg.Total <= r.n && delivered >= ask:
		// The PBX says none is left in the range, and has been seen to
		// fill a page: this one is the last.
		r.done = true
	default:
		r.short = r.n
	}
	return r, nil
}

// reachedEnd checks a page that reached the end of r against the records
// the PBX counts for it (total, -1 when it sends none). The page was asked
// up to r.Hi+1 (unless exact): the PBX counts the key past the range, when
// it sent it (beyond), or perhaps when the page was cut before it. That
// one record of doubt is settled by the range's keys all being there, or
// by asking the PBX how many it holds in r. More counted than sent means
// the keys only happened to come in order: a PBX ignoring the sort skipped
// some.
func (s keyset) reachedEnd(ctx context.Context, r Range, a answer, exact bool) error {
	total := a.pg.Total
	if total < 0 {
		return nil
	}
	sent := int64(len(a.rows)) + a.dups
	if a.beyond {
		sent++
	}
	if total <= sent {
		return nil
	}
	if total == sent+1 && !a.beyond && !exact {
		if r.Holds(len(a.rows)) {
			return nil
		}
		// The one more may be the key past the range: count the range.
		return s.recount(ctx, Span{Range: r, Rows: a.rows})
	}
	field := s.k.Endpoint.Cursor
	return ignored(SortParam, "page from %s %d: the PBX sent %d records reaching %s %d, but counts %d in the range: it ignores the sort",
		field, r.Lo, len(a.rows), field, r.Hi, total)
}

// gapCheck asks for [from, to] after a page of one record from from
// brought to+1: a PBX that sorts has none there. It takes a slot like a
// page.
func (s keyset) gapCheck(ctx context.Context, from, to int64) error {
	field := s.k.Endpoint.Cursor
	askFrom := s.k.askFrom(from)
	q := s.k.query(askFrom, to, 1)
	q.Set("fields", field)
	where := fmt.Sprintf("order check from %s %d", field, from)
	pg, err := s.k.list(ctx, q)
	if err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	keys, err := Keys(pg, field)
	if err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	for _, key := range keys {
		switch {
		case key < askFrom || key > to+1:
			return ignored(FilterParam, "%s: the PBX sent %s %d for filter[%s][from]=%d&filter[%s][to]=%d: it ignores the filter",
				where, field, key, field, askFrom, field, to)
		case key >= from && key <= to:
			return ignored(SortParam, "%s: the PBX sent %s %d alone for sort=%s&dir=ASC&count=1 from %d, yet holds %d: it ignores the sort",
				where, field, to+1, field, from, key)
		}
	}
	return nil
}

// recount settles a span that may have skipped records: read over
// several pages, with fewer than the PBX counted in it at its first page;
// ended at a full page's last key with room for more; or one page that
// the PBX counts one record more than it sent. Records deleted meanwhile
// are gone from a new count; records the PBX still counts were skipped,
// which only a PBX ignoring the sort does (each page's keys having come in
// order by chance).
func (s keyset) recount(ctx context.Context, sp Span) error {
	n, err := s.k.rangeTotal(ctx, sp.Range)
	if err != nil || n <= int64(len(sp.Rows)) {
		return err
	}
	field := s.k.Endpoint.Cursor
	return ignored(SortParam, "%s %d to %d: %d records read to its end, but the PBX counts %d there: it ignores the sort",
		field, sp.Lo, sp.Hi, len(sp.Rows), n)
}
