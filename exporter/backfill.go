package exporter

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/wildix-export/wildix-export/exporter/paging"
	"github.com/wildix-export/wildix-export/exporter/record"
)

// BackfillOptions configure a backfill.
type BackfillOptions struct {
	// From and To are PBX-local wall times (their zone is ignored): the
	// range [From, To) of the endpoint's time field.
	From, To time.Time
	Window   time.Duration // default 24h
	Force    bool          // redo windows already done
	// Progress, when set, is called after each window.
	Progress func(BackfillProgress)
}

// BackfillProgress reports a backfill's advance.
type BackfillProgress struct {
	Endpoint    string
	Window      Window
	Done, Total int // windows finished (exported or skipped) and in all
	Rows        int64
	Skipped     bool // the window was already done
	Elapsed     time.Duration
}

// windowState marks a backfill window as done.
type windowState struct {
	Done  bool      `json:"done"`
	Rows  int64     `json:"rows"`
	RunID string    `json:"run_id"`
	At    time.Time `json:"at"`
}

// Windows splits [from, to) into windows of length step in wall time.
func Windows(from, to time.Time, step time.Duration) []Window {
	var ws []Window
	f := time.Date(from.Year(), from.Month(), from.Day(), from.Hour(), from.Minute(), from.Second(), 0, time.UTC)
	t := time.Date(to.Year(), to.Month(), to.Day(), to.Hour(), to.Minute(), to.Second(), 0, time.UTC)
	for cur := f; cur.Before(t); cur = cur.Add(step) {
		end := cur.Add(step)
		if end.After(t) {
			end = t
		}
		ws = append(ws, Window{From: cur.Format(record.WallLayout), To: end.Format(record.WallLayout)})
	}
	return ws
}

// StateKey is where a backfill window's progress is kept: apart from the
// nightly cursor, which a backfill never moves.
func (w Window) StateKey(endpoint string) string {
	return "backfill/" + endpoint + "/" + w.From + "/" + w.To
}

// Backfill exports each endpoint's records whose time field lies in the
// range, window by window. Each window commits on its own with its
// progress, so a backfill run again resumes at the first unfinished window.
// Only endpoints with a time field can be backfilled.
func (x *Exporter) Backfill(ctx context.Context, id string, endpoints []record.Endpoint, o BackfillOptions) *RunResult {
	if o.Window <= 0 {
		o.Window = 24 * time.Hour
	}
	r := x.start(ctx, id, "backfill")
	windows := Windows(o.From, o.To, o.Window)
	for i := range endpoints {
		var res EndpointResult
		e := x.newRun(r.ID, &endpoints[i], &res)
		e.backfill(ctx, windows, o)
		e.tally()
		x.finishEndpoint(r, res)
	}
	x.finish(ctx, r)
	return r
}

