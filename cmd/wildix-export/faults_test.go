package main

import (
	"context"
	"net"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/wildix-export/wildix-export/internal/pbxsim"
	"github.com/wildix-export/wildix-export/internal/pgtest"
	"github.com/wildix-export/wildix-export/simtest"
)

// hostile is every simulator fault at once, with live inserts, 2-second
// tokens and single-use refresh tokens.
func hostile(calls int64) pbxsim.Options {
	return pbxsim.Options{
		Calls: calls, LiveInsertEvery: 4, LiveInsertBatch: 5,
		AccessTokenTTL: 2 * time.Second, RotateRefreshTokens: true,
		Faults: pbxsim.Faults{ServerError: 0.05, HTMLGateway: 0.05, TooMany: 0.05, Cut: 0.05, Slow: 0.05,
			SlowDelay: 8 * time.Second, RetryAfter: time.Second},
	}
}

func TestBinaryExactlyOnceUnderAllFaults(t *testing.T) {
	t.Parallel()
	for _, sink := range []string{"csv", "postgres"} {
		t.Run(sink, func(t *testing.T) {
			t.Parallel()
			f := authorized(t, hostile(2000))
			dir := t.TempDir()
			// Slow answers (8 s) outlast the 5 s request timeout, still
			// generous for loopback on a loaded machine.
			opts := []string{"EXPORT_PAGE_SIZE=100", "EXPORT_BATCH_SIZE=300", "EXPORT_MAX_ATTEMPTS=12", "WILDIX_REQUEST_TIMEOUT=5s"}
			env := simEnv(f, dir, opts...)
			var conn *pgx.Conn
			if sink == "postgres" {
				var schema string
				env, _, schema = pgEnv(t, f, opts...)
				c, err := pgx.Connect(context.Background(), pgtest.SchemaURL(schema))
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close(context.Background())
				conn = c
			}
			for round := 0; round < 2; round++ {
				before := f.Sim.CallCount()
				if r := runBin(t, env, "", "run", "--once"); r.code != 0 {
					t.Fatalf("round %d: exit %d\n%s%s", round, r.code, r.stdout, r.stderr)
				}
				var n int64
				if conn == nil {
					ids := csvCalls(t, dir)
					n = int64(len(ids))
					exactlyOnce(t, ids, n)
				} else {
					var maxID, distinct int64
					if err := conn.QueryRow(context.Background(), "SELECT count(*), coalesce(max(id), 0), count(DISTINCT id) FROM call_history").Scan(&n, &maxID, &distinct); err != nil {
						t.Fatal(err)
					}
					if n != maxID || distinct != n {
						t.Fatalf("round %d: %d rows, %d distinct, up to %d", round, n, distinct, maxID)
					}
				}
				if n < before {
					t.Fatalf("round %d: %d calls exported, %d were on the PBX when it started", round, n, before)
				}
			}
			if f.Sim.Stats.Faults.Load() == 0 || f.Sim.Stats.Refreshes.Load() == 0 {
				t.Fatal("no fault or refresh happened: the test proves nothing")
			}
		})
	}
}

