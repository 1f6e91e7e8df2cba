package exporter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"time"
)

// snapshotState is the committed state of a snapshot endpoint.
type snapshotState struct {
	Rows  int64     `json:"rows"`
	RunID string    `json:"run_id"`
	At    time.Time `json:"at"`
}

// errChanged is a snapshot or window whose records changed while it was
// paged by offset.
var errChanged = errors.New("records changed while paging")

// Policy: snapshot (colleagues, phonebooks, …).
//
// The endpoint is read whole by offset (these lists are small and have no
// growing key) into one batch, committed only when it holds as many
// distinct keys as the PBX's total: a record missing from a committed
// snapshot is marked deleted, so an incomplete one must never commit. If
// the records changed while paging, the snapshot is read once more; if
// they change again, the endpoint fails and the next run tries again.
func (x *Exporter) snapshot(ctx context.Context, runID string, ep *Endpoint) (res EndpointResult) {
	res.Endpoint, res.Paging = ep.Name, "offset"
	n := &Counters{}
	defer tally(&res, n, time.Now())
	log := x.log().With("endpoint", ep.Name, "run_id", runID)
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
		res.Rows, res.Vanished, res.Err = x.wholeBatch(ctx, info, q, n, log, nil, state)
		if !errors.Is(res.Err, errChanged) || attempt == 2 {
			break
		}
		note(&res, log, "the snapshot changed while it was read: read again")
		info.Seq++
	}
	if errors.Is(res.Err, errChanged) {
		res.Err = fmt.Errorf("%w twice: the snapshot is incomplete, nothing was committed; the next run tries again", res.Err)
	}
	return res
}

// wholeBatch reads every page of a query by offset into one batch,
// committed with its state only when every record was read: as many
// distinct keys as the total announced (or, keep set, a short page or no
// total at all ending the read). keep, when set, filters the rows; a key
// sent twice is kept once. vanished counts records the total announced
// that were not read.
func (x *Exporter) wholeBatch(ctx context.Context, info BatchInfo, q url.Values, n *Counters, log *slog.Logger,
	keep func(Row) bool, state func(rows int64) []byte) (rows, vanished int64, err error) {
	c := x.newCommitter(ctx, info, n, 0)
	seen := map[string]bool{}
	conv := &Converter{Endpoint: info.Endpoint, Zone: x.Zone, Warnings: &n.Warnings}
	p := &Pager{Client: x.Client, Path: info.Endpoint.Path, Query: q, PageSize: x.PageSize, Concurrency: x.Concurrency,
		MaxPages: x.MaxPages, Counters: n, Log: log, Rows: conv.Rows}
	pr, err := p.Run(ctx, func(pg Page) error {
		if c.failed() {
			return errLoader
		}
		out := make([]Row, 0, len(pg.Rows))
		for _, row := range pg.Rows {
			if seen[row.Key] {
				log.Warn("record sent twice; keeping the first", "key", row.Key, "page", pg.Number)
				continue
			}
			seen[row.Key] = true
			if keep == nil || keep(row) {
				out = append(out, row)
			}
		}
		if !c.write(out) {
			return errLoader
		}
		return nil
	})
	distinct := int64(len(seen))
	switch {
	case err != nil:
	case !pr.Complete:
		err = fmt.Errorf("%w (read %d of %d)", errChanged, pr.Records, pr.Total)
	case pr.Changed:
		err = fmt.Errorf("%w (the total announced changed)", errChanged)
	case pr.Total >= 0 && distinct < pr.Total:
		// A record read twice means the pages shifted: another was missed.
		err = fmt.Errorf("%w (%d distinct of %d)", errChanged, distinct, pr.Total)
	}
	if pr.Total > distinct {
		vanished = pr.Total - distinct
	}
	if err == nil {
		c.commit(state(c.pending()))
	}
	committed, st, lerr := c.close(ctx)
	switch {
	case err != nil && !errors.Is(err, errLoader):
		return 0, vanished, err
	case lerr != nil:
		return 0, vanished, lerr
	case err != nil:
		return 0, vanished, err
	case st == nil:
		return 0, vanished, errors.New("commit: nothing committed")
	}
	return committed, vanished, nil
}
