package main

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wildix-export/wildix-export/exporter"
	"github.com/wildix-export/wildix-export/internal/pbxsim"
	"github.com/wildix-export/wildix-export/internal/pgtest"
	"github.com/wildix-export/wildix-export/internal/pseudonym"
	"github.com/wildix-export/wildix-export/simtest"
	"github.com/wildix-export/wildix-export/sinks"
)

// TestForgetNeedsEveryKey, on both sinks: rows written pseudonymised
// under key 1, then the key changed to key 2 (run --once --force). Forget without a key,
// with another key, or with key 2 alone exits 2 naming
// EXPORT_PSEUDONYM_KEY and changes nothing; with key 2 and key 1 given by
// --previous-key-file it erases the number's pseudonym under both.
func TestForgetNeedsEveryKey(t *testing.T) {
	t.Parallel()
	const key1, key2 = "0123456789abcdef0123456789abcdef", "another key of at least 32 bytes!!"
	for _, pg := range []bool{false, true} {
		t.Run(fmt.Sprintf("postgres=%v", pg), func(t *testing.T) {
			t.Parallel()
			const calls = 200
			f := simtest.New(t, pbxsim.Options{Calls: calls, CallGap: time.Minute})
			f.Authorize(t)
			dir := t.TempDir()
			kv := fixtureEnv(f, dir, "EXPORT_PSEUDONYMIZE=numbers")
			snap := func() map[string][]string { return csvFolder(t, dir) }
			if pg {
				var schema string
				var pool *pgxpool.Pool
				schema, pool = pgtest.Schema(t)
				kv = append(kv, "EXPORT_SINK=postgres", "EXPORT_DATABASE_URL="+pgtest.URL(), "EXPORT_DB_SCHEMA="+schema)
				snap = func() map[string][]string { return tableRows(t, pool) }
			}
			with := func(extra ...string) []string { return append(slices.Clone(kv), extra...) }
			if r := runCLI(t, with("EXPORT_PSEUDONYM_KEY="+key1), "run", "--once"); r.code != exitOK {
				t.Fatalf("run: exit %d: %v\n%s", r.code, r.err, r.stderr)
			}
			if r := runCLI(t, with("EXPORT_PSEUDONYM_KEY="+key2, "EXPORT_PSEUDONYM_PREVIOUS_KEY="+key1), "run", "--once", "--force"); r.code != exitOK {
				t.Fatalf("run --once --force under key 2: exit %d: %v\n%s", r.code, r.err, r.stderr)
			}
			d := simNumber(t, f.Sim, calls)
			k1, _ := pseudonym.New([]byte(key1))
			k2, _ := pseudonym.New([]byte(key2))
			held := func(m map[string][]string, k *pseudonym.Keyed) bool {
				for tb, rows := range m {
					for _, row := range rows {
						if strings.Contains(row, k.Number(d)) && !strings.Contains(tb, "suppress") && !strings.HasPrefix(row, `("","suppressed numbers",`) {
							return true
						}
					}
				}
				return false
			}
			before := snap()
			if !held(before, k1) {
				t.Fatal("the sink does not hold the number's pseudonym under key 1: the test proves nothing")
			}
			keyFile := filepath.Join(t.TempDir(), "key1")
			if err := os.WriteFile(keyFile, []byte(key1+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			noRule := slices.DeleteFunc(slices.Clone(kv), func(s string) bool { return strings.HasPrefix(s, "EXPORT_PSEUDONYMIZE=") })
			for _, env := range [][]string{noRule, with("EXPORT_PSEUDONYM_KEY=a third key, also 32 bytes long!!"), with("EXPORT_PSEUDONYM_KEY=" + key2)} {
				r := runCLI(t, env, "forget", "--number", "+"+d)
				if msg := fmt.Sprint(r.err); r.code != exitConfig || !strings.Contains(msg, "EXPORT_PSEUDONYM_KEY") || !strings.Contains(msg, "--previous-key-file") {
					t.Errorf("forget lacking a key: exit %d, %v; want 2 naming EXPORT_PSEUDONYM_KEY and --previous-key-file\n%s", r.code, r.err, r.stdout)
				}
			}
			if !sameTableRows(before, snap()) {
				t.Fatal("a refused forget changed the sink")
			}
			r := runCLI(t, with("EXPORT_PSEUDONYM_KEY="+key2), "forget", "--number", "+"+d, "--previous-key-file", keyFile)
			if r.code != exitOK || !strings.Contains(r.stdout, "nowhere in the sink") {
				t.Fatalf("forget with both keys: exit %d: %v\n%s%s", r.code, r.err, r.stdout, r.stderr)
			}
			after := snap()
			if held(after, k1) || held(after, k2) {
				t.Error("the number's pseudonym under a key stays after forget")
			}
		})
	}
}

// TestForgetRefusesEmptySink: a mistyped EXPORT_CSV_DIR or
// EXPORT_DB_SCHEMA (a folder or schema holding no export) exits 2 naming
// the setting and creates nothing, with --dry-run too; --allow-empty
// forgets before the first export.
func TestForgetRefusesEmptySink(t *testing.T) {
	t.Parallel()
	schema, pool := pgtest.Schema(t)
	missing := filepath.Join(t.TempDir(), "mistyped")
	for _, tc := range []struct {
		env  []string
		want string
	}{
		{[]string{"EXPORT_CSV_DIR=" + missing}, "EXPORT_CSV_DIR=" + missing},
		{[]string{"EXPORT_CSV_DIR=" + t.TempDir()}, "EXPORT_CSV_DIR="},
		{[]string{"EXPORT_SINK=postgres", "EXPORT_DATABASE_URL=" + pgtest.URL(), "EXPORT_DB_SCHEMA=" + schema}, "EXPORT_DB_SCHEMA=" + schema},
	} {
		for _, dry := range []bool{true, false} {
			args := []string{"forget", "--number", "+390123456789"}
			if dry {
				args = append(args, "--dry-run")
			}
			r := runCLI(t, append([]string{"WILDIX_PBX_URL=https://pbx.example.com"}, tc.env...), args...)
			if msg := fmt.Sprint(r.err); r.code != exitConfig || !strings.Contains(msg, tc.want) || !strings.Contains(msg, "holds no export") {
				t.Errorf("%v dry=%v: exit %d, %v; want 2 naming %s", tc.env, dry, r.code, r.err, tc.want)
			}
		}
	}
	if _, err := os.Stat(missing); err == nil {
		t.Error("forget created the mistyped folder")
	}
	if rows := tableRows(t, pool); len(rows) != 0 {
		t.Errorf("forget created tables in the mistyped schema: %d", len(rows))
	}
	dir := t.TempDir()
	r := runCLI(t, []string{"WILDIX_PBX_URL=https://pbx.example.com", "EXPORT_CSV_DIR=" + dir}, "forget", "--number", "+390123456789", "--allow-empty")
	if r.code != exitOK {
		t.Fatalf("forget --allow-empty: exit %d: %v", r.code, r.err)
	}
}

// TestForgetLocksEveryPBX: forget erases every PBX's rows of the sink, so
// it takes every PBX's export lock: with another PBX's export running
// (its lock held) it exits 5 and changes nothing, on both sinks.
func TestForgetLocksEveryPBX(t *testing.T) {
	t.Parallel()
	for _, pg := range []bool{false, true} {
		t.Run(fmt.Sprintf("postgres=%v", pg), func(t *testing.T) {
			t.Parallel()
			const calls = 50
			f := simtest.New(t, pbxsim.Options{Calls: calls, CallGap: time.Minute})
			f.Authorize(t)
			dir := t.TempDir()
			kv := fixtureEnv(f, dir)
			ctx := context.Background()
			snap := func() map[string][]string { return csvFolder(t, dir) }
			var lock func() (func(), error)
			if pg {
				schema, pool := pgtest.Schema(t)
				kv = append(kv, "EXPORT_SINK=postgres", "EXPORT_DATABASE_URL="+pgtest.URL(), "EXPORT_DB_SCHEMA="+schema)
				snap = func() map[string][]string { return tableRows(t, pool) }
				lock = func() (func(), error) {
					// The other PBX's state, as its export leaves it.
					if _, err := pool.Exec(ctx, `INSERT INTO export_state (pbx, key, state) VALUES ('pbx-other.example.com', 'contacts', '{}')`); err != nil {
						return nil, err
					}
					return sinks.NewPostgres(pool, schema, slog.New(slog.DiscardHandler)).LockPBX(ctx, "pbx-other.example.com")
				}
			} else {
				lock = func() (func(), error) {
					s, err := sinks.NewCSV(sinks.CSVOptions{Dir: dir})
					if err != nil {
						return nil, err
					}
					if err := s.FinishRun(ctx, &exporter.RunResult{ID: "r1", Mode: "run", PBX: "pbx-other.example.com", Started: time.Now(), Ended: time.Now(), Status: "ok"}); err != nil {
						return nil, err
					}
					return s.LockPBX(ctx, "pbx-other.example.com")
				}
			}
			if r := runCLI(t, kv, "run", "--once"); r.code != exitOK {
				t.Fatalf("run: exit %d: %v\n%s", r.code, r.err, r.stderr)
			}
			unlock, err := lock()
			if err != nil {
				t.Fatal(err)
			}
			defer unlock()
			before := snap()
			d := simNumber(t, f.Sim, calls)
			r := runCLI(t, kv, "forget", "--number", "+"+d)
			if r.code != exitLocked || !strings.Contains(fmt.Sprint(r.err), "pbx-other.example.com") {
				t.Fatalf("forget with another PBX's export running: exit %d, %v; want %d naming that PBX\n%s", r.code, r.err, exitLocked, r.stdout)
			}
			if !sameTableRows(before, snap()) {
				t.Error("forget changed the sink without every PBX's lock")
			}
		})
	}
}

// TestForgetRecordingsWrongStore: forget with EXPORT_RECORDINGS_DIR set
// to another (existing, empty) folder than the export's exits 2 naming
// the setting and changes nothing: the rows still name their files, and
// the files stay. With the right folder it removes them.
func TestForgetRecordingsWrongStore(t *testing.T) {
	t.Parallel()
	store := dirStore(t)
	const calls = 200
	f := simtest.New(t, pbxsim.Options{Calls: calls, CallGap: time.Minute, CallsStart: time.Now().UTC().Add(-calls * time.Minute).Add(-time.Hour),
		APIKeys: []string{recToken}, Recordings: pbxsim.RecordingOptions{Every: 5, BytesPerSecond: 400}})
	f.Authorize(t)
	csvDir := t.TempDir()
	env := simEnv(f, csvDir, append([]string{"WILDIX_RECORDINGS_TOKEN=" + recToken}, store.env...)...)
	var number string
	for _, r := range f.Sim.Recordings() {
		if d, ok := pseudonym.Canonical(r.Number); ok && len(d) >= 7 {
			number = d
			break
		}
	}
	if number == "" {
		t.Fatal("no recording of an external number: the test proves nothing")
	}
	if r := runBin(t, env, "", "run", "--once"); r.code != 0 {
		t.Fatalf("run --once: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	files, folder := store.files(t), csvFolder(t, csvDir)
	empty := t.TempDir()
	wrong := append(slices.Clone(env), "EXPORT_RECORDINGS_DIR="+empty)
	r := runBin(t, wrong, "", "forget", "--number", "+"+number)
	if r.code != exitConfig || !strings.Contains(r.stderr, "EXPORT_RECORDINGS_DIR="+empty) || strings.Contains(r.stdout, "removed:") {
		t.Fatalf("forget with another recordings folder: exit %d, want 2 naming EXPORT_RECORDINGS_DIR\n%s%s", r.code, r.stdout, r.stderr)
	}
	if !maps.Equal(files, store.files(t)) || !sameTableRows(folder, csvFolder(t, csvDir)) {
		t.Fatal("forget with another recordings folder changed the store or the rows")
	}
	r = runBin(t, env, "", "forget", "--number", "+"+number)
	if r.code != 0 || !strings.Contains(r.stdout, "removed: ") {
		t.Fatalf("forget with the export's folder: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if len(store.files(t)) >= len(files) {
		t.Error("no recording file removed with the export's folder")
	}
}

// TestForgetLocksManyPBXesFewConnections: forget on a PostgreSQL sink
// holding more PBXes (5) than the pool has connections (pool_max_conns=4)
// finishes: the PBXes' locks are taken on one connection (review
// 30-fixes 2; one connection a lock hung for ever).
func TestForgetLocksManyPBXesFewConnections(t *testing.T) {
	t.Parallel()
	const calls = 20
	f := simtest.New(t, pbxsim.Options{Calls: calls, CallGap: time.Minute})
	f.Authorize(t)
	schema, pool := pgtest.Schema(t)
	url := pgtest.URL()
	if strings.Contains(url, "?") {
		url += "&pool_max_conns=4"
	} else {
		url += "?pool_max_conns=4"
	}
	kv := append(fixtureEnv(f, t.TempDir()), "EXPORT_SINK=postgres", "EXPORT_DATABASE_URL="+url, "EXPORT_DB_SCHEMA="+schema)
	if r := runCLI(t, kv, "run", "--once"); r.code != exitOK {
		t.Fatalf("run: exit %d: %v\n%s", r.code, r.err, r.stderr)
	}
	ctx := context.Background()
	for i := range 4 {
		if _, err := pool.Exec(ctx, `INSERT INTO export_state (pbx, key, state) VALUES ($1, 'contacts', '{}')`, fmt.Sprintf("pbx-%d.example.com", i)); err != nil {
			t.Fatal(err)
		}
	}
	a, out, errb := cliApp(kv)
	// A bound far above forget's time on a loaded machine: it hung for
	// ever before, so reaching it is the failure.
	rctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	err := a.run(rctx, []string{"forget", "--number", "+" + simNumber(t, f.Sim, calls)})
	if rctx.Err() != nil || err != nil {
		t.Fatalf("forget with 5 PBXes and 4 connections: %v (deadline: %v)\n%s\n%s", err, rctx.Err(), out.String(), errb.String())
	}
	// Every lock released: they can all be taken again.
	rows, _ := pool.Query(ctx, "SELECT DISTINCT pbx FROM export_state WHERE pbx <> ''")
	pbxes, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || len(pbxes) != 5 {
		t.Fatalf("PBXes of the sink: %q, %v; want 5", pbxes, err)
	}
	unlock, err := sinks.NewPostgres(pool, schema, slog.New(slog.DiscardHandler)).LockPBXes(ctx, pbxes)
	if err != nil {
		t.Fatalf("a lock still held after forget: %v", err)
	}
	unlock()
}

// TestForgetRefusesLostState (review 20, R20-2): a pseudonymised CSV
// folder whose state is lost (.state gone, or one PBX's .state/<pbx> gone
// while another PBX's stays) still holds the number's pseudonym in its
// rows. Forget, with or without --allow-empty, --dry-run, the key or
// none, exits 2 saying the state was lost and to restore .state, and
// changes nothing: it neither reports the number gone nor writes a
// suppression list under a key kept beside it.
func TestForgetRefusesLostState(t *testing.T) {
	t.Parallel()
	const calls = 50
	f := simtest.New(t, pbxsim.Options{Calls: calls, CallGap: time.Minute})
	f.Authorize(t)
	dir := t.TempDir()
	clear := fixtureEnv(f, dir, "EXPORT_ENDPOINTS=call_history,colleagues")
	numbers := append(slices.Clone(clear), "EXPORT_PSEUDONYMIZE=numbers", "EXPORT_PSEUDONYM_KEY="+testKey1)
	if r := runCLI(t, numbers, "run", "--once"); r.code != exitOK {
		t.Fatalf("run: exit %d: %v\n%s", r.code, r.err, r.stderr)
	}
	d := simNumber(t, f.Sim, calls)
	k, _ := pseudonym.New([]byte(testKey1))
	if !strings.Contains(fmt.Sprint(csvFolder(t, dir)), k.Number(d)) {
		t.Fatal("the folder does not hold the number's pseudonym: the test proves nothing")
	}
	entries, err := os.ReadDir(filepath.Join(dir, ".state"))
	if err != nil {
		t.Fatal(err)
	}
	var pbxDir string
	for _, e := range entries {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			pbxDir = e.Name()
		}
	}
	if pbxDir == "" {
		t.Fatal("no PBX state folder after the run")
	}
	refused := func(what string, env []string, want string, extra ...string) {
		t.Helper()
		before := csvFolder(t, dir)
		r := runCLI(t, env, append([]string{"forget", "--number", "+" + d}, extra...)...)
		if msg := fmt.Sprint(r.err); r.code != exitConfig || !strings.Contains(msg, want) || !strings.Contains(msg, "restore .state from a backup") {
			t.Errorf("%s %v: exit %d, %v; want 2 saying the state was lost (%q) and to restore .state\n%s", what, extra, r.code, r.err, want, r.stdout)
		}
		if strings.Contains(r.stdout, "nowhere in the sink") {
			t.Errorf("%s %v: reports the number gone", what, extra)
		}
		if !sameTableRows(before, csvFolder(t, dir)) {
			t.Errorf("%s %v: a refused forget changed the folder", what, extra)
		}
	}
	// One PBX's state lost, another PBX's (in clear) kept: the scope is
	// not empty and names no key.
	other, err := sinks.NewCSV(sinks.CSVOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if err := other.FinishRun(context.Background(), &exporter.RunResult{ID: "r1", Mode: "run", PBX: "pbx-other.example.com", Started: time.Now(), Ended: time.Now(), Status: "ok"}); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(dir, ".state", pbxDir)); err != nil {
		t.Fatal(err)
	}
	for _, extra := range [][]string{nil, {"--dry-run"}, {"--allow-empty"}} {
		refused("one PBX's state lost, forget in clear", clear, "but no state of it under .state", extra...)
		refused("one PBX's state lost, forget with the key", numbers, "but no state of it under .state", extra...)
	}
	if err := os.RemoveAll(filepath.Join(dir, ".state")); err != nil {
		t.Fatal(err)
	}
	for _, extra := range [][]string{nil, {"--dry-run"}, {"--allow-empty"}, {"--allow-empty", "--dry-run"}} {
		refused(".state lost, forget in clear", clear, "but no .state", extra...)
		refused(".state lost, forget with the key", numbers, "but no .state", extra...)
	}
	if _, err := os.Stat(filepath.Join(dir, ".state")); err == nil {
		t.Error("a refused forget created .state")
	}
}

// TestForgetSaysUnnamedRecordings: a forget with a recordings store
// configured says that recording files no row names are not found by it
// and how they go; without a store it does not.
func TestForgetSaysUnnamedRecordings(t *testing.T) {
	t.Parallel()
	const calls = 60
	f := simtest.New(t, pbxsim.Options{Calls: calls, CallGap: time.Minute})
	f.Authorize(t)
	dir := t.TempDir()
	kv := fixtureEnv(f, dir)
	if r := runCLI(t, kv, "run", "--once"); r.code != exitOK {
		t.Fatalf("run: exit %d: %v\n%s", r.code, r.err, r.stderr)
	}
	store := append(slices.Clone(kv), "EXPORT_RECORDINGS_STORE=dir", "EXPORT_RECORDINGS_DIR="+t.TempDir())
	r := runCLI(t, store, "forget", "--number", "+"+simNumber(t, f.Sim, calls))
	if r.code != exitOK || !strings.Contains(r.stdout, "are named by no row, so forget cannot find them") || !strings.Contains(r.stdout, "'wildix-export check' lists the files no row names") {
		t.Fatalf("forget with a recordings store: exit %d: %v; want 0 and the note on files no row names\n%s%s", r.code, r.err, r.stdout, r.stderr)
	}
	r = runCLI(t, kv, "forget", "--number", "+393471100037")
	if r.code != exitOK || strings.Contains(r.stdout, "named by no row") {
		t.Fatalf("forget without a store: exit %d: %v; want 0 without the note on recording files\n%s%s", r.code, r.err, r.stdout, r.stderr)
	}
}
