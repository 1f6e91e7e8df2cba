package exporter

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/wildix-export/wildix-export/exporter/record"
	"github.com/wildix-export/wildix-export/exporter/recordings"
)

// recState is the committed state of the recordings endpoint.
type recState struct {
	// Time is the newest call start read, a wall time in the list's frame
	// (PBX-local when from/to are wall times, UTC when Unix seconds);
	// Recent holds the keys exported within the look-back before it, so
	// that reading the look-back again exports (and copies) none twice.
	Time   string            `json:"time,omitempty"`
	Recent map[string]string `json:"recent,omitempty"`
	// Form and Shape are what the PBX was detected to take and send;
	// Zone is the zone Time and Recent's walls are in (UTC when Form is
	// epoch).
	Form  string    `json:"form,omitempty"`
	Zone  string    `json:"zone,omitempty"`
	Shape string    `json:"shape,omitempty"`
	RunID string    `json:"run_id"`
	At    time.Time `json:"at"`
	// Pending holds, by key, the recordings not kept whose files are
	// pending removal (recordings_pending.go).
	Pending map[string]pendingRemoval `json:"pending,omitempty"`
}

func (e *endpointRun) loadRecState(ctx context.Context) (recState, error) {
	var st recState
	b, err := e.x.Sink.State(ctx, e.x.PBX, e.ep.Name)
	if err != nil || b == nil {
		return st, err
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("stored state of %s is damaged (%v): it must be repaired or removed", e.ep.Name, err)
	}
	if _, err := time.Parse(record.WallLayout, st.Time); st.Time != "" && err != nil {
		return st, fmt.Errorf("stored state of %s: time %q: it must be repaired or removed", e.ep.Name, st.Time)
	}
	return st, nil
}

// recCursor is what a run of the recordings endpoint commits, and the
// range it reads.
type recCursor struct {
	newest, form, shape, zone string
	recent                    map[string]string
	from, to                  time.Time
	settled, horizon          string // the watermark and the latest time a record can sensibly carry, in the frame
	lookBack                  time.Duration
	// seen holds the keys taken this run, with their wall and path;
	// otherFrame: recent's walls are in another frame than this run's.
	seen       map[string]string
	otherFrame bool
	// listed holds the sha256 of the record each key taken this run was
	// listed with: a second listing of it with another record is told
	// (attack 7, F6).
	listed map[string][sha256.Size]byte
	// pending is the state's files pending removal, as this run leaves
	// them.
	pending map[string]pendingRemoval
}

// RecordingsZone is the zone the recordings' wall times are read in, as
// the export reads them: Zone (WILDIX_TIMEZONE) when set, else the UTC
// offset call history's newest record carried (a fixed zone), nil when
// neither is known. Retention reads a quarantined recording's start in
// it (sinks.PruneOptions.Zone).
func (x *Exporter) RecordingsZone(ctx context.Context) (*time.Location, error) {
	if x.Zone != nil {
		return x.Zone, nil
	}
	return x.learntZone(ctx)
}

// learntZone is the fixed zone of the UTC offset call history's newest
// record carried, nil when none was learnt.
func (x *Exporter) learntZone(ctx context.Context) (*time.Location, error) {
	cs, err := x.loadCursor(ctx, &record.Endpoint{Name: "call_history"})
	if err != nil || cs.UTCOffset == nil {
		return nil, err
	}
	off := *cs.UTCOffset
	return time.FixedZone(fmt.Sprintf("UTC%+03d:%02d", off/3600, abs(off%3600)/60), off), nil
}

