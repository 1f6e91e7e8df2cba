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

// demoHelp is what `wildix-export demo --help` says above the flags.
const demoHelp = `Run the whole export against a built-in PBX simulator, with no PBX and no
database: start the simulator on a loopback port, authorize through the real
OAuth 2.0 code flow (playing the browser's part), and export every built-in
endpoint to the CSV sink (EXPORT_CSV_DIR, default ./export), or to PostgreSQL
when EXPORT_SINK=postgres. Call recordings are copied too: to the store
EXPORT_RECORDINGS_STORE names, else into a folder beside the CSV folder
(./export-recordings), or a new temporary folder (PostgreSQL, a read-only
disk); the demo prints where.`

func cmdDemo(ctx context.Context, a *app, args []string) error {
	fs := a.flags("demo", "[flags]", demoHelp)
	calls := fs.Int64("calls", 20000, "call records on the simulated PBX")
	recEvery := fs.Int("recordings", 100, "one answered call in this many has a recording (0: none)")
	zoneName := fs.String("pbx-timezone", "Europe/Rome", "the simulated PBX's time zone")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *calls < 0 || *calls > 50_000_000 {
		return fmt.Errorf("%w: --calls %d: expected 0 to 50000000", errUsage, *calls)
	}
	if *recEvery < 0 {
		return fmt.Errorf("%w: --recordings %d: expected 0 (none) or more", errUsage, *recEvery)
	}
	loc, err := time.LoadLocation(*zoneName)
	if err != nil {
		return fmt.Errorf("%w: --pbx-timezone %q: expected an IANA zone such as Europe/Rome", errUsage, *zoneName)
	}
	if err := a.load(config.Need{Sink: true}); err != nil {
		return err
	}
	stop, err := a.demoPBX(ctx, *calls, loc, *recEvery)
	if err != nil {
		return err
	}
	defer stop()
	if err := a.demoRecordingsStore(); err != nil {
		return err
	}
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
			eps, _ := a.selectEndpoints(cat, nil) // recordings among them: the demo always has a store
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
func (a *app) demoPBX(ctx context.Context, calls int64, loc *time.Location, recEvery int) (stop func(), err error) {
	// The simulator's port first, so that the redirect's free port cannot
	// be the same one: a Redirect URI on the PBX's own host and port is
	// never served locally.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("start the simulator: %w", err)
	}
	// The redirect's port is held open from here to the flow, which serves
	// on this listener: chosen free and closed, any other socket could take
	// it before the flow listens (a demo among parallel tests failed so).
	rln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("listen for the demo's redirect: %w", err)
	}
	defer rln.Close() // closed by the flow when served; again, harmlessly
	redirect := fmt.Sprintf("http://127.0.0.1:%d/callback", rln.Addr().(*net.TCPAddr).Port)
	sim := pbxsim.New(demoSimOptions(calls, loc, recEvery, redirect, time.Now()))
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
	c.ClientID, c.ClientSecret, c.RedirectURL = demoClientID, config.Secret(demoClientSecret), redirect
	c.TokenFile = filepath.Join(tokenDir, "token.json")
	c.Timezone = loc
	c.CAFile, c.InsecureTLS = "", false
	c.RecordingsToken = config.Secret(demoRecordingsToken)
	store, _, err := a.tokenStore(ctx, nil)
	if err == nil {
		fmt.Fprintln(a.stderr, "Authorizing with the OAuth 2.0 code flow (the demo plays the browser):")
		_, err = auth.Authorize(ctx, auth.AuthorizeOptions{
			Config: a.oauthConfig(), HTTPClient: http.DefaultClient, Store: store, PBX: c.PBXID,
			Stdout: a.stderr, Stderr: io.Discard, Timeout: 30 * time.Second, Listener: rln,
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

// The simulated PBX's OAuth application and Simple Token.
const (
	demoClientID, demoClientSecret = "wildix-export-demo", "demo-secret-not-for-production"
	demoRecordingsToken            = "access_wildix-export-demo-recordings"
)

// demoSimOptions is the simulated PBX of a demo started at now: its calls
// end before now, from the start of a day (so that the same day's demos
// hold the same data).
func demoSimOptions(calls int64, loc *time.Location, recEvery int, redirect string, now time.Time) pbxsim.Options {
	gap := 30 * time.Second
	return pbxsim.Options{
		Seed: 1, Calls: calls, CallGap: gap, Location: loc,
		CallsStart:          now.UTC().Add(-time.Duration(calls) * gap).Truncate(24 * time.Hour),
		Clients:             []pbxsim.Client{{ID: demoClientID, Secret: demoClientSecret, RedirectURIs: []string{redirect}}},
		RotateRefreshTokens: true, AccessTokenTTL: 10 * time.Minute,
		// The Simple Token an admin would create for recordings, and
		// recordings of a tenth of a real PBX's size (1,600 bytes a
		// second), so that the quick start copies a few MB.
		APIKeys:    []string{demoRecordingsToken},
		Recordings: pbxsim.RecordingOptions{Every: recEvery, BytesPerSecond: 1600},
	}
}

// demoRecordingsStore keeps the configured recordings store, or makes one:
// a folder beside the CSV folder (EXPORT_CSV_DIR plus -recordings), or a
// new temporary folder with PostgreSQL or where that folder cannot be
// made. The folder is kept, for the user
// to look at; the demo says where.
func (a *app) demoRecordingsStore() error {
	c := a.cfg
	if c.RecordingsOn() {
		return nil
	}
	dir := filepath.Clean(c.CSVDir) + "-recordings"
	err := errors.New("the postgres sink has no folder")
	if c.Sink == "csv" {
		err = os.MkdirAll(dir, 0o700)
	}
	if err != nil {
		// Beside the CSV folder may be a read-only root (a container).
		if dir, err = os.MkdirTemp("", "wildix-export-demo-recordings-"); err != nil {
			return fmt.Errorf("demo recordings folder: %w", err)
		}
	}
	c.RecordingsStore, c.RecordingsDir = config.StoreDir, dir
	return nil
}

func (a *app) demoNextSteps(s *sink, runID string) {
	c := a.cfg
	switch c.RecordingsStore {
	case config.StoreDir:
		fmt.Fprintf(a.stdout, "Recordings copied under %s (<pbx>/<YYYY>/<MM>/<DD>/<id>.wav).\n", c.RecordingsDir)
	case config.StoreS3:
		fmt.Fprintf(a.stdout, "Recordings copied to bucket %s at %s (%s<pbx>/<YYYY>/<MM>/<DD>/<id>.wav).\n", c.S3Bucket, c.S3Endpoint, c.S3Prefix)
	}
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
