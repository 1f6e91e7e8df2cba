package exporter

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"net/url"
	"strconv"
	"time"

	"github.com/wildix-export/wildix-export/exporter/pbx"
	"github.com/wildix-export/wildix-export/exporter/record"
)

// DefaultLookBack is how far before the newest time read a run by time
// windows reads again: a call record is written when the call ends, so a
// call longer than this that started before the previous run's newest
// record would be missed. Calls on a PBX last at most a few hours.
const DefaultLookBack = 6 * time.Hour

// epochWall is where a first run by time windows starts.
const epochWall = "1970-01-01 00:00:00"

// maxClockSkew is how far ahead of "now at the PBX" a record's time may
// lie and still count as present: a PBX clock a little fast. A record
// dated later (a clock glitch, a test call) is exported but does not move
// the newest time read, or every later run would start past the calls of
// the hours between now and it.
const maxClockSkew = time.Hour

// maxZoneAhead is how far the wall clock of any zone is ahead of UTC.
const maxZoneAhead = 14 * time.Hour

// futureKind names, in the endpoint's warnings, records dated in the future.
const futureKind = "records dated after now at the PBX, exported without moving the time cursor"

// pbxHorizon is the latest PBX-local wall time a record can sensibly
// carry now: now in zone (or in the zone furthest ahead when the PBX's
// zone is not known) plus maxClockSkew.
func pbxHorizon(now time.Time, zone *time.Location) string {
	wall := now.UTC().Add(maxZoneAhead)
	if zone != nil {
		l := now.In(zone)
		wall = time.Date(l.Year(), l.Month(), l.Day(), l.Hour(), l.Minute(), l.Second(), 0, time.UTC)
	}
	return wall.Add(maxClockSkew).Truncate(time.Second).Format(record.WallLayout)
}

// Policy: incremental by time windows, for a PBX that ignores the key
// filter or the sort.
//
// The records are read by filter[time][from]/[to] windows, PBX-local wall
// times, from the look-back before the newest time read so far to a bound
// past any zone's present. A window is read whole in one page: a window
// whose answer is full (or could be cut by a cap) is split in two, and
// the halves read in time order. Each record's key is exported once: keys
// up to the keyset cursor and keys exported within the look-back (kept in
// the state) are skipped. After each window the newest time read and the
// recent keys are committed with the rows. A record dated after now at the
// PBX (pbxHorizon) is exported, counted as a warning and noted, but does
// not move the newest time read: the next run starts from the present,
// not from the bogus time. A PBX that ignores the time filter as well
// cannot be read exactly: the run fails.
func (x *Exporter) byTime(ctx context.Context, c *committer, ep *record.Endpoint, st cursorState, res *EndpointResult,
	sizes *learnt, n *Counters, log *slog.Logger) error {
	res.Paging = byTimeWindows.String()
	if ep.TimeField == "" {
		return fmt.Errorf("the PBX ignores filter[%s] or sort=%s, and the endpoint has no time field to page by; nothing more was committed", ep.Cursor, ep.Cursor)
	}
	lookBack := x.LookBack
	if lookBack <= 0 {
		lookBack = DefaultLookBack
	}
	now := time.Now()
	horizon := pbxHorizon(now, x.Zone)
	newest := st.Time
	from := mustWall(epochWall)
	if st.Time != "" {
		t, err := time.Parse(record.WallLayout, st.Time)
		if err != nil {
			return fmt.Errorf("stored state of %s: time %q: it must be repaired or removed", ep.Name, st.Time)
		}
		if st.Time > horizon {
			// Stored by an earlier version from a record dated in the
			// future: start from the present instead.
			note(res, log, fmt.Sprintf("the stored newest time %s is after now at the PBX (%s), from a record dated in the future: read from now less the look-back; calls earlier runs skipped after that record may be missing: backfill the days since", st.Time, horizon))
			t, newest = mustWall(horizon), horizon
		}
		from = t.Add(-lookBack)
	}
	// No wall clock anywhere is more than 14 hours ahead of UTC.
	to := now.UTC().Add(26 * time.Hour).Truncate(time.Second)
	recent := st.Recent
	if recent == nil {
		recent = map[int64]string{}
	}
	// A record is read more than once (a window halved, a second read by
	// offset, the look-back), so conversion warnings are counted again,
	// for the rows exported only.
	scratch := &record.Warnings{}
	conv := &record.Converter{Endpoint: ep, Zone: x.Zone, Warnings: scratch}
	recount := &record.Converter{Endpoint: ep, Zone: x.Zone, Warnings: &n.Warnings}
	tr := &timeReader{x: x, ep: ep, n: n, log: log, rows: conv.Rows, sizes: sizes}
	err := tr.read(ctx, from, to, func(rows []record.Row) error {
		keep := rows[:0]
		for _, row := range rows {
			if row.Cursor <= st.Cursor {
				continue // exported by key before
			}
			if _, ok := recent[row.Cursor]; ok {
				continue // exported within the look-back
			}
			recent[row.Cursor] = row.Wall
			switch {
			case row.Wall > horizon:
				if n.Warnings.Count(futureKind) == 0 {
					log.Warn("a record is dated after now at the PBX; exported, the time cursor not moved", "key", row.Cursor, "time", row.Wall, "horizon", horizon)
				}
				n.Warnings.Add(futureKind, fmt.Sprintf("key %d, %s %q after %q", row.Cursor, ep.TimeField, row.Wall, horizon))
			case row.Wall > newest:
				newest = row.Wall
			}
			keep = append(keep, row)
		}
		if scratch.Total() > 0 && len(keep) > 0 {
			raws := make([]json.RawMessage, len(keep))
			for i, row := range keep {
				raws[i] = row.Raw
			}
			if _, err := recount.Rows(raws); err != nil {
				return err
			}
		}
		if !c.write(keep) {
			return errLoader
		}
		if c.pending() >= int64(x.BatchSize) && !c.commit(timeState(st.Cursor, newest, recent, lookBack, c.info.RunID)) {
			return errLoader
		}
		return nil
	})
	if err != nil {
		return err
	}
	c.commit(timeState(st.Cursor, newest, recent, lookBack, c.info.RunID))
	return nil
}

