package paging

import (
	"cmp"
	"context"
	"math"
	"slices"
	"sync/atomic"

	"github.com/wildix-export/wildix-export/exporter/record"
)

// keyRanges reads a key range on a PBX that ignores sort=key but honours
// filter[key]: the range is cut into sub-ranges, each read whole in one
// answer, whatever the order of its records.
//
// The proof that an answer holds every key of its sub-range, and each
// refusal:
//   - every key within the bounds asked, else *IgnoredError (filter);
//   - fewer records than asked, no more than its total says, from a PBX
//     seen to send as many as asked (or more than this answer), so that
//     no cap cut it; or every key of the sub-range there (Range.Holds);
//   - any other sub-range is halved and each half read whole in turn; a
//     one-key range that is not whole is an *IgnoredError (sort): pages
//     that small prove nothing without an order.
//
// Keys do not change, so a record deleted or added in one range cannot
// hide one in another. Sub-ranges are a page of keys wide (less the two
// asked past their bounds) while every key is there, else as wide as
// should hold 85% of a page at the density the last one showed (adapt).
type keyRanges struct {
	k     *keyPages
	width atomic.Int64
}

func newKeyRanges(k *keyPages) *keyRanges {
	kr := &keyRanges{k: k}
	ask, _ := k.Learnt.sizes()
	kr.width.Store(max(1, ask-2))
	return kr
}

// read reads r and calls fn with its spans in key order, as keyset.read.
func (s *keyRanges) read(ctx context.Context, r Range, fn func(Span) error) error {
	sub := subRanges{k: s.k, read: s.whole, width: s.width.Load, after: s.adapt}
	_, err := sub.run(ctx, r, fn)
	return err
}

// whole reads r whole, halving it where an answer does not prove it. The
// span's rows are sorted by key.
func (s *keyRanges) whole(ctx context.Context, r Range) Span {
	sp := Span{Range: r, Total: -1}
	seen := map[int64]bool{}
	if sp.err = s.halve(ctx, r, &sp, seen, true); sp.err == nil {
		slices.SortFunc(sp.Rows, func(a, b record.Row) int { return cmp.Compare(a.Cursor, b.Cursor) })
	}
	return sp
}

// halve reads r into sp: whole from one answer, or by its halves.
func (s *keyRanges) halve(ctx context.Context, r Range, sp *Span, seen map[int64]bool, first bool) error {
	ask, _ := s.k.Learnt.sizes()
	a, err := s.k.page(ctx, r.Lo, r.Hi, ask, false)
	if err != nil {
		return err
	}
	if first {
		sp.Total = a.pg.Total
	}
	got := int64(len(a.pg.Records))
	if s.proven(r, a, ask) {
		for _, row := range a.rows {
			if seen[row.Cursor] {
				s.k.log().Warn("record sent twice; keeping the first", "key", row.Key)
				sp.Dups++
				continue
			}
			seen[row.Cursor] = true
			sp.Rows = append(sp.Rows, row)
		}
		return nil
	}
	if r.Lo == r.Hi {
		// Asked with room for a bound the PBX may exclude, one key's
		// range may bring three records: pages this small prove nothing
		// without an order.
		f := s.k.Endpoint.Cursor
		return ignored(SortParam, "%s %d: the PBX ignores sort=%s and sent %d records of %d asked for one key: pages this small cannot be proven whole by key",
			f, r.Lo, f, got, ask)
	}
	sp.Splits++
	mid := r.Lo + (r.Hi-r.Lo)/2
	before := len(sp.Rows)
	if err := s.halve(ctx, Range{r.Lo, mid}, sp, seen, false); err != nil {
		return err
	}
	if err := s.halve(ctx, Range{mid + 1, r.Hi}, sp, seen, false); err != nil {
		return err
	}
	if kept := int64(len(sp.Rows) - before); got < ask && kept > int64(len(a.rows)) && s.k.Learnt.CapAt(got) {
		// The halves hold more than the answer sent, which was shorter
		// than asked: the PBX cut it.
		s.k.log().Info("the PBX answers fewer records than asked; paging at its size", "got", got)
	}
	return nil
}

// proven says whether answer a, to a request of ask records, holds every
// key of r.
func (s *keyRanges) proven(r Range, a answer, ask int64) bool {
	got := int64(len(a.pg.Records))
	total := a.pg.Total
	if a.below && total >= 0 {
		total++ // page took the key below out of it; got counts it
	}
	_, delivered := s.k.Learnt.sizes()
	if got < ask && (total < 0 || total <= got) && (delivered >= ask || got < delivered || got == 0) {
		return true
	}
	// Every key of the range came, whatever a cap cut (one key's range,
	// asked with room for the key past it, after a PBX has sent no more
	// than two); rows may hold a key twice here.
	return r.Holds(distinctKeys(a.rows))
}

// distinctKeys counts the distinct keys among rows.
func distinctKeys(rows []record.Row) int {
	seen := make(map[int64]bool, len(rows))
	for _, row := range rows {
		seen[row.Cursor] = true
	}
	return len(seen)
}

// adapt sets the width of the next sub-ranges from one read whole, so
// that most are read in one request: half its width after one that had to
// be halved; a page of keys (less two) after one holding every key of
// its range; otherwise as wide as should hold 85% of a page at the
// density it showed, within half to twice its width. It goes by the
// span's own width, not the current one: spans read ahead were cut
// before the last change.
func (s *keyRanges) adapt(sp Span) {
	ask, _ := s.k.Learnt.sizes()
	was := float64(sp.Hi) - float64(sp.Lo) + 1
	w := 2 * was
	switch n := float64(len(sp.Rows)); {
	case sp.Splits > 0:
		w = was / 2
	case n >= was:
		// Every key there: a range of a page of keys less the two asked
		// past its bounds holds at most a page, proven whole by holding
		// them all.
		w = max(was, float64(ask-2))
	case n > 0:
		w = min(2*was, max(was/2, was*float64(85*ask/100)/n))
	}
	s.width.Store(int64(min(max(w, 1), math.MaxInt64/4)))
}
