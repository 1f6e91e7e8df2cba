package exporter

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/wildix-export/wildix-export/exporter/paging"
	"github.com/wildix-export/wildix-export/exporter/record"
)

// RecordingsResult is what a run of the recordings endpoint did with the
// files: for the run ledger (EndpointResult.Recordings) and /metrics.
type RecordingsResult struct {
	// Shape and TimeForm are what the PBX was detected to send (a shape
	// of record.Endpoint.Shapes) and to take from/to in (record.TimeWall
	// or record.TimeEpoch); "" when nothing was listed.
	Shape    string `json:"shape,omitempty"`
	TimeForm string `json:"time_form,omitempty"`
	// Listed counts the recordings listed this run and not exported
	// before (a look-back lists some again; they are not counted).
	Listed int `json:"listed"`
	// What became of their files: see recordings.Status.
	Copied   int   `json:"copied"`
	Skipped  int   `json:"skipped"`  // already stored with the same size and sha256
	Vanished int   `json:"vanished"` // 404/410: deleted on the PBX before they were copied
	Refused  int   `json:"refused"`  // a file address that must not be fetched
	Failed   int   `json:"failed"`   // failed after retries: the endpoint failed
	Bytes    int64 `json:"bytes"`    // copied this run
	// Removed counts the files of recordings not kept (a number of their
	// call forgotten, or older than the retention) that an earlier run
	// which failed or was stopped stored with no row naming them, removed
	// on proof (the PBX's file's sha256; recordings.Copier.Erase).
	// Partials counts the partial copies (folder) or incomplete uploads
	// (S3) killed runs left, removed.
	Removed  int `json:"removed,omitempty"`
	Partials int `json:"partials_removed,omitempty"`
	// KeptUnproven counts the files that may be such recordings' left in
	// the store for want of proof (their file gone from the PBX, or not
	// fetched), KeptFiles the first names of them.
	KeptUnproven int      `json:"kept_unproven,omitempty"`
	KeptFiles    []string `json:"kept_files,omitempty"`
	// PendingRemoval counts the recordings whose kept files the state
	// holds pending removal, tried again by every run
	// (recordings_pending.go).
	PendingRemoval int `json:"pending_removal,omitempty"`
	// Hostile counts the recordings whose PBX file name or path must not
	// be used as a path (kept in their rows as sent, reported).
	Hostile int `json:"hostile"`
	// ListedTwice counts the recordings listed a second time this run
	// (the same id, start and path) with another record, left out.
	ListedTwice int `json:"listed_twice,omitempty"`
	// Clashes counts the recordings sent under an id another recording
	// holds (another start or path), each stored under an id of its own.
	Clashes int `json:"clashes,omitempty"`
	// OldestPending is the call start of the oldest recording listed and
	// not stored (its copy failed or was not reached; the next run copies
	// it); nil when every recording listed was stored, vanished or
	// refused.
	OldestPending *time.Time `json:"oldest_pending,omitempty"`

	hostileFirst string // the first hostile one, for the note
	clashFirst   string // the first clash, for the note
	keptWhy      string // why the first kept file was kept, for the note
	twiceFirst   string // the first recording listed twice, for the note
}

// OldestPendingAge is how old the oldest recording listed and not stored
// was at now; 0 when there is none.
func (r *RecordingsResult) OldestPendingAge(now time.Time) time.Duration {
	if r == nil || r.OldestPending == nil {
		return 0
	}
	return now.Sub(*r.OldestPending)
}

// errNoRecordingsStore fails the recordings endpoint when no store is
// configured.
var errNoRecordingsStore = fmt.Errorf("%w: the recordings endpoint copies every call recording to a recordings store, and none is configured: set EXPORT_RECORDINGS_STORE (see README, Recordings), or leave recordings out of EXPORT_ENDPOINTS", record.ErrConfig)