// Policy: backfill.
//
// The windows are [From, To) of the endpoint's time field, each one batch
// committed with its done mark only when read whole, so a backfill run
// again resumes at the first window not done (--force redoes them all).
// The upper key is the newest key when the backfill starts: a record
// above it arrived since and is the nightly run's, dropped: counted as
// filtered when asked for by key (the PBX sent what it was not asked
// for), else noted.
//   - While the PBX honours the key filter, a window is read by key from
//     1 to the upper key down the ladder (window), what one window learnt
//     holding for the next.
//   - Once it is seen to ignore it (or pages are too small to prove a key
//     range), each run of consecutive windows not done is read as one
//     range by paging.TimeWindows (each of its windows proven whole,
//     Concurrency requests side by side, cut at the density seen), its
//     records split among the backfill windows (timeBatches). It hands
//     over its windows in time order, each whole, so once a record at or
//     after a backfill window's To is handed over, or the read ends, every
//     record of that window was: the window is committed then, in order
//     (a key sent twice within it, answers not stable, fails it instead).
//     When the read fails, the windows committed stay done, the one in
//     progress is aborted, and the next backfill resumes at it. Records
//     dated after the watermark (the PBX's present at the backfill's start
//     less EXPORT_SETTLE, as for the nightly run) up to the horizon are
//     left out, as records above the upper key are: still arriving, they
//     cannot make a window fail; they are the nightly run's, whose own
//     cursor covers every record after its last run. A window reaching
//     past the watermark is marked done without them, and the ledger says
//     so. A PBX ignoring the time filter as well fails the backfill.
//
// It stays one function (about 80 lines) for now: the loop over windows
// holds the policy's order (skip done, gather a run of undone windows for
// the time path, else one window by key) and the result's one error, and
// the time path's callback advances its index. The first cut, noted by
// review: windowsByTime returning each committed window's rows and the
// arrived count instead of an out-parameter and that callback.
func (e *endpointRun) backfill(ctx context.Context, windows []Window, o BackfillOptions) {
	res := e.res
	if e.ep.Files != "" {
		res.Err = fmt.Errorf("cannot be backfilled: recordings are copied by the regular run (wildix-export run, or run --once), whose first run lists every recording the PBX still holds and each later one from where the last stopped, less the look-back; leave recordings out of --endpoints here, and run wildix-export run --once --endpoints recordings to copy them now")
		return
	}
	if e.ep.TimeField == "" || e.ep.Cursor == "" {
		res.Err = fmt.Errorf("cannot be backfilled: it has no time field; it is a snapshot, which every run exports whole")
		return
	}
	gap := e.unsettled(ctx)
	upper, found, err := e.ladder(nil, 1, paging.ByTimeWindows).Newest(ctx, 0)
	switch {
	case errors.As(err, new(*paging.IgnoredError)):
		// No key bound can be proven: every key is kept; the watermark
		// leaves out what is still arriving.
		upper, found = math.MaxInt64, true
	case err != nil:
		res.Err = err
	}
	progress := func(wi int, skipped bool) {
		if o.Progress != nil {
			o.Progress(BackfillProgress{Endpoint: e.ep.Name, Window: windows[wi], Done: wi + 1, Total: len(windows),
				Rows: res.Rows, Skipped: skipped, Elapsed: time.Since(e.began)})
		}
	}
	var arrived int64 // records above the upper key read by time windows
	for wi := 0; wi < len(windows) && res.Err == nil && found; {
		if ctx.Err() != nil {
			res.Err = context.Cause(ctx)
			break
		}
		w := windows[wi]
		done, err := e.windowDone(ctx, w, o.Force)
		switch {
		case err != nil:
			res.Err = err
		case done:
			res.Skipped++
			progress(wi, true)
			wi++
		case e.learnt.FilterHonoured():
			rows, err := e.window(ctx, w, upper)
			if errors.As(err, new(*paging.IgnoredError)) && !e.learnt.FilterHonoured() {
				continue // this window and the rest: by time windows
			}
			if err != nil {
				res.Err = fmt.Errorf("window %s to %s: %w", w.From, w.To, err)
				break
			}
			res.Windows++
			res.Rows += rows
			progress(wi, false)
			wi++
		default:
			n, err := e.notDone(ctx, windows[wi:], o.Force)
			if err != nil {
				res.Err = err
				break
			}
			first := wi
			res.Paging = paging.ByTimeWindows.String()
			res.Err = e.windowsByTime(ctx, windows[wi:wi+n], upper, gap, &arrived, func(rows int64) {
				res.Windows++
				res.Rows += rows
				progress(wi, false)
				wi++
			})
			if res.Err == nil && wi != first+n {
				res.Err = fmt.Errorf("backfill by time windows: %d of %d windows committed", wi-first, n)
			}
		}
	}
	if arrived > 0 {
		e.note(fmt.Sprintf("%d records above %s %d, the newest when the backfill started, arrived since: left to the nightly run", arrived, e.ep.Cursor, upper))
	}
	if f := e.n.Filtered.Load(); f > 0 {
		e.note(fmt.Sprintf("the PBX sent %d records outside the asked window or key bounds, dropped (counted as filtered): does it ignore filter[%s]?", f, e.ep.TimeField))
	}
}

// notDone returns how many windows from the first of ws (not done) are
// not done either (all with force).
func (e *endpointRun) notDone(ctx context.Context, ws []Window, force bool) (int, error) {
	n := 1
	for ; n < len(ws); n++ {
		done, err := e.windowDone(ctx, ws[n], force)
		if err != nil || done {
			return n, err
		}
	}
	return n, nil
}

// unsettled is the wall time a backfill by time windows leaves out: after
// the watermark (now at the PBX less EXPORT_SETTLE, at the UTC offset the
// nightly run stored when WILDIX_TIMEZONE is not set: pbxSettled) up to
// the horizon.
func (e *endpointRun) unsettled(ctx context.Context) paging.Gap {
	settle := e.x.Settle
	if settle <= 0 {
		settle = DefaultSettle
	}
	var offset *int
	if st, err := e.x.loadCursor(ctx, e.ep); err == nil {
		offset = st.UTCOffset // a damaged state only leaves the watermark further back
	}
	now := e.x.now()
	return paging.Gap{From: mustWall(pbxSettled(now, e.x.Zone, offset, settle)), To: mustWall(pbxHorizon(now, e.x.Zone))}
}

