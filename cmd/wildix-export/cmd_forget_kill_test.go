package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/wildix-export/wildix-export/internal/pbxsim"
	"github.com/wildix-export/wildix-export/internal/pseudonym"
	"github.com/wildix-export/wildix-export/simtest"
)

// TestForgetKilledMidwayCountsAll: a forget SIGKILLed after a seeded
// number of the CSV files it rewrites, then run again to completion,
// leaves the folder as one uninterrupted forget of a twin folder does,
// row by row, and one ledger entry counting every row erased, the killed
// attempt's with the completing run's, equal to the twin's count, its
// notes saying an attempt was interrupted (attack4 F8: the entry counted
// 279 of 2330). No forget journal is left. Fails without the journal's
// count (seen: the entry counted only the completing run's rows).
func TestForgetKilledMidwayCountsAll(t *testing.T) {
	t.Parallel()
	rng := seeded(t)
	f := simtest.New(t, pbxsim.Options{Calls: 600, CallGap: 20 * time.Minute, CallerIDFields: true})
	f.Authorize(t)
	twin, dir := t.TempDir(), t.TempDir()
	extra := []string{"EXPORT_ENDPOINTS=call_history", "EXPORT_BATCH_SIZE=40", "EXPORT_PAGE_SIZE=40"}
	for _, d := range []string{twin, dir} {
		if r := runBin(t, simEnv(f, d, extra...), "", "run", "--once"); r.code != 0 {
			t.Fatalf("run: exit %d\n%s", r.code, r.stderr)
		}
	}
	// The company's number is in every inbound call's dnid and did: in
	// every file.
	number := pbxsim.CompanyDID
	r := runBin(t, simEnv(f, twin, extra...), "", "forget", "--number", number)
	if r.code != 0 {
		t.Fatalf("forget of the twin: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	want, _ := forgetEntries(t, twin)
	if len(want) != 1 || want[0] < 100 {
		t.Fatalf("the twin's ledger counts %v: the test proves nothing", want)
	}

	cmd := exec.Command(binary, "forget", "--number", number)
	cmd.Env = simEnv(f, dir, append(extra, "EXPORT_LOG_LEVEL=debug")...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	nth, hit := int64(1+rng.IntN(8)), make(chan struct{}) // of about 15 files
	var seen atomic.Int64
	go func() {
		for sc := bufio.NewScanner(stderr); sc.Scan(); {
			if strings.Contains(sc.Text(), `"msg":"data file edited"`) && seen.Add(1) == nth {
				close(hit)
			}
		}
	}()
	done := exited(cmd)
	select {
	case <-hit:
		if d := rng.IntN(3); d > 0 {
			time.Sleep(time.Duration(d) * time.Millisecond) // the random moment, not a wait
		}
		cmd.Process.Signal(syscall.SIGKILL)
		<-done
	case err := <-done:
		t.Fatalf("forget ended (%v) before editing %d files", err, nth)
	case <-time.After(hangGuard):
		t.Fatal("forget neither edited nor ended")
	}
	t.Logf("killed after %d file(s) edited", nth)
	if rows, _ := forgetEntries(t, dir); len(rows) != 0 {
		t.Fatalf("the killed forget recorded %v", rows)
	}
	r = runBin(t, simEnv(f, dir, extra...), "", "forget", "--number", number)
	if r.code != 0 {
		t.Fatalf("the completing forget: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, "Completing the erasure of the number begun") {
		t.Errorf("the completing forget does not say it completes an interrupted one:\n%s", r.stdout)
	}
	got, notes := forgetEntries(t, dir)
	if !slices.Equal(got, want) {
		t.Errorf("ledger: forget entries counting %v rows, want one counting %v as the uninterrupted twin's (notes %q)", got, want, notes)
	}
	if !slices.ContainsFunc(notes, func(n string) bool { return strings.Contains(n, "interrupted") }) {
		t.Errorf("the entry's notes do not say an attempt was interrupted: %q", notes)
	}
	a, b := csvFolder(t, twin), csvFolder(t, dir)
	for _, m := range []map[string][]string{a, b} {
		// the data rows (a manifest names the time of its file's edit;
		// the forget stamps at the folder's top, the forget's time)
		maps.DeleteFunc(m, func(k string, _ []string) bool {
			return strings.Contains(k, "/") || strings.HasPrefix(k, ".") || strings.HasSuffix(k, ".json")
		})
	}
	if len(a) == 0 || !maps.EqualFunc(a, b, slices.Equal) {
		t.Errorf("the killed and completed forget left rows other than the twin's uninterrupted one (%d, %d endpoints)", len(a), len(b))
		for k := range a {
			if !slices.Equal(a[k], b[k]) {
				t.Logf("%s differs", k)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(dir, ".state", ".forget-journal.json")); !os.IsNotExist(err) {
		t.Errorf("the forget journal is left after the completing forget: %v", err)
	}
}

// forgetEntries returns the rows of each forget entry of the folder's run
// ledgers, and the last one's notes.
func forgetEntries(t *testing.T, dir string) (rows []int64, notes []string) {
	t.Helper()
	logs, _ := filepath.Glob(filepath.Join(dir, ".state", "*", "runs.jsonl"))
	for _, l := range logs {
		b, err := os.ReadFile(l)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			var run struct {
				Mode      string
				Endpoints []struct {
					Rows  int64
					Notes []string
				}
			}
			if err := json.Unmarshal([]byte(line), &run); err != nil {
				t.Fatalf("%s: %v", l, err)
			}
			if run.Mode == "forget" && len(run.Endpoints) == 1 {
				rows = append(rows, run.Endpoints[0].Rows)
				notes = run.Endpoints[0].Notes
			}
		}
	}
	return rows, notes
}

// TestForgetKilledAfterRemovingRecording: a forget SIGKILLed after it
// removed a seeded number of the number's recording files and before it
// erased any row (the erasure's updates wait on the test's row locks),
// on a folder store and on S3: check and a run's log say an erasure is
// open, without the number (attack5 F1: both said nothing); run again
// with the store pointed elsewhere (another folder, another prefix),
// forget refuses (exit 2) naming --missing-recordings-ok and the store
// the files were removed from, nothing changed (review 10, R10-1:
// e55b8a7 took every file the entry had found as removed); run again
// against the same store, with no flag, it takes the files its journal
// entry says it removed as removed, removes the rest, completes the
// erasure, and its ledger entry counts every file. PostgreSQL.
func TestForgetKilledAfterRemovingRecording(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		store func(t *testing.T) recStore
		other string // a setting pointing at another store
	}{
		{"folder", dirStore, "EXPORT_RECORDINGS_DIR="},
		{"s3", s3Store, "EXPORT_RECORDINGS_S3_PREFIX="},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			killedAfterRemoving(t, tc.store(t), tc.other)
		})
	}
}

// killedAfterRemoving is TestForgetKilledAfterRemovingRecording on store;
// other is the setting ("NAME=") that, given another value, points at
// another store. It stays whole (about 100 lines): each step reads what
// the one before left, the kill's moment above all.
func killedAfterRemoving(t *testing.T, store recStore, other string) {
	ctx := context.Background()
	rng := seeded(t)
	f := recPBX(t, 120, 2*time.Hour, pbxsim.RecordingOptions{Every: 1})
	env, pool, _ := pgEnv(t, f, append([]string{"EXPORT_ENDPOINTS=call_history,recordings", "WILDIX_RECORDINGS_TOKEN=" + recToken}, store.env...)...)
	if r := runBin(t, env, "", "run", "--once"); r.code != exitOK {
		t.Fatalf("run --once: exit %d\n%s", r.code, r.stderr)
	}
	count := map[string]int{}
	for _, r := range f.Sim.Recordings() {
		if d, ok := pseudonym.Canonical(r.Number); ok && len(d) >= 7 {
			count[d]++
		}
	}
	number := ""
	for d, n := range count {
		if n > count[number] || n == count[number] && d < number {
			number = d
		}
	}
	before := store.files(t)
	if number == "" || len(before) == 0 {
		t.Fatal("no recording of an external number stored: the test proves nothing")
	}
	dry := runBin(t, env, "", "forget", "--number", "+"+number, "--dry-run")
	var files int
	for _, l := range strings.Split(dry.stdout, "\n") {
		if _, err := fmt.Sscanf(l, "found: %d stored recording file(s)", &files); err == nil {
			break
		}
	}
	if dry.code != exitOK || files == 0 {
		t.Fatalf("forget --dry-run: exit %d, %d recording files: the test proves nothing\n%s%s", dry.code, files, dry.stdout, dry.stderr)
	}
	mentioned := func() bool {
		for _, rows := range tableRows(t, pool) {
			if slices.ContainsFunc(rows, func(row string) bool { return mentions(row, number) }) {
				return true
			}
		}
		return false
	}

	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	for _, table := range []string{"call_history", "recordings"} {
		if _, err := tx.Exec(ctx, "SELECT 1 FROM "+table+" FOR UPDATE"); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(binary, "forget", "--number", "+"+number)
	cmd.Env = append(slices.Clone(env), "EXPORT_LOG_LEVEL=debug")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	nth, removed := 1+rng.IntN(files), make(chan struct{})
	go func() {
		seen := 0
		for sc := bufio.NewScanner(stderr); sc.Scan(); {
			if strings.Contains(sc.Text(), `"msg":"recording file of the number removed"`) {
				if seen++; seen == nth {
					close(removed)
				}
			}
		}
	}()
	done := exited(cmd)
	select {
	case <-removed:
		cmd.Process.Signal(syscall.SIGKILL)
		<-done
	case err := <-done:
		t.Fatalf("forget ended (%v) before removing %d file(s)", err, nth)
	case <-time.After(hangGuard):
		t.Fatal("forget neither removed a file nor ended")
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	gone := len(before) - len(store.files(t))
	t.Logf("killed after removing %d of %d file(s) (%d gone)", nth, files, gone)
	if gone < nth || !mentioned() {
		t.Fatalf("killed forget: %d file(s) removed, number still in the rows %v: not the moment the test needs", gone, mentioned())
	}

	// check and a run's log say an erasure is open, without the number
	// (attack5 F1: both said nothing).
	chk := runBin(t, env, "", "check")
	if !strings.Contains(chk.stdout, "WARN  forget        the erasure ") || mentions(chk.stdout+chk.stderr, number) {
		t.Errorf("check after the killed forget: no warning of the open erasure, or the number shown\n%s%s", chk.stdout, chk.stderr)
	}
	run := runBin(t, env, "", "run", "--once")
	if run.code != exitOK || !strings.Contains(run.stderr, `"msg":"forget not completed"`) || mentions(run.stderr, number) {
		t.Errorf("run after the killed forget: exit %d, no warning of the open erasure, or the number shown\n%s", run.code, run.stderr)
	}

	// Pointed at another store: the files missing there were removed from
	// none of it by the killed forget: refused, nothing changed, the
	// real store named (review 10, R10-1).
	there := "elsewhere/"
	if other == "EXPORT_RECORDINGS_DIR=" {
		there = t.TempDir()
	}
	elsewhere := slices.Clone(env)
	for i, kv := range elsewhere {
		if strings.HasPrefix(kv, other) {
			elsewhere[i] = other + there
		}
	}
	r := runBin(t, elsewhere, "", "forget", "--number", "+"+number)
	if r.code != exitConfig || !strings.Contains(r.stderr, "--missing-recordings-ok") || !strings.Contains(r.stderr, "removed files from another store") || mentions(r.stdout+r.stderr, number) {
		t.Fatalf("forget run again against another store: exit %d; want %d naming --missing-recordings-ok and the store the files were removed from, without the number\n%s%s", r.code, exitConfig, r.stdout, r.stderr)
	}
	if !mentioned() || len(before)-len(store.files(t)) != gone {
		t.Fatal("the refused forget changed the rows or the store")
	}
	// Against the same store, no flag: the files the journal says it
	// removed are taken as removed, the rest removed, and the erasure
	// completes (attack5 F1).
	r = runBin(t, env, "", "forget", "--number", "+"+number)
	if r.code != exitOK || !strings.Contains(r.stdout, "removed from it by the interrupted forget") {
		t.Fatalf("forget run again against the same store: exit %d; want 0, completing the erasure\n%s%s", r.code, r.stdout, r.stderr)
	}
	if mentioned() {
		t.Error("after the completing forget the sink still holds the number")
	}
	if n := len(store.files(t)); n != len(before)-files {
		t.Errorf("the store holds %d files, want %d", n, len(before)-files)
	}
	rows, err := pool.Query(ctx, `SELECT n FROM export_run_endpoints, unnest(notes) n WHERE endpoint = 'forget'`)
	if err != nil {
		t.Fatal(err)
	}
	notes, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("recording files removed: %d", files); !slices.Contains(notes, want) {
		t.Errorf("the ledger's forget notes %q, want %q", notes, want)
	}
}
