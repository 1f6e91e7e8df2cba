package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wildix-export/wildix-export/internal/pbxsim"
	"github.com/wildix-export/wildix-export/internal/pgtest"
	"github.com/wildix-export/wildix-export/internal/simtest"
)

var binary string

// TestMain builds the real binary once; process-level tests run it.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "wildix-export-test-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "wildix-export")
	out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// baseEnv is a clean environment: no WILDIX_ or EXPORT_ variables leak in
// from the machine running the tests.
func baseEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "WILDIX_") && !strings.HasPrefix(kv, "EXPORT_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// simEnv points the binary at a fixture's simulator, authorized.
func simEnv(f *simtest.Fixture, dir string, extra ...string) []string {
	return baseEnv(append([]string{
		"WILDIX_PBX_URL=" + f.Server.URL, "WILDIX_CLIENT_ID=" + simtest.ClientID, "WILDIX_CLIENT_SECRET=" + simtest.ClientSecret,
		"WILDIX_REDIRECT_URL=" + f.Redirect, "WILDIX_TOKEN_FILE=" + f.TokenFile, "EXPORT_CSV_DIR=" + dir,
		"WILDIX_TIMEZONE=Europe/Rome", "EXPORT_LOG_FORMAT=json", "WILDIX_REQUEST_TIMEOUT=2s",
	}, extra...)...)
}

type result struct {
	stdout, stderr string
	code           int
}

func runBin(t *testing.T, env []string, stdin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = env
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{out.String(), errb.String(), code}
}

// csvCalls reads the committed call_history files: ids with counts. It
// fails the test on a file that is not whole or whose manifest disagrees.
func csvCalls(t *testing.T, dir string) map[int64]int {
	t.Helper()
	ids := map[int64]int{}
	files, _ := filepath.Glob(filepath.Join(dir, "call_history", "*.csv"))
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var m struct {
			Rows   int
			SHA256 string
		}
		mb, err := os.ReadFile(strings.TrimSuffix(p, ".csv") + ".manifest.json")
		if err != nil {
			t.Fatalf("%s has no manifest: %v", p, err)
		}
		json.Unmarshal(mb, &m)
		sum := sha256.Sum256(b)
		if hex.EncodeToString(sum[:]) != m.SHA256 {
			t.Fatalf("%s: sha256 differs from its manifest: a partial file under a final name", p)
		}
		recs, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if len(recs)-1 != m.Rows {
			t.Fatalf("%s: %d rows, manifest says %d", p, len(recs)-1, m.Rows)
		}
		for _, r := range recs[1:] {
			id, _ := strconv.ParseInt(r[0], 10, 64)
			ids[id]++
		}
	}
	return ids
}

func exactlyOnce(t *testing.T, ids map[int64]int, n int64) {
	t.Helper()
	for id, c := range ids {
		if c != 1 {
			t.Fatalf("call %d exported %d times", id, c)
		}
	}
	for id := int64(1); id <= n; id++ {
		if ids[id] != 1 {
			t.Fatalf("call %d missing (want 1..%d)", id, n)
		}
	}
}

func TestConfigReportsEveryProblemAndNoSecret(t *testing.T) {
	t.Parallel()
	r := runBin(t, baseEnv("WILDIX_PBX_URL=ftp://nope", "EXPORT_SCHEDULE=every night", "WILDIX_CLIENT_SECRET=s3cr3t-value-1",
		"EXPORT_SINK=postgres", "EXPORT_DATABASE_URL=postgres://u:dbpass-value-2@h/db", "EXPORT_PAGE_SIZE=lots"), "", "config")
	if r.code != exitConfig {
		t.Fatalf("exit %d, want %d\n%s%s", r.code, exitConfig, r.stdout, r.stderr)
	}
	for _, want := range []string{`WILDIX_PBX_URL="ftp://nope"`, "WILDIX_CLIENT_ID: required", `EXPORT_SCHEDULE="every night"`, `EXPORT_PAGE_SIZE="lots"`} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r.stdout)
		}
	}
	for _, secret := range []string{"s3cr3t-value-1", "dbpass-value-2"} {
		if strings.Contains(r.stdout+r.stderr, secret) {
			t.Fatalf("a secret appears in the output:\n%s%s", r.stdout, r.stderr)
		}
	}
}

