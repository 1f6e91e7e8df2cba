// Package exporter runs exports of a PBX's list endpoints into a sink: the
// data's path is PBX (exporter/pbx) → paging (exporter/paging) → rows
// (exporter/record) → Sink. It owns the policies (incremental.go,
// snapshot.go, backfill.go: choose a range, ask the paging ladder,
// commit), the cursors and states they commit together with the rows they
// cover (committer.go), and the run ledger's results.
package exporter

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/wildix-export/wildix-export/exporter/paging"
	"github.com/wildix-export/wildix-export/exporter/record"
	"github.com/wildix-export/wildix-export/exporter/recordings"
	"github.com/wildix-export/wildix-export/internal/pseudonym"
)

// Sink receives rows. A sink commits a batch's rows together with the
// state that covers them, so that after a crash either both or neither are
// there. It also holds the per-PBX export lock and the run ledger, which
// only the exporter writes: StartRun and FinishRun once each per run.
type Sink interface {
	// State returns what was committed under key for pbx, nil if nothing.
	State(ctx context.Context, pbx, key string) ([]byte, error)
	// Begin opens a batch; its rows become visible only when it commits.
	Begin(ctx context.Context, b BatchInfo) (Batch, error)
	// LockPBX takes the per-PBX export lock without waiting; it fails
	// with an error wrapping sinks.ErrLocked when another export holds it.
	LockPBX(ctx context.Context, pbx string) (unlock func(), err error)
	// StartRun records the run's start in the ledger.
	StartRun(ctx context.Context, r *RunResult) error
	// FinishRun records the run's end and each endpoint's result.
	FinishRun(ctx context.Context, r *RunResult) error
}

// RowGuard decides what of each batch of rows a sink may see. Every
// policy's rows pass it, incremental, snapshot, backfill and recordings
// alike, on the producer's goroutine, one batch at a time.
type RowGuard interface {
	// Rows returns the rows of ep to write instead of rows: some left
	// out, values replaced, what it did counted in notes (the endpoint's
	// notes in the log and the run ledger). It must not change rows or
	// their values in place (the caller may still read them). An error
	// fails the endpoint; nothing of the batch is written.
	Rows(ep *record.Endpoint, rows []record.Row, notes *record.Warnings) ([]record.Row, error)
}

// Batch is an open set of rows of one endpoint.
type Batch interface {
	// Write adds rows; the slice may be reused once Write returns.
	Write(ctx context.Context, rows []record.Row) error
	// Commit durably stores the rows written, the state and the progress.
	Commit(ctx context.Context, state []byte, p Progress) error
	// Abort discards the rows written. It is safe after Commit.
	Abort(ctx context.Context) error
}

// BatchInfo describes a batch to its sink.
type BatchInfo struct {
	PBX      string
	RunID    string
	Endpoint *record.Endpoint
	StateKey string
	// Snapshot means the batch is a complete snapshot of the endpoint: a
	// row missing from it is gone from the PBX.
	Snapshot bool
	Window   *Window // set for backfill windows
	Seq      int     // 1-based number of the batch in its run and endpoint
}

// Progress is an endpoint's progress in a run, so far.
type Progress struct {
	Rows, Pages, Retries int64
}

// Window is a backfill window in PBX-local wall time, From inclusive,
// To exclusive, as "YYYY-MM-DD HH:MM:SS".
type Window struct {
	From, To string
}

