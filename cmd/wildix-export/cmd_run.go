package main

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/robfig/cron/v3"

	"github.com/wildix-export/wildix-export/config"
	"github.com/wildix-export/wildix-export/exporter"
	"github.com/wildix-export/wildix-export/exporter/record"
	"github.com/wildix-export/wildix-export/sinks"
)

// runHelp is what `wildix-export run --help` says above the flags.
const runHelp = `Export the configured endpoints: incremental ones (call history) from their
cursor, snapshots (colleagues, phonebooks, ...) whole, and, with a recordings
store (EXPORT_RECORDINGS_STORE), every call recording's file copied to it.

Without --once, run as a worker on EXPORT_SCHEDULE until SIGTERM: a run still
going when the next is due is skipped, never stacked. With --once, export
once and exit (for cron, Kubernetes CronJobs and other schedulers).`

func cmdRun(ctx context.Context, a *app, args []string) error {
	fs := a.flags("run", "[--once] [--now] [--endpoints a,b] [--force]", runHelp)
	once := fs.Bool("once", false, "export once and exit")
	now := fs.Bool("now", false, "worker: also export once at start")
	eps := fs.String("endpoints", "", "comma list of endpoints (default EXPORT_ENDPOINTS, else all; recordings only with a store)")
	fs.BoolVar(&a.force, "force", false, "accept an EXPORT_PSEUDONYMIZE or EXPORT_PSEUDONYM_KEY other than the one the sink's rows were written under (stored with the run's first commit, or at its end when it commits nothing, which the run ledger marks; never a key other than the suppression list's), or an EXPORT_RETENTION shorter than the one they were pruned under (the retention notes record it)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := a.load(config.Need{PBX: true, Sink: true}); err != nil {
		return err
	}
	cat, err := a.catalog()
	if err != nil {
		return err
	}
	names := a.cfg.Endpoints
	if *eps != "" {
		names = config.SplitList(*eps)
	}
	endpoints, err := a.selectEndpoints(cat, names)
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	st, err := a.start(ctx, cat)
	if err != nil {
		a.notifyStart(ctx, err)
		return err
	}
	defer st.sink.close()
	m := newMetrics()
	n := a.newNotices(m, st.sink.pool)
	m.tokenExpiry = st.pbx.expiry
	st.x.Observe = func(r exporter.EndpointResult) { a.warnRecordings(r); m.endpoint(r) }
	if a.cfg.HTTPAddr != "" {
		stop, err := serveHTTP(ctx, a, m, st.sink)
		if err != nil {
			return err
		}
		defer stop()
	}
	if *once {
		m.ready.Store(true)
		var r *exporter.RunResult
		err := a.safely(m, func() (err error) { r, err = a.exportAll(ctx, st, m, endpoints, "once"); return err })
		n.runEnded(ctx, r, err)
		return err
	}
	w, err := a.newWorker(ctx, st, endpoints, m)
	if err != nil {
		return err
	}
	w.n = n
	n.schedule(ctx, w.cron)
	return w.serve(ctx, *now)
}

// exportAll exports the endpoints once, under the lock; the result is
// nil when the run did not start (the lock held by another). A run
// ending well while a rewrite in place is due says so (rewriteDueNotice).
func (a *app) exportAll(ctx context.Context, st *started, m *metrics, endpoints []record.Endpoint, mode string) (*exporter.RunResult, error) {
	var r *exporter.RunResult
	err := a.export(ctx, st, m, func(ctx context.Context, id string) *exporter.RunResult {
		st.x.AfterRun = a.rewriteDueNotice(st, st.x.AfterRun) // export set it for this run
		r = st.x.Run(ctx, id, mode, endpoints)
		return r
	})
	return r, err
}

// cronLogger adapts slog to cron's logger; cron's messages are constant.
type cronLogger struct{ a *app }

func (l cronLogger) Info(msg string, kv ...any) {
	l.a.log.Debug("cron", append([]any{"event", msg}, kv...)...)
}

func (l cronLogger) Error(err error, msg string, kv ...any) {
	l.a.log.Error("cron", append([]any{"event", msg, "err", err}, kv...)...)
}

// worker exports on EXPORT_SCHEDULE until its context ends.
type worker struct {
	a    *app
	m    *metrics
	n    *notices // nil without EXPORT_NOTIFY; set before serve
	cron *cron.Cron
	id   cron.EntryID
	job  cron.Job // one scheduled export; skipped while another runs
	wg   sync.WaitGroup
}

// newWorker schedules exports of the endpoints; nothing runs until serve
// starts the schedule or trigger runs one.
func (a *app) newWorker(ctx context.Context, st *started, endpoints []record.Endpoint, m *metrics) (*worker, error) {
	sched, err := config.ParseSchedule(a.cfg.Schedule, a.cfg.ScheduleTimezone)
	if err != nil {
		return nil, fmt.Errorf("%w: EXPORT_SCHEDULE: %v", errUsage, err)
	}
	log := cronLogger{a}
	w := &worker{a: a, m: m, cron: cron.New(cron.WithLocation(a.cfg.ScheduleTimezone), cron.WithLogger(log))}
	w.job = cron.NewChain(cron.SkipIfStillRunning(log)).Then(cron.FuncJob(func() {
		// Jobs get no context from cron: each run derives one from ctx.
		if ctx.Err() != nil {
			return
		}
		var r *exporter.RunResult
		err := a.safely(m, func() (err error) { r, err = a.exportAll(ctx, st, m, endpoints, "scheduled"); return err })
		w.n.runEndedAsync(ctx, r, err)
		if r == nil && err != nil && !errors.Is(err, sinks.ErrLocked) && ctx.Err() == nil {
			// Refused before the run began (a privacy check under the
			// lock, the sink failing): a failed run all the same, which
			// the exporter did not count (attack 6, F11).
			m.refused()
		}
		switch {
		case errors.Is(err, sinks.ErrLocked):
			a.log.Warn("skipped: another export of this PBX is running", "pbx", a.cfg.PBXID)
		case errors.Is(err, errQuiet):
			// The exporter logged each endpoint's failure.
			a.log.Error("scheduled export failed", "exit_code", exitCode(err))
		case err != nil:
			a.log.Error("scheduled export failed", "err", err)
		}
		if e := w.cron.Entry(w.id); e.Valid() {
			a.log.Info("next export", "at", e.Next)
		}
	}))
	w.id = w.cron.Schedule(sched, w.job)
	return w, nil
}

// trigger runs a scheduled export now, as the schedule would.
func (w *worker) trigger() {
	w.wg.Add(1)
	defer w.wg.Done()
	w.job.Run()
}

// serve runs the schedule until ctx ends, then lets the run in flight
// commit its batch (EXPORT_SHUTDOWN_GRACE) and returns nil.
func (w *worker) serve(ctx context.Context, now bool) error {
	a := w.a
	w.cron.Start()
	w.m.ready.Store(true)
	a.log.Info("worker started", "schedule", a.cfg.Schedule, "timezone", a.cfg.ScheduleTimezone.String(), "next", w.cron.Entry(w.id).Next, "pbx", a.cfg.PBXID)
	if now {
		go w.trigger()
	}
	<-ctx.Done()
	w.m.ready.Store(false)
	a.log.Info("stopping: no new runs; the batch in flight may commit", "grace", a.cfg.ShutdownGrace)
	<-w.cron.Stop().Done()
	w.wg.Wait()
	w.n.wait()
	a.log.Info("worker stopped")
	return nil
}