// windowDone reports whether w was done by an earlier backfill (never
// with force).
func (e *endpointRun) windowDone(ctx context.Context, w Window, force bool) (bool, error) {
	if force {
		return false, nil
	}
	b, err := e.x.Sink.State(ctx, e.x.PBX, w.StateKey(e.ep.Name))
	if err != nil {
		return false, err
	}
	var st windowState
	return b != nil && json.Unmarshal(b, &st) == nil && st.Done, nil
}

// windowBatch is a backfill window as one batch.
type windowBatch struct {
	info  BatchInfo
	state func(rows int64) []byte // the window's done mark
}

// batch describes w's batch and its done mark.
func (e *endpointRun) batch(w Window) windowBatch {
	return windowBatch{
		info: BatchInfo{PBX: e.x.PBX, RunID: e.runID, Endpoint: e.ep, StateKey: w.StateKey(e.ep.Name), Window: &w},
		state: func(rows int64) []byte {
			st, _ := json.Marshal(windowState{Done: true, Rows: rows, RunID: e.runID, At: time.Now().UTC()})
			return st
		},
	}
}

// window reads w by key: its records up to the backfill's upper key,
// asked for [From, To] and kept for [From, To), so a record on a boundary
// lands in one window whether the PBX's bound is inclusive or not; by key
// from 1 to the upper key, so that a record deleted meanwhile cannot shift
// a page, or by key ranges (the ladder), into one batch. An
// *paging.IgnoredError leaves nothing committed: the window is for time
// windows.
func (e *endpointRun) window(ctx context.Context, w Window, upper int64) (int64, error) {
	we := *e
	we.log = e.log.With("window", w.From)
	b := e.batch(w)
	// A record on To is the next window's; one outside [From, To] or
	// above the upper key was not asked for: dropped, and counted when the
	// window commits (a read thrown away counts nothing).
	var dropped int64
	c := we.committer(ctx, b.info, 0)
	_, err := we.ladder(e.ep.TimeQuery(w.From, w.To), 1, paging.ByTimeWindows).Read(ctx, paging.Range{Lo: 1, Hi: upper}, func(sp paging.Span) error {
		rows := sp.Rows[:0]
		for _, row := range sp.Rows {
			switch {
			case row.Wall < w.From || row.Wall > w.To || row.Cursor > upper:
				dropped++
			case row.Wall < w.To:
				rows = append(rows, row)
			}
		}
		if !c.write(rows) {
			return errLoader
		}
		return nil
	})
	e.res.Paging = e.learnt.Strategy().String()
	if err == nil {
		c.commit(b.state(c.pending()))
	}
	if errors.As(err, new(*paging.IgnoredError)) {
		c.close(ctx)
		return 0, err
	}
	rows, err := settle(ctx, c, err)
	if err == nil {
		e.n.Filtered.Add(dropped)
	}
	return rows, err
}

// windowsByTime reads ws, consecutive windows none of them done, by time
// windows as one range, the gap left out, and commits each window once
// complete, calling committed after it (see the policy). The error names
// the window in progress. Its six parameters are the run of windows, the
// two bounds that leave records out (upper key, gap) and two ways out of
// it (arrived, committed): see backfill's comment for how they will fold.
func (e *endpointRun) windowsByTime(ctx context.Context, ws []Window, upper int64, gap paging.Gap, arrived *int64, committed func(rows int64)) error {
	from, to := mustWall(ws[0].From), mustWall(ws[len(ws)-1].To)
	if gap.From.Before(to) && gap.To.After(gap.From) {
		e.note(fmt.Sprintf("records dated after %s (now at the PBX less EXPORT_SETTLE%s) up to %s were left to the nightly run, still arriving: the windows reaching past it are marked done without them",
			gap.From.Format(record.WallLayout), e.unsettledWhy(ctx), gap.To.Format(record.WallLayout)))
	}
	// A record is read more than once (a window cut, a second read by
	// offset), so conversion warnings are counted again, for the rows
	// committed only.
	scratch := &record.Warnings{}
	r := e.reader(nil, e.x.Concurrency)
	r.Rows = (&record.Converter{Endpoint: e.ep, Zone: e.x.Zone, Warnings: scratch}).Rows
	b := &timeBatches{e: e, ctx: ctx, ws: ws, upper: upper, arrived: arrived, scratch: scratch, recount: e.converter(), committed: committed}
	err := (&paging.TimeWindows{Reader: r, Unsettled: gap}).Read(ctx, from, to, b.hand)
	for err == nil && b.cur < len(ws) {
		err = b.commit()
	}
	if err == nil {
		return nil
	}
	if b.c != nil {
		_, err = settle(ctx, b.c, err) // aborts the window in progress
	}
	w := ws[min(b.cur, len(ws)-1)]
	return fmt.Errorf("window %s to %s: %w; the windows before it are done: the next backfill resumes at it", w.From, w.To, err)
}