// recordingsList readies the recordings' list for e: the store and the
// key of recordings' ids configured, the state loaded, the list's form
// detected and the cursor set from the state. A nil list with a nil
// error: detection found nothing to read (it says why).
func (x *Exporter) recordingsList(ctx context.Context, e *endpointRun) (*recList, *recCursor, error) {
	if x.Recordings == nil {
		return nil, nil, errNoRecordingsStore
	}
	if x.RecordingsKey == nil {
		return nil, nil, fmt.Errorf("%w: the recordings endpoint needs the key recordings' ids are hashed with (Exporter.RecordingsKey)", record.ErrConfig)
	}
	st, err := e.loadRecState(ctx)
	if err != nil {
		return nil, nil, err
	}
	l, err := e.detectRecordings(ctx, st.Form)
	if err != nil || l == nil {
		return nil, nil, err
	}
	rc, err := e.recCursor(ctx, l, st)
	if err != nil {
		return nil, nil, err
	}
	l.calls = e.newCallMatcher(l.zone)
	l.idKey = x.RecordingsKey
	return l, rc, nil
}

// Policy: recordings (issue 29).
//
// The list is read by time windows (paging.TimeWindows: each window
// proven whole) through the endpoint's from/to, in the form the PBX takes
// and the shape its records come in, both detected each run
// (detectRecordings). The range and the watermark are call history's by
// time windows (incremental_time.go): from the look-back before the
// newest start read to the horizon, the last minutes (EXPORT_SETTLE)
// left to the next run. A window's recordings not exported before (the
// keys within the look-back are kept in the state) go to Copier.Copy
// as soon as the window is read, while the window before is finished
// (recPipe: two windows in hand, sharing the copier's concurrency).
// Only when a window's Copy returns nil (every file stored, already there, vanished
// or refused: the copier's contract) are their rows written, and the
// state (newest start, recent keys) committed with them, every BatchSize
// rows and at the end: the time cursor never passes a recording whose
// file is not stored. A failed copy stops the read: the windows before
// it are committed, the endpoint fails naming the recording, and the
// next run lists that window again (Copy skips what is stored).
func (x *Exporter) recordings(ctx context.Context, runID string, ep *record.Endpoint) (res EndpointResult) {
	e := x.newRun(runID, ep, &res)
	defer e.tally()
	res.Recordings = &RecordingsResult{}
	defer e.noteRecordings()
	l, rc, err := x.recordingsList(ctx, e)
	if err != nil || l == nil {
		res.Err = err
		return res
	}
	res.Paging = paging.ByTimeWindows.String()
	c := e.committer(ctx, BatchInfo{PBX: x.PBX, RunID: runID, Endpoint: ep, StateKey: ep.Name}, x.CommitGrace)
	scratch := &record.Warnings{} // a record read twice warns twice: counted for the rows kept
	r := e.reader(nil, x.Concurrency)
	r.Endpoint, r.Rows = &l.ep, l.rows(&record.Converter{Endpoint: &l.ep, Zone: l.zone, Warnings: scratch})
	tw := &paging.TimeWindows{Reader: r, Unsettled: paging.Gap{From: mustWall(rc.settled), To: mustWall(rc.horizon)}}
	p := &recPipe{e: e, c: c, l: l, rc: rc, list: func(ctx context.Context, from, to time.Time, fn func([]record.Row) error) error {
		return (&paging.TimeWindows{Reader: r}).Read(ctx, from, to, fn)
	}}
	err = tw.Read(ctx, rc.from, rc.to, func(rows []record.Row) error {
		return p.window(ctx, rows, scratch.Total() > 0)
	})
	err = p.drain(ctx, err)
	if err == nil {
		p.eraseAgain(ctx)
		p.retryPending(ctx, p.tried)
	}
	res.Recordings.PendingRemoval = len(rc.pending)
	switch {
	case err == nil:
		c.commit(rc.state(runID))
	case errors.Is(err, errLoader) || c.failed() || ctx.Err() != nil && x.CommitGrace <= 0:
	case rc.newest == "":
		// No recording was taken, in this run or any before it.
		err = fmt.Errorf("%w; nothing was committed: the next run lists from the start, as this one did", err)
	default:
		c.commit(rc.state(runID))
		err = fmt.Errorf("%w; the windows before it were committed: the next run lists from %s", err, rc.resume())
	}
	e.endIncremental(ctx, c, err)
	return res
}
