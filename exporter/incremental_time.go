package exporter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/wildix-export/wildix-export/exporter/paging"
	"github.com/wildix-export/wildix-export/exporter/record"
)

// DefaultLookBack is how far before the newest time read a run by time
// windows reads again: a call record is written when the call ends, so a
// call longer than this that started before the previous run's newest
// record would be missed. Calls on a PBX last at most a few hours.
const DefaultLookBack = 6 * time.Hour

// DefaultSettle is how long before the PBX's present a run by time
// windows stops reading (EXPORT_SETTLE): the records of the last minutes,
// still arriving while the run reads, are the next run's.
const DefaultSettle = 2 * time.Minute

// epochWall is where a first run by time windows starts.
const epochWall = "1970-01-01 00:00:00"

// maxClockSkew is how far ahead of "now at the PBX" a record's time may
// lie and still count as present: a PBX clock a little fast. A record
// dated later (a clock glitch, a test call) is exported but does not move
// the newest time read, or every later run would start past the calls of
// the hours between now and it.
const maxClockSkew = time.Hour

// maxZoneAhead and maxZoneBehind are how far the wall clock of any
// zone is ahead of and behind UTC.
const (
	maxZoneAhead  = 14 * time.Hour
	maxZoneBehind = 12 * time.Hour
)

// futureKind names, in the endpoint's warnings, records dated in the future.
const futureKind = "records dated after now at the PBX, exported without moving the time cursor"

// pbxHorizon is the latest PBX-local wall time a record can sensibly
// carry now: now in zone (or in the zone furthest ahead when the PBX's
// zone is not known) plus maxClockSkew.
func pbxHorizon(now time.Time, zone *time.Location) string {
	wall := now.UTC().Add(maxZoneAhead)
	if zone != nil {
		wall = wallOf(now, zone)
	}
	return wall.Add(maxClockSkew).Truncate(time.Second).Format(record.WallLayout)
}

// pbxSettled is the watermark of a run by time windows: now at the PBX
// less settle. Now at the PBX is now in zone (WILDIX_TIMEZONE); without
// it, now at offset (seconds east of UTC), the offset the newest record
// read by an earlier run carried in its timezone field; without either (a
// first run, or a state stored before offsets were kept), now in the zone
// furthest behind UTC, so that it is never past the PBX's present, and up
// to a day of calls waits for the next run.
//
// A learnt offset is an hour off when daylight-saving time began or ended
// since the record it came from. An hour behind (spring: +0100 stored,
// +0200 in force), the watermark is an hour before the PBX's present less
// settle: that hour's calls wait for the next run, whose look-back reads
// them (the newest time read is at most the watermark); none is lost. An
// hour ahead (autumn: +0200 stored, +0100 in force), the watermark is past
// the PBX's present: the run reads up to the present, as runs did before
// the watermark, where calls still arriving may cut windows again or fail
// a busy run (the windows before committed), and the look-back of the next
// run reads what arrived, each call once. Either way the run learns the
// offset in force from the records it reads, and the next run is right.
func pbxSettled(now time.Time, zone *time.Location, offset *int, settle time.Duration) string {
	wall := now.UTC().Add(-maxZoneBehind)
	switch {
	case zone != nil:
		wall = wallOf(now, zone)
	case offset != nil:
		wall = now.UTC().Add(time.Duration(*offset) * time.Second)
	}
	return wall.Add(-settle).Truncate(time.Second).Format(record.WallLayout)
}

// rowOffset is the UTC offset, in seconds east, that row's time field was
// read with: its wall time less its instant. Without WILDIX_TIMEZONE that
// is the record's timezone field (a wall time is read no other way); with
// it, the record's offset or else the zone's. False when the time field
// is not a plain wall time or the difference is no zone's offset.
func rowOffset(row record.Row, anchor int) (int, bool) {
	if anchor < 0 || anchor >= len(row.Values) {
		return 0, false
	}
	t, ok := row.Values[anchor].(time.Time)
	if !ok {
		return 0, false
	}
	w, err := time.Parse(record.WallLayout, row.Wall)
	if err != nil {
		return 0, false
	}
	d := w.Sub(t)
	if d%time.Minute != 0 || d < -maxZoneBehind || d > maxZoneAhead {
		return 0, false
	}
	return int(d / time.Second), true
}

