package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/minio/minio-go/v7"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/wildix-export/wildix-export/config"
	"github.com/wildix-export/wildix-export/exporter"
	"github.com/wildix-export/wildix-export/exporter/privacy"
	"github.com/wildix-export/wildix-export/exporter/record"
	"github.com/wildix-export/wildix-export/exporter/recordings"
	"github.com/wildix-export/wildix-export/internal/pbxsim"
	"github.com/wildix-export/wildix-export/internal/pgtest"
	"github.com/wildix-export/wildix-export/internal/pseudonym"
	"github.com/wildix-export/wildix-export/simtest"
	"github.com/wildix-export/wildix-export/sinks"
	"github.com/wildix-export/wildix-export/sinks/recstore"
	"github.com/wildix-export/wildix-export/sinks/recstore/recstoretest"
)

// retentionSim is a PBX whose calls span the 20 days before now, one
// every 15 minutes or so: with EXPORT_RETENTION=10d, about half are old.
// failing, while set, answers every call-history request 503.
func retentionSim(t *testing.T, failing *atomic.Bool) *simtest.Fixture {
	o := pbxsim.Options{Calls: 1900, CallsStart: time.Now().Add(-20 * 24 * time.Hour), CallGap: 15 * time.Minute,
		AccessTokenTTL: 24 * time.Hour}
	o.Rewrite = func(r *http.Request, status int, body []byte) (int, []byte) {
		if failing != nil && failing.Load() && strings.Contains(r.URL.Path, "CallHistory") {
			return http.StatusServiceUnavailable, []byte(`{"type":"error","reason":"down (test)"}`)
		}
		return status, body
	}
	return authorized(t, o)
}

// cutNote reads the cut a retention result's notes name.
var cutNote = regexp.MustCompile(`calls started before (\S+) \(EXPORT_RETENTION\)`)

func noteCut(t *testing.T, notes []string) time.Time {
	t.Helper()
	for _, n := range notes {
		if m := cutNote.FindStringSubmatch(n); m != nil {
			cut, err := time.Parse(time.RFC3339, m[1])
			if err != nil {
				t.Fatal(err)
			}
			return cut
		}
	}
	t.Fatalf("no cut in the retention notes %q", notes)
	return time.Time{}
}

// noteRows reads the rows a retention note counts for table, -1 if none.
func noteRows(notes []string, table string) int64 {
	for _, n := range notes {
		if rest, ok := strings.CutPrefix(n, table+": "); ok {
			v, _ := strconv.ParseInt(strings.Fields(rest)[0], 10, 64)
			return v
		}
	}
	return -1
}

// lastRunRetention reads the retention result of the last run in a CSV
// folder's run log.
func lastRunRetention(t *testing.T, dir string) (status string, notes []string) {
	t.Helper()
	logs, _ := filepath.Glob(filepath.Join(dir, ".state", "*", "runs.jsonl"))
	if len(logs) != 1 {
		t.Fatalf("run logs %v", logs)
	}
	b, _ := os.ReadFile(logs[0])
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	var run struct {
		Status    string
		Endpoints []struct {
			Endpoint string
			Notes    []string
		}
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &run); err != nil {
		t.Fatal(err)
	}
	for _, e := range run.Endpoints {
		if e.Endpoint == "retention" {
			return run.Status, e.Notes
		}
	}
	return run.Status, nil
}

// folderCalls reads every call_history data file of a CSV folder, with
// or without its manifest (a process killed between the two leaves one
// without), each parsed whole: call id → files holding it. A file with a
// manifest must match it (rows, sha256). Temporary files are not read.
func folderCalls(t *testing.T, dir string) map[int64]int {
	t.Helper()
	ids := map[int64]int{}
	files, _ := filepath.Glob(filepath.Join(dir, "call_history", "*.csv"))
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		recs, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
		if err != nil || len(recs) == 0 {
			t.Fatalf("%s is not a whole CSV file: %v", p, err)
		}
		if mb, err := os.ReadFile(strings.TrimSuffix(p, ".csv") + ".manifest.json"); err == nil {
			var m struct {
				Rows   int
				SHA256 string
			}
			json.Unmarshal(mb, &m)
			sum := sha256.Sum256(b)
			if m.Rows != len(recs)-1 || m.SHA256 != hex.EncodeToString(sum[:]) {
				t.Fatalf("%s: %d rows, its manifest says %d (or its sha256 differs)", p, len(recs)-1, m.Rows)
			}
		}
		for _, r := range recs[1:] {
			id, err := strconv.ParseInt(r[0], 10, 64)
			if err != nil {
				t.Fatalf("%s: id %q", p, r[0])
			}
			ids[id]++
		}
	}
	return ids
}

// watched is the binary running `run --once`, its log (stderr) read line
// by line: seen counts the lines match took, hit is closed at the nth.
type watched struct {
	cmd  *exec.Cmd
	seen atomic.Int64
	hit  chan struct{}
}

// startWatched starts the binary's `run --once` with env, killed at the
// test's end if still running.
func startWatched(t *testing.T, env []string, nth int64, match func(line string) bool) *watched {
	t.Helper()
	w := &watched{cmd: exec.Command(binary, "run", "--once"), hit: make(chan struct{})}
	w.cmd.Env = env
	stderr, err := w.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := w.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.cmd.Process.Kill() })
	go func() {
		for sc := bufio.NewScanner(stderr); sc.Scan(); {
			if match(sc.Text()) && w.seen.Add(1) == nth {
				close(w.hit)
			}
		}
	}()
	return w
}

