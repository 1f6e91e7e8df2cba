package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/net/netutil"

	"github.com/wildix-export/wildix-export/exporter"
	"github.com/wildix-export/wildix-export/internal/notify"
	"github.com/wildix-export/wildix-export/sinks"
)

// metrics are the worker's Prometheus figures, in a registry of its own.
// A nil *metrics is not allowed; newMetrics is cheap.
type metrics struct {
	reg         *prometheus.Registry
	runs        *prometheus.CounterVec
	rows        *prometheus.CounterVec
	pages       *prometheus.CounterVec
	retries     *prometheus.CounterVec
	filtered    *prometheus.CounterVec
	vanished    *prometheus.CounterVec
	duration    prometheus.Histogram
	lastSuccess *prometheus.GaugeVec
	panics      prometheus.Counter
	skips       prometheus.Counter
	notices     *prometheus.CounterVec
	recFiles    *prometheus.CounterVec
	recBytes    prometheus.Counter
	pruneRows   *prometheus.CounterVec
	// recOldest is what the last recordings run that listed learnt of the
	// oldest recording not stored (nil: no run has listed yet, so
	// nothing is known); its age is computed when scraped.
	recOldest   atomic.Pointer[recPending]
	ready       atomic.Bool
	tokenExpiry func() time.Time
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wildix_export_runs_total",
			Help: "Export runs by outcome (ok, warned: ended well with something still to do, failed, interrupted)."}, []string{"outcome"}),
		rows: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wildix_export_rows_total",
			Help: "Rows exported, by endpoint."}, []string{"endpoint"}),
		pages: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wildix_export_pages_total",
			Help: "Pages read from the PBX, by endpoint."}, []string{"endpoint"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wildix_export_retries_total",
			Help: "Requests to the PBX retried, by endpoint."}, []string{"endpoint"}),
		filtered: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wildix_export_filtered_records_total",
			Help: "Records the PBX sent outside the bounds asked of it, dropped, by endpoint."}, []string{"endpoint"}),
		vanished: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wildix_export_vanished_records_total",
			Help: "Records announced that the PBX deleted while a run read them, by endpoint."}, []string{"endpoint"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "wildix_export_run_duration_seconds",
			Help: "Duration of export runs.", Buckets: prometheus.ExponentialBuckets(1, 3, 10)}),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "wildix_export_last_success_timestamp_seconds",
			Help: "Unix time of the last successful export, by endpoint."}, []string{"endpoint"}),
		panics: prometheus.NewCounter(prometheus.CounterOpts{Name: "wildix_export_run_panics_total",
			Help: "Runs that panicked (recovered)."}),
		skips: prometheus.NewCounter(prometheus.CounterOpts{Name: "wildix_export_runs_skipped_total",
			Help: "Runs skipped because another export of the PBX held its lock."}),
		notices: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wildix_export_notifications_total",
			Help: "Notifications by service and outcome (sent, failed: after its retries)."}, []string{"service", "outcome"}),
		recFiles: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wildix_export_recordings_total",
			Help: "Call recordings' files by outcome: copied, skipped (already stored), vanished (deleted on the PBX first), refused (an address that must not be fetched), failed."}, []string{"outcome"}),
		recBytes: prometheus.NewCounter(prometheus.CounterOpts{Name: "wildix_export_recordings_bytes_total",
			Help: "Bytes of call recordings copied to the recordings store."}),
		pruneRows: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wildix_export_retention_removed_total",
			Help: "Rows of calls older than EXPORT_RETENTION removed after runs, by table (CSV: endpoint folder); files, for \"recordings store\"."}, []string{"table"}),
		tokenExpiry: func() time.Time { return time.Time{} },
	}
	for _, o := range []string{"copied", "skipped", "vanished", "refused", "failed"} {
		m.recFiles.WithLabelValues(o) // present at 0 from the start, for rate() and alerts
	}
	m.reg.MustRegister(m.runs, m.rows, m.pages, m.retries, m.filtered, m.vanished, m.duration, m.lastSuccess, m.panics, m.skips, m.notices,
		m.recFiles, m.recBytes, m.pruneRows,
		pendingAge{m: m, desc: prometheus.NewDesc("wildix_export_recordings_oldest_pending_age_seconds",
			"Age of the oldest call recording the last recordings run listed and did not store (0: it stored them all; no sample until a recordings run of this process has listed); above 5 days, the PBX is 2 days from dropping its copy.", nil, nil)},
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "wildix_export_token_expiry_timestamp_seconds",
			Help: "Unix time the OAuth access token in use expires (0 for keys or before the first run)."},
			func() float64 {
				if t := m.tokenExpiry(); !t.IsZero() {
					return float64(t.Unix())
				}
				return 0
			}))
	return m
}