// timeState is the state after a window: recent keeps only the keys within
// the look-back of the newest time (later windows start after it, so an
// older key cannot come again in this run).
func timeState(cursor int64, newest string, recent map[int64]string, lookBack time.Duration, runID string) []byte {
	if newest == "" {
		newest = epochWall
	}
	if t, err := time.Parse(record.WallLayout, newest); err == nil {
		edge := t.Add(-lookBack).Format(record.WallLayout)
		for k, w := range recent {
			if w < edge {
				delete(recent, k)
			}
		}
	}
	b, _ := json.Marshal(cursorState{Cursor: cursor, RunID: runID, At: time.Now().UTC(), Time: newest, Recent: recent})
	return b
}

func mustWall(s string) time.Time {
	t, err := time.Parse(record.WallLayout, s)
	if err != nil {
		panic(err)
	}
	return t
}

// timeReader reads a range of PBX-local wall time window by window.
type timeReader struct {
	x     *Exporter
	ep    *record.Endpoint
	n     *Counters
	log   *slog.Logger
	rows  func([]json.RawMessage) ([]record.Row, error)
	sizes *learnt
	pages int
}

func (t *timeReader) fetch(ctx context.Context, a, b time.Time, start, ask int64) (*pbx.ListPage, []record.Row, error) {
	tf := t.ep.TimeField
	q := url.Values{}
	q.Set("filter["+tf+"][from]", a.Format(record.WallLayout))
	q.Set("filter["+tf+"][to]", b.Format(record.WallLayout))
	if t.ep.Cursor != "" {
		// A unique key: a second holding more than a page is read by
		// offset, and records tied on their time may come in any order.
		q.Set("sort", t.ep.Cursor)
		q.Set("dir", "ASC")
	}
	q.Set("start", strconv.FormatInt(start, 10))
	q.Set("count", strconv.FormatInt(ask, 10))
	where := fmt.Sprintf("window %s to %s", a.Format(record.WallLayout), b.Format(record.WallLayout))
	t.pages++
	if t.x.MaxPages > 0 && t.pages > t.x.MaxPages {
		return nil, nil, fmt.Errorf("%s: more than EXPORT_MAX_PAGES=%d pages: stopped; raise it if this PBX really holds that much", where, t.x.MaxPages)
	}
	pg, err := t.x.Client.List(ctx, t.ep.Path, q, &t.n.Counts)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", where, err)
	}
	t.n.Pages.Add(1)
	if int64(len(pg.Records)) > ask {
		return nil, nil, fmt.Errorf("%s: the PBX sent %d records for count=%d", where, len(pg.Records), ask)
	}
	rows, err := t.rows(pg.Records)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", where, err)
	}
	t.sizes.saw(int64(len(rows)))
	lo, hi := a.Format(record.WallLayout), b.Format(record.WallLayout)
	for _, row := range rows {
		if row.Wall < lo || row.Wall > hi {
			return nil, nil, fmt.Errorf("%s: the PBX sent a record with %s %q: it ignores filter[%s] as well as filter[%s] or sort=%s, so no paging can be trusted and nothing more was committed; report this PBX's version",
				where, tf, row.Wall, tf, t.ep.Cursor, t.ep.Cursor)
		}
	}
	return pg, rows, nil
}

// second reads a one-second window holding more than a page, by offset:
// nothing smaller can be asked for. A record of that second deleted (or
// added) meanwhile shifts the later offsets and hides another, so the
// second is read until two reads in a row hold the same keys, at most
// three times; otherwise the run stops with errChanged, the time cursor
// before this second.
func (t *timeReader) second(ctx context.Context, a, b time.Time, ask int64) ([]record.Row, error) {
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
				errChanged, a.Format(record.WallLayout), ask)
		}
		t.log.Info("records of a one-second window changed while it was read by offset: reading it again", "second", a.Format(record.WallLayout))
		rows, keys = again, againKeys
	}
	return nil, err
}

// read reads [a, b) and calls fn with its records in time order, window
// by window.
func (t *timeReader) read(ctx context.Context, a, b time.Time, fn func([]record.Row) error) error {
	ask, delivered := t.sizes.get()
	pg, rows, err := t.fetch(ctx, a, b, 0, ask)
	if err != nil {
		return err
	}
	got := int64(len(pg.Records))
	_, delivered = t.sizes.get()
	whole := got < ask && pg.Total <= got && (delivered >= ask || got < delivered || got == 0)
	if !whole {
		if b.Sub(a) > time.Second {
			mid := a.Add(b.Sub(a) / 2).Truncate(time.Second)
			if err := t.read(ctx, a, mid, fn); err != nil {
				return err
			}
			return t.read(ctx, mid, b, fn)
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
