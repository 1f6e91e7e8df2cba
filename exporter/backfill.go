package exporter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/url"
	"strconv"
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
// The ranges are the windows, each read by the ladder (window) up to the
// newest key when the backfill starts: every window is read the same way
// as far as the PBX's answers have shown, what one window learnt holding
// for the next.
func (e *endpointRun) backfill(ctx context.Context, windows []Window, o BackfillOptions) {
	res := e.res
	if e.ep.TimeField == "" || e.ep.Cursor == "" {
		res.Err = fmt.Errorf("cannot be backfilled: it has no time field; it is a snapshot, which every run exports whole")
		return
	}
	upper, found, err := e.ladder(nil, 1, paging.ByOffset).Newest(ctx, 0)
	switch {
	case errors.As(err, new(*paging.IgnoredError)):
		// No key bound can be proven: the windows are read by offset,
		// each checked against its total, whatever their keys.
		res.Paging, upper, found = paging.ByOffset.String(), math.MaxInt64, true
	case err != nil:
		res.Err = err
	}
	for wi, w := range windows {
		if res.Err != nil || !found {
			break
		}
		if ctx.Err() != nil {
			res.Err = context.Cause(ctx)
			break
		}
		done, err := e.windowDone(ctx, w, o.Force)
		switch {
		case err != nil:
			res.Err = err
		case done:
			res.Skipped++
		default:
			rows, err := e.window(ctx, w, upper)
			if err != nil {
				res.Err = fmt.Errorf("window %s to %s: %w", w.From, w.To, err)
				break
			}
			res.Windows++
			res.Rows += rows
		}
		if o.Progress != nil && res.Err == nil {
			o.Progress(BackfillProgress{Endpoint: e.ep.Name, Window: w, Done: wi + 1, Total: len(windows),
				Rows: res.Rows, Skipped: done, Elapsed: time.Since(e.began)})
		}
	}
	if f := e.n.Filtered.Load(); f > 0 {
		e.note(fmt.Sprintf("the PBX sent %d records outside the asked window or key bounds, dropped (counted as filtered): does it ignore filter[%s]?", f, e.ep.TimeField))
	}
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

// Policy: backfill window.
//
// The range is the window's records up to the backfill's upper key, asked
// for [From, To] and kept for [From, To), so a record on a boundary lands
// in one window whether the PBX's bound is inclusive or not. One window is
// one batch, committed with its "done" mark only when the window was read
// whole: by key, from 1 to the upper key, so that a record deleted
// meanwhile cannot shift a page, or by key ranges (the ladder); a PBX that
// ignores the key filter gets the window read by offset instead, committed
// only when proven whole (paging.Offset).
func (e *endpointRun) window(ctx context.Context, w Window, upper int64) (int64, error) {
	we := *e
	we.log = e.log.With("window", w.From)
	info := BatchInfo{PBX: e.x.PBX, RunID: e.runID, Endpoint: e.ep, StateKey: w.StateKey(e.ep.Name), Window: &w}
	state := func(rows int64) []byte {
		st, _ := json.Marshal(windowState{Done: true, Rows: rows, RunID: e.runID, At: time.Now().UTC()})
		return st
	}
	// A record on To is the next window's; one outside [From, To] or
	// above the upper key was not asked for: dropped, and counted when the
	// window commits (a read thrown away counts nothing).
	var dropped int64
	keep := func(row record.Row) bool {
		if row.Wall < w.From || row.Wall > w.To || row.Cursor > upper {
			dropped++
			return false
		}
		return row.Wall < w.To
	}
	times := e.ep.TimeQuery(w.From, w.To)
	if e.learnt.FilterHonoured() {
		rows, err := we.windowByKey(ctx, windowBatch{info: info, times: times, upper: upper, keep: keep, state: state})
		if !errors.As(err, new(*paging.IgnoredError)) {
			if err == nil {
				e.n.Filtered.Add(dropped)
			}
			return rows, err
		}
		dropped = 0
	}
	e.res.Paging = paging.ByOffset.String()
	q := url.Values{"sort": {e.ep.Sort}, "dir": {"ASC"}, "filter[" + e.ep.Cursor + "][to]": {strconv.FormatInt(upper, 10)}}
	for k, v := range times {
		q[k] = v
	}
	rows, read, err := we.whole(ctx, info, q, keep, state)
	e.res.Vanished += read.Vanished
	if err == nil {
		e.n.Filtered.Add(dropped)
	}
	if errors.Is(err, paging.ErrChanged) {
		err = fmt.Errorf("%w: the window was not committed and is redone on the next run", err)
	}
	return rows, err
}

// windowBatch is a backfill window as one batch.
type windowBatch struct {
	info  BatchInfo
	times url.Values // the window's time bounds, as asked
	upper int64      // the backfill's newest key
	keep  func(record.Row) bool
	state func(rows int64) []byte // the window's done mark
}

// windowByKey reads the window from key 1 to its upper key down the
// ladder's key rungs into one batch. An *paging.IgnoredError leaves
// nothing committed: the window is for offset.
func (e *endpointRun) windowByKey(ctx context.Context, w windowBatch) (int64, error) {
	c := e.committer(ctx, w.info, 0)
	_, err := e.ladder(w.times, 1, paging.ByOffset).Read(ctx, paging.Range{Lo: 1, Hi: w.upper}, func(sp paging.Span) error {
		rows := sp.Rows[:0]
		for _, row := range sp.Rows {
			if w.keep(row) {
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
		c.commit(w.state(c.pending()))
	}
	if errors.As(err, new(*paging.IgnoredError)) {
		c.close(ctx)
		return 0, err
	}
	return settle(ctx, c, err)
}
