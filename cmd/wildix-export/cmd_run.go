package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/wildix-export/wildix-export/config"
	"github.com/wildix-export/wildix-export/exporter"
	"github.com/wildix-export/wildix-export/sinks"
)

func cmdRun(ctx context.Context, a *app, args []string) error {
	fs := a.flags("run", "[--once] [--now] [--endpoints a,b]", `Export the configured endpoints: incremental ones (call history) from their
cursor, snapshots (colleagues, phonebooks, ...) whole.

Without --once, run as a worker on EXPORT_SCHEDULE until SIGTERM: a run still
going when the next is due is skipped, never stacked. With --once, export
once and exit (for cron, Kubernetes CronJobs and other schedulers).`)
	once := fs.Bool("once", false, "export once and exit")
	now := fs.Bool("now", false, "worker: also export once at start")
	eps := fs.String("endpoints", "", "comma list of endpoints (default EXPORT_ENDPOINTS, else all)")
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
		names = splitList(*eps)
	}
	endpoints, err := cat.Select(names)
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	s, p, err := a.connect(ctx, cat)
	if err != nil {
		return err
	}
	defer s.close()
	m := newMetrics()
	m.tokenExpiry = p.expiry
	if a.cfg.HTTPAddr != "" {
		stop, err := serveHTTP(ctx, a, m, s)
		if err != nil {
			return err
		}
		defer stop()
	}
	if *once {
		m.ready.Store(true)
		return a.exportOnce(ctx, s, p, endpoints, "once", m)
	}
	return a.worker(ctx, s, p, endpoints, *now, m)
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// exportOnce runs one export under the PBX's lock and prints a summary line
// per endpoint to stdout.
func (a *app) exportOnce(ctx context.Context, s *sink, p *pbx, endpoints []exporter.Endpoint, mode string, m *metrics) error {
	ctx, cancel := context.WithTimeout(ctx, a.cfg.RunTimeout)
	defer cancel()
	unlock, err := a.lock(ctx, s)
	if err != nil {
		if errors.Is(err, sinks.ErrLocked) {
			m.skipped()
		}
		return err
	}
	defer unlock()
	x := a.exporter(p, s)
	x.Observe = m.endpoint
	id := exporter.NewRunID(time.Now())
	a.log.Info("export started", "run_id", id, "pbx", a.cfg.PBXID, "sink", s.name, "endpoints", len(endpoints))
	began := time.Now()
	r := x.Run(ctx, id, mode, endpoints)
	m.run(r, time.Since(began))
	summary(a.stdout, r)
	a.log.Info("export finished", "run_id", id, "status", r.Status, "duration", time.Since(began).Round(time.Millisecond))
	if err := r.Err(); err != nil {
		if ctx.Err() != nil && errors.Is(context.Cause(ctx), errInterrupted) {
			return fmt.Errorf("%w: %w", context.Cause(ctx), err)
		}
		return err
	}
	return nil
}

func summary(w io.Writer, r *exporter.RunResult) {
	for _, e := range r.Endpoints {
		status := "ok"
		if e.Err != nil {
			status = "FAILED"
		}
		fmt.Fprintf(w, "%-14s %-6s rows=%d pages=%d retries=%d time=%s", e.Endpoint, status, e.Rows, e.Pages, e.Retries, e.Duration.Round(time.Millisecond))
		if e.Windows+e.Skipped > 0 {
			fmt.Fprintf(w, " windows=%d skipped=%d", e.Windows, e.Skipped)
		}
		if e.Err != nil {
			fmt.Fprintf(w, " error=%q", e.Err.Error())
		}
		fmt.Fprintln(w)
	}
}

// cronLogger adapts slog to cron's logger.
type cronLogger struct{ a *app }

func (l cronLogger) Info(msg string, kv ...any) { l.a.log.Debug("cron: "+msg, kv...) }
func (l cronLogger) Error(err error, msg string, kv ...any) {
	l.a.log.Error("cron: "+msg, append(kv, "err", err)...)
}

// guarded runs one scheduled export. cron.New does not recover panics:
// a panic in a run is logged and counted here, and the worker goes on.
func (a *app) guarded(m *metrics, run func()) {
	defer func() {
		if p := recover(); p != nil {
			m.panicked()
			a.log.Error("run panicked", "panic", fmt.Sprint(p))
		}
	}()
	run()
}

// worker exports on the schedule until ctx is cancelled, then lets the run
// in flight commit its batch and returns nil.
func (a *app) worker(ctx context.Context, s *sink, p *pbx, endpoints []exporter.Endpoint, now bool, m *metrics) error {
	sched, err := config.ParseSchedule(a.cfg.Schedule, a.cfg.ScheduleTimezone)
	if err != nil {
		return fmt.Errorf("%w: EXPORT_SCHEDULE: %v", errUsage, err)
	}
	log := cronLogger{a}
	c := cron.New(cron.WithLocation(a.cfg.ScheduleTimezone), cron.WithLogger(log))
	var wg sync.WaitGroup
	var id cron.EntryID
	job := cron.FuncJob(func() {
		wg.Add(1)
		defer wg.Done()
		// Jobs get no context from cron: each run derives one from ctx.
		a.guarded(m, func() {
			if ctx.Err() != nil {
				return
			}
			err := a.exportOnce(ctx, s, p, endpoints, "scheduled", m)
			if err != nil && !errors.Is(err, sinks.ErrLocked) {
				a.log.Error("scheduled export failed", "err", err)
			}
			if e := c.Entry(id); e.Valid() {
				a.log.Info("next export", "at", e.Next)
			}
		})
	})
	wrapped := cron.NewChain(cron.SkipIfStillRunning(log)).Then(job)
	id = c.Schedule(sched, wrapped)
	c.Start()
	m.ready.Store(true)
	a.log.Info("worker started", "schedule", a.cfg.Schedule, "timezone", a.cfg.ScheduleTimezone.String(), "next", c.Entry(id).Next, "pbx", a.cfg.PBXID)
	if now {
		go wrapped.Run()
	}
	<-ctx.Done()
	m.ready.Store(false)
	a.log.Info("stopping: no new runs; the batch in flight may commit", "grace", a.cfg.ShutdownGrace)
	<-c.Stop().Done()
	wg.Wait()
	a.log.Info("worker stopped")
	return nil
}