// TestRetentionCSV: a folder holding 20 days of calls, then runs with
// EXPORT_RETENTION=10d. A run that fails prunes nothing. A run killed
// (SIGKILL) while pruning, again and again, leaves every file whole and
// matching its manifest, no call twice and no call of the last 10 days
// missing; the run that completes leaves exactly the simulator's calls
// that started from the cut its ledger names, and counts them there.
func TestRetentionCSV(t *testing.T) {
	t.Parallel()
	rng := seeded(t)
	var failing atomic.Bool
	f := retentionSim(t, &failing)
	dir := t.TempDir()
	env := simEnv(f, dir, "EXPORT_PAGE_SIZE=10", "EXPORT_BATCH_SIZE=10", "EXPORT_ENDPOINTS=call_history")
	if r := runBin(t, env, "", "run", "--once"); r.code != 0 {
		t.Fatalf("first run: exit %d\n%s", r.code, r.stderr)
	}
	n := f.Sim.CallCount()
	if got := folderCalls(t, dir); int64(len(got)) != n {
		t.Fatalf("first run: %d calls, want %d", len(got), n)
	}
	renv := append(env[:len(env):len(env)], "EXPORT_RETENTION=10d", "EXPORT_LOG_LEVEL=debug")
	failing.Store(true)
	if r := runBin(t, renv, "", "run", "--once"); r.code == 0 || strings.Contains(r.stderr, "data file edited") {
		t.Fatalf("a failing run: exit %d, pruned: %v", r.code, strings.Contains(r.stderr, "data file edited"))
	}
	if got := folderCalls(t, dir); int64(len(got)) != n {
		t.Fatalf("after a failed run: %d calls, want all %d: a failed run does not prune", len(got), n)
	}
	failing.Store(false)

	midway := 0
	for kill := 0; kill < 6; kill++ {
		edits := killWhilePruning(t, rng, renv, kill)
		old := oldCallsLeft(t, f, dir, kill)
		t.Logf("kill %d: %d old calls left, %d edits seen", kill, old, edits)
		if old == 0 {
			break // pruned whole: the next kill would land after it
		}
		midway++
	}
	if midway == 0 {
		t.Fatal("no kill landed while old calls were still there: the test proved nothing")
	}
	t.Logf("%d kills landed mid-prune", midway)
	if r := runBin(t, renv, "", "run", "--once"); r.code != 0 {
		t.Fatalf("final run: exit %d\n%s", r.code, r.stderr)
	}
	status, notes := lastRunRetention(t, dir)
	cut := noteCut(t, notes)
	got := folderCalls(t, dir)
	for id := int64(1); id <= n; id++ {
		if want := !f.Sim.Call(id).Start.Before(cut); (got[id] == 1) != want || got[id] > 1 {
			t.Fatalf("call %d (started %v, cut %v): in %d files", id, f.Sim.Call(id).Start, cut, got[id])
		}
	}
	if status != "ok" {
		t.Fatalf("final run: status %s", status)
	}
	left, _ := filepath.Glob(filepath.Join(dir, "call_history", ".*tmp*"))
	pending, _ := filepath.Glob(filepath.Join(dir, ".state", "*", "*.pending.json"))
	if len(left)+len(pending) > 0 {
		t.Fatalf("left after a complete run: %v %v", left, pending)
	}
}

// killWhilePruning runs the binary's `run --once` with env (a CSV
// folder, debug logs) and SIGKILLs it after a seeded number of files
// edited, at a seeded moment after: between two files or within one's
// commit (TestCSVEditRowsKilledAtEachPoint stops at each point of it).
// It returns the edits seen; a run that ends first must succeed.
func killWhilePruning(t *testing.T, rng *rand.Rand, env []string, kill int) int64 {
	t.Helper()
	w := startWatched(t, env, int64(1+rng.IntN(30)), func(line string) bool {
		return strings.Contains(line, `"msg":"data file edited"`)
	})
	done := exited(w.cmd)
	select {
	case <-w.hit:
		if d := rng.IntN(3); d > 0 {
			time.Sleep(time.Duration(d) * time.Millisecond) // the random moment, not a wait
		}
		w.cmd.Process.Signal(syscall.SIGKILL)
		<-done
	case err := <-done:
		t.Logf("kill %d: the run ended before pruning anything", kill)
		if err != nil {
			t.Fatalf("kill %d: the run ended on its own with %v", kill, err)
		}
	case <-time.After(hangGuard):
		t.Fatal("the run neither pruned nor ended")
	}
	return w.seen.Load()
}

// oldCallsLeft checks the folder dir as a killed prune left it, whatever
// the moment: files whole, no call of f twice, none of the last 10 days
// missing. It returns how many calls older than that are left.
func oldCallsLeft(t *testing.T, f *simtest.Fixture, dir string, kill int) int {
	t.Helper()
	keepFrom := time.Now().Add(-10 * 24 * time.Hour)
	got := folderCalls(t, dir)
	old := 0
	for id := int64(1); id <= f.Sim.CallCount(); id++ {
		start := f.Sim.Call(id).Start
		switch {
		case got[id] > 1:
			t.Fatalf("kill %d: call %d in %d files", kill, id, got[id])
		case got[id] == 0 && !start.Before(keepFrom):
			t.Fatalf("kill %d: call %d (started %v, within the limit) lost", kill, id, start)
		case got[id] == 1 && start.Before(keepFrom.Add(-time.Hour)):
			old++
		}
	}
	return old
}