// Exporter runs exports of one PBX into one sink.
type Exporter struct {
	Client      paging.Lister // the PBX: a *pbx.Client
	Sink        Sink
	PBX         string
	Zone        *time.Location // WILDIX_TIMEZONE, nil if not set
	PageSize    int
	Concurrency int
	BatchSize   int
	MaxPages    int
	// CommitGrace bounds the commit of the batch in flight once the run's
	// context is cancelled (SIGTERM): its rows are kept, with their cursor.
	CommitGrace time.Duration
	// LookBack is how far a run by time windows reads again before the
	// newest time read so far (DefaultLookBack when zero).
	LookBack time.Duration
	// Settle is how long before the PBX's present at a run's start a
	// run by time windows stops reading (EXPORT_SETTLE; DefaultSettle
	// when zero): calls newer than that are left for the next run.
	Settle time.Duration
	// Now is the clock, time.Now when nil: tests play the PBX's present.
	Now func() time.Time
	Log *slog.Logger
	// Observe, when set, is called once per endpoint with its result.
	Observe func(EndpointResult)
	// Recordings copies the files of the recordings endpoint to the
	// recordings store (EXPORT_RECORDINGS_STORE); nil when none is
	// configured: that endpoint then fails, saying what to set.
	Recordings *recordings.Copier
	// RecordingsKey is the key a recording's id or path is hashed with
	// when it cannot be stored under its PBX id (recordings.StoredID):
	// one per sink, kept with its suppression list (sinks/idkey.go) and
	// never changed once recordings are stored with it, over a change
	// of rule or key too: in clear on a sink in clear, sealed with the
	// pseudonym key under pseudonymisation (the pseudonym key itself
	// for a sink that named its recordings with it before the key was
	// kept). The recordings endpoint fails without it.
	RecordingsKey *pseudonym.Keyed
	// Privacy is the pseudonymisation rule the Guard applies, which each
	// run records in the ledger; its Changed, the next run only.
	Privacy Privacy
	// Redact, when set, replaces personal data in an endpoint's error
	// and notes before they are logged, observed or recorded in the
	// ledger (exporter/privacy.Redactor.Text); the error still unwraps
	// to the original.
	Redact func(string) string
	// Guard, when set, sees every batch of rows before the sink does
	// (exporter/privacy: retention, suppression list, pseudonyms).
	Guard RowGuard
	// AfterRun, when set, is called once every endpoint of a run (or
	// backfill) succeeded, before the run is recorded finished, the PBX's
	// lock still held: retention prunes there. The results it returns are
	// the run's too (its status, the ledger, the summary).
	AfterRun func(ctx context.Context, r *RunResult) []EndpointResult
	// Abort, when set, reports whether an endpoint's error makes the
	// endpoints after it pointless (an authorization the PBX refused, a
	// database gone); they are then not started.
	Abort func(error) bool
}

// EndpointResult is what one endpoint's export did.
type EndpointResult struct {
	Endpoint string
	Rows     int64
	Pages    int64
	Requests int64
	Retries  int64
	Filtered int64 // records the PBX sent outside the query's bounds, dropped
	Vanished int64 // records announced or seen that disappeared during the run
	// Paging says how the endpoint was read: "keyset", "keyset-capped",
	// "key-ranges", "time-windows", "offset" (snapshots, and backfill
	// windows of a PBX ignoring the key filter).
	Paging string
	// Notes lists each detection or guess made this run, for people.
	Notes     []string
	Cursor    int64 // incremental: the cursor after the run
	Windows   int   // backfill: windows exported
	Skipped   int   // backfill: windows already done
	Duration  time.Duration
	Completed time.Time // when the endpoint finished without error
	Err       error
	// Recordings is what the recordings endpoint did with the files;
	// nil for the other endpoints.
	Recordings *RecordingsResult `json:"recordings,omitempty"`
}

// RunResult is what a run did.
type RunResult struct {
	ID        string
	Mode      string // scheduled, once, backfill, demo
	PBX       string
	Started   time.Time
	Ended     time.Time
	Status    string // running, ok, failed, interrupted
	TimeZone  string // WILDIX_TIMEZONE, "" if not set; sinks record it for reports' local days
	Endpoints []EndpointResult
	Privacy   Privacy // the pseudonymisation rule applied
}

