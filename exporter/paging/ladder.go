package paging

import (
	"context"
	"errors"
	"fmt"
)

// Ladder is the one fallback order of the ways to read an endpoint's key
// ranges, as the PBX's answers show what it ignores:
//
//  1. by key (keyset.go) while it honours filter[key] and sort=key;
//  2. by key ranges, each read whole (keyranges.go), once it is seen to
//     ignore the sort but not the key filter: the read goes on from the
//     last span handed over;
//  3. Last, once it ignores the key filter, or pages are too small to
//     prove a key range: time windows for incremental runs
//     (timewindows.go), offset for backfill windows (offset.go). The
//     ladder does not read Last itself: what Last proves is committed
//     otherwise (the look-back's keys in the state; a window in one
//     batch), so its *IgnoredError reaches the caller, which reads the
//     rest by Last.
//
// Where the endpoint stands on the ladder is Learnt's Strategy: a read
// starts on that rung, and what a read learns holds for the next (a
// backfill's later windows). The incremental policy, backfill windows and
// check's probe (a budget of requests) all read through it.
type Ladder struct {
	*Reader
	// Last is the rung below the key ways: ByTimeWindows or ByOffset.
	Last Strategy
}

// Newest is Reader.Newest on the ladder: an *IgnoredError sends the
// endpoint to Last.
func (l *Ladder) Newest(ctx context.Context, after int64) (int64, bool, error) {
	upper, found, err := l.Reader.Newest(ctx, after)
	return upper, found, l.fall(err)
}

// Read reads r on the endpoint's rung and calls fn with its spans in key
// order; fn's error stops the read and is returned. The spans handed over
// before an error are complete. It returns the records the PBX counted in
// the range when the read began (-1 if it sent no count); an
// *IgnoredError means the rest of r, after the last span handed over, is
// for Last.
func (l *Ladder) Read(ctx context.Context, r Range, fn func(Span) error) (total int64, err error) {
	k := &keyPages{Reader: l.Reader}
	total, next := -1, r.Lo
	handle := func(sp Span) error {
		if total < 0 {
			total = sp.Total
		}
		if err := fn(sp); err != nil {
			return err
		}
		next = sp.Hi + 1
		return nil
	}
	switch l.Learnt.rung() {
	case ByKey:
		err = keyset{k}.read(ctx, r, handle)
		var ie *IgnoredError
		if !errors.As(err, &ie) || ie.Param != SortParam || ctx.Err() != nil {
			break
		}
		// The key filter still works: ranges of keys, each read whole,
		// need no order.
		l.Learnt.ReadBy(ByKeyRanges)
		f := l.Endpoint.Cursor
		l.note(fmt.Sprintf("the PBX ignores sort=%s but honours filter[%s]: read by %s ranges, each read whole", f, f, f))
		rest := Range{next, r.Hi}
		if total < 0 {
			if total, err = k.rangeTotal(ctx, rest); err != nil {
				return total, err
			}
		}
		err = newKeyRanges(k).read(ctx, rest, handle)
	case ByKeyRanges:
		err = newKeyRanges(k).read(ctx, r, handle)
	default:
		return total, fmt.Errorf("read %s %d to %d by key: the endpoint is read by %s", l.Endpoint.Cursor, r.Lo, r.Hi, l.Last)
	}
	return total, l.fall(err)
}

// fall sends the endpoint to Last on an *IgnoredError, noting why.
func (l *Ladder) fall(err error) error {
	var ie *IgnoredError
	if !errors.As(err, &ie) {
		return err
	}
	l.Learnt.ReadBy(l.Last)
	how := "offset"
	if l.Last == ByTimeWindows {
		how = "filter[" + l.Endpoint.TimeField + "] time windows"
	}
	l.note(fmt.Sprintf("the PBX ignores %s: read by %s", ie.Param.What(l.Endpoint.Cursor), how))
	return err
}
