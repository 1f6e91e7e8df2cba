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
	"math"
	"net/url"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/wildix-export/wildix-export/exporter/jsonscan"
	"github.com/wildix-export/wildix-export/exporter/pbx"
	"github.com/wildix-export/wildix-export/exporter/record"
)

// Lister is one request of a list endpoint: all the exporter asks of the
// PBX. A *pbx.Client is one, over HTTP; tests also call the simulator's
// list logic in process. It counts each attempt in n.
type Lister interface {
	List(ctx context.Context, path string, q url.Values, n *pbx.Counts) (*pbx.ListPage, error)
}

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
	Client      Lister // the PBX: a *pbx.Client
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
	Log      *slog.Logger
	// Observe, when set, is called once per endpoint with its result.
	Observe func(EndpointResult)
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
		switch ep.Mode {
		case record.Incremental:
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
	r := &RunResult{ID: id, Mode: mode, PBX: x.PBX, Started: time.Now().UTC(), Status: "running"}
	if x.Zone != nil {
		r.TimeZone = x.Zone.String()
	}
	if err := x.Sink.StartRun(ctx, r); err != nil {
		x.log().Warn("recording the run's start failed", "err", err)
	}
	return r
}

func (x *Exporter) finishEndpoint(r *RunResult, res EndpointResult) {
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

// Counters count one endpoint's requests, pages, records dropped and
// conversion warnings. Safe for concurrent use.
type Counters struct {
	pbx.Counts
	Pages atomic.Int64
	// Filtered counts records the PBX sent outside the bounds asked of
	// it, dropped (EndpointResult.Filtered).
	Filtered atomic.Int64
	// Warnings counts what the endpoint's conversion worked around (a
	// value that cannot be stored, an ambiguous wall time) instead of
	// failing the run; they reach the log and the ledger as notes.
	Warnings record.Warnings
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
	// From is what filter[key][from] was seen to do with its bound (see
	// upperBound), stored as "inclusive" or "exclusive", left out when not
	// known.
	From bound `json:"from,omitempty"`
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

// upperBound finds the highest cursor value now on the PBX: records above
// it arrive during the run and are left to the next one. It is not taken
// on trust from one answer:
//
//  1. sort=key&dir=DESC&count=2 gives a candidate: the highest key of
//     the answer (a PBX ignoring dir or sort answers in another order:
//     noted when the two keys are not descending);
//  2. filter[key][from]=candidate (same sort, count=2) must bring back no
//     key above it; if it does, the highest of those is the next
//     candidate, and a PBX that ignores dir is searched by doubling steps
//     of filter[key][from], then halving, until a candidate is confirmed.
//
// Only keys above after are asked for (after is the cursor; 0 for a
// backfill): a run with nothing new costs one request once the bound's
// kind is known. The confirming answer shows whether filter[key][from]
// includes its bound: when the candidate does not come back, every later
// request asks from one below (sizes, kept in the cursor's state). A key
// below the asked from means the PBX ignores filter[key]: a *ladderError.
// Each finding is noted in res.
//
// A key of math.MaxInt64 is passed over (logged): a cursor there could
// never move again, and every later record would be left out.
func (x *Exporter) upperBound(ctx context.Context, ep *record.Endpoint, after int64, n *Counters, log *slog.Logger, res *EndpointResult, sizes *learnt) (int64, bool, error) {
	b := &boundSearch{x: x, ep: ep, n: n, log: log, res: res}
	field := ep.Cursor
	// The first request asks only above after: on a PBX whose from is
	// known to be inclusive, an empty answer proves nothing new in one
	// request, whatever the PBX does with dir and sort; otherwise it asks
	// from after itself, which proves the same under either bound.
	from := after
	if sizes.fromBound() == boundInclusive && after < math.MaxInt64 {
		from = after + 1
	}
	keys, err := b.ask(ctx, from)
	if err != nil || len(keys) == 0 {
		return 0, false, err
	}
	first := keys[0]
	lo := slices.Max(keys)
	b.seenTwo = len(keys) == 2
	b.checkOrder(keys)
	for {
		// Confirm lo: nothing above it.
		keys, err := b.probe(ctx, lo)
		if err != nil {
			return b.fail(err, lo)
		}
		if len(keys) == 0 {
			// lo, a key the PBX just sent, did not come back for
			// filter[key][from]=lo: the bound is exclusive (or lo went
			// meanwhile; asking from one below is then merely one record
			// more a page).
			if sizes.setFrom(boundExclusive) {
				note(res, log, fmt.Sprintf("filter[%s][from]=%d did not bring back %s %d: the bound is taken as exclusive, and each request asks from one below", field, lo, field, lo))
			}
			break
		}
		if slices.Contains(keys, lo) && sizes.setFrom(boundInclusive) {
			log.Debug("filter[key][from] includes its bound", "key", lo)
		}
		above := slices.Max(keys)
		if above <= lo && b.seenTwo {
			break // confirmed
		}
		if above <= lo {
			// Only lo came back, and a page may hold one record: ask above
			// it (lo came back, so the bound is inclusive).
			if keys, err = b.probe(ctx, lo+1); err != nil {
				return b.fail(err, lo)
			}
			if len(keys) == 0 {
				break
			}
			above = slices.Max(keys)
		}
		// lo is not the newest: climb to it; the loop's first request then
		// confirms it.
		if lo, err = b.climb(ctx, above); err != nil {
			return b.fail(err, lo)
		}
	}
	switch {
	case lo != first && b.disordered:
		note(res, log, fmt.Sprintf("the PBX's answer to sort=%s&dir=DESC began with %d, not the newest %s: %d, found by filter[%s][from]", field, first, field, lo, field))
	case lo != first:
		// Answers in order: records arrived between the requests.
		log.Debug("newer records arrived while the newest key was confirmed", "first", first, "newest", lo)
	}
	return lo, true, nil
}

// boundSearch is upperBound's search: its requests, and what their
// answers have shown.
type boundSearch struct {
	x   *Exporter
	ep  *record.Endpoint
	n   *Counters
	log *slog.Logger
	res *EndpointResult
	// seenTwo: the PBX has sent two keys in one answer, so an answer of
	// one key to count=2 is not a page size of one.
	seenTwo bool
	// disordered: an answer to dir=DESC was not descending.
	disordered bool
	probes     int
}

// maxProbes bounds the requests that confirm the newest key.
const maxProbes = 200

// ask reads up to two keys from from, newest first (sort=key&dir=DESC).
func (b *boundSearch) ask(ctx context.Context, from int64) ([]int64, error) {
	field := b.ep.Cursor
	q := url.Values{"sort": {field}, "dir": {"DESC"}, "start": {"0"}, "count": {"2"}, "fields": {field},
		"filter[" + field + "][from]": {strconv.FormatInt(from, 10)}}
	pg, err := b.x.Client.List(ctx, b.ep.Path, q, &b.n.Counts)
	if err != nil {
		return nil, fmt.Errorf("read the newest %s: %w", field, err)
	}
	keys, err := recordKeys(pg, field)
	if err != nil {
		return nil, fmt.Errorf("read the newest %s: %w", field, err)
	}
	out := keys[:0]
	for _, k := range keys {
		if k == math.MaxInt64 {
			b.log.Warn("a record's key is the largest int64; it is not exported, as a cursor there could never move", "key", k)
			continue
		}
		if k < from {
			return nil, &ladderError{Ignored: filterParam, Detail: fmt.Sprintf(
				"read the newest %s: the PBX sent %s %d for filter[%s][from]=%d: it ignores the filter", field, field, k, field, from)}
		}
		out = append(out, k)
	}
	return out, nil
}

// belowOne asks once, on a first run, whether the PBX holds a record whose
// key is below 1 (filter[key][to]=1, two keys, lowest first: with an
// inclusive or an exclusive bound, sorted or not, a key below 1 comes if
// there is one). Incremental export reads keys from 1 up, so such a record
// could never be exported: it is returned, as a record error, rather than
// left out without a word. A PBX that ignores the filter sends keys of 1
// or more, which prove nothing either way.
func (x *Exporter) belowOne(ctx context.Context, ep *record.Endpoint, n *Counters) (*record.RecordError, error) {
	field := ep.Cursor
	q := url.Values{"sort": {field}, "dir": {"ASC"}, "start": {"0"}, "count": {"2"}, "fields": {field},
		"filter[" + field + "][to]": {"1"}}
	pg, err := x.Client.List(ctx, ep.Path, q, &n.Counts)
	if err != nil {
		return nil, fmt.Errorf("look for a %s below 1: %w", field, err)
	}
	keys, err := recordKeys(pg, field)
	if err != nil {
		return nil, fmt.Errorf("look for a %s below 1: %w", field, err)
	}
	for _, k := range keys {
		if k < 1 {
			return &record.RecordError{Key: strconv.FormatInt(k, 10), Field: field, Err: fmt.Errorf(
				"cursor %d is below 1; incremental export reads cursors from 1 up, so this record is not exported (the other records are)", k)}, nil
		}
	}
	return nil, nil
}

// checkOrder notes, once, an answer to dir=DESC that is not descending.
func (b *boundSearch) checkOrder(keys []int64) {
	if len(keys) == 2 && keys[0] <= keys[1] && !b.disordered {
		b.disordered = true
		f := b.ep.Cursor
		note(b.res, b.log, fmt.Sprintf("the PBX answered sort=%s&dir=DESC with %d before %d: it ignores dir or sort; the newest %s is searched by filter[%s][from]", f, keys[0], keys[1], f, f))
	}
}

// probe is ask within maxProbes, learning from each answer.
func (b *boundSearch) probe(ctx context.Context, from int64) ([]int64, error) {
	b.probes++
	if b.probes > maxProbes {
		return nil, errUnsettled
	}
	keys, err := b.ask(ctx, from)
	b.seenTwo = b.seenTwo || len(keys) == 2
	b.checkOrder(keys)
	return keys, err
}

// climb finds the newest key from lo, a key the PBX has sent, by doubling
// steps (an empty answer from f proves no key above f, whether from is
// inclusive or not), then halving the range between. On an error it
// returns the highest key seen so far.
func (b *boundSearch) climb(ctx context.Context, lo int64) (int64, error) {
	step, hi := int64(1), int64(0)
	for {
		f := lo + step
		if f <= lo || f == math.MaxInt64 { // overflow, or the top
			f = math.MaxInt64 - 1
		}
		keys, err := b.probe(ctx, f)
		if err != nil {
			return lo, err
		}
		if len(keys) == 0 {
			hi = f
			break
		}
		lo = max(lo, slices.Max(keys))
		if f == math.MaxInt64-1 {
			hi = lo
			break
		}
		step *= 2
	}
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		keys, err := b.probe(ctx, mid)
		if err != nil {
			return lo, err
		}
		if len(keys) == 0 {
			hi = mid
		} else {
			lo = max(lo, slices.Max(keys))
			hi = max(hi, lo)
		}
	}
	return lo, nil
}

// fail ends the search on an error. Records arriving faster than the
// newest key is confirmed leave it unsettled: from a PBX whose answers
// were in order, lo was then the newest a moment ago, a bound as good as
// any (the rest is the next run's); otherwise the run stops.
func (b *boundSearch) fail(err error, lo int64) (int64, bool, error) {
	if !errors.Is(err, errUnsettled) {
		return 0, false, err
	}
	f := b.ep.Cursor
	if !b.disordered {
		note(b.res, b.log, fmt.Sprintf("records kept arriving while the newest %s was confirmed: this run reads up to %d, the next one goes on from there", f, lo))
		return lo, true, nil
	}
	return 0, false, fmt.Errorf("read the newest %s: not settled after %d requests to filter[%s][from], whose answers are not in order: stopped", f, maxProbes, f)
}

// errUnsettled: the newest key kept moving while it was confirmed.
var errUnsettled = errors.New("the newest key is not settled")

// recordKeys reads field from each record of a page.
func recordKeys(pg *pbx.ListPage, field string) ([]int64, error) {
	keys := make([]int64, 0, len(pg.Records))
	for _, rec := range pg.Records {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(rec, &m); err != nil {
			return nil, err
		}
		v, err := jsonscan.Int(m[field])
		if err != nil {
			return nil, fmt.Errorf("%q is not a whole number", m[field])
		}
		keys = append(keys, v)
	}
	return keys, nil
}

// tally fills in an endpoint's duration and request counts when its export
// ends.
func tally(res *EndpointResult, n *Counters, began time.Time) {
	res.Duration = time.Since(began)
	res.Pages, res.Requests, res.Retries = n.Pages.Load(), n.Requests.Load(), n.Retries.Load()
	res.Filtered = n.Filtered.Load()
	res.Notes = append(res.Notes, n.Warnings.Notes()...)
}

func progress(n *Counters, rows int64) Progress {
	return Progress{Rows: rows, Pages: n.Pages.Load(), Retries: n.Retries.Load()}
}
