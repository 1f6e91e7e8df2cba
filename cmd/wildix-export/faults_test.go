package main

import (
	"context"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/wildix-export/wildix-export/internal/pbxsim"
	"github.com/wildix-export/wildix-export/internal/pgtest"
)

// hostile is every simulator fault at once, with live inserts, 2-second
// tokens and single-use refresh tokens.
func hostile(calls int64) pbxsim.Options {
	return pbxsim.Options{
		Calls: calls, LiveInsertEvery: 4, LiveInsertBatch: 5,
		AccessTokenTTL: 2 * time.Second, RotateRefreshTokens: true,
		Faults: pbxsim.Faults{ServerError: 0.05, HTMLGateway: 0.05, TooMany: 0.05, Cut: 0.05, Slow: 0.05,
			SlowDelay: 3 * time.Second, RetryAfter: time.Second},
	}
}

func TestBinaryExactlyOnceUnderAllFaults(t *testing.T) {
	t.Parallel()
	for _, sink := range []string{"csv", "postgres"} {
		t.Run(sink, func(t *testing.T) {
			t.Parallel()
			f := authorized(t, hostile(2000))
			dir := t.TempDir()
			opts := []string{"EXPORT_PAGE_SIZE=100", "EXPORT_BATCH_SIZE=300", "EXPORT_MAX_ATTEMPTS=12"}
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
					conn.QueryRow(context.Background(), "SELECT count(*), coalesce(max(id), 0), count(DISTINCT id) FROM call_history").Scan(&n, &maxID, &distinct)
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
	var out strings.Builder
	cmd.Stderr = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	rows := func() int64 {
		c, err := pgx.Connect(ctx, pg.URL)
		if err != nil {
			return -1
		}
		defer c.Close(ctx)
		var n int64
		if c.QueryRow(ctx, "SELECT count(*) FROM wildix.call_history").Scan(&n) != nil {
			return -1
		}
		return n
	}
	deadline := time.Now().Add(30 * time.Second)
	for rows() < 100 {
		if time.Now().After(deadline) {
			t.Fatalf("no batch committed\n%s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
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
	c.QueryRow(ctx, "SELECT count(*), max(id) FROM wildix.call_history").Scan(&n, &maxID)
	c.QueryRow(ctx, "SELECT (state->>'cursor')::bigint FROM wildix.export_state WHERE key = 'call_history'").Scan(&cursor)
	if n != 3000 || maxID != 3000 || cursor != 3000 {
		t.Fatalf("after the rerun: %d rows up to %d, cursor %d; want 3000", n, maxID, cursor)
	}
}

func TestPBXUnreachableOrHanging(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	base := []string{"WILDIX_API_KEY=wsk-v1-x", "EXPORT_CSV_DIR=" + dir, "WILDIX_REQUEST_TIMEOUT=1s", "EXPORT_MAX_ATTEMPTS=2", "EXPORT_RUN_TIMEOUT=4s"}

	// Nothing listens: exit 6, what to check.
	closed := freeAddr(t)
	began := time.Now()
	r := runBin(t, baseEnv(append(base, "WILDIX_PBX_URL=http://"+closed)...), "", "run", "--once")
	if r.code != exitUnreachable || !strings.Contains(r.stderr, "cannot connect to "+closed) || time.Since(began) > 15*time.Second {
		t.Fatalf("closed port: exit %d after %s\n%s", r.code, time.Since(began), r.stderr)
	}

	// Accepts connections but never answers: the run ends by its deadline.
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
	began = time.Now()
	r = runBin(t, baseEnv(append(base, "WILDIX_PBX_URL=http://"+ln.Addr().String())...), "", "run", "--once")
	elapsed := time.Since(began)
	if r.code == 0 || elapsed > 20*time.Second || !(strings.Contains(r.stderr, "timeout") || strings.Contains(r.stderr, "deadline")) {
		t.Fatalf("hanging PBX: exit %d after %s\n%s", r.code, elapsed, r.stderr)
	}
}