// wallOf is the wall time of t in zone, as a UTC time.
func wallOf(t time.Time, zone *time.Location) time.Time {
	l := t.In(zone)
	return time.Date(l.Year(), l.Month(), l.Day(), l.Hour(), l.Minute(), l.Second(), 0, time.UTC)
}

// Policy: incremental by time windows, for a PBX that ignores the key
// filter or the sort.
//
// The range is PBX-local wall time, from the look-back before the newest
// time read so far to a bound past any zone's present; the paging
// package's TimeWindows reads it window by window, each proven whole.
// Records dated after the watermark (the PBX's present when the run
// starts, less EXPORT_SETTLE; without WILDIX_TIMEZONE, at the UTC offset
// of the newest record read, kept in the state: see pbxSettled) up to the
// horizon (the present plus the skew a clock may have) are left out: they are still arriving, and the
// next run's look-back reads them (the newest time read is at most the
// watermark, and a call written after this run started began at most a
// call's length before it, well within the look-back). Each record's key
// is exported once: keys up to the keyset cursor and keys exported within
// the look-back (kept in the state) are skipped. The newest time read
// and the recent keys are committed with the rows every BatchSize rows,
// and when a window fails, with the windows before it. A record dated
// after the horizon is exported, counted as a warning and noted, but does
// not move the newest time read: the next run starts from the present,
// not from the bogus time. A PBX that ignores the time filter as well
// cannot be read exactly: the run fails.
func (e *endpointRun) byTime(ctx context.Context, c *committer, st cursorState) error {
	e.res.Paging = paging.ByTimeWindows.String()
	if e.ep.TimeField == "" {
		return fmt.Errorf("the PBX ignores filter[%s] or sort=%s, and the endpoint has no time field to page by; nothing more was committed", e.ep.Cursor, e.ep.Cursor)
	}
	now := e.x.now()
	tc, from, err := e.timeCursor(st, now)
	if err != nil {
		return err
	}
	// No wall clock anywhere is more than 14 hours ahead of UTC.
	to := now.UTC().Add(26 * time.Hour).Truncate(time.Second)
	// A record is read more than once (a window cut, a second read by
	// offset, the look-back), so conversion warnings are counted again,
	// for the rows exported only.
	scratch := &record.Warnings{}
	r := e.reader(nil, e.x.Concurrency)
	r.Rows = (&record.Converter{Endpoint: e.ep, Zone: e.x.Zone, Warnings: scratch}).Rows
	recount := e.converter()
	tw := &paging.TimeWindows{Reader: r, Unsettled: paging.Gap{From: mustWall(tc.settled), To: mustWall(tc.horizon)}}
	err = tw.Read(ctx, from, to, func(rows []record.Row) error {
		keep := tc.keep(e, rows)
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
		if c.pending() >= int64(e.x.BatchSize) && !c.commit(tc.state(e.runID)) {
			return errLoader
		}
		return nil
	})
	if err != nil {
		return e.timeFailed(ctx, c, tc, err)
	}
	c.commit(tc.state(e.runID))
	return nil
}

// timeFailed commits, when a window failed, the windows read whole before
// it with the state after them (every record up to the newest time read
// was handed over), and says where the next run resumes. Nothing is
// committed when the sink failed, nor once the run is cancelled without
// a grace period, nor when no record was kept before the failing window
// (the stored state stands: the next run reads where this one did).
func (e *endpointRun) timeFailed(ctx context.Context, c *committer, tc *timeCursor, err error) error {
	if errors.Is(err, errLoader) || c.failed() || ctx.Err() != nil && e.x.CommitGrace <= 0 {
		return err
	}
	switch {
	case tc.kept == 0 && tc.newest == "":
		return fmt.Errorf("%w; nothing was committed: the next run reads from the start, as this one did", err)
	case tc.kept == 0:
		return fmt.Errorf("%w; nothing was committed: the next run reads from %s again (the newest time an earlier run read, %s, less the look-back)",
			err, tc.resume(), tc.newest)
	}
	c.commit(tc.state(e.runID))
	if tc.newest == "" {
		// Only records dated in the future were kept.
		return fmt.Errorf("%w; the windows before it were committed: the next run reads from the start again", err)
	}
	return fmt.Errorf("%w; the windows before it were committed: the next run reads from %s (the newest time read, %s, less the look-back)",
		err, tc.resume(), tc.newest)
}