// Privacy is the pseudonymisation a run applies, as the run ledger and
// the sink's state record it: the rule and the key's id, never the key.
type Privacy struct {
	Rule  string `json:"rule"`             // EXPORT_PSEUDONYMIZE's one spelling: none, numbers, names, numbers,names, all
	KeyID string `json:"key_id,omitempty"` // pseudonym.Keyed.KeyID; "" under none
	// Changed, for the run that changed the rule or key (--force), says
	// from what, e.g. "none" or "numbers k:…".
	Changed string `json:"changed,omitempty"`
}

// String is the rule and the key's id, e.g. "numbers,names k:ab12cd34".
func (p Privacy) String() string {
	if p.KeyID == "" {
		return p.Rule
	}
	return p.Rule + " " + p.KeyID
}

// Err joins the endpoints' errors, nil when all succeeded.
func (r *RunResult) Err() error {
	var errs []error
	for _, e := range r.Endpoints {
		if e.Err != nil {
			errs = append(errs, fmt.Errorf("export %s: %w", e.Endpoint, e.Err))
		}
	}
	return errors.Join(errs...)
}

// NewRunID returns a sortable, unique run id: UTC time plus randomness.
func NewRunID(now time.Time) string {
	b := make([]byte, 3)
	rand.Read(b)
	return now.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b)
}

func (x *Exporter) now() time.Time {
	if x.Now != nil {
		return x.Now()
	}
	return time.Now()
}

func (x *Exporter) log() *slog.Logger {
	if x.Log != nil {
		return x.Log
	}
	return slog.New(slog.DiscardHandler)
}

// Run exports each endpoint once: incremental ones from their cursor,
// snapshots whole. A failing endpoint does not stop the others.
func (x *Exporter) Run(ctx context.Context, id, mode string, endpoints []record.Endpoint) *RunResult {
	r := x.start(ctx, id, mode)
	var abort *notStarted
	for i := range endpoints {
		ep := &endpoints[i]
		if ctx.Err() != nil {
			r.Endpoints = append(r.Endpoints, EndpointResult{Endpoint: ep.Name, Err: fmt.Errorf("not started: %w", context.Cause(ctx))})
			continue
		}
		if abort != nil {
			r.Endpoints = append(r.Endpoints, EndpointResult{Endpoint: ep.Name, Err: abort})
			continue
		}
		var res EndpointResult
		switch {
		case ep.Files == "recordings":
			res = x.recordings(ctx, r.ID, ep)
		case ep.Mode == record.Incremental:
			res = x.incremental(ctx, r.ID, ep)
		default:
			res = x.snapshot(ctx, r.ID, ep)
		}
		x.finishEndpoint(r, res)
		if res.Err != nil && x.Abort != nil && x.Abort(res.Err) {
			abort = &notStarted{after: ep.Name, err: res.Err}
		}
	}
	x.finish(ctx, r)
	return r
}

// notStarted is an endpoint left out after another's failure made the
// rest pointless. It prints short, so that the failure is reported once,
// with the endpoint that had it, but wraps it, so that what the failure
// means (an exit code) is still found through it.
type notStarted struct {
	after string
	err   error
}

func (e *notStarted) Error() string { return "not started: " + e.after + " failed first" }
func (e *notStarted) Unwrap() error { return e.err }

func (x *Exporter) start(ctx context.Context, id, mode string) *RunResult {
	r := &RunResult{ID: id, Mode: mode, PBX: x.PBX, Started: time.Now().UTC(), Status: "running", Privacy: x.Privacy}
	if r.Privacy.Rule == "" {
		r.Privacy.Rule = "none"
	}
	// A change is the first run's to record, not every later one's (a
	// worker runs many with one Exporter).
	x.Privacy.Changed = ""
	if x.Zone != nil {
		r.TimeZone = x.Zone.String()
	}
	if err := x.Sink.StartRun(ctx, r); err != nil {
		x.log().Warn("recording the run's start failed", "err", err)
	}
	return r
}