func (m *metrics) endpoint(r exporter.EndpointResult) {
	m.rows.WithLabelValues(r.Endpoint).Add(float64(r.Rows))
	m.pages.WithLabelValues(r.Endpoint).Add(float64(r.Pages))
	m.retries.WithLabelValues(r.Endpoint).Add(float64(r.Retries))
	m.filtered.WithLabelValues(r.Endpoint).Add(float64(r.Filtered))
	m.vanished.WithLabelValues(r.Endpoint).Add(float64(r.Vanished))
	if r.Err == nil {
		m.lastSuccess.WithLabelValues(r.Endpoint).Set(float64(r.Completed.Unix()))
	}
	if rec := r.Recordings; rec != nil {
		for o, n := range map[string]int{"copied": rec.Copied, "skipped": rec.Skipped, "vanished": rec.Vanished, "refused": rec.Refused, "failed": rec.Failed} {
			m.recFiles.WithLabelValues(o).Add(float64(n))
		}
		m.recBytes.Add(float64(rec.Bytes))
		// A run that failed before listing knows nothing newer: the
		// figure it had stays (none before a run has listed), and keeps
		// ageing.
		if rec.OldestPending != nil || r.Err == nil {
			m.recOldest.Store(&recPending{oldest: rec.OldestPending})
		}
	}
}

// recPending is the call start of the oldest recording a run listed and
// did not store; nil when it stored them all.
type recPending struct{ oldest *time.Time }

// pendingAge is the oldest pending recording's age as a gauge: no sample
// while nothing is known (a 0 would read as "all stored").
type pendingAge struct {
	m    *metrics
	desc *prometheus.Desc
}

func (p pendingAge) Describe(ch chan<- *prometheus.Desc) { ch <- p.desc }

func (p pendingAge) Collect(ch chan<- prometheus.Metric) {
	st := p.m.recOldest.Load()
	if st == nil {
		return
	}
	age := 0.0
	if st.oldest != nil {
		age = time.Since(*st.oldest).Seconds()
	}
	ch <- prometheus.MustNewConstMetric(p.desc, prometheus.GaugeValue, age)
}

func (m *metrics) run(r *exporter.RunResult, d time.Duration) {
	m.runs.WithLabelValues(runOutcome(r)).Inc()
	m.duration.Observe(d.Seconds())
}

// runOutcome is r's outcome label: its status, but "warned" for a run
// that ended well with a result the run ledger's notes say is still to
// do (warned: a rewrite in place under the pseudonymisation rule due;
// or files of recordings not kept pending removal, attack11 F4), counted
// neither ok nor failed, as the notification's runs_warned.
func runOutcome(r *exporter.RunResult) string {
	if r.Status == "ok" && slices.ContainsFunc(r.Endpoints, func(e exporter.EndpointResult) bool { return warned(e) || pendingRemoval(e) }) {
		return "warned"
	}
	return r.Status
}

// refused counts a run that failed before it began (under the PBX's
// lock: a privacy check refusing it) as failed.
func (m *metrics) refused() { m.runs.WithLabelValues("failed").Inc() }

// pruned counts what retention removed.
func (m *metrics) pruned(p sinks.Pruned) {
	for _, c := range p {
		m.pruneRows.WithLabelValues(c.Table).Add(float64(c.Rows))
	}
}

func (m *metrics) panicked() { m.panics.Inc() }
func (m *metrics) skipped()  { m.skips.Inc() }

// notified counts one notification's delivery to one target.
func (m *metrics) notified(t *notify.Target, err error) {
	outcome := "sent"
	if err != nil {
		outcome = "failed"
	}
	m.notices.WithLabelValues(string(t.Service), outcome).Inc()
}

// statusConns caps the connections the status port holds at once. Its
// users are a probe and a scraper; each connection costs a file descriptor
// the export may need, so further connections wait in the kernel's accept
// queue, which costs the process none, until one ends (by the timeouts at
// the latest).
const statusConns = 16

// serveHTTP serves /healthz (the process answers), /readyz (the worker is
// scheduling and the sink answers) and /metrics on EXPORT_HTTP_ADDR.
func serveHTTP(ctx context.Context, a *app, m *metrics, s *sink) (func(), error) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if !m.ready.Load() {
			http.Error(w, "not ready: the worker is not scheduling", http.StatusServiceUnavailable)
			return
		}
		if s.pool != nil {
			pctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
			defer cancel()
			if err := s.pool.Ping(pctx); err != nil {
				http.Error(w, "not ready: database unreachable", http.StatusServiceUnavailable)
				return
			}
		}
		fmt.Fprintln(w, "ready")
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
	ln, err := net.Listen("tcp", a.cfg.HTTPAddr)
	if err != nil {
		return nil, fmt.Errorf("%w: EXPORT_HTTP_ADDR=%s: %v", errUsage, a.cfg.HTTPAddr, err)
	}
	// The port has no authentication: whoever reaches it must not be able
	// to hold the process's file descriptors, which the export needs
	// (see statusConns), nor keep a connection for long.
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 10 * time.Second, MaxHeaderBytes: 16 << 10,
		ErrorLog: slog.NewLogLogger(a.log.Handler(), slog.LevelWarn)}
	go func() {
		if err := srv.Serve(netutil.LimitListener(ln, statusConns)); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Error("http listener stopped", "err", err)
		}
	}()
	a.log.Info("serving /healthz, /readyz and /metrics", "addr", ln.Addr().String())
	return func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}, nil
}