// TestRetentionCSVCounts: one run with EXPORT_RETENTION after a folder of
// 20 days: its ledger counts exactly the calls the simulator started
// before its cut, and the folder holds exactly the others; a backfill
// over the 20 days then brings none of the older calls back, nor writes
// a file holding only a header for their windows, which it marks done.
func TestRetentionCSVCounts(t *testing.T) {
	t.Parallel()
	f := retentionSim(t, nil)
	dir := t.TempDir()
	env := simEnv(f, dir, "EXPORT_PAGE_SIZE=100", "EXPORT_BATCH_SIZE=100", "EXPORT_ENDPOINTS=call_history")
	if r := runBin(t, env, "", "run", "--once"); r.code != 0 {
		t.Fatalf("first run: exit %d\n%s", r.code, r.stderr)
	}
	pruned := runBin(t, append(env, "EXPORT_RETENTION=10d"), "", "run", "--once")
	if pruned.code != 0 || !strings.Contains(pruned.stdout, "retention") {
		t.Fatalf("retention run: exit %d\n%s\n%s", pruned.code, pruned.stdout, pruned.stderr)
	}
	_, notes := lastRunRetention(t, dir)
	cut := noteCut(t, notes)
	var old int64
	got := folderCalls(t, dir)
	for id := int64(1); id <= f.Sim.CallCount(); id++ {
		isOld := f.Sim.Call(id).Start.Before(cut)
		if isOld {
			old++
		}
		if (got[id] == 1) == isOld || got[id] > 1 {
			t.Fatalf("call %d (started %v, cut %v): in %d files", id, f.Sim.Call(id).Start, cut, got[id])
		}
	}
	if c := noteRows(notes, "call_history"); c != old || old == 0 {
		t.Fatalf("the ledger counts %d rows of call_history removed, the simulator started %d calls before %v (notes %q)", c, old, cut, notes)
	}
	// The summary a cron mails says what was removed, not rows=0.
	if want := fmt.Sprintf("call_history: %d rows removed", old); !strings.Contains(pruned.stdout, want) {
		t.Fatalf("the run's summary does not say %q:\n%s", want, pruned.stdout)
	}
	// A backfill over the whole history brings none back, and prunes too.
	from, to := time.Now().AddDate(0, 0, -22).Format("2006-01-02"), time.Now().AddDate(0, 0, 1).Format("2006-01-02")
	backfill := runBin(t, append(env, "EXPORT_RETENTION=10d"), "", "backfill", "--from", from, "--to", to)
	if backfill.code != 0 {
		t.Fatalf("backfill: exit %d\n%s", backfill.code, backfill.stderr)
	}
	_, notes = lastRunRetention(t, dir)
	cut = noteCut(t, notes)
	got = folderCalls(t, dir)
	var kept int64
	for id := int64(1); id <= f.Sim.CallCount(); id++ {
		want := !f.Sim.Call(id).Start.Before(cut)
		if want {
			kept++
		}
		if (got[id] == 1) != want || got[id] > 1 {
			t.Fatalf("after the backfill: call %d (started %v, cut %v) in %d files", id, f.Sim.Call(id).Start, cut, got[id])
		}
	}
	// Nor as files holding only a header: a window older than the cut
	// (and one whose calls the runs' files hold) writes no file. Its done
	// mark is stored all the same (a second backfill skips every window),
	// and the ledger counts the calls the backfill read and kept.
	if files, _ := filepath.Glob(filepath.Join(dir, "call_history", "*_backfill_*")); len(files) > 0 {
		t.Fatalf("the backfill wrote %d files (%s…), want none: every call of its range is older than the cut or held by the runs' files", len(files), filepath.Base(files[0]))
	}
	summary := regexp.MustCompile(`call_history\s+ok\s+rows=(\d+) .* windows=(\d+) skipped=(\d+)`)
	m := summary.FindStringSubmatch(backfill.stdout)
	if m == nil || m[1] != strconv.FormatInt(kept, 10) || m[2] == "0" || m[3] != "0" {
		t.Fatalf("backfill's summary %q, want rows=%d (the calls from the cut on) over every window:\n%s", m, kept, backfill.stdout)
	}
	again := runBin(t, append(env, "EXPORT_RETENTION=10d"), "", "backfill", "--from", from, "--to", to)
	if a := summary.FindStringSubmatch(again.stdout); again.code != 0 || a == nil || a[1] != "0" || a[2] != "0" || a[3] != m[2] {
		t.Fatalf("the same backfill again: exit %d, summary %q, want every one of the %s windows skipped:\n%s%s", again.code, a, m[2], again.stdout, again.stderr)
	}
}

// TestRetentionPostgres: the same on PostgreSQL: a failed run prunes
// nothing; the next one removes exactly the simulator's calls started
// before its cut, and counts them in the ledger's notes.
func TestRetentionPostgres(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var failing atomic.Bool
	f := retentionSim(t, &failing)
	env, pool, _ := pgEnv(t, f, "EXPORT_ENDPOINTS=call_history,colleagues")
	if r := runBin(t, env, "", "run", "--once"); r.code != 0 {
		t.Fatalf("first run: exit %d\n%s", r.code, r.stderr)
	}
	n := f.Sim.CallCount()
	renv := append(env, "EXPORT_RETENTION=10d")
	failing.Store(true)
	if r := runBin(t, renv, "", "run", "--once"); r.code == 0 {
		t.Fatal("a failing run exited 0")
	}
	if rows, _, _ := pgCalls(t, pool); rows != n {
		t.Fatalf("after a failed run: %d rows, want all %d", rows, n)
	}
	failing.Store(false)
	if r := runBin(t, renv, "", "run", "--once"); r.code != 0 {
		t.Fatalf("retention run: exit %d\n%s", r.code, r.stderr)
	}
	var notes []string
	var rowsCounted int64
	if err := pool.QueryRow(ctx, `SELECT e.notes, e.rows FROM export_run_endpoints e JOIN export_runs r USING (run_id)
WHERE e.endpoint = 'retention' AND r.status = 'ok' ORDER BY r.started_at DESC LIMIT 1`).Scan(&notes, &rowsCounted); err != nil {
		t.Fatal(err)
	}
	cut := noteCut(t, notes)
	rows, err := pool.Query(ctx, "SELECT id FROM call_history ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	kept, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		t.Fatal(err)
	}
	var want []int64
	for id := int64(1); id <= n; id++ {
		if !f.Sim.Call(id).Start.Before(cut) {
			want = append(want, id)
		}
	}
	if fmt.Sprint(kept) != fmt.Sprint(want) {
		t.Fatalf("call_history holds %d calls, the simulator started %d from %v", len(kept), len(want), cut)
	}
	if old := n - int64(len(want)); noteRows(notes, "call_history") != old || old == 0 {
		t.Fatalf("the ledger counts %d rows of call_history (%d in all), the simulator started %d calls before the cut (notes %q)",
			noteRows(notes, "call_history"), rowsCounted, old, notes)
	}
	// The run's rows are the rows it exported: the retention result's
	// rows removed are in its notes only (review 30-retention F2).
	var runRows, exported int64
	if err := pool.QueryRow(ctx, `SELECT r.rows, (SELECT coalesce(sum(e.rows), 0) FROM export_run_endpoints e
WHERE e.run_id = r.run_id AND e.endpoint <> 'retention') FROM export_runs r WHERE r.status = 'ok' ORDER BY r.started_at DESC LIMIT 1`).Scan(&runRows, &exported); err != nil {
		t.Fatal(err)
	}
	if runRows != exported || rowsCounted != 0 {
		t.Fatalf("export_runs.rows %d, its endpoints exported %d, the retention result's rows %d: want the exported rows only, retention's 0", runRows, exported, rowsCounted)
	}
	var colleagues int
	pool.QueryRow(ctx, "SELECT count(*) FROM colleagues").Scan(&colleagues)
	if colleagues != len(f.Sim.Records("colleagues")) {
		t.Fatalf("colleagues: %d rows, want %d: snapshots are not pruned", colleagues, len(f.Sim.Records("colleagues")))
	}
}

// TestRetentionMetrics: what a prune removed is in /metrics, by table.
func TestRetentionMetrics(t *testing.T) {
	t.Parallel()
	m := newMetrics()
	m.pruned(sinks.Pruned{{Table: "call_history", Rows: 7}, {Table: sinks.RecordingsStore, Rows: 2}})
	m.pruned(sinks.Pruned{{Table: "call_history", Rows: 3}})
	rec := httptest.NewRecorder()
	promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for _, want := range []string{`wildix_export_retention_removed_total{table="call_history"} 10`, `wildix_export_retention_removed_total{table="recordings store"} 2`} {
		if !strings.Contains(rec.Body.String(), want) {
			t.Fatalf("/metrics lacks %s:\n%s", want, rec.Body.String())
		}
	}
}

