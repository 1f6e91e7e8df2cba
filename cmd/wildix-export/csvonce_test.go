package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"math/rand/v2"
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

	"github.com/wildix-export/wildix-export/internal/pbxsim"
	"github.com/wildix-export/wildix-export/simtest"
	"github.com/wildix-export/wildix-export/sinks"
)

// correctedPBX is the simulator with calls corrected on the PBX: after
// correct(id), the call's to_name reads "<name> v2" (v3 after a second
// correction) in every answer holding the whole record.
type correctedPBX struct {
	*simtest.Fixture
	mu      sync.Mutex
	version map[int64]int
	sim     atomic.Pointer[pbxsim.Sim]
}

func newCorrectedPBX(t *testing.T, o pbxsim.Options) *correctedPBX {
	c := &correctedPBX{version: map[int64]int{}}
	o.Rewrite = func(_ *http.Request, status int, body []byte) (int, []byte) {
		sim := c.sim.Load()
		c.mu.Lock()
		defer c.mu.Unlock()
		for id := range c.version {
			if orig := sim.CallJSON(id); bytes.Contains(body, orig) {
				body = bytes.ReplaceAll(body, orig, c.corrected(id, orig))
			}
		}
		return status, body
	}
	c.Fixture = authorized(t, o)
	c.sim.Store(c.Sim)
	return c
}

func (c *correctedPBX) corrected(id int64, orig []byte) []byte {
	v := c.version[id]
	if v == 0 {
		return orig
	}
	var m map[string]string
	json.Unmarshal(orig, &m)
	old, _ := json.Marshal(m["to_name"])
	now, _ := json.Marshal(fmt.Sprintf("%s v%d", m["to_name"], v+1))
	return bytes.Replace(orig, []byte(`"to_name":`+string(old)), []byte(`"to_name":`+string(now)), 1)
}

func (c *correctedPBX) correct(id int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.version[id]++
}

// record is the call as the PBX sends it now.
func (c *correctedPBX) record(id int64) map[string]string {
	c.mu.Lock()
	b := c.corrected(id, c.Sim.CallJSON(id))
	c.mu.Unlock()
	var m map[string]string
	json.Unmarshal(b, &m)
	return m
}

// csvRows reads the call_history files that have their manifest, each
// checked against it (readCSVCalls): id → to_name of each row.
func csvRows(t *testing.T, dir string, pendingOK bool) map[int64][]string {
	t.Helper()
	readCSVCalls(t, dir, pendingOK) // whole files, matching their manifests
	out := map[int64][]string{}
	files, _ := filepath.Glob(filepath.Join(dir, "call_history", "*.csv"))
	for _, p := range files {
		if _, err := os.Stat(strings.TrimSuffix(p, ".csv") + ".manifest.json"); err != nil {
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		recs, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		col := -1
		for i, h := range recs[0] {
			if h == "to_name" {
				col = i
			}
		}
		for _, r := range recs[1:] {
			id, _ := strconv.ParseInt(r[0], 10, 64)
			out[id] = append(out[id], r[col])
		}
	}
	return out
}

// callsByName counts the calls of the call_history data files matching
// pattern, manifest or not: what a reader of the final names sees.
func callsByName(t *testing.T, dir, pattern string) map[int64]int {
	t.Helper()
	out := map[int64]int{}
	files, _ := filepath.Glob(filepath.Join(dir, "call_history", pattern))
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		recs, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
		if err != nil {
			t.Fatalf("%s: %v", filepath.Base(p), err)
		}
		for _, r := range recs[1:] {
			id, _ := strconv.ParseInt(r[0], 10, 64)
			out[id]++
		}
	}
	return out
}

// commits counts the commits made so far: each state file's seq, and a
// decided commit not yet completed.
func commits(dir string) int64 {
	files, _ := filepath.Glob(filepath.Join(dir, ".state", "*", "*.json"))
	var n int64
	for _, p := range files {
		switch {
		case strings.HasSuffix(p, ".pending.json"):
			n++
		case strings.HasSuffix(p, "~keys.json"):
		default:
			var st struct{ Seq int64 }
			b, _ := os.ReadFile(p)
			json.Unmarshal(b, &st)
			n += st.Seq
		}
	}
	return n
}

