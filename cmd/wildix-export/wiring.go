package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/oauth2"

	"github.com/wildix-export/wildix-export/auth"
	"github.com/wildix-export/wildix-export/config"
	"github.com/wildix-export/wildix-export/exporter"
	pbxapi "github.com/wildix-export/wildix-export/exporter/pbx"
	"github.com/wildix-export/wildix-export/exporter/privacy"
	"github.com/wildix-export/wildix-export/exporter/record"
	"github.com/wildix-export/wildix-export/exporter/recordings"
	"github.com/wildix-export/wildix-export/internal/pseudonym"
	"github.com/wildix-export/wildix-export/sinks"
)

// The boot sequence, shared by the commands: sink, token store, PBX client,
// exporter. Only this file turns configuration into parts.

// sink is the opened sink: exporter.Sink (rows, state, the PBX lock and
// the run ledger) and, with PostgreSQL, the pool that the token store,
// check and /readyz also use.
type sink struct {
	exporter.Sink
	pg   *sinks.Postgres // nil for CSV
	pool *pgxpool.Pool   // nil for CSV
	name string
}

func (s *sink) close() {
	if s.pool != nil {
		s.pool.Close()
	}
}

// openSink opens the configured sink without changing anything in it;
// start migrates it.
func (a *app) openSink(ctx context.Context) (*sink, error) {
	c := a.cfg
	if c.Sink == "postgres" {
		pool, err := sinks.Connect(ctx, c.DatabaseURL.Value())
		if err != nil {
			return nil, err
		}
		pg := sinks.NewPostgres(pool, c.DBSchema, a.log)
		pg.Strict = c.Strict
		return &sink{Sink: pg, pg: pg, pool: pool, name: "postgres schema " + c.DBSchema}, nil
	}
	s, err := sinks.NewCSV(sinks.CSVOptions{Dir: c.CSVDir, Gzip: c.CSVGzip, SafeFormulas: c.CSVSafeFormulas, Log: a.log})
	if err != nil {
		return nil, err
	}
	return &sink{Sink: s, name: "csv " + c.CSVDir}, nil
}

// tokenStore is WILDIX_TOKEN_FILE when set, else the database with the
// postgres sink (pool must then be open; see tokenDB), else
// ./wildix-token.json.
func (a *app) tokenStore(ctx context.Context, pool *pgxpool.Pool) (auth.PendingStore, string, error) {
	c := a.cfg
	var key []byte
	if c.TokenKey.IsSet() {
		k, err := config.TokenKeyBytes(c.TokenKey)
		if err != nil {
			return nil, "", fmt.Errorf("WILDIX_TOKEN_KEY: %w", err)
		}
		key = k
	}
	if c.TokenFile == "" && c.Sink == "postgres" {
		if pool == nil {
			return nil, "", fmt.Errorf("%w: with EXPORT_SINK=postgres the token is kept in the database: set EXPORT_DATABASE_URL, or WILDIX_TOKEN_FILE", errUsage)
		}
		s, err := auth.NewPostgresStore(pool, c.DBSchema, key)
		return s, "table " + c.DBSchema + ".oauth_tokens", err
	}
	path := c.TokenFile
	if path == "" {
		path = "wildix-token.json"
	}
	s, err := auth.NewFileStore(path, key)
	abs, _ := filepath.Abs(path)
	return s, abs, err
}

// tokenDB opens the database when the token lives there (OAuth, postgres
// sink, no WILDIX_TOKEN_FILE), for commands that do not otherwise open the
// sink. It returns nil when it is not needed; the caller closes the pool.
func (a *app) tokenDB(ctx context.Context) (*pgxpool.Pool, error) {
	c := a.cfg
	if c.Auth != config.AuthOAuth || c.TokenFile != "" || c.Sink != "postgres" {
		return nil, nil
	}
	if !c.DatabaseURL.IsSet() {
		return nil, fmt.Errorf("%w: with EXPORT_SINK=postgres the token is kept in the database: set EXPORT_DATABASE_URL, or WILDIX_TOKEN_FILE", errUsage)
	}
	return sinks.Connect(ctx, c.DatabaseURL.Value())
}

