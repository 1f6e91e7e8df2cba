package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/oauth2"

	"github.com/wildix-export/wildix-export/auth"
	"github.com/wildix-export/wildix-export/config"
	"github.com/wildix-export/wildix-export/exporter"
	"github.com/wildix-export/wildix-export/sinks"
)

// The boot sequence, shared by the commands: sink, token store, PBX client,
// exporter. Only this file turns configuration into parts.

// sink is an opened sink and what the commands need of it.
type sink struct {
	exporter.Sink
	lock  func(ctx context.Context, pbx string) (func(), error)
	pool  *pgxpool.Pool // nil for CSV
	name  string
	close func()
}

// openSink opens the configured sink; for PostgreSQL it connects, pings and
// migrates before anything talks to the PBX.
func (a *app) openSink(ctx context.Context, catalog *exporter.Catalog) (*sink, error) {
	c := a.cfg
	if c.Sink == "postgres" {
		pool, err := sinks.Connect(ctx, c.DatabaseURL.Value())
		if err != nil {
			return nil, err
		}
		p := sinks.NewPostgres(pool, c.DBSchema, a.log)
		if err := p.Migrate(ctx, catalog.All()); err != nil {
			pool.Close()
			return nil, err
		}
		return &sink{Sink: p, lock: p.LockPBX, pool: pool, name: "postgres schema " + c.DBSchema, close: pool.Close}, nil
	}
	s, err := sinks.NewCSV(sinks.CSVOptions{Dir: c.CSVDir, Gzip: c.CSVGzip, SafeFormulas: c.CSVSafeFormulas, Log: a.log})
	if err != nil {
		return nil, err
	}
	return &sink{Sink: s, lock: s.LockPBX, name: "csv " + c.CSVDir, close: func() {}}, nil
}

// tokenStore is WILDIX_TOKEN_FILE when set, else the database with the
// postgres sink (pool must then be open; see tokenDB), else
// ./wildix-token.json.
func (a *app) tokenStore(ctx context.Context, pool *pgxpool.Pool) (auth.Store, string, error) {
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
		s, err := auth.NewPostgresStore(ctx, pool, c.DBSchema, key)
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
	client *exporter.Client
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
		tr = &auth.Transport{Source: auth.Static(c.APIKey.Value()), Base: base}
	case config.AuthS2S:
		tr = &auth.S2S{AppID: c.S2SAppID, AppName: c.S2SAppName, Secret: c.S2SSecret.Value(), Base: base}
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
		src := auth.NewSource(ctx, auth.SourceOptions{
			Config: a.oauthConfig(), ClientAuth: c.TokenAuth, Store: store, PBX: c.PBXID,
			HTTPClient: &http.Client{Transport: base, Timeout: c.RequestTimeout}, Log: a.log,
		})
		tr = &auth.Transport{Source: src, Base: base}
		expiry = src.Expiry
	}
	return &pbx{
		client: &exporter.Client{HTTP: &http.Client{Transport: tr}, Base: c.PBXURL, MaxAttempts: c.MaxAttempts, Timeout: c.RequestTimeout,
			Limiter: exporter.NewLimiter(c.MaxRPS), Log: a.log},
		expiry: expiry,
	}, nil
}

func (a *app) catalog() (*exporter.Catalog, error) {
	cat, err := exporter.LoadCatalog(a.cfg.EndpointsFile)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errUsage, err)
	}
	return cat, nil
}

// exporter builds the exporter; it takes the sink itself, not the wrapper,
// so that the exporter sees the optional interfaces (Ledger) it implements.
func (a *app) exporter(p *pbx, s *sink) *exporter.Exporter {
	c := a.cfg
	return &exporter.Exporter{
		Client: p.client, Sink: s.Sink, PBX: c.PBXID, Zone: zone(c),
		PageSize: c.PageSize, Concurrency: c.Concurrency, BatchSize: c.BatchSize, MaxPages: c.MaxPages,
		CommitGrace: c.ShutdownGrace, Log: a.log,
		Abort: func(err error) bool {
			return errors.Is(err, auth.ErrReauthorize) || errors.Is(err, sinks.ErrDatabase) || errors.Is(err, auth.ErrUnreachable)
		},
	}
}

// zone is WILDIX_TIMEZONE, nil when not set so that the records' own
// offsets decide.
func zone(c *config.Config) *time.Location { return c.Timezone }

// connect opens the sink (for PostgreSQL: connect, ping, migrate) and
// authenticates to the PBX: the start of every command that exports. The
// PBX client is built once per process; the caller closes the sink.
func (a *app) connect(ctx context.Context, cat *exporter.Catalog) (*sink, *pbx, error) {
	s, err := a.openSink(ctx, cat)
	if err != nil {
		return nil, nil, err
	}
	p, err := a.pbxClient(ctx, s.pool)
	if err != nil {
		s.close()
		return nil, nil, err
	}
	return s, p, nil
}

// lock takes the PBX's export lock, or reports that another export holds
// it (sinks.ErrLocked). The caller must call unlock.
func (a *app) lock(ctx context.Context, s *sink) (unlock func(), err error) {
	unlock, err = s.lock(ctx, a.cfg.PBXID)
	if errors.Is(err, sinks.ErrLocked) {
		a.log.Warn("skipped: another export of this PBX is running", "pbx", a.cfg.PBXID, "err", err)
	}
	return unlock, err
}