// timeCursor is what a run by time windows commits: the keyset cursor it
// started from, the newest time read, and the keys exported within the
// look-back before it.
type timeCursor struct {
	cursor   int64
	newest   string
	kept     int64            // records kept by this run
	recent   map[int64]string // keys exported within the look-back, as of the last state
	fresh    []keyWall        // keys kept since the last state: state enters them in recent
	offset   *int             // the PBX's UTC offset (seconds east) as the newest record read carried it, nil while unknown
	anchor   int              // the time field's column, -1 if none
	settled  string           // the watermark: records after it, up to the horizon, are the next run's
	horizon  string           // the latest time a record can sensibly carry now
	lookBack time.Duration
}

// timeCursor reads the stored state; from is where the run reads from.
func (e *endpointRun) timeCursor(st cursorState, now time.Time) (tc *timeCursor, from time.Time, err error) {
	settle := e.x.Settle
	if settle <= 0 {
		settle = DefaultSettle
	}
	tc = &timeCursor{cursor: st.Cursor, newest: st.Time, recent: st.Recent, lookBack: e.x.LookBack,
		offset: st.UTCOffset, anchor: -1,
		settled: pbxSettled(now, e.x.Zone, st.UTCOffset, settle), horizon: pbxHorizon(now, e.x.Zone)}
	for i, col := range e.ep.Columns {
		if col.Field == e.ep.TimeField {
			tc.anchor = i
		}
	}
	if e.x.Zone == nil && st.UTCOffset == nil {
		e.note(fmt.Sprintf("WILDIX_TIMEZONE is not set and no UTC offset of the PBX is stored yet: read up to now in the zone furthest behind UTC less the settle margin (%s), up to a day before the PBX's present; the next run reads up to the present at the offset the records read carry (set WILDIX_TIMEZONE to read up to it now)", tc.settled))
	}
	if tc.lookBack <= 0 {
		tc.lookBack = DefaultLookBack
	}
	if tc.recent == nil {
		tc.recent = map[int64]string{}
	}
	if st.Time == "" {
		return tc, mustWall(epochWall), nil
	}
	t, err := time.Parse(record.WallLayout, st.Time)
	if err != nil {
		return nil, from, fmt.Errorf("stored state of %s: time %q: it must be repaired or removed", e.ep.Name, st.Time)
	}
	if st.Time > tc.horizon {
		// Stored by an earlier version from a record dated in the
		// future: start from the present instead.
		e.note(fmt.Sprintf("the stored newest time %s is after now at the PBX (%s), from a record dated in the future: read from now less the look-back; calls earlier runs skipped after that record may be missing: backfill the days since", st.Time, tc.horizon))
		t, tc.newest = mustWall(tc.horizon), tc.horizon
	}
	return tc, t.Add(-tc.lookBack), nil
}

