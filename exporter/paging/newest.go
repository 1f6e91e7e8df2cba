package paging

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/url"
	"slices"
	"strconv"

	"github.com/wildix-export/wildix-export/exporter/record"
)

// Newest finds the highest cursor value now on the PBX: records above
// it arrive during the run and are left to the next one. It is not taken
// on trust from one answer:
//
//  1. sort=key&dir=DESC&count=2 gives a candidate: the highest key of
//     the answer (a PBX ignoring dir or sort answers in another order:
//     noted when the two keys are not descending);
//  2. filter[key][from]=candidate (same sort, count=2) must bring back no
//     key above it; if it does, the highest of those is the next
//     candidate, and a PBX that ignores dir is searched by doubling steps
//     of filter[key][from], then halving, until a candidate is confirmed.
//
// Only keys above after are asked for (after is the cursor; 0 for a
// backfill): a run with nothing new costs one request once the bound's
// kind is known. The confirming answer shows whether filter[key][from]
// includes its bound: when the candidate does not come back, every later
// request asks from one below (Learnt.From, kept in the cursor's state).
// A key below the asked from means the PBX ignores filter[key]: an
// *IgnoredError. Each finding is noted (Reader.Note). found is false when
// the PBX holds no key above after.
//
// A key of math.MaxInt64 is passed over (logged): a cursor there could
// never move again, and every later record would be left out.
func (r *Reader) Newest(ctx context.Context, after int64) (int64, bool, error) {
	b := &boundSearch{r: r}
	field := r.Endpoint.Cursor
	// The first request asks only above after: on a PBX whose from is
	// known to be inclusive, an empty answer proves nothing new in one
	// request, whatever the PBX does with dir and sort; otherwise it asks
	// from after itself, which proves the same under either bound.
	from := after
	if r.Learnt.From() == BoundInclusive && after < math.MaxInt64 {
		from = after + 1
	}
	keys, err := b.ask(ctx, from)
	if err != nil || len(keys) == 0 {
		return 0, false, err
	}
	first := keys[0]
	lo := slices.Max(keys)
	b.seenTwo = len(keys) == 2
	b.checkOrder(keys)
	for {
		above, confirmed, err := b.confirm(ctx, lo)
		if err != nil {
			return b.fail(err, lo)
		}
		if confirmed {
			break
		}
		// lo is not the newest: climb to it; the loop's first request then
		// confirms it.
		if lo, err = b.climb(ctx, above); err != nil {
			return b.fail(err, lo)
		}
	}
	switch {
	case lo != first && b.disordered:
		r.note(fmt.Sprintf("the PBX's answer to sort=%s&dir=DESC began with %d, not the newest %s: %d, found by filter[%s][from]", field, first, field, lo, field))
	case lo != first:
		// Answers in order: records arrived between the requests.
		r.log().Debug("newer records arrived while the newest key was confirmed", "first", first, "newest", lo)
	}
	return lo, true, nil
}

// confirm asks for the keys from lo, a key the PBX has sent: none above
// it confirms lo as the newest; otherwise it returns a key above. Its
// answers show what filter[key][from] does with its bound.
func (b *boundSearch) confirm(ctx context.Context, lo int64) (above int64, confirmed bool, err error) {
	r, field := b.r, b.r.Endpoint.Cursor
	keys, err := b.probe(ctx, lo)
	if err != nil {
		return 0, false, err
	}
	if len(keys) == 0 {
		// lo, a key the PBX just sent, did not come back for
		// filter[key][from]=lo: the bound is exclusive (or lo went
		// meanwhile; asking from one below is then merely one record
		// more a page).
		if r.Learnt.SetFrom(BoundExclusive) {
			r.note(fmt.Sprintf("filter[%s][from]=%d did not bring back %s %d: the bound is taken as exclusive, and each request asks from one below", field, lo, field, lo))
		}
		return 0, true, nil
	}
	if slices.Contains(keys, lo) && r.Learnt.SetFrom(BoundInclusive) {
		r.log().Debug("filter[key][from] includes its bound", "key", lo)
	}
	above = slices.Max(keys)
	if above <= lo && b.seenTwo {
		return 0, true, nil
	}
	if above <= lo {
		// Only lo came back, and a page may hold one record: ask above
		// it (lo came back, so the bound is inclusive).
		if keys, err = b.probe(ctx, lo+1); err != nil || len(keys) == 0 {
			return 0, err == nil, err
		}
		above = slices.Max(keys)
	}
	return above, false, nil
}

// boundSearch is Newest's search: its requests, and what their
// answers have shown.
type boundSearch struct {
	r *Reader
	// seenTwo: the PBX has sent two keys in one answer, so an answer of
	// one key to count=2 is not a page size of one.
	seenTwo bool
	// disordered: an answer to dir=DESC was not descending.
	disordered bool
	probes     int
}

// maxProbes bounds the requests that confirm the newest key.
const maxProbes = 200

