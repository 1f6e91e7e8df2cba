// Package exporter reads a PBX's list endpoints and hands their rows to a
// sink: the data's path is PBX → Pager → Converter → Sink. It owns the
// endpoint catalog, paging, retries, the conversion of PBX values (strings,
// PBX-local times) into typed rows, and the cursors of incremental and
// backfill runs, which a sink commits together with the rows they cover.
package exporter

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"time"
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

// ErrConfig marks a configuration problem discovered at run time (an
// endpoint named like one of the program's own tables, a time zone that
// is needed): the user must change a setting; the command exits 2.
var ErrConfig = errors.New("bad configuration")

// Batch is an open set of rows of one endpoint.
type Batch interface {
	// Write adds rows; the slice may be reused once Write returns.
	Write(ctx context.Context, rows []Row) error
	// Commit durably stores the rows written, the state and the progress.
	Commit(ctx context.Context, state []byte, p Progress) error
	// Abort discards the rows written. It is safe after Commit.
	Abort(ctx context.Context) error
}

// BatchInfo describes a batch to its sink.
type BatchInfo struct {
	PBX      string
	RunID    string
	Endpoint *Endpoint
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
	Client      *Client
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
	Log         *slog.Logger
	// Observe, when set, is called once per endpoint with its result.
	Observe func(EndpointResult)
	// Abort, when set, reports whether an endpoint's error makes the
	// endpoints after it pointless (an authorization the PBX refused, a
	// database gone); they are then not started.
	Abort func(error) bool
}

// EndpointResult is what one endpoint's export did.
type EndpointResult struct {
	Endpoint  string
	Rows      int64
	Pages     int64
	Requests  int64
	Retries   int64
	Filtered  int64 // records the PBX sent outside the query's bounds
	Cursor    int64 // incremental: the cursor after the run
	Windows   int   // backfill: windows exported
	Skipped   int   // backfill: windows already done
	Duration  time.Duration
	Completed time.Time // when the endpoint finished without error
	Err       error

	Vanished int64 // records announced or seen that disappeared during the run
	// Paging is how the endpoint was read: "keyset", "keyset-capped",
	// "time-windows", "offset" (snapshots), …
	Paging string
	// Notes are the detections and guesses made this run, human-readable.
	Notes []string
}

