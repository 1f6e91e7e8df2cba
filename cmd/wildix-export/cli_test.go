package main

// In-process tests of the CLI: run's seam (app.run) called directly for
// every command's flags, usage errors and exit codes, against the
// simulator on loopback and the real PostgreSQL. main_test.go and
// faults_test.go keep the built binary where processes matter: signals,
// kills, two processes racing.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/wildix-export/wildix-export/config"
	"github.com/wildix-export/wildix-export/exporter/record"
	"github.com/wildix-export/wildix-export/internal/pbxsim"
	"github.com/wildix-export/wildix-export/internal/pgtest"
	"github.com/wildix-export/wildix-export/simtest"
)

type cliResult struct {
	stdout, stderr string
	err            error
	code           int
}

// lockedBuffer is a bytes.Buffer safe for a command writing while the
// test reads.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// env turns KEY=value pairs into a lookup, as os.LookupEnv would answer.
func env(kv []string) func(string) (string, bool) {
	m := map[string]string{}
	for _, s := range kv {
		k, v, _ := strings.Cut(s, "=")
		m[k] = v
	}
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

// cliApp is the app run builds, with the test's environment.
func cliApp(kv []string) (*app, *lockedBuffer, *lockedBuffer) {
	var out, errb lockedBuffer
	return newApp(env(kv), strings.NewReader(""), &out, &errb), &out, &errb
}

// runCLI runs one command in process, as main would, with only the
// variables in kv set.
func runCLI(t *testing.T, kv []string, args ...string) cliResult {
	t.Helper()
	a, out, errb := cliApp(kv)
	return runApp(t, a, out, errb, args...)
}

func runApp(t *testing.T, a *app, out, errb *lockedBuffer, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	err := a.run(ctx, args)
	return cliResult{stdout: out.String(), stderr: errb.String(), err: err, code: exitCode(err)}
}

// fixtureEnv points the CLI at a fixture's simulator, authorized, with a
// CSV folder and request timeouts generous for a loaded machine.
func fixtureEnv(f *simtest.Fixture, dir string, extra ...string) []string {
	return append([]string{
		"WILDIX_PBX_URL=" + f.Server.URL, "WILDIX_CLIENT_ID=" + simtest.ClientID, "WILDIX_CLIENT_SECRET=" + simtest.ClientSecret,
		"WILDIX_REDIRECT_URL=" + f.Redirect, "WILDIX_TOKEN_FILE=" + f.TokenFile, "EXPORT_CSV_DIR=" + dir,
		"WILDIX_TIMEZONE=Europe/Rome", "EXPORT_LOG_FORMAT=json", "WILDIX_REQUEST_TIMEOUT=30s",
	}, extra...)
}

func TestCLIUsageFlagsAndExitCodes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args        []string
		code        int
		out, errOut string // expected in stdout, stderr
	}{
		{nil, exitConfig, "", "Commands:"},
		{[]string{"frobnicate"}, exitConfig, "", "unknown command"},
		{[]string{"help"}, exitOK, "backfill", ""},
		{[]string{"--help"}, exitOK, "Commands:", ""},
		{[]string{"version"}, exitOK, "wildix-export dev (schema version", ""},
		{[]string{"version", "extra-flag", "-x"}, exitOK, "wildix-export dev", ""},
		{[]string{"run", "--nope"}, exitConfig, "", "flag provided but not defined: -nope"},
		{[]string{"run", "--once=maybe"}, exitConfig, "", "invalid boolean value"},
		{[]string{"backfill"}, exitConfig, "", ""},
		{[]string{"backfill", "--from", "yesterday", "--to", "2026-01-01"}, exitConfig, "", ""},
		{[]string{"backfill", "--from", "2026-02-01", "--to", "2026-01-01"}, exitConfig, "", ""},
		{[]string{"backfill", "--from", "2026-01-01", "--to", "2026-02-01", "--window", "10s"}, exitConfig, "", ""},
		{[]string{"backfill", "--window", "soon"}, exitConfig, "", "invalid value"},
		{[]string{"query"}, exitConfig, "", "Usage: wildix-export query"},
		{[]string{"query", "api/v1/no-slash"}, exitConfig, "", ""},
		{[]string{"query", "/a", "/b"}, exitConfig, "", ""},
		{[]string{"demo", "--calls", "-1"}, exitConfig, "", ""},
		{[]string{"demo", "--pbx-timezone", "Mars/Olympus"}, exitConfig, "", ""},
		{[]string{"endpoints", "-v", "extra", "--bad"}, exitOK, "call_history", ""},
		{[]string{"endpoints", "--bad"}, exitConfig, "", "flag provided but not defined"},
		{[]string{"authorize", "--timeout", "x"}, exitConfig, "", "invalid value"},
		{[]string{"authorize", "--redirect-url"}, exitConfig, "", "flag needs an argument"},
		{[]string{"check", "--bad"}, exitConfig, "", ""},
		{[]string{"config", "--bad"}, exitConfig, "", ""},
		// Commands that talk to the PBX, without one configured.
		{[]string{"run", "--once"}, exitConfig, "", ""},
		{[]string{"query", "/api/v1/personal/info"}, exitConfig, "", ""},
		{[]string{"authorize"}, exitConfig, "", ""},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			t.Parallel()
			r := runCLI(t, []string{"EXPORT_CSV_DIR=" + t.TempDir()}, tc.args...)
			errOut := r.stderr
			if r.err != nil {
				errOut += r.err.Error() // what main prints
			}
			if r.code != tc.code || !strings.Contains(r.stdout, tc.out) || !strings.Contains(errOut, tc.errOut) {
				t.Fatalf("exit %d (want %d), err %v\nstdout:\n%s\nstderr:\n%s", r.code, tc.code, r.err, r.stdout, r.stderr)
			}
		})
	}
	for _, c := range commands {
		r := runCLI(t, nil, c.name, "-h")
		if r.code != exitOK || !strings.Contains(r.stderr, "Usage: wildix-export "+c.name) {
			t.Fatalf("%s -h: exit %d: %s", c.name, r.code, r.stderr)
		}
	}
	if r := runCLI(t, nil, "config", "-h"); !strings.Contains(r.stderr, "EXPORT_DB_SCHEMA") {
		t.Fatalf("config -h does not list the variables:\n%s", r.stderr)
	}
}

