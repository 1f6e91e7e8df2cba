package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/robfig/cron/v3"

	"github.com/wildix-export/wildix-export/config"
	"github.com/wildix-export/wildix-export/exporter"
	"github.com/wildix-export/wildix-export/internal/notify"
	"github.com/wildix-export/wildix-export/sinks"
)

// exitAdvice is the README's exit code table, for a failure's message:
// the meaning of each code a notification is sent for, and what to do.
var exitAdvice = map[int][2]string{
	exitFailed:      {"an export failed", "read the error; the next run tries again (rerun now with `wildix-export run --once`)"},
	exitConfig:      {"bad configuration", "fix the configuration: `wildix-export config` lists every problem"},
	exitAuth:        {"OAuth authorization needed", "run `wildix-export authorize` (the PBX refused the token, or there is none)"},
	exitDatabase:    {"PostgreSQL unreachable or unusable", "check the database and EXPORT_DATABASE_URL"},
	exitUnreachable: {"the PBX cannot be reached", "check WILDIX_PBX_URL, the network and WILDIX_CA_FILE"},
}

func cmdNotify(ctx context.Context, a *app, args []string) error {
	fs := a.flags("notify", "--test", `Send a test message to every target of EXPORT_NOTIFY and print each one's
result, to check the configuration (docs/notifications.md). Exits 1 when a
target could not be reached.`)
	test := fs.Bool("test", false, "send a test message to every target")
	if err := parse(fs, args); err != nil {
		return err
	}
	if !*test {
		fs.Usage()
		return fmt.Errorf("%w: notify needs --test", errUsage)
	}
	if err := a.load(config.Need{}); err != nil {
		return err
	}
	if len(a.cfg.Notify) == 0 {
		return fmt.Errorf("%w: EXPORT_NOTIFY is not set: nothing to send to (docs/notifications.md)", errUsage)
	}
	n := a.notifier(newMetrics())
	c := &checkLines{w: a.stdout}
	for _, r := range n.Send(ctx, notify.Message{Kind: notify.KindTest, PBX: a.pbxName(), At: time.Now()}) {
		c.line(r.Err, "notify", r.Target, fmt.Sprintf("(%d attempt(s))", r.Attempts))
	}
	return c.result()
}

func (a *app) pbxName() string { return cmp.Or(a.cfg.PBXID, "wildix-export") }

// notifier sends to EXPORT_NOTIFY's targets, counting in m, with every
// configured secret scrubbed from what it sends.
func (a *app) notifier(m *metrics) *notify.Notifier {
	c := a.cfg
	scrub := c.Notify.Secrets()
	for _, s := range []config.Secret{c.ClientSecret, c.APIKey, c.S2SSecret, c.TokenKey, c.DatabaseURL} {
		if s.IsSet() {
			scrub = append(scrub, s.Value())
		}
	}
	if pc, err := pgconn.ParseConfig(c.DatabaseURL.Value()); c.DatabaseURL.IsSet() && err == nil && pc.Password != "" {
		scrub = append(scrub, pc.Password)
	}
	n := &notify.Notifier{Targets: c.Notify, Log: a.log, Scrub: scrub, Observe: m.notified}
	if a.redact != nil {
		n.Redact = a.redact.Text // as the program's errors (attack 30 L5)
	}
	return n
}

// notices are the run path's notifications: what a run's end calls for,
// and the daily summary. A nil *notices (EXPORT_NOTIFY not set) does
// nothing.
type notices struct {
	a       *app
	tracker *notify.Tracker
	pool    *pgxpool.Pool // the sink's, for the summary's call figures; nil for CSV
	wg      sync.WaitGroup
}

// newNotices keeps the state beside the token (the database's
// notify_state with the token in the database, else a file beside the
// token file) and, for when the database cannot be reached, in
// EXPORT_NOTIFY_STATE_FILE. pool is the sink's, nil when it is not open.
func (a *app) newNotices(m *metrics, pool *pgxpool.Pool) *notices {
	c := a.cfg
	if len(c.Notify) == 0 {
		return nil
	}
	var stores []notify.StateStore
	if c.TokenFile == "" && c.Sink == "postgres" {
		if pool != nil {
			stores = append(stores, &notify.PostgresState{Pool: pool, Schema: c.DBSchema})
		}
		stores = append(stores, &notify.FileState{Path: c.NotifyStateFile})
	} else {
		stores = append(stores, &notify.FileState{Path: cmp.Or(c.TokenFile, "wildix-token.json") + ".notify"})
	}
	return &notices{a: a, pool: pool, tracker: &notify.Tracker{
		Notifier: a.notifier(m), PBX: a.pbxName(), Stores: stores, Zone: c.ScheduleTimezone, Log: a.log,
	}}
}

