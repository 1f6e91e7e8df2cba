package notify

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"
)

// storeTimeout bounds one load or save of the state, so that a database
// that does not answer costs seconds, not the run's exit.
const storeTimeout = 2 * time.Second

// Outcome is how a run ended, as the tracker needs it.
type Outcome struct {
	RunID     string
	At        time.Time
	OK        bool
	ExitCode  int      // for a failure
	Meaning   string   // the exit code's meaning
	Advice    string   // what to do
	Endpoints []string // the endpoints that failed
	Error     string   // as the log shows it
	Results   []EndpointOutcome
}

// EndpointOutcome is what a run did with one endpoint, for the daily
// summary's tally.
type EndpointOutcome struct {
	Endpoint string
	Rows     int64
	Failed   bool
	// Warned: ended well with something still to do that the run ledger's
	// notes say (a rewrite in place under the pseudonymisation rule due):
	// counted apart, neither ok nor failed.
	Warned bool
}

// Tracker decides what to send and remembers what it sent: a failure is
// sent once, then at most once a (local) day while the same failure goes
// on; the first success after failures sends one recovery; the daily
// summary goes once a day. Its state lives in Stores, each loaded and
// saved every time, the newest winning: the store beside the token first,
// then a local file for when that one cannot be reached. When no store
// answers, the state this process last saw is used; when there is none,
// a failure is sent rather than kept silent. Safe for concurrent use.
type Tracker struct {
	Notifier *Notifier
	PBX      string
	Stores   []StateStore
	Zone     *time.Location // days are counted in it; nil means UTC
	Log      *slog.Logger

	mu  sync.Mutex
	mem *State // this process's last state
}

// RunEnded sends what a run's end calls for, if anything, and returns it
// (nil when nothing was sent). It never fails: problems are logged.
func (t *Tracker) RunEnded(ctx context.Context, o Outcome) *Message {
	t.mu.Lock()
	defer t.mu.Unlock()
	st, known := t.load(ctx)
	m, next := t.decide(st, known, o)
	if m == nil {
		t.save(ctx, next)
		return nil
	}
	if !delivered(t.Notifier.Send(ctx, *m)) {
		// Nothing got through: the next run tries again.
		if o.OK {
			next.Failing, next.Signature, next.Meaning = st.Failing, st.Signature, st.Meaning
			next.FailingSince, next.FailedRuns, next.LastSent = st.FailingSince, st.FailedRuns, st.LastSent
		} else {
			next.LastSent = st.LastSent
		}
	}
	t.save(ctx, next)
	return m
}

// decide is the policy, apart from I/O: the message to send for outcome
// o given state st (known false when no state could be read), and the
// state after it is sent.
func (t *Tracker) decide(st State, known bool, o Outcome) (*Message, State) {
	next := st
	next.Days = slices.Clone(st.Days)
	next.UpdatedAt = o.At
	next.count(t.day(o.At), o)
	if o.OK {
		if !known || !st.Failing {
			return nil, next
		}
		next.Failing, next.Signature, next.Meaning, next.FailingSince, next.FailedRuns, next.LastSent = false, "", "", time.Time{}, 0, time.Time{}
		return &Message{Kind: KindRecovered, PBX: t.PBX, At: o.At, Recovery: &Recovery{
			RunID: o.RunID, FailingSince: st.FailingSince, FailedRuns: st.FailedRuns, LastMeaning: st.Meaning,
		}}, next
	}
	sig := signature(o)
	same := known && st.Failing && st.Signature == sig
	if !st.Failing || !known {
		next.FailingSince, next.FailedRuns = o.At, 0
	}
	next.Failing, next.Signature, next.Meaning = true, sig, o.Meaning
	next.FailedRuns++
	if same && t.sameDay(st.LastSent, o.At) {
		return nil, next
	}
	next.LastSent = o.At
	return &Message{Kind: KindFailure, PBX: t.PBX, At: o.At, Failure: &Failure{
		RunID: o.RunID, ExitCode: o.ExitCode, Meaning: o.Meaning, Advice: o.Advice, Endpoints: o.Endpoints,
		Error: o.Error, FailingSince: next.FailingSince, FailedRuns: next.FailedRuns, Reminder: same,
	}}, next
}