// TestCLIExitCodes: each sentinel maps to its documented code; a run-time
// configuration problem (record.ErrConfig) exits 2.
func TestCLIExitCodes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err  error
		code int
	}{
		{nil, exitOK},
		{fmt.Errorf("export call_history: %w: set WILDIX_TIMEZONE", record.ErrConfig), exitConfig},
		{fmt.Errorf("%w: %w", errQuiet, fmt.Errorf("x: %w", record.ErrConfig)), exitConfig},
		{fmt.Errorf("%w by terminated: committed progress is kept", errInterrupted), exitInterrupted},
		{context.Canceled, exitInterrupted},
		{errors.New("export panicked (a bug: please report it): boom"), exitFailed},
	} {
		if got := exitCode(tc.err); got != tc.code {
			t.Errorf("exitCode(%v) = %d, want %d", tc.err, got, tc.code)
		}
	}
}

// TestCLIConfigEveryProblemAtStart: problems that used to surface late
// (CA file, database URL, listen address, a system schema) are reported
// together at start with exit 2, by config and by run, before any request
// reaches the PBX, and no secret is shown.
func TestCLIConfigEveryProblemAtStart(t *testing.T) {
	t.Parallel()
	f := simtest.New(t, pbxsim.Options{Calls: 10})
	f.Authorize(t)
	kv := fixtureEnv(f, t.TempDir(), "WILDIX_CA_FILE=/nonexistent/ca.pem", "EXPORT_SINK=postgres",
		"EXPORT_DATABASE_URL=postgres://u:dbpass-value-2@h:notaport/db", "EXPORT_HTTP_ADDR=9090", "EXPORT_DB_SCHEMA=pg_catalog",
		"EXPORT_SCHEDULE=every night", "EXPORT_PAGE_SIZE=lots")
	want := []string{"WILDIX_CA_FILE=\"/nonexistent/ca.pem\"", "EXPORT_DATABASE_URL: cannot be parsed", `EXPORT_HTTP_ADDR="9090"`,
		`EXPORT_DB_SCHEMA="pg_catalog": is a PostgreSQL system schema`, `EXPORT_SCHEDULE="every night"`, `EXPORT_PAGE_SIZE="lots"`}
	r := runCLI(t, kv, "config")
	if r.code != exitConfig || !strings.Contains(r.stdout, "configuration has 6 problem(s)") {
		t.Fatalf("config: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, w := range want {
		if !strings.Contains(r.stdout, w) {
			t.Errorf("config output lacks %q:\n%s", w, r.stdout)
		}
	}
	for _, args := range [][]string{{"run", "--once"}, {"run"}, {"backfill", "--from", "2026-01-01", "--to", "2026-01-02"}, {"check"}} {
		r := runCLI(t, kv, args...)
		if r.code != exitConfig {
			t.Fatalf("%v: exit %d, want %d\n%s%s", args, r.code, exitConfig, r.stdout, r.stderr)
		}
		for _, w := range want {
			if !strings.Contains(r.err.Error()+r.stdout, w) {
				t.Errorf("%v: the error lacks %q: %v", args, w, r.err)
			}
		}
		if strings.Contains(r.stdout+r.stderr+r.err.Error(), "dbpass-value-2") || strings.Contains(r.stdout+r.stderr, simtest.ClientSecret) {
			t.Fatalf("%v: a secret appears in the output", args)
		}
	}
	if n := f.Sim.Stats.APIRequests.Load(); n != 0 {
		t.Fatalf("%d API requests despite a bad configuration, want 0", n)
	}
}

// TestCLIConfigReadsTheEndpointsFile: config reads EXPORT_ENDPOINTS_FILE
// and checks EXPORT_ENDPOINTS as run does: a missing or refused file, or
// an unknown name, exits 2 with the problem on stdout, where run exits 2.
func TestCLIConfigReadsTheEndpointsFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	good := filepath.Join(dir, "good.json")
	if err := os.WriteFile(bad, []byte(`{"name": "not a list"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(good, []byte(`[{"name": "queues", "path": "/api/v1/Queues/", "key": ["id"], "mode": "snapshot"}]`), 0o600); err != nil {
		t.Fatal(err)
	}
	base := []string{"WILDIX_PBX_URL=https://pbx.example", "WILDIX_API_KEY=wsk-v1-x", "EXPORT_CSV_DIR=" + t.TempDir()}
	for _, tc := range []struct {
		name string
		kv   []string
		code int
		want string
	}{
		{"missing file", []string{"EXPORT_ENDPOINTS_FILE=" + filepath.Join(dir, "nope.json")}, exitConfig, "EXPORT_ENDPOINTS_FILE"},
		{"refused file", []string{"EXPORT_ENDPOINTS_FILE=" + bad}, exitConfig, "expected a JSON array of endpoints"},
		{"unknown endpoint", []string{"EXPORT_ENDPOINTS=call_history,nope"}, exitConfig, "nope"},
		{"custom endpoint named", []string{"EXPORT_ENDPOINTS_FILE=" + good, "EXPORT_ENDPOINTS=queues"}, exitOK, ""},
		{"with other problems", []string{"EXPORT_ENDPOINTS_FILE=" + bad, "EXPORT_PAGE_SIZE=lots"}, exitConfig, "expected a JSON array of endpoints"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kv := append(append([]string{}, base...), tc.kv...)
			r := runCLI(t, kv, "config")
			if r.code != tc.code || !strings.Contains(r.stdout, tc.want) || !strings.Contains(r.stdout, "EXPORT_SINK") {
				t.Fatalf("config: exit %d (want %d), err %v\nstdout:\n%s", r.code, tc.code, r.err, r.stdout)
			}
			if tc.name == "with other problems" && !strings.Contains(r.stdout, `EXPORT_PAGE_SIZE="lots"`) {
				t.Fatalf("config lists only some problems:\n%s", r.stdout)
			}
			if tc.code != exitOK {
				if r := runCLI(t, kv, "run", "--once"); r.code != tc.code {
					t.Fatalf("run --once: exit %d, want %d like config: %v", r.code, tc.code, r.err)
				}
			}
		})
	}
}

// TestCLIPBXIDLengthLimit: the longest PBX id (90 bytes as file names
// spell it) exports by backfill into gzipped CSV, whose temporary manifest
// names are the longest file names; one byte more, or 300 characters, is
// refused at start with exit 2 naming the limit, before any request.
func TestCLIPBXIDLengthLimit(t *testing.T) {
	t.Parallel()
	f := simtest.New(t, pbxsim.Options{Calls: 20, APIKeys: []string{"wsk-v1-limit"}})
	first := f.Sim.Call(1).Start.In(time.UTC).Format("2006-01-02")
	last := f.Sim.Call(20).Start.In(time.UTC).AddDate(0, 0, 2).Format("2006-01-02")
	backfill := []string{"backfill", "--from", first, "--to", last, "--endpoints", "call_history"}
	kv := func(id string) []string {
		return fixtureEnv(f, t.TempDir(), "WILDIX_API_KEY=wsk-v1-limit", "EXPORT_CSV_GZIP=true", "WILDIX_PBX_ID="+id)
	}
	longest := strings.Repeat("p", config.MaxPBXIDBytes-3) + "%"
	if r := runCLI(t, kv(longest), backfill...); r.code != exitOK || !strings.Contains(r.stdout, "rows=20") {
		t.Fatalf("backfill with a PBX id of %d bytes: exit %d %v\n%s%s", len(longest), r.code, r.err, r.stdout, r.stderr)
	}
	if r := runCLI(t, kv(longest), "run", "--once", "--endpoints", "call_history"); r.code != exitOK {
		t.Fatalf("run with a PBX id of %d bytes: exit %d %v", len(longest), r.code, r.err)
	}
	before := f.Sim.Stats.APIRequests.Load()
	for _, id := range []string{strings.Repeat("p", config.MaxPBXIDBytes-2) + "%", strings.Repeat("p", 300)} {
		for _, args := range [][]string{backfill, {"run", "--once"}, {"config"}} {
			r := runCLI(t, kv(id), args...)
			msg := r.stdout
			if r.err != nil {
				msg += r.err.Error()
			}
			if r.code != exitConfig || !strings.Contains(msg, "WILDIX_PBX_ID") || !strings.Contains(msg, "at most 90 fit") {
				t.Fatalf("%v with a PBX id of %d bytes: exit %d (want %d)\n%s", args, len(id), r.code, exitConfig, msg)
			}
		}
	}
	if n := f.Sim.Stats.APIRequests.Load() - before; n != 0 {
		t.Fatalf("%d API requests with a PBX id too long, want 0", n)
	}
}

func TestCLIQueryCheckEndpointsRunBackfill(t *testing.T) {
	t.Parallel()
	f := simtest.New(t, pbxsim.Options{Calls: 300})
	f.Authorize(t)
	dir := t.TempDir()
	kv := fixtureEnv(f, dir, "EXPORT_PAGE_SIZE=100")

	r := runCLI(t, kv, "query", "/api/v1/PBX/CallHistory/?count=2&sort=id&dir=ASC")
	if r.code != 0 || !strings.Contains(r.stdout, `"total": "300"`) {
		t.Fatalf("query: exit %d %v\n%s%s", r.code, r.err, r.stdout, r.stderr)
	}
	r = runCLI(t, kv, "query", "/api/v1/Nope")
	if r.code != exitFailed || !strings.Contains(r.err.Error(), "404") {
		t.Fatalf("query of a missing path: exit %d: %v", r.code, r.err)
	}
	before := f.Sim.Stats.APIRequests.Load()
	r = runCLI(t, kv, "query", "//elsewhere.example/api/v1/personal/info")
	if r.code != exitConfig || r.err == nil || !strings.Contains(r.err.Error(), "//elsewhere.example") {
		t.Fatalf("query of a path naming another host: exit %d (want %d): %v", r.code, exitConfig, r.err)
	}
	if n := f.Sim.Stats.APIRequests.Load() - before; n != 0 {
		t.Fatalf("query of a path naming another host made %d API requests, want 0", n)
	}
	r = runCLI(t, kv, "check")
	if r.code != 0 || strings.Count(r.stdout, "ok  ") != 8 || // recordings: off
		!strings.Contains(r.stdout, "acts as") ||
		!strings.Contains(r.stdout, "paging        call_history by id (filter[id] and sort=id honoured)") {
		t.Fatalf("check: exit %d %v\n%s%s", r.code, r.err, r.stdout, r.stderr)
	}
	r = runCLI(t, kv, "endpoints", "-v")
	if r.code != 0 || !strings.Contains(r.stdout, "call_history") || !strings.Contains(r.stdout, "(PBX field") {
		t.Fatalf("endpoints -v: exit %d\n%s", r.code, r.stdout)
	}
	r = runCLI(t, kv, "run", "--once", "--endpoints", "call_history")
	if r.code != 0 || !strings.Contains(r.stdout, "call_history") || !strings.Contains(r.stdout, "rows=300") {
		t.Fatalf("run --once: exit %d %v\n%s%s", r.code, r.err, r.stdout, r.stderr)
	}
	exactlyOnce(t, csvCalls(t, dir), 300)
	r = runCLI(t, kv, "run", "--once", "--endpoints", "nope")
	if r.code != exitConfig {
		t.Fatalf("run --endpoints nope: exit %d %v", r.code, r.err)
	}
	first := f.Sim.Call(1).Start.In(time.UTC).Format("2006-01-02")
	last := f.Sim.Call(300).Start.In(time.UTC).AddDate(0, 0, 2).Format("2006-01-02")
	backfill := []string{"backfill", "--from", first, "--to", last, "--endpoints", "call_history"}
	r = runCLI(t, kv, backfill...)
	if r.code != 0 || !strings.Contains(r.stdout, "rows=300") {
		t.Fatalf("backfill: exit %d %v\n%s%s", r.code, r.err, r.stdout, r.stderr)
	}
	r = runCLI(t, kv, backfill...) // resumes: every window is done
	if r.code != 0 || !strings.Contains(r.stdout, "rows=0") || strings.Contains(r.stdout, "skipped=0") {
		t.Fatalf("backfill again: exit %d %v\n%s%s", r.code, r.err, r.stdout, r.stderr)
	}
	r = runCLI(t, kv, append(backfill, "--force", "--window", "12h")...)
	if r.code != 0 || !strings.Contains(r.stdout, "rows=300") || !strings.Contains(r.stdout, "skipped=0") {
		t.Fatalf("backfill --force: exit %d %v\n%s%s", r.code, r.err, r.stdout, r.stderr)
	}

	// Revoked on the PBX: exit 3, said once (in the summary), never again by main.
	f.Sim.RevokeRefreshTokens()
	f.Sim.ExpireAccessTokens()
	r = runCLI(t, kv, "run", "--once", "--endpoints", "call_history")
	if r.code != exitAuth || !errors.Is(r.err, errQuiet) || !strings.Contains(r.stdout, "wildix-export authorize") {
		t.Fatalf("revoked: exit %d, want %d, err %v\n%s", r.code, exitAuth, r.err, r.stdout)
	}
	if r := runCLI(t, kv, "query", "/api/v1/personal/info"); r.code != exitAuth {
		t.Fatalf("query with a revoked token: exit %d %v", r.code, r.err)
	}
	if r := runCLI(t, kv, "check"); r.code != exitAuth || !strings.Contains(r.stdout, "FAIL") {
		t.Fatalf("check with a revoked token: exit %d\n%s", r.code, r.stdout)
	}
}

// TestCLICheckOnlyReads: with PostgreSQL, check reports the migrations
// the next export will apply and creates nothing.
func TestCLICheckOnlyReads(t *testing.T) {
	t.Parallel()
	f := simtest.New(t, pbxsim.Options{Calls: 20})
	f.Authorize(t)
	schema, pool := pgtest.Schema(t)
	kv := fixtureEnv(f, t.TempDir(), "EXPORT_SINK=postgres", "EXPORT_DATABASE_URL="+pgtest.URL(), "EXPORT_DB_SCHEMA="+schema,
		"EXPORT_ENDPOINTS=call_history")
	tables := func() int {
		var n int
		if err := pool.QueryRow(context.Background(), "SELECT count(*) FROM pg_tables WHERE schemaname = $1", schema).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	r := runCLI(t, kv, "check")
	if r.code != 0 || !strings.Contains(r.stdout, "migration(s) not applied yet") {
		t.Fatalf("check on an empty schema: exit %d %v\n%s%s", r.code, r.err, r.stdout, r.stderr)
	}
	if n := tables(); n != 0 {
		t.Fatalf("check created %d tables", n)
	}
	if r := runCLI(t, kv, "run", "--once"); r.code != 0 {
		t.Fatalf("run --once: exit %d %v\n%s", r.code, r.err, r.stderr)
	}
	if tables() == 0 {
		t.Fatal("run created no table")
	}
	r = runCLI(t, kv, "check")
	if r.code != 0 || strings.Contains(r.stdout, "not applied") || strings.Count(r.stdout, "ok  ") != 8 { // recordings: off
		t.Fatalf("check after a run: exit %d\n%s", r.code, r.stdout)
	}
}

// TestCLICheckPaging: check's paging line for a PBX that ignores
// filter[id] (ok, by time windows) and one that ignores filter[start] as
// well (FAIL, exit 1, with what to do), over HTTP on loopback.
func TestCLICheckPaging(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		ignore []string
		cap    int
		code   int
		line   string
		sort   bool // the PBX ignores sort
	}{
		// EXPORT_PAGE_SIZE=1000 (the default) against a PBX answering 250.
		{"count capped at 250", nil, 250, 0,
			"ok    paging        call_history by id at the PBX's page size (filter[id] and sort=id honoured; it answers at most 250 records a page)\n", false},
		{"id filter ignored", []string{"id"}, 0, 0,
			"ok    paging        call_history by filter[start] time windows: the PBX ignores filter[id]\n", false},
		{"id and time filters ignored", []string{"id", "start"}, 0, exitFailed,
			"FAIL  paging        call_history none usable: the PBX ignores filter[id], and filter[start] as well", false},
		{"sort and time filter ignored", []string{"start"}, 0, 0,
			"ok    paging        call_history by id ranges, each read whole: the PBX ignores sort=id but honours filter[id]\n", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := simtest.New(t, pbxsim.Options{Calls: 600, IgnoreFilter: tc.ignore, IgnoreSort: tc.sort, MaxCount: tc.cap})
			f.Authorize(t)
			r := runCLI(t, fixtureEnv(f, t.TempDir()), "check")
			if r.code != tc.code || !strings.Contains(r.stdout, tc.line) {
				t.Fatalf("check: exit %d (want %d) %v, want the line %q\n%s%s", r.code, tc.code, r.err, tc.line, r.stdout, r.stderr)
			}
			if tc.code != 0 && !strings.Contains(r.stdout, "report this PBX's version") {
				t.Fatalf("check does not say what to do:\n%s", r.stdout)
			}
		})
	}
}

// TestCLIPanicInRunOnceExitsOne: a recovered panic is an ordinary failure
// (exit 1, with the message), never the bad-configuration code 2.
func TestCLIPanicInRunOnceExitsOne(t *testing.T) {
	t.Parallel()
	f := simtest.New(t, pbxsim.Options{Calls: 20})
	f.Authorize(t)
	a, out, errb := cliApp(fixtureEnv(f, t.TempDir()))
	a.beforeRun = func() { panic("boom in a run") }
	r := runApp(t, a, out, errb, "run", "--once")
	if r.code != exitFailed || !strings.Contains(r.err.Error(), "export panicked") || !strings.Contains(r.err.Error(), "boom in a run") {
		t.Fatalf("exit %d, err %v; want %d with the panic's message", r.code, r.err, exitFailed)
	}
}

// TestWorkerGoesOnAfterAPanic drives the real worker: its first scheduled
// export panics, is counted, and the next one exports everything.
func TestWorkerGoesOnAfterAPanic(t *testing.T) {
	t.Parallel()
	f := simtest.New(t, pbxsim.Options{Calls: 250})
	f.Authorize(t)
	dir := t.TempDir()
	a, _, errb := cliApp(fixtureEnv(f, dir, "EXPORT_SCHEDULE=0 0 1 1 *", "EXPORT_ENDPOINTS=call_history"))
	if err := a.load(config.Need{PBX: true, Sink: true}); err != nil {
		t.Fatal(err)
	}
	cat, err := a.catalog()
	if err != nil {
		t.Fatal(err)
	}
	endpoints, err := cat.Select(a.cfg.Endpoints)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := a.start(ctx, cat)
	if err != nil {
		t.Fatal(err)
	}
	defer st.sink.close()
	m := newMetrics()
	w, err := a.newWorker(ctx, st, endpoints, m)
	if err != nil {
		t.Fatal(err)
	}
	runs := 0
	a.beforeRun = func() {
		if runs++; runs == 1 {
			panic("boom in a scheduled run")
		}
	}
	w.trigger()
	if got := testutil.ToFloat64(m.panics); got != 1 {
		t.Fatalf("panics counted = %v, want 1\n%s", got, errb.String())
	}
	if !strings.Contains(errb.String(), "boom in a scheduled run") {
		t.Fatalf("the panic is not logged:\n%s", errb.String())
	}
	if n := len(csvCalls(t, dir)); n != 0 {
		t.Fatalf("%d calls exported by the run that panicked", n)
	}
	w.trigger()
	if runs != 2 {
		t.Fatalf("%d runs, want 2", runs)
	}
	exactlyOnce(t, csvCalls(t, dir), 250)
	if got := testutil.ToFloat64(m.runs.WithLabelValues("ok")); got != 1 {
		t.Fatalf("ok runs = %v, want 1\n%s", got, errb.String())
	}
}

// TestCLIDemoWorksWithoutConfiguration: the demo exports every call, and
// copies every recording of its simulated PBX into the folder beside the
// CSV folder, once, with the simulator's bytes, each with its CSV row,
// and says where.
func TestCLIDemoWorksWithoutConfiguration(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "export")
	before := time.Now()
	r := runCLI(t, []string{"EXPORT_CSV_DIR=" + dir}, "demo", "--calls", "3000")
	if r.code != 0 {
		t.Fatalf("demo: exit %d %v\n%s%s", r.code, r.err, r.stdout, r.stderr)
	}
	exactlyOnce(t, csvCalls(t, dir), 3000)
	recDir := dir + "-recordings"
	if !strings.Contains(r.stdout, "Recordings copied under "+recDir) {
		t.Errorf("demo does not say where the recordings are:\n%s", r.stdout)
	}
	if day := before.UTC().Truncate(24 * time.Hour); day.Equal(time.Now().UTC().Truncate(24 * time.Hour)) {
		rome, _ := time.LoadLocation("Europe/Rome")
		sim := pbxsim.New(demoSimOptions(3000, rome, 100, "", before))
		truth := map[string]string{}
		for _, rec := range sim.Recordings() {
			truth[fmt.Sprintf("demo-pbx/%s/%d.wav", rec.Start.UTC().Format("2006/01/02"), rec.ID)] = sim.RecordingSHA256(rec)
		}
		stored := dirFiles(t, recDir)
		rows := recordingRows(t, dir, nil, "demo-pbx")
		if len(truth) < 5 || len(stored) != len(truth) || len(rows) != len(truth) {
			t.Errorf("%d recordings on the simulated PBX, %d files stored, %d rows", len(truth), len(stored), len(rows))
		}
		for name, sum := range truth {
			if stored[name] != sum || rows[name] != sum {
				t.Errorf("%s: stored sha256 %q, row's %q, want %q", name, stored[name], rows[name], sum)
			}
		}
	} else {
		t.Log("the demo ran across midnight (UTC): its recordings are not compared")
	}
	if !strings.Contains(r.stdout, "With a real PBX") || !strings.Contains(r.stdout, filepath.Join(dir, "call_history")) {
		t.Fatalf("demo output lacks the files or next steps:\n%s", r.stdout)
	}
	if _, err := os.Stat(filepath.Join(dir, "..", "wildix-token.json")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("demo left a token file: %v", err)
	}
}

// TestCLIAuthorizeWithAKey: there is nothing to authorize with a static
// key or S2S settings: a usage error, exit 2.
func TestCLIAuthorizeWithAKey(t *testing.T) {
	t.Parallel()
	for _, kv := range [][]string{
		{"WILDIX_PBX_URL=https://pbx.example", "WILDIX_API_KEY=wsk-v1-x"},
		{"WILDIX_PBX_URL=https://pbx.example", "WILDIX_S2S_APP_ID=a", "WILDIX_S2S_APP_NAME=n", "WILDIX_S2S_SECRET=s"},
	} {
		r := runCLI(t, kv, "authorize")
		if r.code != exitConfig || !strings.Contains(r.err.Error(), "nothing to authorize") {
			t.Fatalf("%v: exit %d: %v", kv, r.code, r.err)
		}
	}
}