// migrateTokenDB applies the versioned migrations, the token tables
// among them, for a command that keeps the token in the database without
// opening the sink (authorize).
func (a *app) migrateTokenDB(ctx context.Context, pool *pgxpool.Pool) error {
	cat, err := a.catalog()
	if err != nil {
		return err
	}
	return sinks.NewPostgres(pool, a.cfg.DBSchema, a.log).Migrate(ctx, cat.All())
}

func (a *app) oauthConfig() oauth2.Config {
	c := a.cfg
	return oauth2.Config{
		ClientID: c.ClientID, ClientSecret: c.ClientSecret.Value(), RedirectURL: c.RedirectURL,
		Scopes: c.Scopes, Endpoint: auth.Endpoint(c.PBXURL.String()),
	}
}

func (a *app) baseTransport() (http.RoundTripper, error) {
	if a.cfg.InsecureTLS {
		a.log.Warn("TLS certificate verification is off (WILDIX_INSECURE_SKIP_VERIFY): anyone on the path can read the tokens")
	}
	return auth.NewTransport(auth.TLSOptions{CAFile: a.cfg.CAFile, Insecure: a.cfg.InsecureTLS}, a.cfg.RequestTimeout)
}

// pbx is an authenticated client of the configured PBX.
type pbx struct {
	client *pbxapi.Client
	// expiry returns the OAuth token's expiry, zero for keys.
	expiry func() time.Time
}

// pbxClient authenticates as configured: OAuth 2.0 with the stored token,
// a static key, or S2S signatures.
func (a *app) pbxClient(ctx context.Context, pool *pgxpool.Pool) (*pbx, error) {
	c := a.cfg
	base, err := a.baseTransport()
	if err != nil {
		return nil, err
	}
	var tr http.RoundTripper
	expiry := func() time.Time { return time.Time{} }
	switch c.Auth {
	case config.AuthAPIKey:
		tr = &auth.Transport{Source: auth.Static(c.APIKey.Value()), Base: base, Origin: c.PBXURL}
	case config.AuthS2S:
		tr = &auth.S2S{AppID: c.S2SAppID, AppName: c.S2SAppName, Secret: c.S2SSecret.Value(), Base: base, Origin: c.PBXURL}
	default:
		store, where, err := a.tokenStore(ctx, pool)
		if err != nil {
			return nil, err
		}
		if _, err := store.Load(ctx, c.PBXID); errors.Is(err, auth.ErrNoToken) {
			return nil, fmt.Errorf("%w: no token for PBX %s in %s", auth.ErrReauthorize, c.PBXID, where)
		} else if err != nil {
			return nil, err
		}
		src := auth.NewSource(auth.SourceOptions{
			Config: a.oauthConfig(), ClientAuth: c.TokenAuth, Store: store, PBX: c.PBXID,
			HTTPClient: &http.Client{Transport: base, Timeout: c.RequestTimeout}, Log: a.log,
		})
		tr = &auth.Transport{Source: src, Base: base, Origin: c.PBXURL}
		expiry = src.Expiry
	}
	return &pbx{
		client: &pbxapi.Client{HTTP: &http.Client{Transport: tr, CheckRedirect: auth.SameOrigin(c.PBXURL)}, Base: c.PBXURL, MaxAttempts: c.MaxAttempts, Timeout: c.RequestTimeout,
			MaxResponseSize: c.MaxResponseSize, Limiter: pbxapi.NewLimiter(c.MaxRPS), Log: a.log},
		expiry: expiry,
	}, nil
}

func (a *app) catalog() (*record.Catalog, error) {
	cat, err := record.LoadCatalog(a.cfg.EndpointsFile)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errUsage, err)
	}
	return cat, nil
}

// started is what an exporting command works with: the sink, migrated;
// the PBX client, authenticated; the recordings copier (nil without a
// store); and the exporter joining them.
type started struct {
	sink     *sink
	pbx      *pbx
	rec      *recordings.Copier
	x        *exporter.Exporter
	suppress *suppression // the guard's, read again at each run's start
	guard    *privacy.Guard
	cat      *record.Catalog
}