// keep returns the rows of a window not exported before, and moves the
// newest time read over them.
//
// What it must cost, and why no more (issue 28: it was a map insert and a
// time parse per row):
//   - A key is looked up in recent, the keys of earlier runs within the
//     look-back and those this run committed (state). A key kept since the
//     last commit is not entered there yet, only noted in fresh: within a
//     run, TimeWindows hands each record over once (its windows are
//     disjoint and handed over in time order, each answer filtered to its
//     window, a busy second's reads joined by key; TestTimeWindowsRandomRanges
//     in paging), and a record's time does not change (a CDR row is
//     written once, when the call ends), so a key kept by this run cannot
//     come again in it: the lookup of it could never hit (state already
//     relies on this to drop keys mid-run). Were paging to hand a record
//     over twice in a run, it would now be exported twice.
//   - recent matters to the next run (and to this one's look-back) only
//     through what state commits: the keys within the look-back of the
//     newest time. state enters the fresh keys at or after that edge and
//     drops the older ones, so it commits exactly the keys an insert per
//     row and a prune would have; a first run of a year's calls enters the
//     last hours' keys at each commit, not every key. fresh holds at most
//     the rows of one commit (EXPORT_BATCH_SIZE), as recent did.
//   - The offset learnt is that of the last row, in the order kept, that
//     moved the newest time (or came while no offset was known) and whose
//     offset reads (rowOffset). When the row that moved it last (top)
//     reads, that is its offset: a row after top counts only while no
//     offset is known, and top's made one known. So one parse a window;
//     the rule is replayed row by row (as costly as before) only when
//     top's does not read, or no row moved the newest time while no
//     offset is known. TestTimeCursorKeepsWhatEachRowWould holds keep and
//     state to the rule of a map insert and an offset read per row.
func (tc *timeCursor) keep(e *endpointRun, rows []record.Row) []record.Row {
	keep := rows[:0]
	before, top := tc.newest, -1
	for _, row := range rows {
		if row.Cursor <= tc.cursor {
			continue // exported by key before
		}
		if _, ok := tc.recent[row.Cursor]; ok {
			continue // exported within the look-back
		}
		tc.fresh = append(tc.fresh, keyWall{row.Cursor, row.Wall})
		switch {
		case row.Wall > tc.horizon:
			if e.n.Warnings.Count(futureKind) == 0 {
				e.log.Warn("a record is dated after now at the PBX; exported, the time cursor not moved", "key", row.Cursor, "time", row.Wall, "horizon", tc.horizon)
			}
			e.n.Warnings.Add(futureKind, fmt.Sprintf("key %d, %s %q after %q", row.Cursor, e.ep.TimeField, row.Wall, tc.horizon))
		case row.Wall > tc.newest:
			tc.newest, top = row.Wall, len(keep)
		}
		keep = append(keep, row)
	}
	tc.kept += int64(len(keep))
	if top >= 0 {
		if off, ok := rowOffset(keep[top], tc.anchor); ok {
			tc.offset = &off
			return keep
		}
	}
	if top >= 0 || tc.offset == nil {
		tc.replayOffset(keep, before)
	}
	return keep
}

// replayOffset learns the offset from rows kept, row by row, the newest
// time read before them being before: the rule keep follows.
func (tc *timeCursor) replayOffset(keep []record.Row, before string) {
	newest, learnt, known := before, 0, false
	for _, row := range keep {
		if row.Wall > tc.horizon || row.Wall <= newest && (known || tc.offset != nil) {
			continue
		}
		newest = max(newest, row.Wall)
		if off, ok := rowOffset(row, tc.anchor); ok {
			learnt, known = off, true
		}
	}
	if known {
		tc.offset = &learnt
	}
}

// keyWall is a key kept and its time.
type keyWall struct {
	key  int64
	wall string
}

// state is the state after a window: recent keeps only the keys within
// the look-back of the newest time, those kept since the last state
// entered (keep says why no others matter).
func (tc *timeCursor) state(runID string) []byte {
	newest := tc.newestOr()
	edge := ""
	if t, err := time.Parse(record.WallLayout, newest); err == nil {
		edge = t.Add(-tc.lookBack).Format(record.WallLayout)
		for k, w := range tc.recent {
			if w < edge {
				delete(tc.recent, k)
			}
		}
	}
	for _, f := range tc.fresh {
		if f.wall >= edge {
			tc.recent[f.key] = f.wall
		}
	}
	tc.fresh = tc.fresh[:0]
	b, _ := json.Marshal(cursorState{Cursor: tc.cursor, RunID: runID, At: time.Now().UTC(), Time: newest, Recent: tc.recent, UTCOffset: tc.offset})
	return b
}

// newestOr is the newest time read, or where a first run starts.
func (tc *timeCursor) newestOr() string {
	if tc.newest == "" {
		return epochWall
	}
	return tc.newest
}

// resume is where the next run reads from: the look-back before the
// newest time read.
func (tc *timeCursor) resume() string {
	return mustWall(tc.newestOr()).Add(-tc.lookBack).Format(record.WallLayout)
}

func mustWall(s string) time.Time {
	t, err := time.Parse(record.WallLayout, s)
	if err != nil {
		panic(err)
	}
	return t
}