// signature tells failures apart: the exit code and the endpoints that
// failed. The error's text is left out, as it carries page numbers, ids
// and times that differ at every run of the same failure.
func signature(o Outcome) string {
	eps := slices.Clone(o.Endpoints)
	slices.Sort(eps)
	return fmt.Sprintf("exit %d: %s", o.ExitCode, strings.Join(eps, ","))
}

func (t *Tracker) zone() *time.Location {
	if t.Zone != nil {
		return t.Zone
	}
	return time.UTC
}

func (t *Tracker) day(at time.Time) string { return at.In(t.zone()).Format(time.DateOnly) }

func (t *Tracker) sameDay(a, b time.Time) bool { return !a.IsZero() && t.day(a) == t.day(b) }

// load reads every store and returns the newest state, with this
// process's own; known is false when neither a store nor memory answered.
func (t *Tracker) load(ctx context.Context) (State, bool) {
	var best State
	known := false
	if t.mem != nil {
		best, known = *t.mem, true
	}
	for _, s := range t.Stores {
		sctx, cancel := context.WithTimeout(ctx, storeTimeout)
		st, err := s.LoadState(sctx, t.PBX)
		cancel()
		if err != nil {
			t.log().Warn("notification state unreadable", "store", s.String(), "err", err)
			continue
		}
		if !known || st.UpdatedAt.After(best.UpdatedAt) {
			best = st
		}
		known = true
	}
	if !known {
		t.log().Warn("no notification state could be read: failures are sent at every run until one can")
	}
	return best, known
}

// save writes st to every store; one that fails is logged. It does so
// even when ctx's deadline has passed while sending (each store still
// bounded): a state not saved would send the same failure at every run.
func (t *Tracker) save(ctx context.Context, st State) {
	t.mem = &st
	for _, s := range t.Stores {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
		err := s.SaveState(sctx, t.PBX, st)
		cancel()
		if err != nil {
			t.log().Warn("notification state not saved", "store", s.String(), "err", err)
		}
	}
}

func (t *Tracker) log() *slog.Logger {
	if t.Log != nil {
		return t.Log
	}
	return slog.New(slog.DiscardHandler)
}

func delivered(rs []Result) bool {
	for _, r := range rs {
		if r.Err == nil {
			return true
		}
	}
	return false
}

// Clock is a time of day.
type Clock struct{ Hour, Minute int }

// ParseClock reads HH:MM (24-hour).
func ParseClock(s string) (Clock, error) {
	t, err := time.Parse("15:04", s)
	if err != nil {
		return Clock{}, fmt.Errorf("%q: expected a time of day as HH:MM, e.g. 08:00", s)
	}
	return Clock{t.Hour(), t.Minute()}, nil
}

func (c Clock) String() string { return fmt.Sprintf("%02d:%02d", c.Hour, c.Minute) }

// Summary sends the daily summary of the day before now's (local) day, if
// it is due: now is at or after at, and no summary went out today. The
// worker calls it at that time, and every run after its export, so that
// under an outside scheduler the first run after that time sends it.
// The runs are the tracker's own tally; build adds what only the caller
// knows (the calls of the day that starts at day). A failure to build is
// logged and the summary sent with what build returned.
func (t *Tracker) Summary(ctx context.Context, now time.Time, at Clock, build func(ctx context.Context, day time.Time) (Summary, error)) *Message {
	t.mu.Lock()
	defer t.mu.Unlock()
	local := now.In(t.zone())
	y, mo, d := local.Date()
	if local.Before(time.Date(y, mo, d, at.Hour, at.Minute, 0, 0, t.zone())) {
		return nil
	}
	st, known := t.load(ctx)
	today := t.day(now)
	if known && st.SummaryDay == today {
		return nil
	}
	day := time.Date(y, mo, d-1, 0, 0, 0, 0, t.zone())
	s, err := build(ctx, day)
	if err != nil {
		t.log().Warn("daily summary incomplete", "err", err)
	}
	s.Day, s.Zone = day.Format(time.DateOnly), t.zone().String()
	tally := st.tally(s.Day)
	s.RunsOK, s.RunsFailed, s.RunsWarned, s.Endpoints = tally.RunsOK, tally.RunsFailed, tally.RunsWarned, tally.Endpoints
	if st.Failing {
		s.Failing = st.Meaning
	}
	m := &Message{Kind: KindSummary, PBX: t.PBX, At: now, Summary: &s}
	if delivered(t.Notifier.Send(ctx, *m)) {
		st.SummaryDay, st.UpdatedAt = today, now
		t.save(ctx, st)
	}
	return m
}
