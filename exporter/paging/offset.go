package paging

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/wildix-export/wildix-export/exporter/record"
)

// ErrChanged is a read by offset (a snapshot, a window, a busy second)
// whose records changed while it was read, so that it cannot be proven
// whole: nothing of it may be committed.
var ErrChanged = errors.New("records changed while paging")

// Offset reads every record of a query by offset (start/count): the way
// snapshots are read (small lists without a growing key) and backfill
// windows of a PBX that ignores the key filter.
//
// The proof that a read holds every record, and each refusal (ErrChanged):
//   - paging ended where the total said, or without a total on an empty
//     page (else the read is incomplete);
//   - as many distinct keys as the total announced (a key read twice means
//     the pages shifted and another was missed);
//   - over more than one page, or without a total, a second read (keys
//     only) holding exactly the keys of the first: a record deleted and
//     another added between two pages keep the count right with a
//     survivor unread. Only a read in one answer is whole by itself. A
//     record the second read adds above the first's highest cursor is a
//     record that arrived meanwhile (cursors only grow; read by sort=key it
//     lands after every offset), not one the first read missed.
type Offset struct {
	*Reader
	PageSize int
	// Zone converts the second read's records, whose warnings the first
	// read counted (WILDIX_TIMEZONE, nil when unknown).
	Zone *time.Location
}

// OffsetResult is what a read by offset found besides its rows.
type OffsetResult struct {
	// Vanished counts records the total announced that were not read.
	Vanished int64
	// NoTotal: the PBX sent no total, so the read was made twice.
	NoTotal bool
}

// Whole reads the query and calls fn with each page's rows, a key sent
// twice kept once; it returns nil only when the read was proven whole
// (fn's rows may then be committed), an error wrapping ErrChanged when it
// could not be, or fn's or a request's error.
func (o *Offset) Whole(ctx context.Context, fn func([]record.Row) error) (OffsetResult, error) {
	var res OffsetResult
	seen := map[string]bool{}
	var newest int64 // the highest cursor read, 0 without one
	pr, err := o.pager(o.Rows).Run(ctx, func(pg offsetPage) error {
		out := make([]record.Row, 0, len(pg.Rows))
		for _, row := range pg.Rows {
			if seen[row.Key] {
				o.log().Warn("record sent twice; keeping the first", "key", row.Key, "page", pg.Number)
				continue
			}
			seen[row.Key] = true
			newest = max(newest, row.Cursor)
			out = append(out, row)
		}
		return fn(out)
	})
	distinct := int64(len(seen))
	if pr.Total > distinct {
		res.Vanished = pr.Total - distinct
	}
	switch {
	case err != nil:
		return res, err
	case !pr.Complete:
		return res, fmt.Errorf("%w (read %d of %d)", ErrChanged, pr.Records, pr.Total)
	case pr.Changed && newest == 0:
		// Records with a cursor are read again below, where records that
		// arrived meanwhile are told from records a shift hid.
		return res, fmt.Errorf("%w (the total announced changed)", ErrChanged)
	case pr.Total >= 0 && distinct < pr.Total:
		return res, fmt.Errorf("%w (%d distinct of %d)", ErrChanged, distinct, pr.Total)
	case pr.Total >= 0 && pr.Pages <= 1:
		return res, nil
	}
	res.NoTotal = pr.Total < 0
	if !res.NoTotal {
		o.log().Debug("read in more than one page: reading the keys again to compare", "pages", pr.Pages)
	}
	// Its conversion warnings were counted by the first read.
	conv := &record.Converter{Endpoint: o.Endpoint, Zone: o.Zone, Warnings: &record.Warnings{}}
	return res, o.sameKeys(ctx, o.pager(conv.Rows), seen, pr.Total, newest)
}

func (o *Offset) pager(rows func([]json.RawMessage) ([]record.Row, error)) *pager {
	return &pager{Lister: o.Lister, Path: o.Endpoint.Path, Query: o.Query, PageSize: o.PageSize, Concurrency: o.Concurrency,
		MaxPages: o.MaxPages, Counters: o.Counters, Log: o.Log, Rows: rows}
}

// sameKeys reads the query again and reports ErrChanged unless it holds
// exactly the keys of first, with the same total announced. With newest,
// the highest cursor of the first read, a record the second read adds
// above it arrived meanwhile: a record missed by a shift means one read
// before it went, and that one is missing from the second read. The
// totals then say nothing.
func (o *Offset) sameKeys(ctx context.Context, p *pager, first map[string]bool, total, newest int64) error {
	missing, added := 0, 0
	again := map[string]bool{}
	pr, err := p.Run(ctx, func(pg offsetPage) error {
		for _, row := range pg.Rows {
			switch {
			case again[row.Key]:
				continue
			case first[row.Key]:
			case newest > 0 && row.Cursor > newest:
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
		return fmt.Errorf("%w (the second read ended otherwise than the first)", ErrChanged)
	}
	for k := range first {
		if !again[k] {
			missing++
		}
	}
	if missing+added > 0 {
		return fmt.Errorf("%w (two reads differ: %d keys only in the first, %d only in the second)", ErrChanged, missing, added)
	}
	return nil
}
