package exporter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/wildix-export/wildix-export/exporter/paging"
	"github.com/wildix-export/wildix-export/exporter/record"
)

// snapshotState is the committed state of a snapshot endpoint.
type snapshotState struct {
	Rows  int64     `json:"rows"`
	RunID string    `json:"run_id"`
	At    time.Time `json:"at"`
}

// Policy: snapshot (colleagues, phonebooks, …).
//
// The range is the whole endpoint (these lists are small and have no
// growing key), read by offset (paging.Offset) into one batch, committed
// only when the read is proven whole: a record missing from a committed
// snapshot is marked deleted, so an incomplete one must never commit. If
// the records changed while paging, the snapshot is read once more; if
// they change again, the endpoint fails, nothing is committed, and the
// next run tries again.
func (x *Exporter) snapshot(ctx context.Context, runID string, ep *record.Endpoint) (res EndpointResult) {
	e := x.newRun(runID, ep, &res)
	defer e.tally()
	res.Paging = paging.ByOffset.String()
	q := url.Values{}
	if ep.Sort != "" {
		q = url.Values{"sort": {ep.Sort}, "dir": {"ASC"}}
	}
	info := BatchInfo{PBX: x.PBX, RunID: runID, Endpoint: ep, StateKey: ep.Name, Snapshot: true}
	state := func(rows int64) []byte {
		st, _ := json.Marshal(snapshotState{Rows: rows, RunID: runID, At: time.Now().UTC()})
		return st
	}
	for attempt := 1; ; attempt++ {
		var read paging.OffsetResult
		res.Rows, read, res.Err = e.whole(ctx, info, q, nil, state)
		res.Vanished = read.Vanished
		if read.NoTotal {
			e.note("the PBX sends no total: the snapshot is read twice and committed only when both reads hold the same records")
		}
		if !errors.Is(res.Err, paging.ErrChanged) || attempt == 2 {
			break
		}
		e.note("the snapshot changed while it was read: read again")
		info.Seq++
	}
	if errors.Is(res.Err, paging.ErrChanged) {
		res.Err = fmt.Errorf("%w twice: the snapshot is incomplete, nothing was committed; the next run tries again", res.Err)
	}
	return res
}

// whole reads the query q by offset into one batch, committed with its
// state only when every record was proven read (paging.Offset). keep,
// when set, filters the rows.
func (e *endpointRun) whole(ctx context.Context, info BatchInfo, q url.Values, keep func(record.Row) bool,
	state func(rows int64) []byte) (int64, paging.OffsetResult, error) {
	c := e.committer(ctx, info, 0)
	o := &paging.Offset{Reader: e.reader(q, e.x.Concurrency), PageSize: e.x.PageSize, Zone: e.x.Zone}
	read, err := o.Whole(ctx, func(rows []record.Row) error {
		if c.failed() {
			return errLoader
		}
		out := rows[:0]
		for _, row := range rows {
			if keep == nil || keep(row) {
				out = append(out, row)
			}
		}
		if !c.write(out) {
			return errLoader
		}
		return nil
	})
	if err == nil {
		c.commit(state(c.pending()))
	}
	rows, err := settle(ctx, c, err)
	return rows, read, err
}

// settle closes a committer of one batch, read with err, and returns the
// rows it committed or the error that stopped it: the read's, unless the
// sink failed first.
func settle(ctx context.Context, c *committer, err error) (int64, error) {
	rows, st, lerr := c.close(ctx)
	switch {
	case err != nil && !errors.Is(err, errLoader):
		return 0, err
	case lerr != nil:
		return 0, lerr
	case err != nil:
		return 0, err
	case st == nil:
		return 0, errors.New("commit: nothing committed")
	}
	return rows, nil
}