// recCursor reads the stored state for the list l: the zone its wall
// times are read in, and the range this run reads.
func (e *endpointRun) recCursor(ctx context.Context, l *recList, st recState) (*recCursor, error) {
	if l.zone == nil {
		if z, err := e.x.learntZone(ctx); err == nil && z != nil {
			l.zone = z
			e.note(fmt.Sprintf("WILDIX_TIMEZONE is not set: recordings' wall times read at the UTC offset call history's newest record carried (%s); an hour off across a daylight-saving change", l.zone))
		}
	}
	l.frame = time.UTC
	if l.form != record.TimeEpoch {
		if l.frame = l.zone; l.zone == nil {
			return nil, fmt.Errorf("%w: the recordings list takes from/to as PBX-local wall times and the PBX's time zone is not known: set WILDIX_TIMEZONE (e.g. Europe/Rome), or export call_history first so that its UTC offset is learnt", record.ErrConfig)
		}
	}
	now := e.x.now()
	settle := e.x.Settle
	if settle <= 0 {
		settle = DefaultSettle
	}
	rc := &recCursor{newest: st.Time, recent: st.Recent, form: l.form, shape: l.shape.Name, zone: l.frame.String(), lookBack: e.x.LookBack,
		settled: pbxSettled(now, l.frame, nil, settle), horizon: pbxHorizon(now, l.frame),
		from: mustWall(epochWall), to: now.UTC().Add(26 * time.Hour).Truncate(time.Second)}
	if rc.lookBack <= 0 {
		rc.lookBack = DefaultLookBack
	}
	if rc.recent == nil {
		rc.recent = map[string]string{}
	}
	if rc.pending = st.Pending; rc.pending == nil {
		rc.pending = map[string]pendingRemoval{}
	}
	rc.seen = map[string]string{}
	rc.listed = map[string][sha256.Size]byte{}
	switch {
	case st.Time == "":
	case st.Time > rc.horizon:
		e.note(fmt.Sprintf("the stored newest recording time %s is after now at the PBX (%s): read from now less the look-back", st.Time, rc.horizon))
		rc.newest = rc.horizon
		rc.from = mustWall(rc.horizon).Add(-rc.lookBack)
	case st.Form != "" && st.Form != l.form:
		// The stored time was in the other frame: a zone's offset apart.
		rc.otherFrame = true
		e.note(fmt.Sprintf("the recordings list took from/to as %s last run and as %s now: read from %s earlier than the look-back", st.Form, l.form, maxZoneAhead))
		rc.from = mustWall(st.Time).Add(-rc.lookBack - maxZoneAhead)
	case st.Zone != "" && st.Zone != rc.zone:
		// The same instants show other wall times: a recording listed
		// again is known by its key alone, not taken for a clash.
		rc.otherFrame = true
		e.note(fmt.Sprintf("the recordings list's wall times were read in %s last run and in %s now: read from %s earlier than the look-back", st.Zone, rc.zone, maxZoneAhead))
		rc.from = mustWall(st.Time).Add(-rc.lookBack - maxZoneAhead)
	default:
		rc.from = mustWall(st.Time).Add(-rc.lookBack)
	}
	return rc, nil
}

func abs(n int) int { return max(n, -n) }

// fresh returns the rows not exported before, each recording once, and
// what each sent (under the keys of before ids were keyed too:
// recordings.LegacyID). A key that comes again for another recording (another
// start or path: docs/pbx-api.md does not know the PBX's ids to be
// unique) makes that row's key AltID: both recordings are stored and
// kept, and clash is told. The earlier ones are those of this window and
// run (start and path), and the recent keys of the state (start only;
// not even that when the last run read the list in another frame). A
// recording listed again this run (the same start and path) with another
// record (other numbers, say) is left out as before, the first kept, and
// twice is told (attack 7, F6: it was cut silently).
func (rc *recCursor) fresh(l *recList, rows []record.Row, clash func(row record.Row, first string), twice func(row record.Row)) ([]record.Row, []recInfo) {
	out := make([]record.Row, 0, len(rows))
	infos := make([]recInfo, 0, len(rows))
	win := map[string]string{}
	for _, row := range rows {
		info := l.info(row)
		sig := row.Wall + "\x00" + info.rec.Path
		had := func(k string) (found, same bool) {
			if s, ok := win[k]; ok {
				return true, s == sig
			}
			if s, ok := rc.seen[k]; ok {
				return true, s == sig
			}
			if w, ok := rc.recent[k]; ok {
				return true, w == row.Wall || rc.otherFrame
			}
			return false, false
		}
		found, same := had(row.Key)
		if found && (same || info.rec.ID == "") {
			if h, ok := rc.listed[row.Key]; ok && h != sha256.Sum256(row.Raw) {
				twice(row)
			}
			continue // without an id, the key is the path's: the same file
		}
		if old := recordings.LegacyID(info.rec); !found && old != row.Key {
			// Exported under the id it had before ids were keyed
			// (recordings/key.go): stored then, not copied again.
			if f, s := had(old); f && (s || info.rec.ID == "") {
				continue
			}
		}
		if info.rec.ID != "" {
			alt := recordings.AltID(info.rec)
			if f, _ := had(alt); f {
				continue // stored under its own id before
			}
			if f, _ := had(recordings.LegacyAltID(info.rec)); f {
				continue // so, before ids were keyed
			}
			if found {
				first, _, _ := strings.Cut(cmp.Or(win[row.Key], rc.seen[row.Key], rc.recent[row.Key]), "\x00")
				clash(row, first)
				row.Key, info.rec.Key = alt, alt
				row.Values[l.ep.Column("recording")] = alt
			}
		}
		win[row.Key] = sig
		rc.listed[row.Key] = sha256.Sum256(row.Raw)
		out = append(out, row)
		infos = append(infos, info)
	}
	return out, infos
}

