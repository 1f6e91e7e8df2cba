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
		ep := &endpoints[i]
		began := time.Now()
		res := EndpointResult{Endpoint: ep.Name}
		n := &Counters{}
		if ep.TimeField == "" || ep.Cursor == "" {
			res.Err = fmt.Errorf("cannot be backfilled: it has no time field; it is a snapshot, which every run exports whole")
			x.finishEndpoint(r, res)
			continue
		}
		log := x.log().With("endpoint", ep.Name, "run_id", r.ID)
		sizes := newLearnt(x.PageSize)
		upper, found, err := x.upperBound(ctx, ep, 0, n, log, &res, sizes)
		var le *ladderError
		switch {
		case errors.As(err, &le):
			// No key bound can be proven: the windows are read by offset,
			// each checked against its total, whatever their keys.
			note(&res, log, fmt.Sprintf("the PBX ignores %s: backfill windows are read by offset", le.Ignored.what(ep.Cursor)))
			sizes.readBy(byOffset)
			res.Paging, upper, found = byOffset.String(), math.MaxInt64, true
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
			done := false
			if !o.Force {
				b, err := x.Sink.State(ctx, x.PBX, w.StateKey(ep.Name))
				if err != nil {
					res.Err = err
					break
				}
				var st windowState
				done = b != nil && json.Unmarshal(b, &st) == nil && st.Done
			}
			var rows int64
			if done {
				res.Skipped++
			} else {
				rows, err = x.window(ctx, r.ID, ep, w, upper, n, sizes, &res)
				if err != nil {
					res.Err = fmt.Errorf("window %s to %s: %w", w.From, w.To, err)
					break
				}
				res.Windows++
				res.Rows += rows
			}
			if o.Progress != nil {
				o.Progress(BackfillProgress{Endpoint: ep.Name, Window: w, Done: wi + 1, Total: len(windows),
					Rows: res.Rows, Skipped: done, Elapsed: time.Since(began)})
			}
		}
		if f := n.Filtered.Load(); f > 0 {
			note(&res, log, fmt.Sprintf("the PBX sent %d records outside the asked window or key bounds, dropped (counted as filtered): does it ignore filter[%s]?", f, ep.TimeField))
		}
		tally(&res, n, began)
		x.finishEndpoint(r, res)
	}
	x.finish(ctx, r)
	return r
}

// Policy: backfill window.
//
// One window is one batch, committed with its "done" mark only when the
// window was read whole. The PBX is asked for [From, To] and the rows are
// kept for [From, To), so a record on a boundary lands in one window
// whether the PBX's bound is inclusive or not. Inside the window the
// records are read by key, from 1 to the run's upper key, so that a
// record deleted meanwhile cannot shift a page; a PBX that ignores the sort
// but not the key filter gets it read by key ranges, each read whole; one
// that ignores the key filter gets the window read by offset instead,
// committed only if
// it held as many distinct keys as the PBX announced and, over several
// pages, a second read found the same keys (calls that arrived meanwhile
// aside, see sameKeys).
func (x *Exporter) window(ctx context.Context, runID string, ep *record.Endpoint, w Window, upper int64, n *Counters,
	sizes *learnt, res *EndpointResult) (int64, error) {
	log := x.log().With("endpoint", ep.Name, "run_id", runID, "window", w.From)
	info := BatchInfo{PBX: x.PBX, RunID: runID, Endpoint: ep, StateKey: w.StateKey(ep.Name), Window: &w}
	state := func(rows int64) []byte {
		st, _ := json.Marshal(windowState{Done: true, Rows: rows, RunID: runID, At: time.Now().UTC()})
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
	times := url.Values{"filter[" + ep.TimeField + "][from]": {w.From}, "filter[" + ep.TimeField + "][to]": {w.To}}
	for sizes.strategy() != byOffset {
		// By key, in key order; on a PBX that ignores the sort, by key
		// ranges each read whole (keyReader.Unsorted).
		unsorted := sizes.strategy() == byKeyRanges
		res.Paging = sizes.strategy().String()
		c := x.newCommitter(ctx, info, n, 0)
		kr := &keyReader{Client: x.Client, Endpoint: ep, Query: times, Concurrency: 1, MaxPages: x.MaxPages, Unsorted: unsorted,
			Counters: n, Log: log, Rows: (&record.Converter{Endpoint: ep, Zone: x.Zone, Warnings: &n.Warnings}).Rows, Learnt: sizes}
		err := kr.Read(ctx, 1, upper, func(sp span) error {
			rows := sp.Rows[:0]
			for _, row := range sp.Rows {
				if keep(row) {
					rows = append(rows, row)
				}
			}
			if !c.write(rows) {
				return errLoader
			}
			return nil
		})
		if err == nil {
			c.commit(state(c.pending()))
		}
		rows, st, lerr := c.close(ctx)
		var le *ladderError
		switch {
		case errors.As(err, &le) && le.Ignored == sortParam && !unsorted:
			note(res, log, fmt.Sprintf("the PBX ignores sort=%s but honours filter[%s]: backfill windows are read by %s ranges, each read whole", ep.Cursor, ep.Cursor, ep.Cursor))
			sizes.readBy(byKeyRanges)
			res.Paging, dropped = byKeyRanges.String(), 0
		case errors.As(err, &le):
			note(res, log, fmt.Sprintf("the PBX ignores %s: backfill windows are read by offset", le.Ignored.what(ep.Cursor)))
			sizes.readBy(byOffset)
			res.Paging, dropped = byOffset.String(), 0
		case err != nil && !errors.Is(err, errLoader):
			return 0, err
		case lerr != nil:
			return 0, lerr
		case err != nil:
			return 0, err
		case st == nil:
			return 0, errors.New("commit: nothing committed")
		default:
			n.Filtered.Add(dropped)
			return rows, nil
		}
	}
	q := url.Values{"sort": {ep.Sort}, "dir": {"ASC"}, "filter[" + ep.Cursor + "][to]": {strconv.FormatInt(upper, 10)}}
	for k, v := range times {
		q[k] = v
	}
	rows, vanished, err := x.wholeBatch(ctx, info, q, n, log, keep, state)
	res.Vanished += vanished
	if err == nil {
		n.Filtered.Add(dropped)
	}
	if errors.Is(err, errChanged) {
		err = fmt.Errorf("%w: the window was not committed and is redone on the next run", err)
	}
	return rows, err
}
