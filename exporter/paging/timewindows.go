package paging

import (
	"context"
	"fmt"
	"maps"
	"math"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wildix-export/wildix-export/exporter/pbx"
	"github.com/wildix-export/wildix-export/exporter/record"
)

// TimeWindows reads a range of PBX-local wall time by
// filter[time][from]/[to] windows, on a PBX that ignores the key filter
// (or whose pages are too small to prove a key range): a window is read
// whole in one page.
//
// The proof that a window holds every record, and each refusal:
//   - every record's time within the window asked, else the PBX ignores
//     the time filter too and nothing can be trusted: an error, the read
//     stops;
//   - an answer shorter than asked, not below its total, from a PBX seen
//     to fill a page (or to send more than this answer), so that no cap
//     cut it; any other window is cut in pieces (cut), down to one second;
//   - a second holding more than a page is read by offset (sorted by key)
//     until two reads in a row hold the same keys, at most three times,
//     else ErrChanged; a PBX answering the same page for two starts
//     ignores start, and such a second cannot be read;
//   - a record on a window's start is not left out by a PBX whose
//     filter[from] excludes its bound: until a record is seen on the
//     bound asked (inclusive), each window is asked from a second before
//     its start and that second's records are dropped (within). A
//     window starting on a record seen (where answers are cut) is asked
//     from its start while the bound is unknown (probes): that record
//     back, the bound is inclusive; not back in an answer proven whole,
//     exclusive (or it went meanwhile): noted, and the window is asked
//     again from a second before.
//
// Where windows end proves nothing, so it follows the records seen: the
// first request asks for the whole range; an answer not proven is cut
// where its records fall (every 85% of a page, cut), and past the records
// a full page showed, windows are as wide as should hold as many at the
// density seen (plan, adapt; nearer a page where their counts vary
// little: aim), the last reaching to the range's end once
// its total says the rest fits. Windows, and the pieces of one, are read
// side by side, Concurrency requests at once, the earliest window's
// first (slots; an answer is converted after its request's slot is
// freed), and handed over in time order.
//
// A record is read more than once (a window cut, a second read again),
// so the caller converts with warnings it counts for the rows it keeps.
type TimeWindows struct {
	*Reader
	// Unsettled, when its To is set, is wall time whose records are left
	// out of the read: where calls still arrive (the caller's watermark
	// to the present). No request asks for a window within it; a window
	// reaching into it and not answered whole in one page is cut at its
	// edges.
	Unsettled Gap
	pages     atomic.Int64
	slots     *slots // bounds the requests in flight, the earliest window's first
	// toInclusive is set once an answer held a record on its window's
	// end: the PBX's filter[to] is inclusive, and a second is asked for
	// alone (second).
	toInclusive atomic.Bool
	// seen holds the times of the records of answers not proven (where
	// windows are cut) while the PBX's filter[from] is not known: a
	// window starting on one is asked from its start (probes).
	mu   sync.Mutex
	seen map[string]bool
}

// Gap is the wall time (From, To].
type Gap struct{ From, To time.Time }

// holds reports whether g holds wall time x.
func (g Gap) holds(x time.Time) bool { return !g.To.IsZero() && x.After(g.From) && !x.After(g.To) }

// window is the wall time [a, b), asked as filter[from]=a, filter[to]=b:
// a record on b, whether the PBX's bound is inclusive or not, is the next
// window's.
type window struct{ a, b time.Time }

func (w window) String() string {
	return "window " + w.a.Format(record.WallLayout) + " to " + w.b.Format(record.WallLayout)
}

// windowAnswer is an answer to a window and its records.
type windowAnswer struct {
	pg   *pbx.ListPage
	rows []record.Row
}

// from is where a window starting at a is asked from: a second before
// it until the PBX's filter[from] is seen inclusive, never before 1970
// (a PBX reading it as Unix seconds refuses a negative one; no record is
// dated then).
func (t *TimeWindows) from(a time.Time) time.Time {
	if t.Learnt.timeFromBound() == BoundInclusive || !a.After(unixEpoch) {
		return a
	}
	return a.Add(-time.Second)
}

// unixEpoch is 1970-01-01 00:00:00, as a wall time.
var unixEpoch = time.Unix(0, 0).UTC()