// claim marks the keys of a window's fresh rows as taken this run, as
// soon as the window is read: the next window's fresh, read while this
// one's files are copied (recPipe), knows them. took marks them again with
// the key a row ends with (a clash the copier found changes it).
func (rc *recCursor) claim(rows []record.Row, infos []recInfo) {
	for i, row := range rows {
		rc.seen[row.Key] = row.Wall + "\x00" + infos[i].rec.Path
	}
}

// took moves the cursor over rows whose files are stored: a row dated
// after the horizon is kept but does not move the newest time.
func (rc *recCursor) took(rows []record.Row, infos []recInfo) {
	for i, row := range rows {
		rc.recent[row.Key] = row.Wall
		rc.seen[row.Key] = row.Wall + "\x00" + infos[i].rec.Path
		if row.Wall <= rc.horizon && row.Wall > rc.newest {
			rc.newest = row.Wall
		}
	}
}

// state is the state after the rows taken: recent keeps the keys within
// the look-back of the newest time.
func (rc *recCursor) state(runID string) []byte {
	if rc.newest != "" {
		edge := mustWall(rc.newest).Add(-rc.lookBack).Format(record.WallLayout)
		for k, w := range rc.recent {
			if w < edge {
				delete(rc.recent, k)
			}
		}
	}
	b, _ := json.Marshal(recState{Time: rc.newest, Recent: rc.recent, Form: rc.form, Zone: rc.zone, Shape: rc.shape, RunID: runID, At: time.Now().UTC(), Pending: rc.pending})
	return b
}

// resume is where the next run lists from.
func (rc *recCursor) resume() string {
	if rc.newest == "" {
		return epochWall
	}
	return mustWall(rc.newest).Add(-rc.lookBack).Format(record.WallLayout)
}

// recRow fills the columns the exporter owns: what became of the file,
// where it is stored, and whether the PBX's file name or path is hostile.
//
// A file the copier found another recording's file in the place of is
// stored under an id of its own (res.ID): the row takes it as its key.
func (e *endpointRun) recRow(row *record.Row, info recInfo, res recordings.Result) {
	set := func(col string, v any) { row.Values[e.ep.Column(col)] = v }
	if res.ID != "" && res.ID != row.Key {
		// Stored under AltID (a clash), or found under its id of before
		// ids were keyed (recordings.LegacyID: its row then is the one
		// written then, not a second).
		if res.Clash != "" {
			e.res.Recordings.clashed(info.rec.ID, fmt.Sprintf("stored %s held another file", res.Clash), res.ID)
		}
		row.Key = res.ID
		set("recording", res.ID)
	}
	set("status", res.Status.String())
	set("object", res.Name)
	if res.Status == recordings.Copied || res.Status == recordings.Skipped {
		set("stored_size", res.Size)
		set("sha256", res.SHA256)
	}
	if res.Reason != "" {
		set("reason", res.Reason)
	}
	if i := e.ep.Column("file_name"); row.Values[i] == nil && info.fileName != "" {
		row.Values[i] = strings.ReplaceAll(strings.ToValidUTF8(info.fileName, "\uFFFD"), "\x00", "\uFFFD")
	}
	var refused *recordings.RefusedError
	hostile := res.Status == recordings.Refused
	if err := recordings.CheckFileName(info.fileName); err != nil && errors.As(err, &refused) {
		hostile = true
		if res.Reason == "" {
			set("reason", err.Error())
		}
	}
	set("hostile", hostile)
	if hostile {
		rr := e.res.Recordings
		if rr.Hostile++; rr.Hostile == 1 {
			why := "its path was refused, not fetched"
			if refused != nil {
				why = "its file name " + refused.Reason
			}
			rr.hostileFirst = fmt.Sprintf("recording %s: %s", row.Key, why)
		}
	}
}

