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
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wildix-export/wildix-export/internal/pbxsim"
	"github.com/wildix-export/wildix-export/internal/pgtest"
	"github.com/wildix-export/wildix-export/simtest"
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
		"WILDIX_TIMEZONE=Europe/Rome", "EXPORT_LOG_FORMAT=json", "WILDIX_REQUEST_TIMEOUT=30s",
	}, extra...)...)
}

type result struct {
	stdout, stderr string
	code           int
}

// hangGuard is how long a command, or a wait for a condition, may take
// before the test calls it hung. It guards against a hang only, not a
// speed expectation: one run by time windows of the CSV-once test took
// over 2 minutes on a 2-core CI machine at load 20.
const hangGuard = 10 * time.Minute

func runBin(t *testing.T, env []string, stdin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
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
// fails the test on a file that is not whole or whose manifest disagrees,
// and on a data file without its manifest.
func csvCalls(t *testing.T, dir string) map[int64]int {
	t.Helper()
	return readCSVCalls(t, dir, false)
}

// readCSVCalls is csvCalls; with pendingOK, a data file without its
// manifest is skipped: a process killed between the two renames of a
// commit leaves one, and the next start completes or undoes that commit.
func readCSVCalls(t *testing.T, dir string, pendingOK bool) map[int64]int {
	t.Helper()
	ids := map[int64]int{}
	files, err := filepath.Glob(filepath.Join(dir, "call_history", "*.csv"))
	if err != nil {
		t.Fatal(err)
	}
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
		if pendingOK && errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatalf("%s has no manifest: %v", p, err)
		}
		if err := json.Unmarshal(mb, &m); err != nil {
			t.Fatalf("%s: manifest: %v", p, err)
		}
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
			id, err := strconv.ParseInt(r[0], 10, 64)
			if err != nil {
				t.Fatalf("%s: id %q: %v", p, r[0], err)
			}
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

// seeded returns a random source whose seed is printed when the test
// fails; TEST_SEED=n replays one.
func seeded(t *testing.T) *rand.Rand {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("TEST_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("TEST_SEED=%q: %v", s, err)
		}
		seed = n
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("random seed %d: rerun with TEST_SEED=%d", seed, seed)
		}
	})
	return rand.New(rand.NewPCG(seed, seed))
}

// eventually polls cond until it holds, failing after a deadline long
// enough for a loaded machine; detail says what was seen.
func eventually(t *testing.T, what string, cond func() bool, detail func() string) {
	t.Helper()
	deadline := time.Now().Add(hangGuard)
	for wait := time.Millisecond; !cond(); wait = min(2*wait, 100*time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s\n%s", what, detail())
		}
		time.Sleep(wait)
	}
}

// exited reports a started command's end on a channel.
// exited reports cmd's end: the first receive gets Wait's error, and the
// channel is closed then, so a later receive (a loop that saw the end
// already) returns at once instead of waiting forever.
func exited(cmd *exec.Cmd) <-chan error {
	done := make(chan error, 1)
	go func() { done <- cmd.Wait(); close(done) }()
	return done
}