func TestUsageAndUnknownCommand(t *testing.T) {
	t.Parallel()
	r := runBin(t, baseEnv(), "", "frobnicate")
	if r.code != exitConfig || !strings.Contains(r.stderr, "unknown command") || !strings.Contains(r.stderr, "backfill") {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	for _, c := range []string{"run", "backfill", "authorize", "demo", "query", "check", "endpoints", "config"} {
		if r := runBin(t, baseEnv(), "", c, "-h"); r.code != 0 || !strings.Contains(r.stderr, "Usage: wildix-export "+c) {
			t.Fatalf("%s -h: exit %d: %s", c, r.code, r.stderr)
		}
	}
	r = runBin(t, baseEnv(), "", "backfill", "--from", "yesterday", "--to", "2026-01-01")
	if r.code != exitConfig || !strings.Contains(r.stderr, `--from "yesterday"`) {
		t.Fatalf("bad flag value: exit %d: %s", r.code, r.stderr)
	}
}

func TestDemoWorksWithoutConfiguration(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cmd := exec.Command(binary, "demo", "--calls", "3000")
	cmd.Dir = dir
	cmd.Env = baseEnv()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out)
	}
	ids := csvCalls(t, filepath.Join(dir, "export"))
	exactlyOnce(t, ids, 3000)
	if !strings.Contains(string(out), "With a real PBX") {
		t.Fatalf("demo output lacks next steps:\n%s", out)
	}
}