// notifyStart is the notices of a run that failed to start (the database
// down, no token): the sink is not open, so the database is tried on its
// own for the state, within a few seconds.
func (a *app) notifyStart(ctx context.Context, err error) {
	if len(a.cfg.Notify) == 0 {
		return
	}
	var pool *pgxpool.Pool
	if a.cfg.Sink == "postgres" && !errors.Is(err, sinks.ErrDatabase) {
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		pool, _ = sinks.Connect(cctx, a.cfg.DatabaseURL.Value())
		cancel()
		if pool != nil {
			defer pool.Close()
		}
	}
	a.newNotices(newMetrics(), pool).runEnded(ctx, nil, err)
}

// runEnded sends what the run's end calls for, then the daily summary if
// it is due; it returns within the notifier's bound and never changes
// err. r is nil when the run failed before it started.
func (n *notices) runEnded(ctx context.Context, r *exporter.RunResult, err error) {
	if n == nil {
		return
	}
	// Sending outlives a signal that came meanwhile; its bound still holds,
	// for the failure and the summary together.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), runEndBound)
	defer cancel()
	code := exitCode(err)
	if code == exitInterrupted || code == exitAborted {
		return // stopped on purpose: nothing to tell
	}
	if _, ok := exitAdvice[code]; ok || code == exitOK {
		n.tracker.RunEnded(ctx, outcome(r, err, code))
	}
	if ctx.Err() == nil {
		n.summary(ctx) // else the next run sends it
	}
}

// runEndBound bounds what a run's end sends, the failure or recovery and
// the daily summary together, so that a receiver that hangs delays the
// run's exit by less than 10 s (the notifier's budget bounds each message
// alone; two in a row took twice that).
const runEndBound = 9 * time.Second

// runEndedAsync is runEnded for the worker: the next scheduled export
// never waits for it; wait does, at shutdown.
func (n *notices) runEndedAsync(ctx context.Context, r *exporter.RunResult, err error) {
	if n == nil {
		return
	}
	n.wg.Go(func() { n.runEnded(ctx, r, err) })
}

func (n *notices) wait() {
	if n != nil {
		n.wg.Wait()
	}
}

func outcome(r *exporter.RunResult, err error, code int) notify.Outcome {
	o := notify.Outcome{At: time.Now(), OK: code == exitOK, ExitCode: code}
	o.Meaning, o.Advice = exitAdvice[code][0], exitAdvice[code][1]
	if err != nil {
		o.Error = strings.TrimPrefix(err.Error(), errQuiet.Error()+": ")
	}
	if r == nil {
		return o
	}
	o.RunID = r.ID
	for _, e := range r.Endpoints {
		o.Results = append(o.Results, notify.EndpointOutcome{Endpoint: e.Endpoint, Rows: e.Rows, Failed: e.Err != nil, Warned: warned(e)})
		if e.Err != nil {
			o.Endpoints = append(o.Endpoints, e.Endpoint)
		}
	}
	return o
}

// schedule adds the daily summary to the worker's schedule, at
// EXPORT_NOTIFY_SUMMARY_AT in the schedule's zone.
func (n *notices) schedule(ctx context.Context, c *cron.Cron) {
	if n == nil || n.a.cfg.NotifySummaryAt == "" {
		return
	}
	at, _ := notify.ParseClock(n.a.cfg.NotifySummaryAt) // checked by config
	sched, err := cron.ParseStandard(fmt.Sprintf("CRON_TZ=%s %d %d * * *", n.a.cfg.ScheduleTimezone, at.Minute, at.Hour))
	if err != nil {
		panic(err) // a bug: the spec is built from a checked time
	}
	c.Schedule(sched, cron.FuncJob(func() {
		if ctx.Err() == nil {
			n.summary(ctx)
		}
	}))
}

// summary sends the daily summary when EXPORT_NOTIFY_SUMMARY_AT has
// passed today and none went out yet.
func (n *notices) summary(ctx context.Context) {
	if n == nil || n.a.cfg.NotifySummaryAt == "" {
		return
	}
	at, _ := notify.ParseClock(n.a.cfg.NotifySummaryAt)  // checked by config
	ctx, cancel := context.WithTimeout(ctx, runEndBound) // the figures' queries too
	defer cancel()
	n.tracker.Summary(ctx, time.Now(), at, n.buildSummary)
}

func (n *notices) buildSummary(ctx context.Context, day time.Time) (notify.Summary, error) {
	var s notify.Summary
	if n.pool == nil {
		return s, nil
	}
	calls, err := notify.DayCalls(ctx, n.pool, n.a.cfg.DBSchema, n.a.cfg.PBXID, day)
	s.Calls = calls
	return s, err
}