func exitStatus(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

// blockAt returns a simulator Rewrite hook that holds the n-th call-history
// answer (1-based) until release is closed or the client gives up, and
// closes held when it does.
func blockAt(n int64, held, release chan struct{}) func(*http.Request, int, []byte) (int, []byte) {
	var seen atomic.Int64
	return holdWhen(func(r *http.Request) bool { return seen.Add(1) == n }, held, release)
}

// holdWhen is blockAt for the first call-history request that matches.
func holdWhen(match func(*http.Request) bool, held, release chan struct{}) func(*http.Request, int, []byte) (int, []byte) {
	var once sync.Once
	return func(r *http.Request, status int, body []byte) (int, []byte) {
		hold := false
		if strings.Contains(r.URL.Path, "CallHistory") && match(r) {
			once.Do(func() { hold = true })
		}
		if hold {
			close(held)
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
		return status, body
	}
}

func TestAuthorizeLoopbackAndPaste(t *testing.T) {
	t.Parallel()
	f := simtest.New(t, pbxsim.Options{Calls: 50})
	f.ReleaseRedirect() // the command listens on the Redirect URI itself
	dir := t.TempDir()
	env := simEnv(f, dir, "EXPORT_LOG_LEVEL=debug")

	// Loopback: the test plays the browser on the printed address.
	cmd := exec.Command(binary, "authorize", "--no-browser")
	cmd.Env = env
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, f.Server.URL+"/authorization/oauth2?") {
		t.Fatalf("first line %q is not the authorization URL (%v)", line, err)
	}
	resp, err := http.Get(strings.TrimSpace(line))
	if err != nil {
		t.Fatal(err)
	}
	page, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil || !strings.Contains(string(page), "Authorized") {
		t.Fatalf("authorize: %v\n%s\n%s", err, stderr.String(), page)
	}
	logs := stderr.String()
	r := runBin(t, env, "", "query", "/api/v1/PBX/CallHistory/?count=2&sort=id&dir=ASC")
	if r.code != 0 || !strings.Contains(r.stdout, `"total": "50"`) {
		t.Fatalf("query: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	logs += r.stderr + r.stdout

	// Paste flow, with a Redirect URI the program cannot listen on.
	pasteDir := t.TempDir()
	f2 := simtest.New(t, pbxsim.Options{Clients: []pbxsim.Client{{ID: "paste-app", Secret: "paste-secret-9", RedirectURIs: []string{"https://pbx.example/api/v1/doc/"}}}})
	env2 := baseEnv("WILDIX_PBX_URL="+f2.Server.URL, "WILDIX_CLIENT_ID=paste-app", "WILDIX_CLIENT_SECRET=paste-secret-9",
		"WILDIX_REDIRECT_URL=https://pbx.example/api/v1/doc/", "WILDIX_TOKEN_FILE="+filepath.Join(pasteDir, "t.json"))
	cmd = exec.Command(binary, "authorize")
	cmd.Env = env2
	if stdout, err = cmd.StdoutPipe(); err != nil {
		t.Fatal(err)
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if line, err = bufio.NewReader(stdout).ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err = noFollow.Get(strings.TrimSpace(line))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if _, err := fmt.Fprintln(stdin, resp.Header.Get("Location")); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("paste flow: %v\n%s", err, stderr.String())
	}
	if r := runBin(t, env2, "", "query", "/api/v1/personal/info"); r.code != 0 {
		t.Fatalf("query after paste flow: %d %s", r.code, r.stderr)
	}

	// Nothing secret anywhere in what the commands printed, at debug level.
	tok, err := os.ReadFile(f.TokenFile)
	if err != nil {
		t.Fatal(err)
	}
	var stored struct{ Tokens map[string]string }
	if err := json.Unmarshal(tok, &stored); err != nil {
		t.Fatal(err)
	}
	var rec struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
	}
	for _, v := range stored.Tokens {
		if err := json.Unmarshal([]byte(v), &rec); err != nil {
			t.Fatal(err)
		}
	}
	if rec.AccessToken == "" || rec.RefreshToken == "" {
		t.Fatal("no token stored")
	}
	for _, secret := range []string{simtest.ClientSecret, rec.AccessToken, rec.RefreshToken} {
		if strings.Contains(logs, secret) {
			t.Fatalf("secret %q.. appears in the output", secret[:4])
		}
	}
}

// authorized returns a fixture whose token file holds a token.
func authorized(t *testing.T, o pbxsim.Options) *simtest.Fixture {
	f := simtest.New(t, o)
	f.Authorize(t)
	return f
}

// killOptions is a PBX for the kill tests: enough pages that kills land
// mid-export, and tokens that outlive the test, so that a kill never
// lands between the PBX rotating a refresh token and its being saved (a
// window no client can close; the token tests cover refreshing).
func killOptions(calls int64) pbxsim.Options {
	return pbxsim.Options{Calls: calls, Faults: pbxsim.Faults{Latency: 5 * time.Millisecond}, AccessTokenTTL: 24 * time.Hour, RotateRefreshTokens: true}
}

// killLoop starts `run --once` up to n times and SIGKILLs each at a
// seeded random moment: half the time at once after a random delay
// (during start-up or the first pages), half the time after the run has
// committed something more. progress reads what is committed; check runs
// after each kill. It returns how many kills landed mid-export, with
// rows committed and some still to come.
func killLoop(t *testing.T, env []string, rng *rand.Rand, n int, total int64, progress func() int64, check func(kill int)) (midway int) {
	t.Helper()
	for i := 0; i < n; i++ {
		before := progress()
		if before >= total {
			break
		}
		cmd := exec.Command(binary, "run", "--once")
		cmd.Env = env
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := exited(cmd)
		t.Cleanup(func() { cmd.Process.Kill() }) // if the test fails mid-run
		if rng.IntN(2) == 0 {
			time.Sleep(time.Duration(rng.IntN(300)) * time.Millisecond) // the random moment, not a wait
		} else {
			finished := false
			eventually(t, "the run to commit more", func() bool {
				select {
				case <-done:
					finished = true
					return true
				default:
					return progress() > before
				}
			}, func() string { return fmt.Sprintf("kill %d: %d rows committed before", i, before) })
			if !finished {
				time.Sleep(time.Duration(rng.IntN(40)) * time.Millisecond)
			}
		}
		cmd.Process.Signal(syscall.SIGKILL)
		<-done
		if p := progress(); p > 0 && p < total {
			midway++
		}
		check(i)
	}
	return midway
}

func TestKilledAtRandomMomentsCSV(t *testing.T) {
	t.Parallel()
	rng := seeded(t)
	const total = 6000
	f := authorized(t, killOptions(total))
	dir := t.TempDir()
	env := simEnv(f, dir, "EXPORT_PAGE_SIZE=50", "EXPORT_BATCH_SIZE=150", "EXPORT_CONCURRENCY=2", "EXPORT_ENDPOINTS=call_history")
	committed := func() int64 { return int64(len(readCSVCalls(t, dir, true))) }
	midway := killLoop(t, env, rng, 12, total, committed, func(kill int) {
		// Committed files are whole (checked against their manifests)
		// and hold each call at most once, 1..n without a gap.
		ids := readCSVCalls(t, dir, true)
		exactlyOnce(t, ids, int64(len(ids)))
	})
	if midway == 0 {
		t.Fatal("no kill landed mid-export, with rows committed and more to come: the test proved nothing")
	}
	if r := runBin(t, env, "", "run", "--once"); r.code != 0 {
		t.Fatalf("final run: exit %d\n%s", r.code, r.stderr)
	}
	exactlyOnce(t, csvCalls(t, dir), total)
	tmp, err := filepath.Glob(filepath.Join(dir, "call_history", ".*tmp*"))
	if err != nil || len(tmp) > 0 {
		t.Fatalf("temporary files left after a complete run: %v %v", tmp, err)
	}
}

func pgEnv(t *testing.T, f *simtest.Fixture, extra ...string) ([]string, *pgxpool.Pool, string) {
	schema, pool := pgtest.Schema(t)
	env := simEnv(f, t.TempDir(), append([]string{"EXPORT_SINK=postgres", "EXPORT_DATABASE_URL=" + pgtest.URL(), "EXPORT_DB_SCHEMA=" + schema}, extra...)...)
	return env, pool, schema
}

// queryStrings is the one text column of the rows q gives for sql.
func queryStrings(t *testing.T, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, sql string, args ...any) []string {
	t.Helper()
	rows, err := q.Query(context.Background(), sql, args...)
	if err == nil {
		var out []string
		if out, err = pgx.CollectRows(rows, pgx.RowTo[string]); err == nil {
			return out
		}
	}
	t.Fatalf("%s: %v", sql, err)
	return nil
}

// pgCalls reads call_history's rows, highest id and cursor; zeros before
// the tables exist (a kill during start-up), every query's error checked.
func pgCalls(t *testing.T, pool *pgxpool.Pool) (rows, maxID, cursor int64) {
	t.Helper()
	ctx := context.Background()
	var exists bool
	if err := pool.QueryRow(ctx, "SELECT to_regclass('call_history') IS NOT NULL AND to_regclass('export_state') IS NOT NULL").Scan(&exists); err != nil {
		t.Fatal(err)
	}
	if !exists {
		return 0, 0, 0
	}
	if err := pool.QueryRow(ctx, "SELECT count(*), coalesce(max(id), 0) FROM call_history").Scan(&rows, &maxID); err != nil {
		t.Fatal(err)
	}
	err := pool.QueryRow(ctx, "SELECT (state->>'cursor')::bigint FROM export_state WHERE key = 'call_history'").Scan(&cursor)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		t.Fatal(err)
	}
	return rows, maxID, cursor
}

func TestKilledAtRandomMomentsPostgres(t *testing.T) {
	t.Parallel()
	rng := seeded(t)
	const total = 6000
	f := authorized(t, killOptions(total))
	env, pool, _ := pgEnv(t, f, "EXPORT_PAGE_SIZE=50", "EXPORT_BATCH_SIZE=150", "EXPORT_CONCURRENCY=2", "EXPORT_ENDPOINTS=call_history")
	committed := func() int64 { rows, _, _ := pgCalls(t, pool); return rows }
	midway := killLoop(t, env, rng, 16, total, committed, func(kill int) {
		// The cursor never points past a row that is missing.
		rows, maxID, cursor := pgCalls(t, pool)
		if rows != maxID || cursor > maxID {
			t.Fatalf("after kill %d: %d rows up to id %d, cursor %d", kill, rows, maxID, cursor)
		}
	})
	if midway == 0 {
		t.Fatal("no kill landed mid-export, with rows committed and more to come: the test proved nothing")
	}
	if r := runBin(t, env, "", "run", "--once"); r.code != 0 {
		t.Fatalf("final run: exit %d\n%s", r.code, r.stderr)
	}
	if rows, maxID, cursor := pgCalls(t, pool); rows != total || maxID != total || cursor != total {
		t.Fatalf("%d rows up to %d, cursor %d; want %d", rows, maxID, cursor, total)
	}
}

// TestTwoRunsAtOnceOneSkips holds the first run's first page (a hook) while
// a second run starts: the second skips with exit 5, the first completes.
func TestTwoRunsAtOnceOneSkips(t *testing.T) {
	t.Parallel()
	for _, sink := range []string{"csv", "postgres"} {
		t.Run(sink, func(t *testing.T) {
			t.Parallel()
			held, release := make(chan struct{}), make(chan struct{})
			f := authorized(t, pbxsim.Options{Calls: 500, Rewrite: blockAt(1, held, release)})
			dir := t.TempDir()
			opts := []string{"EXPORT_PAGE_SIZE=100", "EXPORT_ENDPOINTS=call_history"}
			env := simEnv(f, dir, opts...)
			var pool *pgxpool.Pool
			if sink == "postgres" {
				env, pool, _ = pgEnv(t, f, opts...)
			}
			first := exec.Command(binary, "run", "--once")
			first.Env = env
			var stderr lockedBuffer
			first.Stderr = &stderr
			if err := first.Start(); err != nil {
				t.Fatal(err)
			}
			done := exited(first)
			select {
			case <-held:
			case err := <-done:
				t.Fatalf("the first run ended (%v) before asking for a page\n%s", err, stderr.String())
			}
			r := runBin(t, env, "", "run", "--once")
			close(release)
			if r.code != exitLocked {
				t.Fatalf("second run: exit %d, want %d\n%s", r.code, exitLocked, r.stderr)
			}
			if err := <-done; err != nil {
				t.Fatalf("first run: %v\n%s", err, stderr.String())
			}
			if pool == nil {
				exactlyOnce(t, csvCalls(t, dir), 500)
			} else if rows, maxID, cursor := pgCalls(t, pool); rows != 500 || maxID != 500 || cursor != 500 {
				t.Fatalf("%d rows up to %d, cursor %d; want 500", rows, maxID, cursor)
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

// TestWorkerSchedulesAndServesMetrics runs the worker on a per-second
// schedule, waits for two scheduled exports, reads its endpoints and
// metrics, and stops it with SIGTERM.
func TestWorkerSchedulesAndServesMetrics(t *testing.T) {
	t.Parallel()
	f := authorized(t, pbxsim.Options{Calls: 200})
	addr := freeAddr(t)
	env, pool, _ := pgEnv(t, f, "EXPORT_SCHEDULE=@every 1s", "EXPORT_PAGE_SIZE=20", "EXPORT_BATCH_SIZE=40",
		"EXPORT_CONCURRENCY=1", "EXPORT_ENDPOINTS=call_history,colleagues", "EXPORT_HTTP_ADDR="+addr)
	cmd := exec.Command(binary, "run")
	cmd.Env = env
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	ctx := context.Background()
	eventually(t, "two scheduled exports", func() bool {
		var n int
		var exists bool
		if err := pool.QueryRow(ctx, "SELECT to_regclass('export_runs') IS NOT NULL").Scan(&exists); err != nil {
			t.Fatal(err)
		}
		if exists {
			if err := pool.QueryRow(ctx, "SELECT count(*) FROM export_runs WHERE mode = 'scheduled' AND status = 'ok'").Scan(&n); err != nil {
				t.Fatal(err)
			}
		}
		return n >= 2
	}, stderr.String)

	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %s", path, resp.Status)
		}
	}
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
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
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("worker exit after SIGTERM: %v\n%s", err, stderr.String())
	}
	if rows, maxID, cursor := pgCalls(t, pool); rows != 200 || maxID != 200 || cursor != 200 {
		t.Fatalf("%d rows up to %d, cursor %d; want 200", rows, maxID, cursor)
	}
}

// startHeldWorker starts the worker (`run --now`, a schedule that never
// comes) on 400 calls in pages of 20 and batches of 40, holds the page of
// rows 61-80 (a hook), and waits until the first batch is committed: rows
// 1-40 are in, rows 41-60 are written into the batch in flight.
func startHeldWorker(t *testing.T) (*exec.Cmd, <-chan error, *pgxpool.Pool, *lockedBuffer) {
	held, release := make(chan struct{}), make(chan struct{})
	t.Cleanup(func() { close(release) })
	page4 := func(r *http.Request) bool {
		q := r.URL.Query()
		return q.Get("start") == "60" || q.Get("filter[id][from]") == "61"
	}
	f := authorized(t, pbxsim.Options{Calls: 400, Rewrite: holdWhen(page4, held, release)})
	env, pool, _ := pgEnv(t, f, "EXPORT_SCHEDULE=0 0 1 1 *", "EXPORT_PAGE_SIZE=20", "EXPORT_BATCH_SIZE=40",
		"EXPORT_CONCURRENCY=1", "EXPORT_ENDPOINTS=call_history", "EXPORT_SHUTDOWN_GRACE=2m")
	cmd := exec.Command(binary, "run", "--now")
	cmd.Env = env
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	done := exited(cmd)
	select {
	case <-held:
	case err := <-done:
		t.Fatalf("the worker ended (%v) before the page of rows 61-80\n%s", err, stderr.String())
	}
	eventually(t, "the first batch to commit", func() bool { rows, _, _ := pgCalls(t, pool); return rows == 40 }, stderr.String)
	if rows, maxID, cursor := pgCalls(t, pool); rows != 40 || maxID != 40 || cursor != 40 {
		t.Fatalf("before the signal: %d rows up to %d, cursor %d; want 40", rows, maxID, cursor)
	}
	return cmd, done, pool, &stderr
}

// TestGracefulStopCommitsTheBatchInFlight: SIGTERM while a page is being
// fetched; the batch in flight (rows 41-60) commits within the grace, with
// its cursor, and the worker exits 0.
func TestGracefulStopCommitsTheBatchInFlight(t *testing.T) {
	t.Parallel()
	cmd, done, pool, stderr := startHeldWorker(t)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("worker exit after SIGTERM: %v\n%s", err, stderr.String())
	}
	if rows, maxID, cursor := pgCalls(t, pool); rows != 60 || maxID != 60 || cursor != 60 {
		t.Fatalf("after SIGTERM: %d rows up to %d, cursor %d; want the batch in flight committed: 60\n%s", rows, maxID, cursor, stderr.String())
	}
	var status string
	if err := pool.QueryRow(context.Background(), "SELECT status FROM export_runs ORDER BY started_at DESC LIMIT 1").Scan(&status); err != nil {
		t.Fatal(err)
	}
	if status != "interrupted" {
		t.Fatalf("run status %q, want interrupted", status)
	}
}

// TestSecondSignalAborts: while the batch in flight waits to commit (the
// test holds a lock on the table), a second SIGTERM aborts at once with
// exit 130, and nothing of that batch is kept.
func TestSecondSignalAborts(t *testing.T) {
	t.Parallel()
	cmd, done, pool, stderr := startHeldWorker(t)
	ctx := context.Background()
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	// The batch in flight may already hold rows in call_history (a direct
	// COPY takes its lock at write time), so the test holds the state table,
	// which only the commit writes: the commit, not a write, is what waits.
	if _, err := tx.Exec(ctx, "LOCK TABLE export_state IN EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the commit to wait for the table lock", func() bool {
		var n int
		if err := pool.QueryRow(ctx, "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'export_state'::regclass").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n > 0
	}, stderr.String)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := exitStatus(<-done); code != exitAborted {
		t.Fatalf("exit %d after a second signal, want %d\n%s", code, exitAborted, stderr.String())
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if rows, maxID, cursor := pgCalls(t, pool); rows != 40 || maxID != 40 || cursor != 40 {
		t.Fatalf("after the abort: %d rows up to %d, cursor %d; want the first batch only: 40\n%s", rows, maxID, cursor, stderr.String())
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