func (x *Exporter) finishEndpoint(r *RunResult, res EndpointResult) {
	if x.Redact != nil {
		for i, n := range res.Notes {
			res.Notes[i] = x.Redact(n)
		}
		if res.Err != nil {
			if msg := x.Redact(res.Err.Error()); msg != res.Err.Error() {
				res.Err = &redactedError{msg: msg, err: res.Err}
			}
		}
	}
	log := x.log().With("endpoint", res.Endpoint, "run_id", r.ID)
	attrs := []any{"rows", res.Rows, "pages", res.Pages, "retries", res.Retries, "paging", res.Paging, "duration", res.Duration.Round(time.Millisecond)}
	if res.Vanished > 0 {
		attrs = append(attrs, "vanished", res.Vanished)
	}
	if res.Filtered > 0 {
		attrs = append(attrs, "filtered", res.Filtered)
	}
	if len(res.Notes) > 0 {
		attrs = append(attrs, "notes", res.Notes)
	}
	if res.Err != nil {
		log.Error("endpoint failed", append(attrs, "err", res.Err)...)
	} else {
		res.Completed = time.Now().UTC()
		log.Info("endpoint exported", attrs...)
	}
	r.Endpoints = append(r.Endpoints, res)
	if x.Observe != nil {
		x.Observe(res)
	}
}

// redactedError prints without personal data and unwraps to the error.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

func (x *Exporter) finish(ctx context.Context, r *RunResult) {
	if x.AfterRun != nil && r.Err() == nil {
		r.Endpoints = append(r.Endpoints, x.AfterRun(ctx, r)...)
	}
	r.Ended = time.Now().UTC()
	r.Status = "ok"
	if r.Err() != nil {
		r.Status = "failed"
		if ctx.Err() != nil {
			r.Status = "interrupted"
		}
	}
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := x.Sink.FinishRun(lctx, r); err != nil {
		x.log().Warn("recording the run's end failed", "err", err)
	}
}

// cursorState is the committed state of an incremental endpoint.
type cursorState struct {
	// Cursor: every record with a key up to it was exported (keyset
	// paging proves it).
	Cursor int64     `json:"cursor"`
	RunID  string    `json:"run_id"`
	At     time.Time `json:"at"`
	// Time is set once the endpoint is read by time windows (the PBX
	// ignores filter[key] or sort): the newest time field read, PBX-local;
	// Recent holds the keys exported whose time is within the look-back
	// before it, so that re-reading the look-back exports none twice.
	Time   string           `json:"time,omitempty"`
	Recent map[int64]string `json:"recent,omitempty"`
	// UTCOffset is the PBX's offset from UTC in seconds east, as the
	// newest record read by time windows carried it (its timezone field):
	// without WILDIX_TIMEZONE, the next run's watermark is now at this
	// offset. Left out when no record has shown one (state of a version
	// before 2026-12-06 22:00 UTC, or a first run not yet committed).
	UTCOffset *int `json:"utc_offset,omitempty"`
	// From is what filter[key][from] was seen to do with its bound (see
	// paging.Reader.Newest), stored as "inclusive" or "exclusive", left out when not
	// known.
	From paging.Bound `json:"from,omitempty"`
}

func (x *Exporter) loadCursor(ctx context.Context, ep *record.Endpoint) (cursorState, error) {
	var st cursorState
	b, err := x.Sink.State(ctx, x.PBX, ep.Name)
	if err != nil || b == nil {
		return st, err
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("stored state of %s is damaged (%v): it must be repaired or removed", ep.Name, err)
	}
	return st, nil
}

// tally fills in an endpoint's duration and request counts when its export
// ends.
func tally(res *EndpointResult, n *paging.Counters, began time.Time) {
	res.Duration = time.Since(began)
	res.Pages, res.Requests, res.Retries = n.Pages.Load(), n.Requests.Load(), n.Retries.Load()
	res.Filtered = n.Filtered.Load()
	res.Notes = append(res.Notes, n.Warnings.Notes()...)
}

func progress(n *paging.Counters, rows int64) Progress {
	return Progress{Rows: rows, Pages: n.Pages.Load(), Retries: n.Retries.Load()}
}