// fetch asks for [a, b] as filter[from]=a, filter[to]=b (a as asked: see
// from).
func (t *TimeWindows) fetch(ctx context.Context, a, b time.Time, start, ask int64) (*pbx.ListPage, []record.Row, error) {
	tf := t.Endpoint.TimeField
	q := t.Endpoint.TimeQuery(a.Format(record.WallLayout), b.Format(record.WallLayout))
	if t.Endpoint.Cursor != "" {
		// A unique key: a second holding more than a page is read by
		// offset, and records tied on their time may come in any order.
		q.Set("sort", t.Endpoint.Cursor)
		q.Set("dir", "ASC")
	}
	q.Set("start", strconv.FormatInt(start, 10))
	q.Set("count", strconv.FormatInt(ask, 10))
	where := window{a, b}.String()
	if t.MaxPages > 0 && t.pages.Add(1) > int64(t.MaxPages) {
		return nil, nil, fmt.Errorf("%s: more than EXPORT_MAX_PAGES=%d pages: stopped; raise it if this PBX really holds that much", where, t.MaxPages)
	}
	pg, err := t.list(ctx, a, q)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", where, err)
	}
	t.Counters.Pages.Add(1)
	if int64(len(pg.Records)) > ask {
		return nil, nil, fmt.Errorf("%s: the PBX sent %d records for count=%d", where, len(pg.Records), ask)
	}
	rows, err := t.Rows(pg.Records)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", where, err)
	}
	t.Learnt.saw(int64(len(rows)), pg.Total)
	lo, hi := a.Format(record.WallLayout), b.Format(record.WallLayout)
	for _, row := range rows {
		if row.Wall < lo || row.Wall > hi {
			return nil, nil, fmt.Errorf("%s: the PBX sent a record with %s %q: it ignores filter[%s] as well as filter[%s] or sort=%s, so no paging can be trusted; report this PBX's version",
				where, tf, row.Wall, tf, t.Endpoint.Cursor, t.Endpoint.Cursor)
		}
		if row.Wall == hi && lo < hi {
			t.toInclusive.Store(true)
		}
		if row.Wall == lo {
			t.Learnt.setTimeFrom(BoundInclusive)
		}
	}
	return pg, rows, nil
}

// list sends one request for the window starting at a, within the bound
// of requests in flight (slots): the slot is freed as the answer is in,
// so that converting it, CPU work, does not keep the next request from
// the PBX.
func (t *TimeWindows) list(ctx context.Context, a time.Time, q url.Values) (*pbx.ListPage, error) {
	if t.slots != nil {
		if err := t.slots.acquire(ctx, a); err != nil {
			return nil, err
		}
		defer t.slots.release()
	}
	return t.Lister.List(ctx, t.Endpoint.Path, q, &t.Counters.Counts)
}

// ask asks for window w whole, in one page.
func (t *TimeWindows) ask(ctx context.Context, w window) (windowAnswer, error) {
	ask, _ := t.Learnt.sizes()
	if t.probes(w.a) {
		if ans, taken, err := t.probe(ctx, w.a, w.b, ask); err != nil || taken {
			return ans, err
		}
	}
	pg, rows, err := t.fetch(ctx, t.from(w.a), w.b, 0, ask)
	return windowAnswer{pg, rows}, err
}

// probe asks for [a, b] from a itself, a the time of a record seen and
// the PBX's filter[from] not known: that record back, the bound is
// inclusive; not back in an answer proven whole, it is exclusive (or the
// record went meanwhile): noted. It reports whether the answer is taken
// for the window: not when the bound is exclusive; an answer not proven
// is (the window is then read in pieces, each asked as from says).
func (t *TimeWindows) probe(ctx context.Context, a, b time.Time, ask int64) (windowAnswer, bool, error) {
	pg, rows, err := t.fetch(ctx, a, b, 0, ask)
	ans := windowAnswer{pg, rows}
	if err != nil || t.Learnt.timeFromBound() == BoundInclusive || !t.proven(ans) {
		return ans, true, err
	}
	if t.Learnt.setTimeFrom(BoundExclusive) {
		tf, at := t.Endpoint.TimeField, a.Format(record.WallLayout)
		t.note(fmt.Sprintf("filter[%s][from]=%s did not bring back the records of %s %s: the bound is taken as exclusive, and each time window is asked from a second before its start, that second's records dropped",
			tf, at, tf, at))
	}
	return ans, false, nil
}

