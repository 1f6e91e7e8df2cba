package exporter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

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
// The records above the cursor are read by key (byKey) up to the newest
// key when the run starts; records arriving later are left to the next
// run. If the PBX turns out to ignore sort=key, what was proven is
// committed and the rest is read by key ranges, each read whole. If it
// ignores filter[key] (or pages too small to prove a range), the rest is
// read by time windows (byTime), and so are later runs. If the PBX ignores
// the time filter as well, the run fails. The endpoint is ok only when its
// whole range was read.
func (x *Exporter) incremental(ctx context.Context, runID string, ep *record.Endpoint) (res EndpointResult) {
	res.Endpoint = ep.Name
	n := &Counters{}
	defer tally(&res, n, time.Now())
	log := x.log().With("endpoint", ep.Name, "run_id", runID)
	st, err := x.loadCursor(ctx, ep)
	if err != nil {
		res.Err = err
		return res
	}
	res.Cursor = st.Cursor
	c := x.newCommitter(ctx, BatchInfo{PBX: x.PBX, RunID: runID, Endpoint: ep, StateKey: ep.Name}, n, x.CommitGrace)
	sizes := newLearnt(x.PageSize)
	if st.From != boundUnknown {
		sizes.setFrom(st.From)
	}
	if st.From == boundExclusive && st.Time == "" {
		note(&res, log, "the stored state says filter["+ep.Cursor+"][from] excludes its bound: each request asks from one below")
	}
	if st.Time != "" {
		note(&res, log, "the stored state pages by time windows: an earlier run found the PBX ignores filter["+ep.Cursor+"] or sort="+ep.Cursor)
		err = x.byTime(ctx, c, ep, st, &res, sizes, n, log)
		return x.endIncremental(ctx, c, res, err)
	}
	// A key below 1 is named in the notes at once, and fails the run
	// once its other records are in: a later run, past cursor 0, does not
	// ask again, so one such record never stops the export for good.
	var below *record.RecordError
	if st.Cursor == 0 {
		if below, err = x.belowOne(ctx, ep, n); below != nil {
			note(&res, log, below.Error())
		}
	}
	if err == nil {
		st.Cursor, err = x.byKey(ctx, c, ep, st.Cursor, &res, sizes, n, log)
	}
	var le *ladderError
	if errors.As(err, &le) {
		note(&res, log, fmt.Sprintf("the PBX ignores %s: paging by filter[%s] time windows", le.Ignored.what(ep.Cursor), ep.TimeField))
		err = x.byTime(ctx, c, ep, st, &res, sizes, n, log)
	}
	if res = x.endIncremental(ctx, c, res, err); res.Err == nil && below != nil {
		res.Err = below
	}
	return res
}

// byKey reads (from, upper] by key (keyReader). Spans come in key order,
// each read to its end, so committing the span's upper key every BatchSize
// rows never moves the cursor past a record not read, whatever the PBX
// deletes meanwhile. It returns the cursor committed last; on a
// *ladderError, the spans read before it are committed.
func (x *Exporter) byKey(ctx context.Context, c *committer, ep *record.Endpoint, from int64, res *EndpointResult,
	sizes *learnt, n *Counters, log *slog.Logger) (int64, error) {
	res.Paging = byKey.String()
	upper, found, err := x.upperBound(ctx, ep, from, n, log, res, sizes)
	if err != nil || !found || upper <= from {
		log.Debug("nothing new", "cursor", from)
		return from, err
	}
	state := func(cursor int64) []byte {
		b, _ := json.Marshal(cursorState{Cursor: cursor, RunID: c.info.RunID, At: time.Now().UTC(), From: sizes.fromBound()})
		return b
	}
	var read, total int64 = 0, -1
	done := from // the upper key of the last span handed over
	kr := &keyReader{Client: x.Client, Endpoint: ep, Concurrency: x.Concurrency, MaxPages: x.MaxPages,
		Counters: n, Log: log, Rows: (&record.Converter{Endpoint: ep, Zone: x.Zone, Warnings: &n.Warnings}).Rows, Learnt: sizes}
	handle := func(sp span) error {
		if total < 0 {
			total = sp.Total
		}
		if !c.write(sp.Rows) {
			return errLoader
		}
		read, done = read+int64(len(sp.Rows)), sp.Hi
		if c.pending() >= int64(x.BatchSize) && !c.commit(state(done)) {
			return errLoader
		}
		return nil
	}
	err = kr.Read(ctx, from+1, upper, handle)
	var le *ladderError
	if errors.As(err, &le) && le.Ignored == sortParam && !kr.Unsorted && ctx.Err() == nil {
		// The key filter still works: ranges of keys, each read whole,
		// need no order.
		res.Paging = byKeyRanges.String()
		note(res, log, fmt.Sprintf("the PBX ignores sort=%s but honours filter[%s]: paging by %s ranges, each read whole", ep.Cursor, ep.Cursor, ep.Cursor))
		kr.Unsorted = true
		if total < 0 {
			total, err = kr.rangeTotal(ctx, done+1, upper)
		}
		if err == nil {
			err = kr.Read(ctx, done+1, upper, handle)
		}
	}
	if ask, capped := sizes.capped(); capped {
		if !kr.Unsorted {
			res.Paging = byKeyCapped.String()
		}
		note(res, log, fmt.Sprintf("the PBX answers at most %d records a page: paging at its size", ask))
	}
	switch {
	case err == nil:
		// Records the first page's total announced in the range, and not
		// read, were deleted while the run read it.
		res.Vanished = max(0, total-read)
		c.commit(state(upper))
		return upper, nil
	case errors.As(err, &le) && done > from:
		c.commit(state(done))
	case ctx.Err() != nil && c.pending() > 0 && x.CommitGrace > 0:
		// Interrupted: keep the spans already written, with their cursor,
		// if the sink manages within the grace period.
		c.commit(state(done))
	}
	return done, err
}

// endIncremental closes the committer and reports what was committed.
func (x *Exporter) endIncremental(ctx context.Context, c *committer, res EndpointResult, err error) EndpointResult {
	rows, state, lerr := c.close(ctx)
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
		x.log().Info("interrupted; rows written so far committed", "endpoint", res.Endpoint, "cursor", res.Cursor)
	}
	return res
}