// killRuns starts the binary with args up to n times and SIGKILLs each at
// a seeded random moment (half at a random delay, half just after it
// committed something more); check runs after each kill. It stops when a
// run ends by itself, then runs it once more to completion. It returns the
// kills that landed after a commit of this command and before its end.
func killRuns(t *testing.T, env []string, rng *rand.Rand, n int, check func(), args ...string) (midway int) {
	t.Helper()
	for i := 0; i < n; i++ {
		before := commits(env0(env))
		cmd := exec.Command(binary, args...)
		cmd.Env = env
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := exited(cmd)
		t.Cleanup(func() { cmd.Process.Kill() })
		finished := false
		if rng.IntN(2) == 0 {
			select {
			case <-done:
				finished = true
			case <-time.After(time.Duration(rng.IntN(400)) * time.Millisecond): // the random moment
			}
		} else {
			eventually(t, "the run to commit more", func() bool {
				select {
				case <-done:
					finished = true
					return true
				default:
					return commits(env0(env)) > before
				}
			}, func() string { return fmt.Sprintf("%v, kill %d", args, i) })
			if !finished {
				time.Sleep(time.Duration(rng.IntN(40)) * time.Millisecond)
			}
		}
		if finished {
			break
		}
		cmd.Process.Signal(syscall.SIGKILL)
		if err := <-done; exitStatus(err) == 0 {
			break // it ended before the signal
		}
		if commits(env0(env)) > before {
			midway++
		}
		check()
	}
	if r := runBin(t, env, "", args...); r.code != 0 {
		t.Fatalf("%v: exit %d\n%s", args, r.code, r.stderr)
	}
	return midway
}

// env0 is the export folder of an environment.
func env0(env []string) string {
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "EXPORT_CSV_DIR="); ok {
			return v
		}
	}
	return ""
}

// testSeed is a seeded random source; the seed is always logged, and
// TEST_SEED=n replays one.
func testSeed(t *testing.T) *rand.Rand {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("TEST_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("TEST_SEED=%q: %v", s, err)
		}
		seed = n
	}
	t.Logf("random seed %d (rerun with TEST_SEED=%d)", seed, seed)
	return rand.New(rand.NewPCG(seed, seed))
}