// unsettledWhy says, when neither WILDIX_TIMEZONE nor an offset stored by
// the nightly run says where the PBX's present is, how the watermark was
// taken.
func (e *endpointRun) unsettledWhy(ctx context.Context) string {
	if st, err := e.x.loadCursor(ctx, e.ep); e.x.Zone == nil && (err != nil || st.UTCOffset == nil) {
		return ", in the zone furthest behind UTC: WILDIX_TIMEZONE is not set and no nightly run stored the PBX's UTC offset"
	}
	return ""
}

// timeBatches splits the records a time windows read hands over among
// consecutive backfill windows: a window's batch is committed with its
// done mark once a record at or after its To comes, or the read ends.
type timeBatches struct {
	e         *endpointRun
	ctx       context.Context
	ws        []Window
	upper     int64
	cur       int            // the window being filled
	c         *committer     // its batch, nil until needed
	seen      map[int64]bool // its keys
	dropped   int64          // its records above the upper key
	arrived   *int64         // those of the windows committed
	scratch   *record.Warnings
	recount   *record.Converter
	committed func(rows int64)
}

// hand takes the records of a window read whole, later than every record
// handed before.
func (b *timeBatches) hand(rows []record.Row) error {
	slices.SortFunc(rows, func(p, q record.Row) int { return cmp.Or(cmp.Compare(p.Wall, q.Wall), cmp.Compare(p.Cursor, q.Cursor)) })
	for len(rows) > 0 {
		if b.cur == len(b.ws) {
			return fmt.Errorf("a record dated %s after the last window", rows[0].Wall)
		}
		to := b.ws[b.cur].To
		n, _ := slices.BinarySearchFunc(rows, to, func(r record.Row, to string) int { return cmp.Compare(r.Wall, to) })
		if err := b.write(rows[:n]); err != nil {
			return err
		}
		if rows = rows[n:]; len(rows) > 0 {
			if err := b.commit(); err != nil {
				return err
			}
		}
	}
	return nil
}

// write queues rows of the current window up to the upper key; a key sent
// twice within a window (its answers not stable) fails it.
func (b *timeBatches) write(rows []record.Row) error {
	if b.c == nil {
		b.c, b.seen, b.dropped = b.e.committer(b.ctx, b.e.batch(b.ws[b.cur]).info, 0), map[int64]bool{}, 0
	}
	keep := rows[:0]
	for _, row := range rows {
		switch {
		case row.Cursor > b.upper:
			b.dropped++
		case b.seen[row.Cursor]:
			return fmt.Errorf("the PBX sent %s %d twice: its answers are not stable", b.e.ep.Cursor, row.Cursor)
		default:
			b.seen[row.Cursor] = true
			keep = append(keep, row)
		}
	}
	if b.scratch.Total() > 0 && len(keep) > 0 {
		raws := make([]json.RawMessage, len(keep))
		for i, row := range keep {
			raws[i] = row.Raw
		}
		if _, err := b.recount.Rows(raws); err != nil {
			return err
		}
	}
	if !b.c.write(keep) {
		return errLoader
	}
	return nil
}

// commit commits the current window with its done mark and moves to the
// next.
func (b *timeBatches) commit() error {
	if b.c == nil {
		if err := b.write(nil); err != nil {
			return err
		}
	}
	c := b.c
	b.c = nil
	c.commit(b.e.batch(b.ws[b.cur]).state(c.pending()))
	rows, err := settle(b.ctx, c, nil)
	if err != nil {
		return err
	}
	*b.arrived += b.dropped
	b.cur++
	b.committed(rows)
	return nil
}