// callRowsText is call_history's rows as text, by id.
func callRowsText(t *testing.T, pool *pgxpool.Pool) map[int64]string {
	t.Helper()
	rows, err := pool.Query(context.Background(), "SELECT id, t::text FROM call_history t")
	if err != nil {
		t.Fatal(err)
	}
	out := map[int64]string{}
	var id int64
	var s string
	if _, err := pgx.ForEachRow(rows, []any{&id, &s}, func() error { out[id] = s; return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

// storedAndRebuiltGroups is the stored group tables' rows as they are,
// and as group_calls_rebuild makes them from the legs in call_history
// (in a transaction rolled back).
func storedAndRebuiltGroups(t *testing.T, pool *pgxpool.Pool) (kept, rebuilt string) {
	t.Helper()
	ctx := context.Background()
	groupTables := func(q interface {
		Query(context.Context, string, ...any) (pgx.Rows, error)
	}) string {
		var out []string
		for _, tb := range []string{"group_calls_stored", "group_number_members", "group_intervals_stored"} {
			out = append(out, queryStrings(t, q, "SELECT t::text FROM "+tb+" t ORDER BY 1")...)
		}
		return strings.Join(out, "\n")
	}
	kept = groupTables(pool)
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	var pbx string
	if err := pool.QueryRow(ctx, "SELECT pbx FROM call_history LIMIT 1").Scan(&pbx); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "SELECT group_calls_rebuild($1)", pbx); err != nil {
		t.Fatal(err)
	}
	return kept, groupTables(tx)
}

// TestRetentionPostgresKilledWhilePruning: 16,000 calls over 20 days
// (with call groups) in PostgreSQL, then a run with EXPORT_RETENTION=10d
// SIGKILLed after its first batch of deletions: every call of the last
// 10 days is there as it was, the stored group tables equal a rebuild
// from the legs left (each batch and its triggers one transaction), and
// the next run leaves exactly the calls from its cut.
func TestRetentionPostgresKilledWhilePruning(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := authorized(t, pbxsim.Options{Calls: 16000, CallsStart: time.Now().Add(-20 * 24 * time.Hour), CallGap: 108 * time.Second,
		AccessTokenTTL: 24 * time.Hour, GroupFields: pbxsim.GroupFields{GroupIDs: true, UniqueID: true}})
	env, pool, _ := pgEnv(t, f, "EXPORT_ENDPOINTS=call_history,colleagues,call_groups")
	if r := runBin(t, env, "", "run", "--once"); r.code != 0 {
		t.Fatalf("first run: exit %d\n%s", r.code, r.stderr)
	}
	n := f.Sim.CallCount()
	before := callRowsText(t, pool)
	if int64(len(before)) != n {
		t.Fatalf("first run: %d rows, want %d", len(before), n)
	}
	w := startWatched(t, append(env[:len(env):len(env)], "EXPORT_RETENTION=10d", "EXPORT_LOG_LEVEL=debug"), 1, func(line string) bool {
		return strings.Contains(line, `"msg":"rows deleted"`) && strings.Contains(line, `"table":"call_history"`)
	})
	cmd := w.cmd
	done := exited(cmd)
	select {
	case <-w.hit:
		cmd.Process.Signal(syscall.SIGKILL)
		<-done
	case err := <-done:
		t.Fatalf("the run ended before pruning: %v", err)
	case <-time.After(hangGuard):
		t.Fatal("the run neither pruned nor ended")
	}
	keepFrom := time.Now().Add(-10 * 24 * time.Hour)
	after := callRowsText(t, pool)
	old := 0
	for id := int64(1); id <= n; id++ {
		start := f.Sim.Call(id).Start
		s, ok := after[id]
		switch {
		case !start.Before(keepFrom) && (!ok || s != before[id]):
			t.Fatalf("call %d (started %v, within the limit): present %v, changed %v", id, start, ok, s != before[id])
		case ok && start.Before(keepFrom.Add(-time.Hour)):
			old++
		}
	}
	if old == 0 {
		t.Fatal("the kill landed after the prune: the test proved nothing")
	}
	t.Logf("killed with %d old calls left of %d", old, n)
	if kept, rebuilt := storedAndRebuiltGroups(t, pool); len(kept) == 0 || kept != rebuilt {
		t.Fatalf("after the kill, the stored group tables (%d bytes) differ from a rebuild (%d bytes)", len(kept), len(rebuilt))
	}
	if r := runBin(t, cmd.Env, "", "run", "--once"); r.code != 0 {
		t.Fatalf("final run: exit %d\n%s", r.code, r.stderr)
	}
	var notes []string
	if err := pool.QueryRow(ctx, `SELECT e.notes FROM export_run_endpoints e JOIN export_runs r USING (run_id)
WHERE e.endpoint = 'retention' AND r.status = 'ok' ORDER BY r.started_at DESC LIMIT 1`).Scan(&notes); err != nil {
		t.Fatal(err)
	}
	cut := noteCut(t, notes)
	after = callRowsText(t, pool)
	for id := int64(1); id <= n; id++ {
		if _, ok := after[id]; ok == f.Sim.Call(id).Start.Before(cut) {
			t.Fatalf("after the final run: call %d (started %v, cut %v) present %v", id, f.Sim.Call(id).Start, cut, ok)
		}
	}
}

// unprunable is a sink that cannot prune; nothing else of it is called.
type unprunable struct{ exporter.Sink }

// TestRetentionFailureRedacted: a prune that fails gives the run a failed
// "retention" result, its notes naming the cut, its error without a
// number in clear when pseudonymisation is on (here the sink's name
// holds one).
func TestRetentionFailureRedacted(t *testing.T) {
	t.Parallel()
	keys, err := pseudonym.New(bytes.Repeat([]byte("k"), 32))
	if err != nil {
		t.Fatal(err)
	}
	cat, _ := record.LoadCatalog("")
	a := &app{cfg: &config.Config{Retention: 10 * 24 * time.Hour}, log: slog.New(slog.DiscardHandler), redact: &privacy.Redactor{Keys: keys}}
	st := &started{sink: &sink{Sink: unprunable{}, name: "csv /srv/export +39 333 1234567"}, cat: cat}
	got := a.retention(st, newMetrics(), record.RetentionAt(time.Now(), a.cfg.Retention), "")(context.Background(), &exporter.RunResult{ID: "r1", PBX: "p"})
	if len(got) != 1 || got[0].Endpoint != "retention" || got[0].Err == nil {
		t.Fatalf("result %+v, want one failed retention result", got)
	}
	if msg := got[0].Err.Error(); strings.Contains(strings.ReplaceAll(msg, " ", ""), "3331234567") || !strings.Contains(msg, "cannot prune") {
		t.Fatalf("error %q: want it said, without the number", msg)
	}
	if len(got[0].Notes) == 0 || !cutNote.MatchString(got[0].Notes[0]) {
		t.Fatalf("notes %q, want the cut", got[0].Notes)
	}
	if (&app{cfg: &config.Config{}}).retention(st, newMetrics(), record.RetentionAt(time.Now(), 0), "") != nil {
		t.Fatal("retention without EXPORT_RETENTION is not off")
	}
}

// TestRetentionOneCutPerRun: a run reads its retention cut from the clock
// once: the guard's cut (each batch's rows, each recording's file) is the
// prune's, however long the run takes. Here the clock moves a minute at
// each read, 3 hours ahead of the real one; a guard reading a clock of
// its own, or a prune reading it again, gives another cut. With two cuts,
// a recording at the cut was copied and its row then left out (review
// 30-retention, F1).
func TestRetentionOneCutPerRun(t *testing.T) {
	t.Parallel()
	const limit = 10 * 24 * time.Hour
	s, err := sinks.NewCSV(sinks.CSVOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	cat, _ := record.LoadCatalog("")
	var reads atomic.Int64
	base := time.Now().Add(3 * time.Hour).Truncate(time.Second)
	a := &app{cfg: &config.Config{Retention: limit, PBXID: "p", RunTimeout: time.Minute}, log: slog.New(slog.DiscardHandler),
		stdout: io.Discard, now: func() time.Time { return base.Add(time.Duration(reads.Add(1)) * time.Minute) }}
	g := &privacy.Guard{Retention: limit}
	st := &started{sink: &sink{Sink: s, name: "csv"}, guard: g, x: &exporter.Exporter{Sink: s, PBX: "p"}, cat: cat}
	for run := range 2 {
		var seen []time.Time
		var res []exporter.EndpointResult
		err := a.export(context.Background(), st, newMetrics(), func(ctx context.Context, id string) *exporter.RunResult {
			r := &exporter.RunResult{ID: id, PBX: "p"}
			seen = append(seen, g.Cutoff(), g.Cutoff())
			res = st.x.AfterRun(ctx, r)
			seen = append(seen, g.Cutoff())
			r.Endpoints = res
			return r
		})
		if err != nil || len(res) != 1 || res[0].Err != nil {
			t.Fatalf("run %d: %v, retention %+v", run, err, res)
		}
		cut := noteCut(t, res[0].Notes)
		want := base.Add(time.Duration(reads.Load())*time.Minute - limit).UTC()
		if !cut.Equal(want) {
			t.Fatalf("run %d: prune's cut %v, want %v (the clock read once, at the run's start)", run, cut, want)
		}
		for i, c := range seen {
			if !c.Equal(cut) {
				t.Fatalf("run %d: the guard's cut (read %d) %v, the prune's %v", run, i, c, cut)
			}
		}
	}
	if n := reads.Load(); n != 2 {
		t.Fatalf("the clock read %d times in 2 runs, want once a run", n)
	}
}

// TestRetentionQuarantinedRecordingAtLearntOffset: without
// WILDIX_TIMEZONE, a quarantined recording's wall time is read at the UTC
// offset the export learnt from call history (here -05:00), as the export
// read it, not as UTC: "10:00" is 15:00Z, after a cut at 12:00Z, so its
// record stays (read as UTC it was pruned 5 hours early). Review
// 30-retention F5.
func TestRetentionQuarantinedRecordingAtLearntOffset(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	schema, pool := pgtest.Schema(t)
	p := sinks.NewPostgres(pool, schema, nil)
	cat, _ := record.LoadCatalog("")
	if err := p.Migrate(ctx, cat.All()); err != nil {
		t.Fatal(err)
	}
	calls := cat.All()[0]
	b, err := p.Begin(ctx, exporter.BatchInfo{PBX: "p", RunID: "r1", Endpoint: &calls, StateKey: calls.Name, Seq: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(ctx, []byte(`{"cursor":0,"utc_offset":-18000}`), exporter.Progress{}); err != nil {
		t.Fatal(err)
	}
	for _, q := range []struct{ key, start string }{{"rnew", "2025-03-01 10:00:00"}, {"rold", "2025-03-01 06:00:00"}} {
		raw := fmt.Sprintf(`{"id":%q,"fileName":"a.wav","path":"/x","start":%q,"duration":"5","size":"44"}`, q.key, q.start)
		if _, err := pool.Exec(ctx, `INSERT INTO `+pgx.Identifier{schema, "export_quarantine"}.Sanitize()+` (pbx, endpoint, key, run_id, field, error, record)
VALUES ('p', 'recordings', $1, 'r1', 'size', 'refused', $2)`, q.key, raw); err != nil {
			t.Fatal(err)
		}
	}
	store, err := recstore.OpenDir(t.TempDir(), recstore.DirOptions{})
	if err != nil {
		t.Fatal(err)
	}
	a := &app{cfg: &config.Config{Retention: 10 * 24 * time.Hour, PBXID: "p"}, log: slog.New(slog.DiscardHandler)}
	st := &started{sink: &sink{Sink: p, pg: p, pool: pool, name: "postgres"}, x: &exporter.Exporter{Sink: p, PBX: "p"},
		rec: &recordings.Copier{Store: store}, cat: cat}
	cut := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	got := a.retention(st, newMetrics(), record.Retention{Cut: cut}, "")(ctx, &exporter.RunResult{ID: "r2", PBX: "p"})
	if len(got) != 1 || got[0].Err != nil {
		t.Fatalf("retention %+v", got)
	}
	keys := queryStrings(t, pool, "SELECT key FROM "+pgx.Identifier{schema, "export_quarantine"}.Sanitize()+" ORDER BY key")
	if fmt.Sprint(keys) != "[rnew]" {
		t.Fatalf("quarantine holds %v after a cut at %v, want rnew (10:00 at -05:00 = 15:00Z) kept, rold (11:00Z) pruned; notes %q", keys, cut, got[0].Notes)
	}
}

// TestRetentionShorterLimitRefused: a folder pruned under
// EXPORT_RETENTION=10d; a run with 5d (a typo deleting history) exits 2
// naming both limits, before anything is exported or pruned; forced, it
// prunes and the run ledger records the change; a longer limit needs no
// force (review 30-retention F8). With the stored limit lost and the run
// ledger kept, the ledger's last prune guards as well.
func TestRetentionShorterLimitRefused(t *testing.T) {
	t.Parallel()
	f := retentionSim(t, nil)
	dir := t.TempDir()
	env := simEnv(f, dir, "EXPORT_PAGE_SIZE=500", "EXPORT_BATCH_SIZE=500", "EXPORT_ENDPOINTS=call_history")
	if r := runBin(t, append(env, "EXPORT_RETENTION=10d"), "", "run", "--once"); r.code != 0 {
		t.Fatalf("first run: exit %d\n%s", r.code, r.stderr)
	}
	before := folderCalls(t, dir)
	logs, _ := filepath.Glob(filepath.Join(dir, ".state", "*", "runs.jsonl"))
	ledger := func() string {
		b, _ := os.ReadFile(logs[0])
		return string(b)
	}
	runs := ledger()
	r := runBin(t, append(env, "EXPORT_RETENTION=5d"), "", "run", "--once")
	if r.code != 2 || !strings.Contains(r.stderr, "EXPORT_RETENTION=5d is shorter than the 10d") || !strings.Contains(r.stderr, "--force") {
		t.Fatalf("a shorter limit: exit %d, want 2 naming both limits and --force\n%s", r.code, r.stderr)
	}
	if got := folderCalls(t, dir); fmt.Sprint(got) != fmt.Sprint(before) || ledger() != runs {
		t.Fatal("a refused run changed the folder or its ledger")
	}
	if r := runBin(t, append(env, "EXPORT_RETENTION=5d"), "", "run", "--once", "--force"); r.code != 0 {
		t.Fatalf("forced: exit %d\n%s", r.code, r.stderr)
	}
	_, notes := lastRunRetention(t, dir)
	if !slices.Contains(notes, "EXPORT_RETENTION lowered from 10d to 5d (--force)") || noteRows(notes, "call_history") <= 0 {
		t.Fatalf("forced run's retention notes %q: want the change and rows pruned", notes)
	}
	if r := runBin(t, append(env, "EXPORT_RETENTION=5d"), "", "run", "--once"); r.code != 0 {
		t.Fatalf("5d again, now stored: exit %d\n%s", r.code, r.stderr)
	}
	if r := runBin(t, append(env, "EXPORT_RETENTION=20d"), "", "run", "--once"); r.code != 0 {
		t.Fatalf("a longer limit: exit %d\n%s", r.code, r.stderr)
	}
	if r := runBin(t, append(env, "EXPORT_RETENTION=10d"), "", "run", "--once"); r.code != 2 {
		t.Fatalf("10d after 20d: exit %d, want 2\n%s", r.code, r.stderr)
	}
	// The stored limit lost (a restore leaving out the state folder's
	// dot files), the run ledger kept: its last prune's limit guards.
	stored, _ := filepath.Glob(filepath.Join(dir, ".state", "*", "retention~limit.json"))
	if len(stored) != 1 {
		t.Fatalf("stored limits %v, want one", stored)
	}
	if err := os.Remove(stored[0]); err != nil {
		t.Fatal(err)
	}
	before, runs = folderCalls(t, dir), ledger()
	r = runBin(t, append(env, "EXPORT_RETENTION=10d"), "", "run", "--once")
	if r.code != 2 || !strings.Contains(r.stderr, "EXPORT_RETENTION=10d is shorter than the 20d") || !strings.Contains(r.stderr, "the stored limit is missing") {
		t.Fatalf("10d after 20d, the stored limit lost: exit %d, want 2 naming the ledger's limit\n%s", r.code, r.stderr)
	}
	if got := folderCalls(t, dir); fmt.Sprint(got) != fmt.Sprint(before) || ledger() != runs {
		t.Fatal("a refused run changed the folder or its ledger")
	}
}

// stoppingRemover removes from a real store, failing at its failAt-th
// call: a prune stopped there, as a SIGKILL would stop it, its files
// removed so far gone and their rows not.
type stoppingRemover struct {
	store  *recstore.Dir
	failAt int
	calls  int
}

func (r *stoppingRemover) Remove(ctx context.Context, name string) error {
	if r.calls++; r.calls == r.failAt {
		return fmt.Errorf("stopped here (test)")
	}
	return r.store.Remove(ctx, name)
}

func (r *stoppingRemover) Present(ctx context.Context, names []string) (map[string]bool, error) {
	return r.store.Present(ctx, names)
}

func (r *stoppingRemover) Stat(ctx context.Context, name string) (recstore.Object, error) {
	return r.store.Stat(ctx, name)
}

// TestRetentionStoppedPruneCompletedWhenOff: a prune stopped after
// removing recordings' files, before their rows went, then a run with
// EXPORT_RETENTION off and no recordings store: its "retention" result
// says the prune is left pending and why, nothing removed, the run not
// failed (review 6, R6-7); then a run with the store: its result
// completes the prune (the ledger says so and counts the rows): exactly
// the rows of the files gone are removed, every row left names a stored
// file, every stored file is kept; the run after has no retention
// result. Before, the stopped prune was completed with its cut, the
// recordings EXPORT_RETENTION off keeps removed (review 6, R6-2); and
// before that the rows stayed `copied` naming files that were gone, for
// good (attack 4, F6). On both sinks.
func TestRetentionStoppedPruneCompletedWhenOff(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cut := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, kind := range []string{"csv", "postgres"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			cat, _ := record.LoadCatalog("")
			ep := cat.All()[len(cat.All())-1]
			if ep.Files != "recordings" {
				t.Fatalf("the catalog's last endpoint is %s, not recordings", ep.Name)
			}
			storeDir := t.TempDir()
			store, err := recstore.OpenDir(storeDir, recstore.DirOptions{})
			if err != nil {
				t.Fatal(err)
			}
			var s interface {
				exporter.Sink
				Prune(ctx context.Context, pbx string, eps []record.Endpoint, cut time.Time, o sinks.PruneOptions) (sinks.Pruned, error)
			}
			var objects func() map[string]string // recording → object, of the rows left
			sk := &sink{name: kind}
			if kind == "csv" {
				dir := t.TempDir()
				c, err := sinks.NewCSV(sinks.CSVOptions{Dir: dir})
				if err != nil {
					t.Fatal(err)
				}
				s, sk.Sink, objects = c, c, func() map[string]string {
					return csvColumnByKey(t, filepath.Join(dir, "recordings"), "recording", "object")
				}
			} else {
				schema, pool := pgtest.Schema(t)
				p := sinks.NewPostgres(pool, schema, nil)
				if err := p.Migrate(ctx, cat.All()); err != nil {
					t.Fatal(err)
				}
				s, sk.Sink, sk.pg, sk.pool = p, p, p, pool
				objects = func() map[string]string {
					out := map[string]string{}
					for _, kv := range queryStrings(t, pool, "SELECT recording || ' ' || object FROM "+pgx.Identifier{schema, "recordings"}.Sanitize()) {
						k, o, _ := strings.Cut(kv, " ")
						out[k] = o
					}
					return out
				}
			}
			b, err := s.Begin(ctx, exporter.BatchInfo{PBX: "p", RunID: "r1", Endpoint: &ep, StateKey: ep.Name, Seq: 1})
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 10; i++ {
				id, start := fmt.Sprintf("rec%d", i), cut.Add(time.Duration(i-6)*24*time.Hour) // 6 old, 4 newer
				name, _ := recstore.Name("p", start, id)
				if _, err := store.Put(ctx, name, bytes.NewReader([]byte("RIFF")), recstore.Want{}); err != nil {
					t.Fatal(err)
				}
				vals := make([]any, len(ep.Columns))
				vals[ep.Column("recording")], vals[ep.Column("start_time")], vals[ep.Column("object")] = id, start, name
				vals[ep.Column("status")] = "copied"
				if err := b.Write(ctx, []record.Row{{Key: id, Values: vals, Raw: json.RawMessage(`{}`)}}); err != nil {
					t.Fatal(err)
				}
			}
			if err := b.Commit(ctx, []byte(`{"cursor":0}`), exporter.Progress{}); err != nil {
				t.Fatal(err)
			}
			stored := func(name string) bool {
				_, err := os.Stat(filepath.Join(storeDir, filepath.FromSlash(name)))
				return err == nil
			}
			var logs bytes.Buffer
			a := &app{cfg: &config.Config{PBXID: "p", RecordingsStore: config.StoreDir, RecordingsDir: storeDir}, log: slog.New(slog.NewJSONHandler(&logs, nil))}
			if _, err := s.Prune(ctx, "p", cat.All(), cut, sinks.PruneOptions{Batch: 4, Recordings: &stoppingRemover{store: store, failAt: 3}, Store: storeIdentity(a.cfg)}); err == nil {
				t.Fatal("the stopped prune reported no error")
			}
			gone := 0
			for _, o := range objects() {
				if !stored(o) {
					gone++
				}
			}
			if gone != 2 {
				t.Fatalf("%d rows name a file gone after the stop, want 2: the test would prove nothing", gone)
			}
			noStore := &started{sink: sk, x: &exporter.Exporter{Sink: sk.Sink, PBX: "p", Zone: time.UTC}, cat: cat}
			got := a.retention(noStore, newMetrics(), record.Retention{}, "")(ctx, &exporter.RunResult{ID: "r2", PBX: "p"})
			if len(got) != 1 || got[0].Err != nil || noteRows(got[0].Notes, "recordings") != 0 ||
				!strings.Contains(strings.Join(got[0].Notes, "\n"), "is left pending: which of the ") ||
				!strings.Contains(strings.Join(got[0].Notes, "\n"), "only the recordings store can tell, and none is configured") {
				t.Fatalf("retention off and no store after a stopped prune: %+v", got)
			}
			if left := objects(); len(left) != 10 {
				t.Fatalf("without a store: %d rows left, want the 10 kept", len(left))
			}
			// Held, it says so at Warn each run, not at Info.
			if lv := lastLevel(t, &logs); lv != "WARN retention incomplete" {
				t.Fatalf("without a store: logged %q, want a Warn", lv)
			}
			st := &started{sink: sk, x: &exporter.Exporter{Sink: sk.Sink, PBX: "p", Zone: time.UTC}, rec: &recordings.Copier{Store: store}, cat: cat}
			// Another folder (EXPORT_RECORDINGS_DIR changed): every file
			// looks gone from it; the prune stays pending (review 9, R9-6).
			otherDir := t.TempDir()
			other, err := recstore.OpenDir(otherDir, recstore.DirOptions{})
			if err != nil {
				t.Fatal(err)
			}
			moved := &app{cfg: &config.Config{PBXID: "p", RecordingsStore: config.StoreDir, RecordingsDir: otherDir}, log: a.log}
			got = moved.retention(&started{sink: sk, x: st.x, rec: &recordings.Copier{Store: other}, cat: cat}, newMetrics(), record.Retention{}, "")(ctx, &exporter.RunResult{ID: "r2b", PBX: "p"})
			if len(got) != 1 {
				t.Fatalf("retention off, another store, after a stopped prune: %+v", got)
			}
			if notes := strings.Join(got[0].Notes, "\n"); got[0].Err != nil || noteRows(got[0].Notes, "recordings") != 0 ||
				!strings.Contains(notes, "is left pending: it was made with another recordings store") ||
				!strings.Contains(notes, "it was made with the recordings store folder "+storeDir+" and this run's is folder "+otherDir) {
				t.Fatalf("retention off, another store, after a stopped prune: %+v", got)
			}
			if left := objects(); len(left) != 10 {
				t.Fatalf("with another store: %d rows left, want the 10 kept", len(left))
			}
			if lv := lastLevel(t, &logs); lv != "WARN retention incomplete" {
				t.Fatalf("with another store: logged %q, want a Warn", lv)
			}
			after := a.retention(st, newMetrics(), record.Retention{}, "")
			if after == nil {
				t.Fatal("with EXPORT_RETENTION off, no AfterRun completes a stopped prune")
			}
			got = after(ctx, &exporter.RunResult{ID: "r3", PBX: "p"})
			if lv := lastLevel(t, &logs); lv != "INFO retention pruned" {
				t.Errorf("completing the prune: logged %q, want an Info", lv)
			}
			if len(got) != 1 || got[0].Err != nil || got[0].Endpoint != "retention" ||
				!strings.Contains(strings.Join(got[0].Notes, "\n"), "completing the prune of what concerns calls started before "+cut.Format(time.RFC3339)) ||
				noteRows(got[0].Notes, "recordings") != 2 {
				t.Fatalf("retention off after a stopped prune: %+v", got)
			}
			left := objects()
			if ids := slices.Sorted(maps.Keys(left)); fmt.Sprint(ids) != "[rec2 rec3 rec4 rec5 rec6 rec7 rec8 rec9]" {
				t.Errorf("rows left %v, want all but the 2 whose files the stopped prune removed", ids)
			}
			for id, o := range left {
				if !stored(o) {
					t.Errorf("recording %s: its row names %s, not stored", id, o)
				}
			}
			files, _ := filepath.Glob(filepath.Join(storeDir, "*", "*", "*", "*", "*"))
			if len(files) != len(left) {
				t.Errorf("%d files stored, want the %d the rows name (none the limit keeps removed): %v", len(files), len(left), files)
			}
			if again := after(ctx, &exporter.RunResult{ID: "r4", PBX: "p"}); len(again) != 0 {
				t.Errorf("the run after: %+v, want no retention result", again)
			}
		})
	}
}

// lastLevel is the level and message of the last line logs holds (a JSON
// handler's), then emptied.
func lastLevel(t *testing.T, logs *bytes.Buffer) string {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	logs.Reset()
	var l struct{ Level, Msg string }
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &l); err != nil {
		t.Fatalf("log %q: %v", lines[len(lines)-1], err)
	}
	return l.Level + " " + l.Msg
}

// csvColumnByKey is, for the CSV files of folder dir, the value of
// column val by the value of column key.
func csvColumnByKey(t *testing.T, dir, key, val string) map[string]string {
	t.Helper()
	out := map[string]string{}
	files, _ := filepath.Glob(filepath.Join(dir, "*.csv"))
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		recs, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		k, v := slices.Index(recs[0], key), slices.Index(recs[0], val)
		for _, r := range recs[1:] {
			out[r[k]] = r[v]
		}
	}
	return out
}

// TestStoreDeniedExitsConfig (attack9 F3): an S3 key without
// s3:DeleteObject (the server answers 403 AccessDenied to a delete), or
// without s3:ListBucketMultipartUploads (review 45, R45-1), makes
// forget and a run's retention exit 2, as a run's erasure does: a person
// must give the key the permission, which the error names; nothing is
// removed. Before, both exited 1 (a failure to retry).
func TestStoreDeniedExitsConfig(t *testing.T) {
	t.Parallel()
	o := pbxsim.Options{Seed: 7, Calls: 60, CallsStart: time.Now().UTC().Add(-20 * 24 * time.Hour), CallGap: 8 * time.Hour,
		APIKeys: []string{recToken}, Recordings: pbxsim.RecordingOptions{Every: 2, BytesPerSecond: 200}}
	f := authorized(t, o)
	srv := recstoretest.Start(t)
	s3env := func(endpoint string) []string {
		return []string{"EXPORT_RECORDINGS_STORE=s3", "EXPORT_RECORDINGS_S3_ENDPOINT=" + endpoint, "EXPORT_RECORDINGS_S3_BUCKET=" + srv.Bucket,
			"EXPORT_RECORDINGS_S3_REGION=" + srv.Region, "EXPORT_RECORDINGS_S3_PATH_STYLE=true",
			"EXPORT_RECORDINGS_S3_ACCESS_KEY=" + srv.AccessKey, "EXPORT_RECORDINGS_S3_SECRET_KEY=" + srv.SecretKey}
	}
	dir := t.TempDir()
	base := []string{"EXPORT_ENDPOINTS=call_history,recordings", "WILDIX_RECORDINGS_TOKEN=" + recToken}
	if r := runCLI(t, simEnv(f, dir, append(base, s3env(srv.Endpoint)...)...), "run", "--once"); r.code != exitOK {
		t.Fatalf("run --once: exit %d: %v\n%s", r.code, r.err, r.stderr)
	}
	objects := func() int {
		n := 0
		for obj := range srv.Client(t).ListObjects(context.Background(), srv.Bucket, minio.ListObjectsOptions{Recursive: true}) {
			if obj.Err != nil {
				t.Fatal(obj.Err)
			}
			n++
		}
		return n
	}
	stored := objects()
	var number string
	for _, r := range f.Sim.Recordings() {
		if d, ok := pseudonym.Canonical(r.Number); ok && len(d) >= 7 && !r.Start.After(time.Now().Add(-11*24*time.Hour)) {
			number = d
			break
		}
	}
	if stored == 0 || number == "" {
		t.Fatalf("%d file(s) stored, number %q: the test proves nothing", stored, number)
	}
	// One proxy (the store's name, which a pending prune records, stays
	// the same), refusing as each refusal says in turn.
	var refuse atomic.Pointer[func(*http.Request) bool]
	refusing := srv.Refusing(t, func(r *http.Request) bool { return (*refuse.Load())(r) })
	denied := simEnv(f, dir, append(base, s3env(refusing)...)...)
	for _, refusal := range []struct {
		perm   string
		refuse func(*http.Request) bool
	}{
		{"s3:DeleteObject", func(r *http.Request) bool { return r.Method == http.MethodDelete }},
		// R45-1: Remove first lists the name's uploads to abort them.
		{"s3:ListBucketMultipartUploads", func(r *http.Request) bool {
			_, ok := r.URL.Query()["uploads"]
			return ok && r.Method == http.MethodGet
		}},
	} {
		refuse.Store(&refusal.refuse)
		for _, tc := range []struct {
			name string
			env  []string
			args []string
			want string
		}{
			{"forget", denied, []string{"forget", "--number", "+" + number}, "remove a recording of the number"},
			{"retention", append(denied[:len(denied):len(denied)], "EXPORT_ENDPOINTS=call_history", "EXPORT_RETENTION=10d"), []string{"run", "--once"}, "export retention"},
		} {
			r := runCLI(t, tc.env, tc.args...)
			if r.code != exitConfig || !strings.Contains(fmt.Sprint(r.err), tc.want) || !strings.Contains(fmt.Sprint(r.err), refusal.perm) {
				t.Errorf("%s, the key without %s: exit %d: %v; want exit %d, %q, naming %s\n%s", tc.name, refusal.perm, r.code, r.err, exitConfig, tc.want, refusal.perm, r.stderr)
			}
			if n := objects(); n != stored {
				t.Errorf("%s refused: %d file(s) stored, want %d", tc.name, n, stored)
			}
		}
	}
}