func TestAuthorizeLoopbackAndPasteThenQueryAndCheck(t *testing.T) {
	t.Parallel()
	f := simtest.New(t, pbxsim.Options{Calls: 50})
	dir := t.TempDir()
	env := simEnv(f, dir, "EXPORT_LOG_LEVEL=debug")

	// Loopback: the test plays the browser on the printed address.
	cmd := exec.Command(binary, "authorize", "--no-browser")
	cmd.Env = env
	stdout, _ := cmd.StdoutPipe()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(stdout).ReadString('\n')
	if !strings.HasPrefix(line, f.Server.URL+"/authorization/oauth2?") {
		t.Fatalf("first line %q is not the authorization URL", line)
	}
	resp, err := http.Get(strings.TrimSpace(line))
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err := cmd.Wait(); err != nil || !strings.Contains(string(page), "Authorized") {
		t.Fatalf("authorize: %v\n%s\n%s", err, stderr.String(), page)
	}
	logs := stderr.String()

	r := runBin(t, env, "", "query", "/api/v1/PBX/CallHistory/?count=2&sort=id&dir=ASC")
	if r.code != 0 || !strings.Contains(r.stdout, `"total": "50"`) {
		t.Fatalf("query: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	logs += r.stderr + r.stdout
	r = runBin(t, env, "", "query", "/api/v1/Nope")
	if r.code != exitFailed || !strings.Contains(r.stderr, "404 Not Found") {
		t.Fatalf("query of a missing path: exit %d: %s", r.code, r.stderr)
	}
	r = runBin(t, env, "", "check")
	if r.code != 0 || strings.Count(r.stdout, "ok  ") != 4 || !strings.Contains(r.stdout, "acts as") {
		t.Fatalf("check: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	logs += r.stderr + r.stdout

	// Paste flow, with a Redirect URI the program cannot listen on.
	pasteDir := t.TempDir()
	f2 := simtest.New(t, pbxsim.Options{Clients: []pbxsim.Client{{ID: "paste-app", Secret: "paste-secret-9", RedirectURIs: []string{"https://pbx.example/api/v1/doc/"}}}})
	env2 := baseEnv("WILDIX_PBX_URL="+f2.Server.URL, "WILDIX_CLIENT_ID=paste-app", "WILDIX_CLIENT_SECRET=paste-secret-9",
		"WILDIX_REDIRECT_URL=https://pbx.example/api/v1/doc/", "WILDIX_TOKEN_FILE="+filepath.Join(pasteDir, "t.json"))
	cmd = exec.Command(binary, "authorize")
	cmd.Env = env2
	stdout, _ = cmd.StdoutPipe()
	stdin, _ := cmd.StdinPipe()
	cmd.Stderr = &stderr
	cmd.Start()
	line, _ = bufio.NewReader(stdout).ReadString('\n')
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err = noFollow.Get(strings.TrimSpace(line))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	fmt.Fprintln(stdin, resp.Header.Get("Location"))
	if err := cmd.Wait(); err != nil {
		t.Fatalf("paste flow: %v\n%s", err, stderr.String())
	}
	if r := runBin(t, env2, "", "query", "/api/v1/personal/info"); r.code != 0 {
		t.Fatalf("query after paste flow: %d %s", r.code, r.stderr)
	}

	// Nothing secret anywhere in what the commands printed, at debug level.
	tok, _ := os.ReadFile(f.TokenFile)
	var stored struct{ Tokens map[string]string }
	json.Unmarshal(tok, &stored)
	var rec struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
	}
	for _, v := range stored.Tokens {
		json.Unmarshal([]byte(v), &rec)
	}
	if rec.AccessToken == "" {
		t.Fatal("no token stored")
	}
	for _, secret := range []string{simtest.ClientSecret, rec.AccessToken, rec.RefreshToken} {
		if strings.Contains(logs, secret) {
			t.Fatalf("secret %q.. appears in the output", secret[:4])
		}
	}

	// Revoked on the PBX: its own exit code and what to do.
	f.Sim.RevokeRefreshTokens()
	f.Sim.ExpireAccessTokens()
	r = runBin(t, env, "", "run", "--once")
	if r.code != exitAuth || !strings.Contains(r.stderr, "wildix-export authorize") {
		t.Fatalf("revoked: exit %d, want %d\n%s", r.code, exitAuth, r.stderr)
	}
	if r := runBin(t, env, "", "query", "/api/v1/personal/info"); r.code != exitAuth {
		t.Fatalf("query with revoked token: exit %d", r.code)
	}
	if r := runBin(t, env, "", "check"); r.code != exitAuth || !strings.Contains(r.stdout, "FAIL") {
		t.Fatalf("check with revoked token: exit %d\n%s", r.code, r.stdout)
	}
}

// authorized returns a fixture whose token file holds a token.
func authorized(t *testing.T, o pbxsim.Options) *simtest.Fixture {
	f := simtest.New(t, o)
	f.Authorize(t)
	return f
}

func TestKilledAtRandomMomentsCSV(t *testing.T) {
	t.Parallel()
	f := authorized(t, pbxsim.Options{Calls: 4000, Faults: pbxsim.Faults{Latency: 3 * time.Millisecond}, AccessTokenTTL: 2 * time.Second, RotateRefreshTokens: true})
	dir := t.TempDir()
	env := simEnv(f, dir, "EXPORT_PAGE_SIZE=50", "EXPORT_BATCH_SIZE=150", "EXPORT_CONCURRENCY=2", "EXPORT_ENDPOINTS=call_history")
	killLoop(t, env, 12)
	if r := runBin(t, env, "", "run", "--once"); r.code != 0 {
		t.Fatalf("final run: exit %d\n%s", r.code, r.stderr)
	}
	exactlyOnce(t, csvCalls(t, dir), 4000)
	if tmp, _ := filepath.Glob(filepath.Join(dir, "call_history", ".*tmp*")); len(tmp) > 0 {
		t.Fatalf("temporary files left after a complete run: %v", tmp)
	}
}

// killLoop starts `run --once` n times and SIGKILLs it at a random moment.
func killLoop(t *testing.T, env []string, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		cmd := exec.Command(binary, "run", "--once")
		cmd.Env = env
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(20+rand.IntN(400)) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
	}
}

func pgEnv(t *testing.T, f *simtest.Fixture, extra ...string) ([]string, *pgxpool.Pool, string) {
	schema, pool := pgtest.Schema(t)
	env := simEnv(f, t.TempDir(), append([]string{"EXPORT_SINK=postgres", "EXPORT_DATABASE_URL=" + pgtest.URL(), "EXPORT_DB_SCHEMA=" + schema}, extra...)...)
	return env, pool, schema
}

func TestKilledAtRandomMomentsPostgres(t *testing.T) {
	t.Parallel()
	f := authorized(t, pbxsim.Options{Calls: 4000, Faults: pbxsim.Faults{Latency: 3 * time.Millisecond}, AccessTokenTTL: 2 * time.Second, RotateRefreshTokens: true})
	env, pool, _ := pgEnv(t, f, "EXPORT_PAGE_SIZE=50", "EXPORT_BATCH_SIZE=150", "EXPORT_CONCURRENCY=2", "EXPORT_ENDPOINTS=call_history")
	ctx := context.Background()
	for i := 0; i < 21; i++ {
		killLoop(t, env, 1)
		// The cursor never points past a row that is missing.
		var cursor, rows, maxID int64
		pool.QueryRow(ctx, "SELECT coalesce((SELECT (state->>'cursor')::bigint FROM export_state WHERE key = 'call_history'), 0)").Scan(&cursor)
		pool.QueryRow(ctx, "SELECT count(*), coalesce(max(id), 0) FROM call_history").Scan(&rows, &maxID)
		if rows != maxID || cursor > maxID {
			t.Fatalf("after kill %d: %d rows up to id %d, cursor %d", i, rows, maxID, cursor)
		}
	}
	if r := runBin(t, env, "", "run", "--once"); r.code != 0 {
		t.Fatalf("final run: exit %d\n%s", r.code, r.stderr)
	}
	var rows, maxID int64
	pool.QueryRow(ctx, "SELECT count(*), max(id) FROM call_history").Scan(&rows, &maxID)
	if rows != 4000 || maxID != 4000 {
		t.Fatalf("%d rows up to %d, want 4000", rows, maxID)
	}
}

func TestTwoRunsAtOnceOneSkips(t *testing.T) {
	t.Parallel()
	for _, sink := range []string{"csv", "postgres"} {
		t.Run(sink, func(t *testing.T) {
			t.Parallel()
			// Each run takes about a second (15 pages of 70 ms), so the
			// two overlap even when a loaded machine starts them apart.
			f := authorized(t, pbxsim.Options{Calls: 1500, Faults: pbxsim.Faults{Latency: 70 * time.Millisecond}})
			dir := t.TempDir()
			env := simEnv(f, dir, "EXPORT_PAGE_SIZE=100", "EXPORT_CONCURRENCY=1", "EXPORT_ENDPOINTS=call_history")
			var pool *pgxpool.Pool
			if sink == "postgres" {
				env, pool, _ = pgEnv(t, f, "EXPORT_PAGE_SIZE=100", "EXPORT_CONCURRENCY=1", "EXPORT_ENDPOINTS=call_history")
			}
			var wg sync.WaitGroup
			codes := make([]int, 2)
			for i := range 2 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					codes[i] = runBin(t, env, "", "run", "--once").code
				}()
			}
			wg.Wait()
			if !(codes[0] == 0 && codes[1] == exitLocked) && !(codes[1] == 0 && codes[0] == exitLocked) {
				t.Fatalf("exit codes %v, want one 0 and one %d", codes, exitLocked)
			}
			if pool == nil {
				exactlyOnce(t, csvCalls(t, dir), 1500)
			} else {
				var rows int64
				pool.QueryRow(context.Background(), "SELECT count(*) FROM call_history").Scan(&rows)
				if rows != 1500 {
					t.Fatalf("%d rows, want 1500", rows)
				}
			}
		})
	}
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestWorkerSchedulesAndStopsGracefully runs the worker on a per-second
// schedule, waits for two scheduled exports, sends SIGTERM during a third,
// and checks the exit, the ledger and the data.
func TestWorkerSchedulesAndStopsGracefully(t *testing.T) {
	t.Parallel()
	f := authorized(t, pbxsim.Options{Calls: 200, Faults: pbxsim.Faults{Latency: 5 * time.Millisecond}})
	addr := freeAddr(t)
	env, pool, _ := pgEnv(t, f, "EXPORT_SCHEDULE=@every 1s", "EXPORT_PAGE_SIZE=20", "EXPORT_BATCH_SIZE=40",
		"EXPORT_CONCURRENCY=1", "EXPORT_ENDPOINTS=call_history,colleagues", "EXPORT_HTTP_ADDR="+addr, "EXPORT_SHUTDOWN_GRACE=5s")
	cmd := exec.Command(binary, "run")
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	ctx := context.Background()
	waitFor := func(what string, cond func() bool) {
		deadline := time.Now().Add(30 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s\n%s", what, stderr.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	okRuns := func() int {
		var n int
		pool.QueryRow(ctx, "SELECT count(*) FROM export_runs WHERE mode = 'scheduled' AND status = 'ok'").Scan(&n)
		return n
	}
	waitFor("two scheduled exports", func() bool { return okRuns() >= 2 })

	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get("http://" + addr + path)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s: %v %v", path, err, resp)
		}
		resp.Body.Close()
	}
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	metrics := parseMetrics(string(body))
	for _, name := range []string{`wildix_export_runs_total{outcome="ok"}`, `wildix_export_rows_total{endpoint="call_history"}`,
		`wildix_export_pages_total{endpoint="call_history"}`, `wildix_export_last_success_timestamp_seconds{endpoint="colleagues"}`,
		"wildix_export_token_expiry_timestamp_seconds", "wildix_export_run_duration_seconds_count"} {
		if metrics[name] <= 0 {
			t.Fatalf("metric %s = %v, want > 0\n%s", name, metrics[name], body)
		}
	}
	if metrics[`wildix_export_rows_total{endpoint="call_history"}`] != 200 {
		t.Fatalf("rows_total = %v, want the 200 calls", metrics[`wildix_export_rows_total{endpoint="call_history"}`])
	}
	if strings.Contains(string(body), simtest.ClientSecret) {
		t.Fatal("a secret appears in /metrics")
	}

	// A third run with plenty to do, interrupted by SIGTERM.
	f.Sim.InsertCalls(6000) // 300 pages: the run is still going when SIGTERM lands
	waitFor("the third run to be under way", func() bool {
		var n int
		pool.QueryRow(ctx, "SELECT count(*) FROM call_history").Scan(&n)
		return n > 200
	})
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("worker exit after SIGTERM: %v\n%s", err, stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("worker did not stop after SIGTERM\n%s", stderr.String())
	}
	var status string
	pool.QueryRow(ctx, "SELECT status FROM export_runs ORDER BY started_at DESC LIMIT 1").Scan(&status)
	if status != "interrupted" {
		t.Fatalf("last run status %q, want interrupted\n%s", status, stderr.String())
	}
	var rows, maxID, cursor int64
	pool.QueryRow(ctx, "SELECT count(*), max(id) FROM call_history").Scan(&rows, &maxID)
	pool.QueryRow(ctx, "SELECT (state->>'cursor')::bigint FROM export_state WHERE key = 'call_history'").Scan(&cursor)
	if rows != maxID || cursor != maxID {
		t.Fatalf("after SIGTERM: %d rows up to id %d, cursor %d: want rows 1..cursor exactly", rows, maxID, cursor)
	}
}

func parseMetrics(text string) map[string]float64 {
	out := map[string]float64{}
	for _, line := range strings.Split(text, "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err == nil {
			out[line[:i]] = v
		}
	}
	return out
}