// start is the one start-up path of run, backfill and demo: open the sink
// and, for PostgreSQL, migrate it before anything talks to the PBX; then
// authenticate to the PBX (once per process), open the recordings store
// when one is configured, and build the exporter. The caller closes
// st.sink; export takes the PBX's lock for each run.
func (a *app) start(ctx context.Context, cat *record.Catalog) (*started, error) {
	s, err := a.openSink(ctx)
	if err != nil {
		return nil, err
	}
	if s.pg != nil {
		err = s.pg.Migrate(ctx, cat.All())
	}
	var p *pbx
	if err == nil {
		p, err = a.pbxClient(ctx, s.pool)
	}
	var rec *recordings.Copier
	if err == nil {
		rec, err = a.recordingsCopier(ctx)
	}
	var guard *privacy.Guard
	if err == nil {
		guard, err = a.privacyGuard()
	}
	if err == nil {
		// Checked early, so that a refused change stops before the PBX
		// is asked; checked again, and stored, under the lock (export).
		_, err = a.privacyRule(ctx, s, guard)
	}
	if err == nil {
		_, err = a.retentionLimit(ctx, s) // a shorter EXPORT_RETENTION
	}
	var recKey *pseudonym.Keyed
	if err == nil {
		// Without a recordings store too: a forced change of rule or
		// key carries over the key of the recordings a store named
		// before, which a later run with one needs (review 5, R5-1).
		recKey, err = a.recordingsKey(ctx, s, guard, rec == nil)
	}
	if rec == nil {
		recKey = nil
	}
	if err != nil {
		s.close()
		return nil, err
	}
	a.warnForgetsOpen(ctx, s)
	sup := &suppression{}
	guard.Suppress = sup
	c := a.cfg
	x := &exporter.Exporter{
		Client: p.client, Sink: s.Sink, PBX: c.PBXID, Zone: c.Timezone,
		PageSize: c.PageSize, Concurrency: c.Concurrency, BatchSize: c.BatchSize, MaxPages: c.MaxPages,
		CommitGrace: c.ShutdownGrace, Settle: c.Settle, Log: a.log, Recordings: rec, RecordingsKey: recKey, Observe: a.warnRecordings, Guard: guard, Privacy: privacyNow(guard),
		Abort: func(err error) bool {
			return errors.Is(err, auth.ErrReauthorize) || errors.Is(err, sinks.ErrDatabase) || errors.Is(err, auth.ErrUnreachable)
		},
	}
	if a.redact != nil {
		x.Redact = a.redact.Text
	}
	return &started{sink: s, pbx: p, rec: rec, x: x, suppress: sup, guard: guard, cat: cat}, nil
}

// export runs one export under the PBX's lock and within EXPORT_RUN_TIMEOUT,
// and prints its summary, where its failures are reported: the error
// returned is marked errQuiet, or says only that the run was interrupted.
func (a *app) export(ctx context.Context, st *started, m *metrics, do func(ctx context.Context, id string) *exporter.RunResult) error {
	ctx, cancel := context.WithTimeout(ctx, a.cfg.RunTimeout)
	defer cancel()
	unlock, err := st.sink.LockPBX(ctx, a.cfg.PBXID)
	if err != nil {
		if errors.Is(err, sinks.ErrLocked) {
			m.skipped()
		}
		return err
	}
	defer unlock()
	limitChanged, err := a.checkUnderLock(ctx, st)
	if err != nil {
		return err
	}
	if a.beforeRun != nil {
		a.beforeRun()
	}
	// One retention cut for the whole run, read from the clock once:
	// the guard's (each batch's rows, each recording's file) and the
	// prune's after it. With two, a recording at the cut could be copied
	// and its row then left out: a file no row names, never pruned.
	at := time.Now()
	if a.now != nil {
		at = a.now()
	}
	st.guard.Now = func() time.Time { return at }
	a.guardExtensions(ctx, st) // before any row is pseudonymised
	// A forced change of rule the run accepted is stored at its end when
	// no commit stored it (recordRuleChange), before the prune and, for a
	// backfill, the rewrite in place (which wraps this): here, so that
	// every command exporting has it (run, backfill, demo).
	st.x.AfterRun = a.recordRuleChange(st, a.retention(st, m, record.RetentionAt(at, a.cfg.Retention), limitChanged))
	id := exporter.NewRunID(time.Now())
	a.log.Info("export started", "run_id", id, "pbx", a.cfg.PBXID, "sink", st.sink.name)
	began := time.Now()
	r := do(ctx, id)
	m.run(r, time.Since(began))
	summary(a.stdout, r)
	a.log.Info("export finished", "run_id", id, "status", r.Status, "duration", time.Since(began).Round(time.Millisecond))
	switch err := r.Err(); {
	case err == nil:
		return nil
	case errors.Is(context.Cause(ctx), errInterrupted):
		return fmt.Errorf("%w: committed progress is kept; run again to go on", context.Cause(ctx))
	default:
		return fmt.Errorf("%w: %w", errQuiet, err)
	}
}

