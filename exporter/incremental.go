package exporter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/wildix-export/wildix-export/exporter/paging"
	"github.com/wildix-export/wildix-export/exporter/record"
)

// errLoader stops a read when the sink has failed; the sink's own error
// is the one reported.
var errLoader = errors.New("the sink failed")

// note records a detection or guess once per endpoint and run: in the log
// and in the endpoint's result (the run ledger).
func note(res *EndpointResult, log *slog.Logger, text string) {
	for _, n := range res.Notes {
		if n == text {
			return
		}
	}
	res.Notes = append(res.Notes, text)
	log.Warn("paging detection", "note", text)
}

// Policy: incremental (call history).
//
// The range is the records above the cursor up to the newest key when the
// run starts (records arriving later are left to the next run); the
// paging ladder reads it (by key, then by key ranges) and each span is
// committed with its upper key as the cursor (byKey). If the PBX ignores
// filter[key] (or pages are too small to prove a range), the rest is read
// by time windows (byTime), and so are later runs. If the PBX ignores the
// time filter as well, the run fails. The endpoint is ok only when its
// whole range was read.
func (x *Exporter) incremental(ctx context.Context, runID string, ep *record.Endpoint) (res EndpointResult) {
	e := x.newRun(runID, ep, &res)
	defer e.tally()
	st, err := x.loadCursor(ctx, ep)
	if err != nil {
		res.Err = err
		return res
	}
	res.Cursor = st.Cursor
	c := e.committer(ctx, BatchInfo{PBX: x.PBX, RunID: runID, Endpoint: ep, StateKey: ep.Name}, x.CommitGrace)
	e.learnt.SetFrom(st.From)
	if st.Time != "" {
		e.note("the stored state pages by time windows: an earlier run found the PBX ignores filter[" + ep.Cursor + "] or sort=" + ep.Cursor)
		e.endIncremental(ctx, c, e.byTime(ctx, c, st))
		return res
	}
	if st.From == paging.BoundExclusive {
		e.note("the stored state says filter[" + ep.Cursor + "][from] excludes its bound: each request asks from one below")
	}
	// A key below 1 is named in the notes at once, and fails the run
	// once its other records are in: a later run, past cursor 0, does not
	// ask again, so one such record never stops the export for good.
	var below *record.RecordError
	if st.Cursor == 0 {
		if below, err = e.reader(nil, 1).BelowOne(ctx); below != nil {
			e.note(below.Error())
		}
	}
	if err == nil {
		st.Cursor, err = e.byKey(ctx, c, st.Cursor)
	}
	if errors.As(err, new(*paging.IgnoredError)) {
		err = e.byTime(ctx, c, st)
	}
	if e.endIncremental(ctx, c, err); res.Err == nil && below != nil {
		res.Err = below
	}
	return res
}

// byKey reads (from, upper] down the ladder's key rungs, upper being the
// newest key when the run starts. Spans come in key order, each read to
// its end, so committing the span's upper key every BatchSize rows never
// moves the cursor past a record not read, whatever the PBX deletes
// meanwhile. It returns the cursor committed last; on an
// *paging.IgnoredError (the rest is for time windows), the spans read
// before it are committed.
func (e *endpointRun) byKey(ctx context.Context, c *committer, from int64) (int64, error) {
	e.res.Paging = paging.ByKey.String()
	lad := e.ladder(nil, e.x.Concurrency, paging.ByTimeWindows)
	upper, found, err := lad.Newest(ctx, from)
	if err != nil || !found || upper <= from {
		e.log.Debug("nothing new", "cursor", from)
		return from, err
	}
	state := func(cursor int64) []byte {
		b, _ := json.Marshal(cursorState{Cursor: cursor, RunID: e.runID, At: time.Now().UTC(), From: e.learnt.From()})
		return b
	}
	var read int64
	done := from // the upper key of the last span handed over
	total, err := lad.Read(ctx, paging.Range{Lo: from + 1, Hi: upper}, func(sp paging.Span) error {
		if !c.write(sp.Rows) {
			return errLoader
		}
		read, done = read+int64(len(sp.Rows)), sp.Hi
		if c.pending() >= int64(e.x.BatchSize) && !c.commit(state(done)) {
			return errLoader
		}
		return nil
	})
	e.res.Paging = e.learnt.Strategy().String()
	if ask, capped := e.learnt.Capped(); capped {
		e.note(fmt.Sprintf("the PBX answers at most %d records a page: paging at its size", ask))
	}
	switch {
	case err == nil:
		// Records the first page's total announced in the range, and not
		// read, were deleted while the run read it.
		e.res.Vanished = max(0, total-read)
		c.commit(state(upper))
		return upper, nil
	case errors.As(err, new(*paging.IgnoredError)) && done > from:
		c.commit(state(done))
	case ctx.Err() != nil && c.pending() > 0 && e.x.CommitGrace > 0:
		// Interrupted: keep the spans already written, with their cursor,
		// if the sink manages within the grace period.
		c.commit(state(done))
	}
	return done, err
}

// endIncremental closes the committer and reports what was committed.
func (e *endpointRun) endIncremental(ctx context.Context, c *committer, err error) {
	rows, state, lerr := c.close(ctx)
	res := e.res
	res.Rows = rows
	if state != nil {
		var cs cursorState
		if json.Unmarshal(state, &cs) == nil {
			res.Cursor = cs.Cursor
		}
	}
	switch {
	case err != nil && !errors.Is(err, errLoader):
		res.Err = err
	case lerr != nil:
		res.Err = lerr
	case err != nil:
		res.Err = err
	}
	if res.Err != nil && ctx.Err() != nil && state != nil {
		e.log.Info("interrupted; rows written so far committed", "cursor", res.Cursor)
	}
}