// RunResult is what a run did.
type RunResult struct {
	ID        string
	Mode      string // scheduled, once, backfill, demo
	PBX       string
	Started   time.Time
	Ended     time.Time
	Status    string // running, ok, failed, interrupted
	Endpoints []EndpointResult
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

func (x *Exporter) log() *slog.Logger {
	if x.Log != nil {
		return x.Log
	}
	return slog.New(slog.DiscardHandler)
}

// Run exports each endpoint once: incremental ones from their cursor,
// snapshots whole. A failing endpoint does not stop the others.
func (x *Exporter) Run(ctx context.Context, id, mode string, endpoints []Endpoint) *RunResult {
	r := x.start(ctx, id, mode)
	var abort error
	for i := range endpoints {
		ep := &endpoints[i]
		if ctx.Err() != nil {
			r.Endpoints = append(r.Endpoints, EndpointResult{Endpoint: ep.Name, Err: fmt.Errorf("not started: %w", context.Cause(ctx))})
			continue
		}
		if abort != nil {
			r.Endpoints = append(r.Endpoints, EndpointResult{Endpoint: ep.Name, Err: fmt.Errorf("not started after an earlier failure: %w", abort)})
			continue
		}
		var res EndpointResult
		switch ep.Mode {
		case Incremental:
			res = x.incremental(ctx, r.ID, ep)
		default:
			res = x.snapshot(ctx, r.ID, ep)
		}
		x.finishEndpoint(r, res)
		if res.Err != nil && x.Abort != nil && x.Abort(res.Err) {
			abort = res.Err
		}
	}
	x.finish(ctx, r)
	return r
}

func (x *Exporter) start(ctx context.Context, id, mode string) *RunResult {
	r := &RunResult{ID: id, Mode: mode, PBX: x.PBX, Started: time.Now().UTC(), Status: "running"}
	if err := x.Sink.StartRun(ctx, r); err != nil {
		x.log().Warn("recording the run's start failed", "err", err)
	}
	return r
}

func (x *Exporter) finishEndpoint(r *RunResult, res EndpointResult) {
	log := x.log().With("endpoint", res.Endpoint, "run_id", r.ID)
	attrs := []any{"rows", res.Rows, "pages", res.Pages, "retries", res.Retries, "duration", res.Duration.Round(time.Millisecond)}
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

func (x *Exporter) finish(ctx context.Context, r *RunResult) {
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
	Cursor int64     `json:"cursor"`
	RunID  string    `json:"run_id"`
	At     time.Time `json:"at"`
}

func (x *Exporter) loadCursor(ctx context.Context, ep *Endpoint) (int64, error) {
	b, err := x.Sink.State(ctx, x.PBX, ep.Name)
	if err != nil || b == nil {
		return 0, err
	}
	var st cursorState
	if err := json.Unmarshal(b, &st); err != nil {
		return 0, fmt.Errorf("stored state of %s is damaged (%v): it must be repaired or removed", ep.Name, err)
	}
	return st.Cursor, nil
}

// upperBound asks for the highest cursor value now on the PBX: records
// above it arrive during the run and are left to the next one.
func (x *Exporter) upperBound(ctx context.Context, ep *Endpoint, n *Counters) (int64, bool, error) {
	q := url.Values{"sort": {ep.Cursor}, "dir": {"DESC"}, "start": {"0"}, "count": {"1"}, "fields": {ep.Cursor}}
	pg, err := x.Client.List(ctx, ep.Path, q, n)
	if err != nil {
		return 0, false, fmt.Errorf("read the newest %s: %w", ep.Cursor, err)
	}
	if len(pg.Records) == 0 {
		return 0, false, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(pg.Records[0], &m); err != nil {
		return 0, false, fmt.Errorf("read the newest %s: %w", ep.Cursor, err)
	}
	v, err := parseInt(m[ep.Cursor])
	if err != nil {
		return 0, false, fmt.Errorf("read the newest %s: %q is not a whole number", ep.Cursor, m[ep.Cursor])
	}
	return v, true, nil
}

func (x *Exporter) pager(ep *Endpoint, q url.Values, n *Counters, log *slog.Logger) *Pager {
	conv := &Converter{Endpoint: ep, Zone: x.Zone}
	return &Pager{Client: x.Client, Path: ep.Path, Query: q, PageSize: x.PageSize, Concurrency: x.Concurrency,
		MaxPages: x.MaxPages, Counters: n, Log: log, Rows: conv.Rows}
}

// tally fills in an endpoint's duration and request counts when its export
// ends.
func tally(res *EndpointResult, n *Counters, began time.Time) {
	res.Duration = time.Since(began)
	res.Pages, res.Requests, res.Retries = n.Pages.Load(), n.Requests.Load(), n.Retries.Load()
}

func progress(n *Counters, rows int64) Progress {
	return Progress{Rows: rows, Pages: n.Pages.Load(), Retries: n.Retries.Load()}
}

// incremental exports the records above the cursor, up to the highest
// cursor value at the start, committing every BatchSize rows.
func (x *Exporter) incremental(ctx context.Context, runID string, ep *Endpoint) (res EndpointResult) {
	res.Endpoint = ep.Name
	n := &Counters{}
	defer tally(&res, n, time.Now())
	log := x.log().With("endpoint", ep.Name, "run_id", runID)
	from, err := x.loadCursor(ctx, ep)
	if err != nil {
		res.Err = err
		return res
	}
	res.Cursor = from
	upper, found, err := x.upperBound(ctx, ep, n)
	if err != nil {
		res.Err = err
		return res
	}
	if !found || upper <= from {
		log.Debug("nothing new", "cursor", from)
		return res
	}
	q := url.Values{"sort": {ep.Sort}, "dir": {"ASC"},
		"filter[" + ep.Cursor + "][from]": {strconv.FormatInt(from+1, 10)},
		"filter[" + ep.Cursor + "][to]":   {strconv.FormatInt(upper, 10)}}

	// The loader's goroutine alone touches batch, seq, committed and done;
	// the producer (the pager's callback) decides what to write and when
	// to commit.
	l := newLoader(ctx, x.CommitGrace)
	var (
		batch     Batch
		seq       int
		committed int64 // rows committed
		done      = from
		inBatch   int64  // rows queued since the last commit
		last      = from // highest cursor queued, in order
		queued    = from // cursor of the last commit queued
		ordered   = true
	)
	begin := func(ctx context.Context) error {
		if batch != nil {
			return nil
		}
		b, err := x.Sink.Begin(ctx, BatchInfo{PBX: x.PBX, RunID: runID, Endpoint: ep, StateKey: ep.Name, Seq: seq + 1})
		if err != nil {
			return err
		}
		batch, seq = b, seq+1
		return nil
	}
	write := func(rows []Row) func(context.Context) error {
		return func(ctx context.Context) error {
			if err := begin(ctx); err != nil {
				return err
			}
			return batch.Write(ctx, rows)
		}
	}
	commit := func(cursor, rows int64) {
		queued = cursor
		l.do(func(ctx context.Context) error {
			if err := begin(ctx); err != nil {
				return err
			}
			st, _ := json.Marshal(cursorState{Cursor: cursor, RunID: runID, At: time.Now().UTC()})
			err := batch.Commit(ctx, st, progress(n, committed+rows))
			batch = nil
			if err != nil {
				return fmt.Errorf("commit rows up to %s %d: %w", ep.Cursor, cursor, err)
			}
			committed, done = committed+rows, cursor
			return nil
		})
	}
	pr, err := x.pager(ep, q, n, log).Run(ctx, func(p Page) error {
		if l.failed() {
			return errLoader
		}
		rows := make([]Row, 0, len(p.Rows))
		for _, row := range p.Rows {
			if row.Cursor <= from || row.Cursor > upper {
				res.Filtered++ // the PBX ignored the filter
				continue
			}
			switch {
			case row.Cursor == last && last > from:
				log.Warn("record sent twice; keeping the first", "key", row.Key, "page", p.Number)
				continue
			case row.Cursor < last:
				if ordered {
					log.Warn("the PBX does not sort by the cursor; progress is committed only at the end of the run", "cursor", ep.Cursor)
				}
				ordered = false
			default:
				last = row.Cursor
			}
			rows = append(rows, row)
		}
		if len(rows) == 0 {
			return nil
		}
		if !l.do(write(rows)) {
			return errLoader
		}
		inBatch += int64(len(rows))
		if ordered && inBatch >= int64(x.BatchSize) {
			commit(last, inBatch)
			inBatch = 0
		}
		return nil
	})
	if err == nil && !ordered && res.Filtered > 0 {
		// Neither sorted by the cursor nor bounded by it: records arriving
		// while paging shift the pages, and some may have been skipped.
		// Moving the cursor could lose them for good, so nothing is kept.
		err = fmt.Errorf("the PBX ignores both sort=%s and filter[%s]: offset paging cannot be trusted while calls arrive, so nothing was committed; run the export when the PBX is quiet, or report this PBX's version", ep.Cursor, ep.Cursor)
		inBatch = 0
	}
	interrupted := err != nil && ctx.Err() != nil
	switch {
	case err == nil:
		cursor := last
		switch {
		case pr.Complete:
			cursor = upper
		case !ordered:
			cursor = from // nothing known to be complete
		}
		if inBatch > 0 || cursor != queued {
			commit(cursor, inBatch)
		}
	case interrupted && ordered && inBatch > 0 && x.CommitGrace > 0:
		// Interrupted: keep the whole pages already written, with their
		// cursor, if the sink manages within the grace period.
		commit(last, inBatch)
	}
	lerr := l.wait()
	if batch != nil {
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		batch.Abort(actx)
	}
	res.Rows, res.Cursor = committed, done
	switch {
	case err != nil && !errors.Is(err, errLoader):
		res.Err = err
		if interrupted && lerr == nil && done > from {
			log.Info("interrupted; rows written so far committed", "cursor", done)
		}
	case lerr != nil:
		res.Err = lerr
	case err != nil:
		res.Err = err
	}
	return res
}

// errLoader stops the pager when the sink has failed; the sink's own error
// is the one reported.
var errLoader = errors.New("the sink failed")

// snapshotState is the committed state of a snapshot endpoint.
type snapshotState struct {
	Rows  int64     `json:"rows"`
	RunID string    `json:"run_id"`
	At    time.Time `json:"at"`
}

// snapshot exports the whole endpoint as one batch, committed only when
// every page was read, so that a failed run marks nothing deleted.
func (x *Exporter) snapshot(ctx context.Context, runID string, ep *Endpoint) (res EndpointResult) {
	res.Endpoint = ep.Name
	n := &Counters{}
	defer tally(&res, n, time.Now())
	log := x.log().With("endpoint", ep.Name, "run_id", runID)
	q := url.Values{}
	if ep.Sort != "" {
		q = url.Values{"sort": {ep.Sort}, "dir": {"ASC"}}
	}
	info := BatchInfo{PBX: x.PBX, RunID: runID, Endpoint: ep, StateKey: ep.Name, Snapshot: true, Seq: 1}
	res.Rows, res.Err = x.oneBatch(ctx, info, q, n, log, nil, func(rows int64) []byte {
		st, _ := json.Marshal(snapshotState{Rows: rows, RunID: runID, At: time.Now().UTC()})
		return st
	}, "the snapshot is incomplete, nothing was committed; the next run tries again")
	return res
}

// oneBatch exports every page of a query as one batch, committed with its
// state only when every page was read: a snapshot, or a backfill window.
// keep, when set, filters the rows; a key sent twice is kept once.
func (x *Exporter) oneBatch(ctx context.Context, info BatchInfo, q url.Values, n *Counters, log *slog.Logger,
	keep func(Row) bool, state func(rows int64) []byte, incomplete string) (int64, error) {
	l := newLoader(ctx, 0)
	var batch Batch // the loader's goroutine's
	l.do(func(ctx context.Context) (err error) {
		batch, err = x.Sink.Begin(ctx, info)
		return err
	})
	seen := map[string]bool{}
	var total int64
	pr, err := x.pager(info.Endpoint, q, n, log).Run(ctx, func(p Page) error {
		if l.failed() {
			return errLoader
		}
		rows := make([]Row, 0, len(p.Rows))
		for _, row := range p.Rows {
			if keep != nil && !keep(row) {
				continue
			}
			if seen[row.Key] {
				log.Warn("record sent twice; keeping the first", "key", row.Key, "page", p.Number)
				continue
			}
			seen[row.Key] = true
			rows = append(rows, row)
		}
		total += int64(len(rows))
		if !l.do(func(ctx context.Context) error { return batch.Write(ctx, rows) }) {
			return errLoader
		}
		return nil
	})
	switch {
	case err != nil:
	case !pr.Complete:
		err = fmt.Errorf("records changed while paging (read %d of %d): %s", pr.Records, pr.Total, incomplete)
	case keep == nil && pr.Total >= 0 && int64(len(seen)) < pr.Total:
		// A record read twice means the pages shifted: another was missed.
		err = fmt.Errorf("records changed while paging (%d distinct of %d): %s", len(seen), pr.Total, incomplete)
	}
	committed := false
	if err == nil {
		l.do(func(ctx context.Context) error {
			if err := batch.Commit(ctx, state(total), progress(n, total)); err != nil {
				return fmt.Errorf("commit: %w", err)
			}
			committed = true
			return nil
		})
	}
	lerr := l.wait()
	if !committed && batch != nil {
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		batch.Abort(actx)
	}
	switch {
	case err != nil && !errors.Is(err, errLoader):
		return 0, err
	case lerr != nil:
		return 0, lerr
	case err != nil:
		return 0, err
	}
	return total, nil
}