// checkUnderLock is what export checks and loads once it holds the
// PBX's lock: the privacy rule (checked again under the lock, and stored
// only with the run's first commit: a run failing before it leaves it as
// it was), the retention limit (limitChanged is retentionLimit's), and
// the suppression list. The commits a crash left are completed first, as
// a pending one's rule may be discarded with it.
func (a *app) checkUnderLock(ctx context.Context, st *started) (limitChanged string, err error) {
	if r, ok := st.sink.Sink.(interface {
		Recover(ctx context.Context, pbx string) error
	}); ok {
		if err := r.Recover(ctx, a.cfg.PBXID); err != nil {
			return "", err
		}
	}
	rule, err := a.privacyRule(ctx, st.sink, st.guard)
	if err != nil {
		return "", err
	}
	if limitChanged, err = a.retentionLimit(ctx, st.sink); err != nil {
		return "", err
	}
	if err := a.loadSuppression(ctx, st); err != nil {
		return "", err
	}
	a.pendPrivacy(st.sink, rule)
	return limitChanged, nil
}

// safely runs one export, turning a panic into an error (logged with its
// stack at debug level, and counted), so that the worker goes on and
// `run --once` exits 1 with the message.
func (a *app) safely(m *metrics, run func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			m.panicked()
			a.log.Debug("run panicked", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			err = fmt.Errorf("export panicked (a bug: please report it): %v", p)
		}
	}()
	return run()
}

func summary(w io.Writer, r *exporter.RunResult) {
	for _, e := range r.Endpoints {
		status := "ok"
		switch {
		case e.Err != nil:
			status = "FAILED"
		case warned(e):
			status = "DUE" // a rewrite in place due (review 41, R41-1)
		}
		if e.Paging == "prune" || e.Paging == "rewrite" || e.Paging == pagingRewriteDue {
			// Retention's and the rewrite's results: what they did is in
			// their notes (their Rows stay 0, as export_runs.rows counts
			// exported rows only).
			fmt.Fprintf(w, "%-14s %-6s %s time=%s", e.Endpoint, status, strings.Join(e.Notes, "; "), e.Duration.Round(time.Millisecond))
			if e.Err != nil {
				fmt.Fprintf(w, " error=%q", e.Err.Error())
			}
			fmt.Fprintln(w)
			continue
		}
		fmt.Fprintf(w, "%-14s %-6s rows=%d pages=%d retries=%d time=%s", e.Endpoint, status, e.Rows, e.Pages, e.Retries, e.Duration.Round(time.Millisecond))
		if e.Windows+e.Skipped > 0 {
			fmt.Fprintf(w, " windows=%d skipped=%d", e.Windows, e.Skipped)
		}
		if rec := e.Recordings; rec != nil {
			fmt.Fprintf(w, " copied=%d skipped=%d vanished=%d refused=%d bytes=%d", rec.Copied, rec.Skipped, rec.Vanished, rec.Refused, rec.Bytes)
		}
		if e.Err != nil {
			fmt.Fprintf(w, " error=%q", e.Err.Error())
		}
		fmt.Fprintln(w)
	}
}
