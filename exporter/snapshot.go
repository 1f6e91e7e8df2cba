package exporter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"github.com/wildix-export/wildix-export/exporter/record"
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
// snapshot is marked deleted, so an incomplete one must never commit. One
// answer is whole by itself. Over several pages a count proves too little
// (a record deleted and another added between two pages shift the later
// offsets, hide a survivor and keep the total right), and a PBX that sends
// no total gives nothing to count against: the snapshot is then read
// twice (keys only the second time) and committed only when both reads
// hold the same keys. If the records changed while paging, the snapshot
// is read once more; if they change again, the endpoint fails, nothing is
// committed, and the next run tries again.
func (x *Exporter) snapshot(ctx context.Context, runID string, ep *record.Endpoint) (res EndpointResult) {
	res.Endpoint, res.Paging = ep.Name, byOffset.String()
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
		var twice bool
		res.Rows, res.Vanished, twice, res.Err = x.readWhole(ctx, info, q, n, log, nil, state)
		if twice {
			note(&res, log, "the PBX sends no total: the snapshot is read twice and committed only when both reads hold the same records")
		}
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
// committed with its state only when every record was proven read (see
// readWhole). keep, when set, filters the rows; a key sent twice is kept
// once. vanished counts records the total announced that were not read.
func (x *Exporter) wholeBatch(ctx context.Context, info BatchInfo, q url.Values, n *Counters, log *slog.Logger,
	keep func(record.Row) bool, state func(rows int64) []byte) (rows, vanished int64, err error) {
	rows, vanished, _, err = x.readWhole(ctx, info, q, n, log, keep, state)
	return rows, vanished, err
}

// readWhole is wholeBatch, reporting also whether the PBX sent no total.
// The batch commits only when every record was read: as many distinct
// keys as the total announced and, when the read took more than one page
// or the PBX sent no total, a second read (keys only, the batch held open)
// giving exactly the keys of the first; otherwise the read is errChanged
// and nothing commits. twice is set when the PBX sent no total.
func (x *Exporter) readWhole(ctx context.Context, info BatchInfo, q url.Values, n *Counters, log *slog.Logger,
	keep func(record.Row) bool, state func(rows int64) []byte) (rows, vanished int64, twice bool, err error) {
	c := x.newCommitter(ctx, info, n, 0)
	seen := map[string]bool{}
	var newest int64 // the highest cursor read, 0 without one
	conv := &record.Converter{Endpoint: info.Endpoint, Zone: x.Zone, Warnings: &n.Warnings}
	pager := func(conv *record.Converter) *Pager {
		return &Pager{Client: x.Client, Path: info.Endpoint.Path, Query: q, PageSize: x.PageSize, Concurrency: x.Concurrency,
			MaxPages: x.MaxPages, Counters: n, Log: log, Rows: conv.Rows}
	}
	pr, err := pager(conv).Run(ctx, func(pg Page) error {
		if c.failed() {
			return errLoader
		}
		out := make([]record.Row, 0, len(pg.Rows))
		for _, row := range pg.Rows {
			if seen[row.Key] {
				log.Warn("record sent twice; keeping the first", "key", row.Key, "page", pg.Number)
				continue
			}
			seen[row.Key] = true
			newest = max(newest, row.Cursor)
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
	case pr.Changed && newest == 0:
		// Records with a cursor are read again below, where calls that
		// arrived meanwhile are told from records a shift hid.
		err = fmt.Errorf("%w (the total announced changed)", errChanged)
	case pr.Total >= 0 && distinct < pr.Total:
		// A record read twice means the pages shifted: another was missed.
		err = fmt.Errorf("%w (%d distinct of %d)", errChanged, distinct, pr.Total)
	case pr.Total < 0 || pr.Pages > 1:
		// No total to prove against, or more than one answer: a record
		// deleted and another added between two pages keep the count
		// right with a survivor unread. Read again and compare the keys;
		// only a read in one answer is whole by itself.
		twice = pr.Total < 0
		if !twice {
			log.Debug("read in more than one page: reading the keys again to compare", "pages", pr.Pages)
		}
		// Its conversion warnings were counted by the first read.
		err = x.sameKeys(ctx, pager(&record.Converter{Endpoint: info.Endpoint, Zone: x.Zone, Warnings: &record.Warnings{}}), seen, pr.Total, newest)
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
		return 0, vanished, twice, err
	case lerr != nil:
		return 0, vanished, twice, lerr
	case err != nil:
		return 0, vanished, twice, err
	case st == nil:
		return 0, vanished, twice, errors.New("commit: nothing committed")
	}
	return committed, vanished, twice, nil
}

// sameKeys reads the query again, keys only, and reports errChanged unless
// it holds exactly the keys of first, with the same total announced. With
// newest, the highest cursor of the first read, a record the second read
// adds above it is a call that arrived meanwhile (cursors only grow; read
// by sort=id, it lands after every offset), not one the first read missed:
// a record missed by a shift means one read before it went, and that one
// is missing from the second read. The totals then say nothing.
func (x *Exporter) sameKeys(ctx context.Context, p *Pager, first map[string]bool, total, newest int64) error {
	missing, added, arrived := 0, 0, int64(0)
	again := map[string]bool{}
	pr, err := p.Run(ctx, func(pg Page) error {
		for _, row := range pg.Rows {
			switch {
			case again[row.Key]:
				continue
			case first[row.Key]:
			case newest > 0 && row.Cursor > newest:
				arrived++
			default:
				added++
			}
			again[row.Key] = true
		}
		return nil
	})
	switch {
	case err != nil:
		return fmt.Errorf("second read: %w", err)
	case !pr.Complete || newest == 0 && (pr.Changed || pr.Total != total):
		return fmt.Errorf("%w (the second read ended otherwise than the first)", errChanged)
	}
	for k := range first {
		if !again[k] {
			missing++
		}
	}
	if missing+added > 0 {
		return fmt.Errorf("%w (two reads differ: %d keys only in the first, %d only in the second)", errChanged, missing, added)
	}
	return nil
}
