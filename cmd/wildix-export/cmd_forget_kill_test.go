package main

import (
	"bufio"
	"encoding/json"
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

	"github.com/wildix-export/wildix-export/internal/pbxsim"
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
		// the data rows (a manifest names the time of its file's edit)
		maps.DeleteFunc(m, func(k string, _ []string) bool { return strings.Contains(k, "/") || strings.HasPrefix(k, ".") })
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