// ask reads up to two keys from from, newest first (sort=key&dir=DESC).
func (b *boundSearch) ask(ctx context.Context, from int64) ([]int64, error) {
	field := b.r.Endpoint.Cursor
	q := url.Values{"sort": {field}, "dir": {"DESC"}, "start": {"0"}, "count": {"2"}, "fields": {field},
		"filter[" + field + "][from]": {strconv.FormatInt(from, 10)}}
	pg, err := b.r.Lister.List(ctx, b.r.Endpoint.Path, q, &b.r.Counters.Counts)
	if err != nil {
		return nil, fmt.Errorf("read the newest %s: %w", field, err)
	}
	keys, err := Keys(pg, field)
	if err != nil {
		return nil, fmt.Errorf("read the newest %s: %w", field, err)
	}
	out := keys[:0]
	for _, k := range keys {
		if k == math.MaxInt64 {
			b.r.log().Warn("a record's key is the largest int64; it is not exported, as a cursor there could never move", "key", k)
			continue
		}
		if k < from {
			return nil, ignored(FilterParam, "read the newest %s: the PBX sent %s %d for filter[%s][from]=%d: it ignores the filter", field, field, k, field, from)
		}
		out = append(out, k)
	}
	return out, nil
}

// BelowOne asks once, on a first run, whether the PBX holds a record whose
// key is below 1 (filter[key][to]=1, two keys, lowest first: with an
// inclusive or an exclusive bound, sorted or not, a key below 1 comes if
// there is one). Incremental export reads keys from 1 up, so such a record
// could never be exported: it is returned, as a record error, rather than
// left out without a word. A PBX that ignores the filter sends keys of 1
// or more, which prove nothing either way.
func (r *Reader) BelowOne(ctx context.Context) (*record.RecordError, error) {
	field := r.Endpoint.Cursor
	q := url.Values{"sort": {field}, "dir": {"ASC"}, "start": {"0"}, "count": {"2"}, "fields": {field},
		"filter[" + field + "][to]": {"1"}}
	pg, err := r.Lister.List(ctx, r.Endpoint.Path, q, &r.Counters.Counts)
	if err != nil {
		return nil, fmt.Errorf("look for a %s below 1: %w", field, err)
	}
	keys, err := Keys(pg, field)
	if err != nil {
		return nil, fmt.Errorf("look for a %s below 1: %w", field, err)
	}
	for _, k := range keys {
		if k < 1 {
			return &record.RecordError{Key: strconv.FormatInt(k, 10), Field: field, Err: fmt.Errorf(
				"cursor %d is below 1; incremental export reads cursors from 1 up, so this record is not exported (the other records are)", k)}, nil
		}
	}
	return nil, nil
}

// checkOrder notes, once, an answer to dir=DESC that is not descending.
func (b *boundSearch) checkOrder(keys []int64) {
	if len(keys) == 2 && keys[0] <= keys[1] && !b.disordered {
		b.disordered = true
		f := b.r.Endpoint.Cursor
		b.r.note(fmt.Sprintf("the PBX answered sort=%s&dir=DESC with %d before %d: it ignores dir or sort; the newest %s is searched by filter[%s][from]", f, keys[0], keys[1], f, f))
	}
}

// probe is ask within maxProbes, learning from each answer.
func (b *boundSearch) probe(ctx context.Context, from int64) ([]int64, error) {
	b.probes++
	if b.probes > maxProbes {
		return nil, errUnsettled
	}
	keys, err := b.ask(ctx, from)
	b.seenTwo = b.seenTwo || len(keys) == 2
	b.checkOrder(keys)
	return keys, err
}

// climb finds the newest key from lo, a key the PBX has sent, by doubling
// steps (an empty answer from f proves no key above f, whether from is
// inclusive or not), then halving the range between. On an error it
// returns the highest key seen so far.
func (b *boundSearch) climb(ctx context.Context, lo int64) (int64, error) {
	step, hi := int64(1), int64(0)
	for {
		f := lo + step
		if f <= lo || f == math.MaxInt64 { // overflow, or the top
			f = math.MaxInt64 - 1
		}
		keys, err := b.probe(ctx, f)
		if err != nil {
			return lo, err
		}
		if len(keys) == 0 {
			hi = f
			break
		}
		lo = max(lo, slices.Max(keys))
		if f == math.MaxInt64-1 {
			hi = lo
			break
		}
		step *= 2
	}
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		keys, err := b.probe(ctx, mid)
		if err != nil {
			return lo, err
		}
		if len(keys) == 0 {
			hi = mid
		} else {
			lo = max(lo, slices.Max(keys))
			hi = max(hi, lo)
		}
	}
	return lo, nil
}

// fail ends the search on an error. Records arriving faster than the
// newest key is confirmed leave it unsettled: from a PBX whose answers
// were in order, lo was then the newest a moment ago, a bound as good as
// any (the rest is the next run's); otherwise the run stops.
func (b *boundSearch) fail(err error, lo int64) (int64, bool, error) {
	if !errors.Is(err, errUnsettled) {
		return 0, false, err
	}
	f := b.r.Endpoint.Cursor
	if !b.disordered {
		b.r.note(fmt.Sprintf("records kept arriving while the newest %s was confirmed: this run reads up to %d, the next one goes on from there", f, lo))
		return lo, true, nil
	}
	return 0, false, fmt.Errorf("read the newest %s: not settled after %d requests to filter[%s][from], whose answers are not in order: stopped", f, maxProbes, f)
}

// errUnsettled: the newest key kept moving while it was confirmed.
var errUnsettled = errors.New("the newest key is not settled")