// probes reports whether the window starting at a is asked from its
// start to learn the PBX's filter[from]: while it is not known, when a is
// the time of a record of an answer not proven (windows are cut there).
func (t *TimeWindows) probes(a time.Time) bool {
	if t.Learnt.timeFromBound() != BoundUnknown {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.seen[a.Format(record.WallLayout)]
}

// mark adds the times of rows, an answer not proven, to seen while the
// PBX's filter[from] is not known.
func (t *TimeWindows) mark(rows []record.Row) {
	if t.Learnt.timeFromBound() != BoundUnknown {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.seen == nil {
		t.seen = map[string]bool{}
	}
	for _, row := range rows {
		t.seen[row.Wall] = true
	}
}

// proven says whether an answer holds every record of its window: see
// the proof above. A PBX seen to send more records than this answer
// holds caps its pages at more than it sent.
func (t *TimeWindows) proven(a windowAnswer) bool {
	ask, delivered := t.Learnt.sizes()
	got := int64(len(a.pg.Records))
	return got < ask && a.pg.Total <= got && (delivered >= ask || got < delivered || got == 0)
}

// within keeps the rows of w not in the unsettled gap.
func (t *TimeWindows) within(w window, rows []record.Row) []record.Row {
	lo, hi := w.a.Format(record.WallLayout), w.b.Format(record.WallLayout)
	var gapLo, gapHi string
	if !t.Unsettled.To.IsZero() {
		gapLo, gapHi = t.Unsettled.From.Format(record.WallLayout), t.Unsettled.To.Format(record.WallLayout)
	}
	keep := make([]record.Row, 0, len(rows))
	for _, row := range rows {
		if row.Wall >= lo && row.Wall < hi && (gapHi == "" || row.Wall <= gapLo || row.Wall > gapHi) {
			keep = append(keep, row)
		}
	}
	return keep
}

// second reads a one-second window holding more than a page, by offset:
// nothing smaller can be asked for. A record of that second deleted (or
// added) meanwhile shifts the later offsets and hides another, so the
// second is read until two reads in a row hold the same keys, at most
// three times; otherwise the run stops with ErrChanged, the time cursor
// before this second. It is asked as [a, b], b the next second, unless
// the PBX's filter[to] was seen inclusive: then as [a, a], so that the
// next second's records, which may be many or still arriving, are not
// read (and compared) with it. Its start is asked as from says, the same
// for every page and read (so that offsets stay put); the caller drops
// the second before.
func (t *TimeWindows) second(ctx context.Context, a, b time.Time, ask int64) ([]record.Row, error) {
	if t.toInclusive.Load() {
		b = a
	}
	lo := t.from(a)
	rows, keys, err := t.offsets(ctx, a, lo, b, ask)
	for attempt := 1; err == nil; attempt++ {
		again, againKeys, err := t.offsets(ctx, a, lo, b, ask)
		switch {
		case err != nil:
			return nil, err
		case maps.Equal(keys, againKeys):
			return rows, nil
		case attempt == 2:
			return nil, fmt.Errorf("%w: the second %s holds more records than a page (%d) and they changed during each of three reads by offset",
				ErrChanged, a.Format(record.WallLayout), ask)
		}
		t.log().Info("records of a one-second window changed while it was read by offset: reading it again", "second", a.Format(record.WallLayout))
		rows, keys = again, againKeys
	}
	return nil, err
}

// offsets reads the one-second window a once by offset, asked as [lo, b].
func (t *TimeWindows) offsets(ctx context.Context, a, lo, b time.Time, ask int64) ([]record.Row, map[string]bool, error) {
	var rows []record.Row
	keys := map[string]bool{}
	var last string // the previous page's first key
	for start := int64(0); ; {
		pg, more, err := t.fetch(ctx, lo, b, start, ask)
		if err != nil {
			return nil, nil, err
		}
		if len(pg.Records) == 0 {
			return rows, keys, nil
		}
		if start > 0 && more[0].Key == last {
			return nil, nil, fmt.Errorf("the second %s: the PBX sent the same page for start=%d as for the one before: it ignores start, so a second holding more than a page (%d) cannot be read",
				a.Format(record.WallLayout), start, ask)
		}
		last = more[0].Key
		start += int64(len(pg.Records))
		for _, row := range more {
			if !keys[row.Key] {
				keys[row.Key] = true
				rows = append(rows, row)
			}
		}
	}
}

// whole reads w whole: from ans, its answer, when proven, else piece by
// piece, the pieces side by side (within the Concurrency bound of every
// request) and their rows joined in time order; a one-second window by
// offset. The first error met stops the other pieces and is returned.
func (t *TimeWindows) whole(ctx context.Context, w window, ans windowAnswer) ([]record.Row, error) {
	if t.proven(ans) {
		return t.within(w, ans.rows), nil
	}
	if w.b.Sub(w.a) <= time.Second {
		ask, _ := t.Learnt.sizes()
		at := w.a.Format(record.WallLayout)
		if t.Learnt.timeFromBound() == BoundUnknown && slices.ContainsFunc(ans.rows, func(r record.Row) bool { return r.Wall == at }) {
			// Its records, asked from its start, show the bound, so that
			// it is read by offset without the second before, if it can.
			b := w.b
			if t.toInclusive.Load() {
				b = w.a
			}
			if _, _, err := t.probe(ctx, w.a, b, ask); err != nil {
				return nil, err
			}
		}
		rows, err := t.second(ctx, w.a, w.b, ask)
		return t.within(w, rows), err
	}
	t.mark(ans.rows)
	ps := t.pieces(w, ans)
	read := make([][]record.Row, len(ps))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	for i, p := range ps {
		wg.Go(func() {
			a, err := t.ask(ctx, p)
			if err == nil {
				read[i], err = t.whole(ctx, p, a)
			}
			if err != nil {
				mu.Lock()
				if first == nil {
					first = err // before cancel: the others' errors are its echo
				}
				mu.Unlock()
				cancel()
			}
		})
	}
	wg.Wait()
	if first != nil {
		return nil, first
	}
	return slices.Concat(read...), nil
}

// pieces cuts w, whose answer ans was not proven, into windows that
// cover it, leaving out those within the unsettled gap: at the gap's
// edges when the answer was full and w reaches into the gap (records
// arriving there keep it full), else where its records fall, else in
// halves.
func (t *TimeWindows) pieces(w window, ans windowAnswer) []window {
	g := t.Unsettled
	last := w.b.Add(-time.Second) // the window's last second
	var ends []time.Time
	if ask, _ := t.Learnt.sizes(); int64(len(ans.pg.Records)) >= ask && !g.To.IsZero() && last.After(g.From) && !w.a.After(g.To) {
		ends = []time.Time{g.From.Add(time.Second), g.To.Add(time.Second)}
	} else {
		ends = t.cut(w, ans.rows, t.partial(ans))
	}
	ps := split(w, ends, g)
	if len(ps) == 1 && ps[0] == w {
		ps = split(w, []time.Time{w.a.Add(w.b.Sub(w.a) / 2).Truncate(time.Second)}, g)
	}
	return ps
}

// split cuts w at ends, leaving out the pieces within g.
func split(w window, ends []time.Time, g Gap) []window {
	var ps []window
	a := w.a
	for _, end := range append(ends, w.b) {
		end = clampTime(end, a, w.b)
		if p := (window{a, end}); end.After(a) && !(g.holds(p.a) && g.holds(p.b.Add(-time.Second))) {
			ps = append(ps, p)
		}
		a = end
	}
	return ps
}

// cut returns where windows cut from w should end so that each holds
// perWindow of the records seen (partial: the answer holding them may
// leave out some of w) (fewer than the most an answer held, so
// that an answer holding as many is proven whole even from a PBX never
// seen to fill a page): every so many of rows, by time, within w, each
// end after the one before.
func (t *TimeWindows) cut(w window, rows []record.Row, partial bool) []time.Time {
	ask, delivered := t.Learnt.sizes()
	per := perWindow(ask, delivered)
	walls := make([]string, 0, len(rows))
	for _, row := range rows {
		walls = append(walls, row.Wall)
	}
	slices.Sort(walls)
	var ends []time.Time
	last := w.a
	if partial && newestFirst(rows) {
		// A PBX ignoring the sort answers newest first (call history's
		// default order): a full answer holds the newest records of w,
		// and says nothing of those before its earliest. Cut there and,
		// before it, backSteps windows as wide as should hold per at the
		// density seen, so that what comes before is not read a few
		// records at a time from its end.
		first, err := time.Parse(record.WallLayout, walls[0])
		if width := density(rows, per, 0); err == nil && width > 0 {
			for k := backSteps; k >= 1; k-- {
				end := first.Add(-time.Duration(k) * width).Truncate(time.Second)
				if end.After(last) && end.Before(first) {
					ends, last = append(ends, end), end
				}
			}
		}
		if err == nil && first.After(last) && first.Before(w.b) {
			ends, last = append(ends, first), first
		}
	}
	for i := per; i < int64(len(walls)); i += per {
		end, err := time.Parse(record.WallLayout, walls[i])
		if err != nil || !end.After(last) || !end.Before(w.b) {
			continue
		}
		ends, last = append(ends, end), end
	}
	return ends
}

// partial says whether an answer may leave out records of its window: a
// full page, fewer records than its total, or, without a total, as many
// as the most an answer held (a cap's).
func (t *TimeWindows) partial(a windowAnswer) bool {
	ask, delivered := t.Learnt.sizes()
	got := int64(len(a.pg.Records))
	return got >= ask || a.pg.Total > got || a.pg.Total < 0 && got >= delivered
}

// backSteps is how many windows cut cuts before the earliest record of
// an answer sent newest first.
const backSteps = 8

// newestFirst reports whether rows came newest first: in descending time
// order, not all in one second.
func newestFirst(rows []record.Row) bool {
	if len(rows) < 2 || rows[0].Wall == rows[len(rows)-1].Wall {
		return false
	}
	for i := 1; i < len(rows); i++ {
		if rows[i].Wall > rows[i-1].Wall {
			return false
		}
	}
	return true
}

// Read reads [a, b), the unsettled gap left out, and calls fn with its
// records window by window, in time order; fn's error stops the read and
// is returned. The windows handed over before an error were read whole.
// Read asks for the rest of the range in one request, and again after a
// window that came back empty: a range read whole at once costs one
// request, and a stretch without records is crossed in one.
func (t *TimeWindows) Read(ctx context.Context, a, b time.Time, fn func([]record.Row) error) error {
	t.slots = newSlots(t.Concurrency)
	for next := a; next.Before(b); {
		if t.Unsettled.holds(next) {
			next = t.Unsettled.To.Add(time.Second)
			continue
		}
		w := window{next, b}
		ans, err := t.ask(ctx, w)
		if err != nil {
			return err
		}
		if t.proven(ans) {
			return fn(t.within(w, ans.rows))
		}
		t.mark(ans.rows)
		if next, err = t.steps(ctx, t.plan(w, ans), fn); err != nil {
			return err
		}
		if !next.After(w.a) {
			// Nothing to cut: one second, read by offset.
			rows, err := t.whole(ctx, w, ans)
			if err != nil {
				return err
			}
			return fn(rows)
		}
	}
	return nil
}

// step is a window of a plan.
type step struct {
	w       window
	stepped bool    // its width came from the density seen
	per     int64   // the records it counts for in the plan's taken while in flight
	expect  float64 // the records it should hold at the density adapt went by; 0: not known
}

// windowRows is a window read whole, or the error that stopped it.
type windowRows struct {
	step
	rows []record.Row
	cut  bool // its answer was not proven: it was read in pieces
	err  error
}

func (t *TimeWindows) read(ctx context.Context, s step) windowRows {
	r := windowRows{step: s}
	ans, err := t.ask(ctx, s.w)
	if err == nil {
		r.cut = !t.proven(ans)
		r.rows, err = t.whole(ctx, s.w, ans)
	}
	r.err = err
	return r
}

// steps reads the windows of p side by side (Concurrency requests at
// once, 2×Concurrency windows ahead) and hands them over in time order,
// until the plan ends or a stepped window comes back empty. It returns
// where the rest of the range starts, to be asked for again.
func (t *TimeWindows) steps(ctx context.Context, p *plan, fn func([]record.Row) error) (time.Time, error) {
	ctx, cancel := context.WithCancel(ctx)
	var queue []chan windowRows
	defer func() {
		// Stop and wait for the readers still running, so none outlives steps.
		cancel()
		for _, ch := range queue {
			<-ch
		}
	}()
	conc := max(1, t.Concurrency)
	for stop := false; ; {
		for !stop && len(queue) < 2*conc {
			s, ok := p.next()
			if !ok {
				break
			}
			ch := make(chan windowRows, 1)
			queue = append(queue, ch)
			go func() { ch <- t.read(ctx, s) }()
		}
		if len(queue) == 0 {
			return p.at, nil
		}
		r := <-queue[0]
		queue = queue[1:]
		if r.err != nil {
			return p.at, r.err
		}
		if err := fn(r.rows); err != nil {
			return p.at, err
		}
		p.taken += int64(len(r.rows)) - r.per
		if r.stepped {
			stop = stop || len(r.rows) == 0
			p.adapt(r)
		}
	}
}

// plan is where the windows of a range not proven by one answer end: cut
// where the answer's records fall, then, when the answer was full (its
// records are not all of the range), stepped at the density they showed.
type plan struct {
	gap   Gap
	at, b time.Time     // the next window starts at at; the plan ends at b at the latest
	ends  []time.Time   // the next windows' ends
	width time.Duration // of the windows after them; 0: the plan ends with them
	// rate is the records a nanosecond the width went by (adapt); 0:
	// none yet.
	rate float64
	// page is the most records a window can hold and be proven whole
	// (the page asked, or the most an answer held); per is how many the
	// next windows should hold: aimFrom hundredths of it, and as many as
	// aim allows once windows were compared with what they should hold.
	page, per int64
	// total is the records the range's answer counted, -1 if none; taken
	// is those handed over and per for each window in flight. Once what
	// is left should fit a window, the last one reaches to b.
	total, taken int64
	// recent are the last stepped windows handed over whole from one
	// answer (at most adaptOver): the density adapt goes by.
	recent []span
	// ratios are, for the last stepped windows planned at a rate (at
	// most aimOver), the records each held over those it should have.
	ratios []float64
}

// span is a window's width and how many records it held.
type span struct {
	width time.Duration
	held  int
}

// adaptOver is how many windows the density adapt goes by spans: one
// window's count varies by chance from the next; a few together vary
// less, so that fewer come back full.
const adaptOver = 4

func (t *TimeWindows) plan(w window, ans windowAnswer) *plan {
	ask, delivered := t.Learnt.sizes()
	p := &plan{gap: t.Unsettled, at: w.a, b: w.b, ends: t.cut(w, ans.rows, t.partial(ans)),
		page: min(ask, delivered), per: perWindow(ask, delivered), total: ans.pg.Total}
	got := int64(len(ans.pg.Records))
	if got < ask && ans.pg.Total <= got {
		// Every record of the range may be here: cut where they fall,
		// then ask for the rest again.
		if len(p.ends) == 0 {
			p.ends = []time.Time{w.a.Add(w.b.Sub(w.a) / 2).Truncate(time.Second)}
		}
		return p
	}
	// A full answer sorted by key holds the range's lowest keys; records
	// of higher keys (calls that ended later) start among them too, so
	// the density it shows is a floor. The first windows are cut a sixth
	// narrower than it says: one that comes back full costs two more
	// requests, one a sixth too narrow a sixth of one; adapt then goes by
	// the windows' own counts.
	d := density(ans.rows, p.per, w.b.Sub(w.a)/2)
	p.width = max(d-d/6, time.Second)
	return p
}

// density returns how wide a window should be to hold per records at the
// density rows show between their first and third quarters by time (a
// long call's early start does not stretch it), or else when there are
// too few rows.
func density(rows []record.Row, per int64, orElse time.Duration) time.Duration {
	n := len(rows)
	if n < 4 {
		return orElse
	}
	walls := make([]string, n)
	for i, row := range rows {
		walls[i] = row.Wall
	}
	slices.Sort(walls)
	q1, err1 := time.Parse(record.WallLayout, walls[n/4])
	q3, err3 := time.Parse(record.WallLayout, walls[3*n/4])
	if err1 != nil || err3 != nil {
		return orElse
	}
	return time.Duration(float64(q3.Sub(q1)+time.Second) * float64(per) / float64(3*n/4-n/4))
}

// next returns the next window, never one within the gap, and whether
// there is one.
func (p *plan) next() (step, bool) {
	if p.gap.holds(p.at) {
		p.at = p.gap.To.Add(time.Second)
	}
	for len(p.ends) > 0 && !p.ends[0].After(p.at) {
		p.ends = p.ends[1:]
	}
	if !p.at.Before(p.b) {
		return step{}, false
	}
	var end time.Time
	stepped := false
	left := p.total - p.taken
	p.taken += p.per
	switch {
	case p.total >= 0 && left <= p.per:
		end, p.ends, p.width = p.b, nil, 0
	case len(p.ends) > 0:
		end, p.ends = p.ends[0], p.ends[1:]
	case p.width > 0:
		end, stepped = p.at.Add(p.width).Truncate(time.Second), true
	default:
		return step{}, false
	}
	end = clampTime(end, p.at.Add(time.Second), p.b)
	s := step{w: window{p.at, end}, stepped: stepped, per: p.per}
	if stepped {
		s.expect = p.rate * float64(end.Sub(p.at))
	}
	p.at = end
	return s, true
}

// adapt sets, from a stepped window handed over, how many records the
// next windows should hold (aim) and their width: after one read in
// pieces, half its width, or less if its records say so (it was read
// whole: their count is known); otherwise as wide as should hold per
// records at the density it and the stepped windows handed over before
// it since the last one read in pieces showed together (adaptOver at
// most), within half to twice its width. It goes by the window's own
// width: windows read ahead were cut before the last change.
func (p *plan) adapt(r windowRows) {
	was := r.w.b.Sub(r.w.a)
	n := len(r.rows)
	if r.expect > 0 {
		p.ratios = append(p.ratios, float64(n)/r.expect)
		if len(p.ratios) > aimOver {
			p.ratios = p.ratios[1:]
		}
		p.per = max(1, p.aim()*p.page/100)
	}
	w := 2 * was
	switch {
	case r.cut:
		w, p.recent = was/2, nil
		if n > 0 {
			w = min(w, time.Duration(float64(was)*float64(p.per)/float64(n)))
		}
		p.rate = float64(n) / float64(was)
	case n > 0:
		p.recent = append(p.recent, span{was, n})
		if len(p.recent) > adaptOver {
			p.recent = p.recent[1:]
		}
		var width time.Duration
		held := 0
		for _, x := range p.recent {
			width += x.width
			held += x.held
		}
		p.rate = float64(held) / float64(width)
		w = min(2*was, max(was/2, time.Duration(float64(width)*float64(p.per)/float64(held))))
	}
	p.width = max(w, time.Second)
}

// aimOver is how many stepped windows aim compares with what they should
// have held.
const aimOver = 32

// aimFrom and aimTo bound the hundredths of a page a stepped window is
// planned to hold (aim).
const aimFrom, aimTo = 85, 95

// aim returns the hundredths of a page the next stepped windows should
// hold: aimFrom until aimOver windows were compared with what they should
// have held; then as much as keeps a window holding four standard
// deviations of those ratios above their mean within a page, aimFrom to
// aimTo. Where windows hold what the density says (calls come evenly),
// they are planned nearly full, and fewer are asked (at 200,000 calls in
// pages of 1,000, 218 requests instead of 238, in process); where their counts vary
// (calls in busy hours, a window read in pieces, pages of 100), a
// window stays at aimFrom: one that comes back full costs two more
// requests.
func (p *plan) aim() int64 {
	n := len(p.ratios)
	if n < aimOver {
		return aimFrom
	}
	var sum, sq float64
	for _, x := range p.ratios {
		sum += x
	}
	mean := sum / float64(n)
	for _, x := range p.ratios {
		sq += (x - mean) * (x - mean)
	}
	worst := mean + 4*math.Sqrt(sq/float64(n-1))
	return min(aimTo, max(aimFrom, int64(100/worst)))
}

// clampTime returns x within [lo, hi].
func clampTime(x, lo, hi time.Time) time.Time {
	if x.Before(lo) {
		x = lo
	}
	if x.After(hi) {
		x = hi
	}
	return x
}

// perWindow is how many records a window should hold where nothing is
// known of how counts vary: 85% of a page (or of the most an answer held,
// when the PBX was never seen to fill a page), room enough for the
// density to vary from one window to the next. Stepped windows go up to
// aimTo once their counts were seen to vary less (aim).
func perWindow(ask, delivered int64) int64 { return max(1, 85*min(ask, delivered)/100) }