// noteRecordings says, in the log and the ledger, how many recordings
// had a file name or path that must not be used as a path; and puts the
// counts in the ledger's notes (the sinks keep notes, not
// RecordingsResult).
func (e *endpointRun) noteRecordings() {
	rr := e.res.Recordings
	if rr.Hostile > 0 {
		e.note(fmt.Sprintf("%d recordings whose PBX file name or path must not be used as a path (first: %s): kept as sent in their rows (column hostile), never used as a path", rr.Hostile, rr.hostileFirst))
	}
	if rr.Clashes > 0 {
		e.note(fmt.Sprintf("%d recordings sent under an id another recording holds (first: %s): each stored, and its row kept, under an id of its own (column recording; column id keeps the PBX's)", rr.Clashes, rr.clashFirst))
	}
	if rr.ListedTwice > 0 {
		e.note(fmt.Sprintf("%d recordings listed twice with different records (first: recording %s): the first listing's row kept, the other left out; compare them on the PBX and report this PBX's version (docs/pbx-api.md, Recordings)", rr.ListedTwice, rr.twiceFirst))
	}
	e.noteErased()
	if rr.Listed > 0 {
		n := fmt.Sprintf("recordings: %d listed, %d copied (%d bytes), %d already stored, %d vanished, %d refused, %d failed", rr.Listed, rr.Copied, rr.Bytes, rr.Skipped, rr.Vanished, rr.Refused, rr.Failed)
		if rr.OldestPending != nil {
			n += "; the oldest not stored started " + rr.OldestPending.UTC().Format(time.RFC3339)
		}
		e.res.Notes = append(e.res.Notes, n)
	}
}

// recount counts the conversion warnings of the rows kept.
func (e *endpointRun) recount(l *recList, rows []record.Row) error {
	raws := make([]json.RawMessage, len(rows))
	for i, row := range rows {
		raws[i] = row.Raw
	}
	_, err := l.rows(&record.Converter{Endpoint: &l.ep, Zone: l.zone, Warnings: &e.n.Warnings})(raws)
	return err
}

// listedTwice counts a recording listed twice this run with two records,
// the second left out.
func (r *RecordingsResult) listedTwice(key string) {
	if r.ListedTwice++; r.ListedTwice == 1 {
		r.twiceFirst = key
	}
}

// clashed counts a recording sent under an id another recording holds:
// why it was seen to be another, and the id it is stored under.
func (r *RecordingsResult) clashed(id, why, as string) {
	if r.Clashes++; r.Clashes == 1 {
		r.clashFirst = fmt.Sprintf("id %.80q, %s, stored as %s", id, why, as)
	}
}

// add counts a window's copies.
func (r *RecordingsResult) add(recs []recordings.Recording, results []recordings.Result, cnt recordings.Counts) {
	r.Listed += len(recs)
	r.Copied += cnt.Copied
	r.Skipped += cnt.Skipped
	r.Vanished += cnt.Vanished
	r.Refused += cnt.Refused
	r.Failed += cnt.Failed
	r.Bytes += cnt.Bytes
	for i, res := range results {
		if (res.Status == recordings.Pending || res.Status == recordings.Failed) && (r.OldestPending == nil || recs[i].Start.Before(*r.OldestPending)) {
			t := recs[i].Start
			r.OldestPending = &t
		}
	}
}