// TestKilledDuringBackfillsAndRunsEachCallOnce: backfills, nightly runs
// (run --once) and backfill --force, in both orders, a call corrected on
// the PBX between them, each command SIGKILLed at seeded random moments
// and run again, on a PBX that honours filter[id] and on one that ignores
// it (backfill windows by offset, nightly runs by time windows).
//
// After each kill, a reader of the data files, or one taking only those
// with their manifest, finds no call twice; once the next start has
// completed the commit in flight, every call the committed state covers
// (the nightly cursor, the windows marked done) is in the folder exactly
// once, the corrected one in its old or new form. After each command the
// folder is the PBX's truth, and after --force the windows' files hold
// the range's calls, no other file any of them.
func TestKilledDuringBackfillsAndRunsEachCallOnce(t *testing.T) {
	t.Parallel()
	for _, ignoreID := range []bool{false, true} {
		for _, backfillFirst := range []bool{true, false} {
			t.Run(fmt.Sprintf("backfill_first=%v/ignores_filter_id=%v", backfillFirst, ignoreID), func(t *testing.T) {
				t.Parallel()
				rng := testSeed(t)
				o := killOptions(3000)
				if ignoreID {
					o.IgnoreFilter = []string{"id"}
				}
				pbx := newCorrectedPBX(t, o)
				dir := t.TempDir()
				env := simEnv(pbx.Fixture, dir, "EXPORT_PAGE_SIZE=50", "EXPORT_BATCH_SIZE=150", "EXPORT_CONCURRENCY=2", "EXPORT_ENDPOINTS=call_history")
				const from, to = "2026-01-01 06:00:00", "2026-01-01 18:00:00"
				var inRange []int64
				for _, id := range pbx.Sim.CallIDs() {
					if s := pbx.record(id)["start"]; s >= from && s < to {
						inRange = append(inRange, id)
					}
				}
				corrected := inRange[len(inRange)/3]
				backfillArgs := []string{"backfill", "--from", "2026-01-01 06:00", "--to", "2026-01-01 18:00", "--window", "2h", "--endpoints", "call_history"}
				forceArgs := append(append([]string{}, backfillArgs...), "--force")
				runArgs := []string{"run", "--once"}

				// What the committed state covers is in the folder once.
				afterKill := func() {
					t.Helper()
					for id, names := range csvRows(t, dir, true) {
						if len(names) > 1 {
							t.Fatalf("after a kill: call %d in %d files with their manifest", id, len(names))
						}
					}
					for id, n := range callsByName(t, dir, "*.csv") {
						if n > 1 {
							t.Fatalf("after a kill: call %d in %d data files", id, n)
						}
					}
					s, err := sinks.NewCSV(sinks.CSVOptions{Dir: dir})
					if err != nil {
						t.Fatal(err)
					}
					ctx := context.Background()
					st, err := s.State(ctx, pbx.URL.Host, "call_history") // completes every pending commit
					if err != nil {
						t.Fatalf("the next start: %v", err)
					}
					rows := csvRows(t, dir, false)
					covered := map[int64]bool{}
					var cur struct {
						Cursor int64
						Time   string // by time windows: the newest time read
						Recent map[int64]string
					}
					json.Unmarshal(st, &cur)
					// By time windows, the calls the state says were read: those
					// in its recent keys, and those older than its look-back
					// (6 h) before the newest time read.
					lookedBack := ""
					if t, err := time.Parse("2006-01-02 15:04:05", cur.Time); err == nil {
						lookedBack = t.Add(-6 * time.Hour).Format("2006-01-02 15:04:05")
					}
					for _, id := range pbx.Sim.CallIDs() {
						start := pbx.record(id)["start"]
						if id <= cur.Cursor || cur.Recent[id] != "" || (lookedBack != "" && start < lookedBack) {
							covered[id] = true
						}
					}
					for h := 6; h < 18; h += 2 {
						wf, wt := fmt.Sprintf("2026-01-01 %02d:00:00", h), fmt.Sprintf("2026-01-01 %02d:00:00", h+2)
						b, err := s.State(ctx, pbx.URL.Host, "backfill/call_history/"+wf+"/"+wt)
						if err != nil {
							t.Fatal(err)
						}
						for _, id := range inRange {
							if start := pbx.record(id)["start"]; b != nil && start >= wf && start < wt {
								covered[id] = true
							}
						}
					}
					for id, names := range rows {
						if len(names) != 1 {
							t.Fatalf("after the restart: call %d in %d files", id, len(names))
						}
						// The corrected call in any of its forms: the commit
						// that brings its newest may not have been made yet.
						want := pbx.record(id)["to_name"]
						var orig map[string]string
						json.Unmarshal(pbx.Sim.CallJSON(id), &orig)
						if names[0] != want && !(id == corrected && strings.HasPrefix(names[0], orig["to_name"])) {
							t.Fatalf("call %d reads %q, the PBX has %q", id, names[0], want)
						}
					}
					for id := range covered {
						if len(rows[id]) != 1 {
							t.Fatalf("after the restart: call %d, which the committed state covers, is missing", id)
						}
					}
				}
				// After a command ran whole, the folder is the PBX's truth.
				truth := func(what string, want []int64) {
					t.Helper()
					if want == nil {
						want = pbx.Sim.CallIDs()
					}
					rows := csvRows(t, dir, false)
					if len(rows) != len(want) {
						t.Fatalf("%s: %d calls in the folder, want %d", what, len(rows), len(want))
					}
					for _, id := range want {
						if got := rows[id]; len(got) != 1 || got[0] != pbx.record(id)["to_name"] {
							t.Fatalf("%s: call %d reads %q, the PBX has %q once", what, id, got, pbx.record(id)["to_name"])
						}
					}
				}
				midway := 0
				step := func(what string, want []int64, args []string) {
					t.Helper()
					midway += killRuns(t, env, rng, 3, afterKill, args...)
					truth(what, want)
				}
				if backfillFirst {
					step("backfill", inRange, backfillArgs)
					pbx.correct(corrected)
					step("run --once after the backfill, a call corrected in between", nil, runArgs)
				} else {
					step("run --once", nil, runArgs)
					pbx.correct(corrected)
					step("backfill after run --once, a call corrected in between", nil, backfillArgs)
				}
				// After --force the windows' files hold the range's calls,
				// and no other file holds any of them.
				forced := func(what string) {
					t.Helper()
					step(what, nil, forceArgs)
					got := callsByName(t, dir, "*_backfill_*.csv")
					for _, id := range inRange {
						if got[id] != 1 {
							t.Fatalf("%s: call %d of the range is in %d of the windows' files, want 1", what, id, got[id])
						}
					}
					if len(got) != len(inRange) {
						t.Fatalf("%s: the windows' files hold %d calls, want the %d of the range", what, len(got), len(inRange))
					}
				}
				forced("backfill --force")
				pbx.correct(corrected)
				forced("backfill --force, the call corrected again")
				pbx.Sim.InsertCalls(40)
				step("run --once with 40 new calls", nil, runArgs)
				t.Logf("%d kills landed after a commit and before the command's end", midway)
				if midway == 0 {
					t.Fatal("no kill landed after a commit and before the command's end: the test proved nothing")
				}
				if got := pbx.record(corrected)["to_name"]; !strings.HasSuffix(got, " v3") {
					t.Fatalf("the corrected call reads %q on the PBX: the test corrected nothing", got)
				}
			})
		}
	}
}
