package paging

import (
	"context"
	"fmt"
	"maps"
	"net/url"
	"strconv"
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
//     cut it; any other window is halved, down to one second;
//   - a second holding more than a page is read by offset (sorted by key)
//     until two reads in a row hold the same keys, at most three times,
//     else ErrChanged; a PBX answering the same page for two starts
//     ignores start, and such a second cannot be read.
//
// A record is read more than once (a window halved, a second read again),
// so the caller converts with warnings it counts for the rows it keeps.
type TimeWindows struct {
	*Reader
	pages int
}

func (t *TimeWindows) fetch(ctx context.Context, a, b time.Time, start, ask int64) (*pbx.ListPage, []record.Row, error) {
	tf := t.Endpoint.TimeField
	q := url.Values{}
	q.Set("filter["+tf+"][from]", a.Format(record.WallLayout))
	q.Set("filter["+tf+"][to]", b.Format(record.WallLayout))
	if t.Endpoint.Cursor != "" {
		// A unique key: a second holding more than a page is read by
		// offset, and records tied on their time may come in any order.
		q.Set("sort", t.Endpoint.Cursor)
		q.Set("dir", "ASC")
	}
	q.Set("start", strconv.FormatInt(start, 10))
	q.Set("count", strconv.FormatInt(ask, 10))
	where := fmt.Sprintf("window %s to %s", a.Format(record.WallLayout), b.Format(record.WallLayout))
	t.pages++
	if t.MaxPages > 0 && t.pages > t.MaxPages {
		return nil, nil, fmt.Errorf("%s: more than EXPORT_MAX_PAGES=%d pages: stopped; raise it if this PBX really holds that much", where, t.MaxPages)
	}
	pg, err := t.Lister.List(ctx, t.Endpoint.Path, q, &t.Counters.Counts)
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
			return nil, nil, fmt.Errorf("%s: the PBX sent a record with %s %q: it ignores filter[%s] as well as filter[%s] or sort=%s, so no paging can be trusted and nothing more was committed; report this PBX's version",
				where, tf, row.Wall, tf, t.Endpoint.Cursor, t.Endpoint.Cursor)
		}
	}
	return pg, rows, nil
}

// second reads a one-second window holding more than a page, by offset:
// nothing smaller can be asked for. A record of that second deleted (or
// added) meanwhile shifts the later offsets and hides another, so the
// second is read until two reads in a row hold the same keys, at most
// three times; otherwise the run stops with ErrChanged, the time cursor
// before this second.
func (t *TimeWindows) second(ctx context.Context, a, b time.Time, ask int64) ([]record.Row, error) {
	offsets := func() ([]record.Row, map[string]bool, error) {
		var rows []record.Row
		keys := map[string]bool{}
		var last string // the previous page's first key
		for start := int64(0); ; {
			pg, more, err := t.fetch(ctx, a, b, start, ask)
			if err != nil {
				return nil, nil, err
			}
			if len(pg.Records) == 0 {
				return rows, keys, nil
			}
			if start > 0 && more[0].Key == last {
				return nil, nil, fmt.Errorf("the second %s: the PBX sent the same page for start=%d as for the one before: it ignores start, so a second holding more than a page (%d) cannot be read; nothing from it on was committed",
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
	rows, keys, err := offsets()
	for attempt := 1; err == nil; attempt++ {
		again, againKeys, err := offsets()
		switch {
		case err != nil:
			return nil, err
		case maps.Equal(keys, againKeys):
			return rows, nil
		case attempt == 2:
			return nil, fmt.Errorf("%w: the second %s holds more records than a page (%d) and they changed during each of three reads by offset; nothing from it on was committed, the next run reads it again",
				ErrChanged, a.Format(record.WallLayout), ask)
		}
		t.log().Info("records of a one-second window changed while it was read by offset: reading it again", "second", a.Format(record.WallLayout))
		rows, keys = again, againKeys
	}
	return nil, err
}

// Read reads [a, b) and calls fn with its records in time order, window
// by window.
func (t *TimeWindows) Read(ctx context.Context, a, b time.Time, fn func([]record.Row) error) error {
	ask, _ := t.Learnt.sizes()
	pg, rows, err := t.fetch(ctx, a, b, 0, ask)
	if err != nil {
		return err
	}
	got := int64(len(pg.Records))
	_, delivered := t.Learnt.sizes()
	whole := got < ask && pg.Total <= got && (delivered >= ask || got < delivered || got == 0)
	if !whole {
		if b.Sub(a) > time.Second {
			mid := a.Add(b.Sub(a) / 2).Truncate(time.Second)
			if err := t.Read(ctx, a, mid, fn); err != nil {
				return err
			}
			return t.Read(ctx, mid, b, fn)
		}
		if rows, err = t.second(ctx, a, b, ask); err != nil {
			return err
		}
	}
	lo, hi := a.Format(record.WallLayout), b.Format(record.WallLayout)
	keep := rows[:0]
	for _, row := range rows {
		if row.Wall >= lo && row.Wall < hi { // [a, b): a record on b belongs to the next window
			keep = append(keep, row)
		}
	}
	return fn(keep)
}