// TestPostgresRestartedDuringExport restarts a private PostgreSQL server in
// the middle of an export: the run fails with exit code 4 (or completes,
// if the restart fell between two batches), nothing half-committed is
// kept, and the next run completes the set exactly once.
func TestPostgresRestartedDuringExport(t *testing.T) {
	t.Parallel()
	pg := pgtest.NewPrivate(t)
	f := authorized(t, pbxsim.Options{Calls: 3000, Faults: pbxsim.Faults{Latency: 10 * time.Millisecond}})
	env := simEnv(f, t.TempDir(), "EXPORT_SINK=postgres", "EXPORT_DATABASE_URL="+pg.URL, "EXPORT_DB_SCHEMA=wildix",
		"EXPORT_PAGE_SIZE=50", "EXPORT_BATCH_SIZE=100", "EXPORT_CONCURRENCY=1", "EXPORT_ENDPOINTS=call_history")
	cmd := exec.Command(binary, "run", "--once")
	cmd.Env = env
	var out lockedBuffer
	cmd.Stderr = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// Until the schema exists (or while the server restarts) there are no
	// rows to count; any other failure fails the test.
	rows := func() int64 {
		c, err := pgx.Connect(ctx, pg.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(ctx)
		var exists bool
		if err := c.QueryRow(ctx, "SELECT to_regclass('wildix.call_history') IS NOT NULL").Scan(&exists); err != nil || !exists {
			return 0
		}
		var n int64
		if err := c.QueryRow(ctx, "SELECT count(*) FROM wildix.call_history").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	eventually(t, "a batch to commit", func() bool { return rows() >= 100 }, out.String)
	pg.Restart()
	err := cmd.Wait()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	}
	if code != 0 && code != exitDatabase {
		t.Fatalf("exit %d after the restart, want %d (or 0)\n%s", code, exitDatabase, out.String())
	}
	if code == exitDatabase && !strings.Contains(out.String(), "database unavailable") {
		t.Fatalf("exit %d without saying the database is the problem\n%s", code, out.String())
	}
	if r := runBin(t, env, "", "run", "--once"); r.code != 0 {
		t.Fatalf("rerun: exit %d\n%s", r.code, r.stderr)
	}
	c, err := pgx.Connect(ctx, pg.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var n, maxID, cursor int64
	if err := c.QueryRow(ctx, "SELECT count(*), max(id) FROM wildix.call_history").Scan(&n, &maxID); err != nil {
		t.Fatal(err)
	}
	if err := c.QueryRow(ctx, "SELECT (state->>'cursor')::bigint FROM wildix.export_state WHERE key = 'call_history'").Scan(&cursor); err != nil {
		t.Fatal(err)
	}
	if n != 3000 || maxID != 3000 || cursor != 3000 {
		t.Fatalf("after the rerun: %d rows up to %d, cursor %d; want 3000", n, maxID, cursor)
	}
}

func TestPBXUnreachableOrHanging(t *testing.T) {
	t.Parallel()
	base := []string{"WILDIX_API_KEY=wsk-v1-x", "EXPORT_CSV_DIR=" + t.TempDir(), "WILDIX_REQUEST_TIMEOUT=1s", "EXPORT_MAX_ATTEMPTS=2", "EXPORT_RUN_TIMEOUT=4s"}

	// Nothing listens: exit 6, what to check.
	closed := freeAddr(t)
	r := runCLI(t, append(base, "WILDIX_PBX_URL=http://"+closed), "run", "--once")
	if r.code != exitUnreachable || !strings.Contains(r.stdout+r.stderr, "cannot connect to "+closed) {
		t.Fatalf("closed port: exit %d %v\n%s%s", r.code, r.err, r.stdout, r.stderr)
	}

	// Accepts connections but never answers: the run ends by its deadline
	// (EXPORT_RUN_TIMEOUT), not by the test's.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	r = runCLI(t, append(base, "WILDIX_PBX_URL=http://"+ln.Addr().String()), "run", "--once")
	out := r.stdout + r.stderr
	if r.code != exitFailed || !(strings.Contains(out, "timeout") || strings.Contains(out, "deadline")) {
		t.Fatalf("hanging PBX: exit %d %v\n%s", r.code, r.err, out)
	}
}

func TestDatabaseUnreachableAtStart(t *testing.T) {
	t.Parallel()
	f := authorized(t, pbxsim.Options{Calls: 10})
	closed := freeAddr(t)
	kv := fixtureEnv(f, t.TempDir(), "EXPORT_SINK=postgres", "EXPORT_DATABASE_URL=postgres://exporter:pw-s3cr3t@"+closed+"/reports?connect_timeout=10")
	r := runCLI(t, kv, "run", "--once")
	host, port, err := net.SplitHostPort(closed)
	if err != nil {
		t.Fatal(err)
	}
	if r.code != exitDatabase || !strings.Contains(r.err.Error(), "cannot connect to "+host+":"+port+" database reports as exporter") {
		t.Fatalf("exit %d, want %d: %v", r.code, exitDatabase, r.err)
	}
	if strings.Contains(r.err.Error()+r.stderr+r.stdout, "pw-s3cr3t") {
		t.Fatalf("the password appears in the output: %v\n%s", r.err, r.stderr)
	}
	if n := f.Sim.Stats.APIRequests.Load(); n != 0 {
		t.Fatalf("%d API requests before the database was checked, want 0", n)
	}
}

// TestWorkerSkipsARunStillGoing: with a run held (a hook) past the next
// due time of an every-second schedule, the due run is skipped, never
// stacked, and runs go on once the first ends.
func TestWorkerSkipsARunStillGoing(t *testing.T) {
	t.Parallel()
	held, release := make(chan struct{}), make(chan struct{})
	f := authorized(t, pbxsim.Options{Calls: 10, Rewrite: blockAt(1, held, release)})
	env, pool, _ := pgEnv(t, f, "EXPORT_SCHEDULE=@every 1s", "EXPORT_ENDPOINTS=call_history", "EXPORT_LOG_LEVEL=debug")
	cmd := exec.Command(binary, "run")
	cmd.Env = env
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	<-held
	eventually(t, "a due run to be skipped", func() bool { return strings.Contains(stderr.String(), `"event":"skip"`) }, stderr.String)
	close(release)
	ctx := context.Background()
	ended := func() int {
		var n int
		if err := pool.QueryRow(ctx, "SELECT count(*) FROM export_runs WHERE ended_at IS NOT NULL").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	eventually(t, "two runs to end", func() bool { return ended() >= 2 }, stderr.String)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("worker: %v\n%s", err, stderr.String())
	}
	rows, err := pool.Query(ctx, "SELECT started_at, ended_at FROM export_runs ORDER BY started_at")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var prevEnd time.Time
	for rows.Next() {
		var start time.Time
		var end *time.Time
		if err := rows.Scan(&start, &end); err != nil {
			t.Fatal(err)
		}
		if start.Before(prevEnd) {
			t.Fatalf("run started at %v before the previous ended at %v: stacked", start, prevEnd)
		}
		if end != nil {
			prevEnd = *end
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
}

// TestWithoutATokenNothingStarts: the worker refuses to start without a
// stored token (exit 3), and with the postgres sink the token is looked
// for in the database, never silently in a file.
func TestWithoutATokenNothingStarts(t *testing.T) {
	t.Parallel()
	f := simtest.New(t, pbxsim.Options{Calls: 10}) // not authorized
	r := runCLI(t, fixtureEnv(f, t.TempDir(), "EXPORT_SCHEDULE=@every 1s"), "run")
	if r.code != exitAuth || !strings.Contains(r.err.Error(), "wildix-export authorize") {
		t.Fatalf("worker without a token: exit %d, want %d: %v", r.code, exitAuth, r.err)
	}
	kv := []string{"WILDIX_PBX_URL=" + f.Server.URL, "WILDIX_CLIENT_ID=x", "WILDIX_CLIENT_SECRET=y", "EXPORT_SINK=postgres"}
	r = runCLI(t, kv, "query", "/api/v1/personal/info")
	if r.code != exitConfig || !strings.Contains(r.err.Error(), "the token is kept in the database: set EXPORT_DATABASE_URL") {
		t.Fatalf("postgres sink without a database: exit %d, want %d: %v", r.code, exitConfig, r.err)
	}
}
