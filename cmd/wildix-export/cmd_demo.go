package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/wildix-export/wildix-export/auth"
	"github.com/wildix-export/wildix-export/config"
	"github.com/wildix-export/wildix-export/exporter"
	"github.com/wildix-export/wildix-export/internal/pbxsim"
)

func cmdDemo(ctx context.Context, a *app, args []string) error {
	fs := a.flags("demo", "[flags]", `Run the whole export against a built-in PBX simulator, with no PBX and no
database: start the simulator on a loopback port, authorize through the real
OAuth 2.0 code flow (playing the browser's part), and export every built-in
endpoint to the CSV sink (EXPORT_CSV_DIR, default ./export), or to PostgreSQL
when EXPORT_SINK=postgres.`)
	calls := fs.Int64("calls", 20000, "call records on the simulated PBX")
	zoneName := fs.String("pbx-timezone", "Europe/Rome", "the simulated PBX's time zone")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *calls < 0 || *calls > 50_000_000 {
		return fmt.Errorf("%w: --calls %d: expected 0 to 50000000", errUsage, *calls)
	}
	loc, err := time.LoadLocation(*zoneName)
	if err != nil {
		return fmt.Errorf("%w: --pbx-timezone %q: expected an IANA zone such as Europe/Rome", errUsage, *zoneName)
	}
	if err := a.load(config.Need{Sink: true}); err != nil {
		return err
	}
	stop, err := a.demoPBX(ctx, *calls, loc)
	if err != nil {
		return err
	}
	defer stop()
	cat, err := a.catalog()
	if err != nil {
		return err
	}
	st, err := a.start(ctx, cat)
	if err != nil {
		return err
	}
	defer st.sink.close()
	began := time.Now()
	var id string
	m := newMetrics()
	err = a.safely(m, func() error {
		return a.export(ctx, st, m, func(ctx context.Context, runID string) *exporter.RunResult {
			id = runID
			eps, _ := cat.Select(nil) // every endpoint but the opt-in ones (recordings needs a store)
			return st.x.Run(ctx, runID, "demo", eps)
		})
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "\nExported in %s (run %s).\n\n", time.Since(began).Round(time.Millisecond), id)
	a.demoNextSteps(st.sink, id)
	return nil
}

// demoPBX starts the simulated PBX on loopback, its OAuth application
// registered with a loopback Redirect URI as an admin would in WMS, points
// the configuration at it and authorizes through the code flow into a
// temporary token file. stop ends the simulator and removes the token.
func (a *app) demoPBX(ctx context.Context, calls int64, loc *time.Location) (stop func(), err error) {
	// The simulator's port first, so that the redirect's free port cannot
	// be the same one: a Redirect URI on the PBX's own host and port is
	// never served locally.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("start the simulator: %w", err)
	}
	redirectPort, err := freePort()
	if err != nil {
		ln.Close()
		return nil, err
	}
	redirect := fmt.Sprintf("http://127.0.0.1:%d/callback", redirectPort)
	const clientID, clientSecret = "wildix-export-demo", "demo-secret-not-for-production"
	gap := 30 * time.Second
	sim := pbxsim.New(pbxsim.Options{
		Seed: 1, Calls: calls, CallGap: gap, Location: loc,
		CallsStart:          time.Now().UTC().Add(-time.Duration(calls) * gap).Truncate(24 * time.Hour),
		Clients:             []pbxsim.Client{{ID: clientID, Secret: clientSecret, RedirectURIs: []string{redirect}}},
		RotateRefreshTokens: true, AccessTokenTTL: 10 * time.Minute,
	})
	srv := &http.Server{Handler: sim, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	tokenDir, err := os.MkdirTemp("", "wildix-export-demo-")
	if err != nil {
		srv.Close()
		return nil, err
	}
	stop = func() { srv.Close(); os.RemoveAll(tokenDir) }
	pbxURL := &url.URL{Scheme: "http", Host: ln.Addr().String()}
	fmt.Fprintf(a.stderr, "Simulated PBX at %s with %d calls (time zone %s).\n", pbxURL, calls, loc)
	c := a.cfg
	c.PBXURL, c.PBXID, c.Auth = pbxURL, "demo-pbx", config.AuthOAuth
	c.ClientID, c.ClientSecret, c.RedirectURL = clientID, config.Secret(clientSecret), redirect
	c.TokenFile = filepath.Join(tokenDir, "token.json")
	c.Timezone = loc
	c.CAFile, c.InsecureTLS = "", false
	store, _, err := a.tokenStore(ctx, nil)
	if err == nil {
		fmt.Fprintln(a.stderr, "Authorizing with the OAuth 2.0 code flow (the demo plays the browser):")
		_, err = auth.Authorize(ctx, auth.AuthorizeOptions{
			Config: a.oauthConfig(), HTTPClient: http.DefaultClient, Store: store, PBX: c.PBXID,
			Stdout: a.stderr, Stderr: io.Discard, Timeout: 30 * time.Second,
			Ready: func(u string) {
				if resp, err := http.Get(u); err == nil {
					resp.Body.Close()
				}
			},
		})
	}
	if err != nil {
		stop()
		return nil, fmt.Errorf("demo authorization: %w", err)
	}
	return stop, nil
}

func (a *app) demoNextSteps(s *sink, runID string) {
	c := a.cfg
	if s.pool != nil {
		fmt.Fprintf(a.stdout, "Tables are in schema %s, for example:\n  SELECT * FROM %s.calls_daily ORDER BY day DESC LIMIT 10;\n", c.DBSchema, c.DBSchema)
	} else {
		fmt.Fprintf(a.stdout, "Files written under %s:\n", c.CSVDir)
		for _, f := range writtenFiles(c.CSVDir, runID) {
			fmt.Fprintf(a.stdout, "  %s\n", f)
		}
	}
	fmt.Fprint(a.stdout, `
With a real PBX:
  1. In WMS, Settings > PBX > Integrations > Applications, add an OAuth 2.0
     application with Redirect URI http://127.0.0.1:8765/callback (see README).
  2. export WILDIX_PBX_URL=https://yourpbx.wildixin.com WILDIX_CLIENT_ID=... WILDIX_CLIENT_SECRET=...
  3. wildix-export authorize, then wildix-export check, then wildix-export run --once
`)
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// writtenFiles lists the data files a run wrote under dir.
func writtenFiles(dir, runID string) []string {
	var out []string
	filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return errors.Unwrap(err)
		}
		if d.IsDir() && strings.HasPrefix(d.Name(), ".") && path != dir {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.Contains(d.Name(), runID) && !strings.HasSuffix(d.Name(), ".manifest.json") {
			out = append(out, path)
		}
		return nil
	})
	sort.Strings(out)
	return out
}
