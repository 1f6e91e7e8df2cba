package sinks

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wildix-export/wildix-export/exporter"
	"github.com/wildix-export/wildix-export/exporter/record"
	"github.com/wildix-export/wildix-export/internal/pbxsim"
	"github.com/wildix-export/wildix-export/internal/safefile"
	"github.com/wildix-export/wildix-export/simtest"
)

// editedPBX is the simulator with records that change on the PBX: once
// edit(id) is called, the call's to_name reads "<name> v2" (v3 after a
// second edit) in every answer that holds the whole record, as a
// correction made on the PBX would.
type editedPBX struct {
	*simtest.Fixture
	mu      sync.Mutex
	version map[int64]int
	sim     atomic.Pointer[pbxsim.Sim]
}

func newEditedPBX(t *testing.T, o pbxsim.Options) *editedPBX {
	e := &editedPBX{version: map[int64]int{}}
	o.Rewrite = func(_ *http.Request, status int, body []byte) (int, []byte) {
		sim := e.sim.Load()
		e.mu.Lock()
		defer e.mu.Unlock()
		for id := range e.version {
			if orig := sim.CallJSON(id); bytes.Contains(body, orig) {
				body = bytes.ReplaceAll(body, orig, e.edited(id, orig))
			}
		}
		return status, body
	}
	e.Fixture = simtest.New(t, o)
	e.sim.Store(e.Sim)
	return e
}

// edited is the call's record as the PBX now sends it; e.mu is held.
func (e *editedPBX) edited(id int64, orig []byte) []byte {
	v := e.version[id]
	if v == 0 {
		return orig
	}
	var m map[string]string
	json.Unmarshal(orig, &m)
	name, _ := json.Marshal(m["to_name"])
	newName, _ := json.Marshal(fmt.Sprintf("%s v%d", m["to_name"], v+1))
	return bytes.Replace(orig, []byte(`"to_name":`+string(name)), []byte(`"to_name":`+string(newName)), 1)
}

func (e *editedPBX) edit(id int64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.version[id]++
}

// truth is the call's record as the PBX now sends it.
func (e *editedPBX) truth(id int64) map[string]string {
	e.mu.Lock()
	b := e.edited(id, e.Sim.CallJSON(id))
	e.mu.Unlock()
	var m map[string]string
	json.Unmarshal(b, &m)
	return m
}

// checkFolderIsTruth fails unless the call_history files hold exactly the
// calls of want (every call on the PBX when nil), each once, in its form
// on the PBX now, and every data file matches its manifest.
func checkFolderIsTruth(t *testing.T, dir string, e *editedPBX, want []int64) {
	t.Helper()
	if want == nil {
		want = e.Sim.CallIDs()
	}
	files, _ := filepath.Glob(filepath.Join(dir, "call_history", "*.csv*"))
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var m struct {
			Rows   int
			SHA256 string
		}
		mb, err := os.ReadFile(manifestPath(p))
		if err != nil || json.Unmarshal(mb, &m) != nil {
			t.Fatalf("%s: manifest: %v", filepath.Base(p), err)
		}
		if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != m.SHA256 {
			t.Fatalf("%s differs from its manifest", filepath.Base(p))
		}
		if rows := len(readCSVFile(t, p)); rows != m.Rows {
			t.Fatalf("%s: %d rows, its manifest says %d", filepath.Base(p), rows, m.Rows)
		}
	}
	seen := map[int64]bool{}
	for _, r := range readCSV(t, dir, "call_history") {
		id, err := strconv.ParseInt(r["id"], 10, 64)
		if err != nil {
			t.Fatalf("id %q", r["id"])
		}
		if seen[id] {
			t.Fatalf("call %d is in the folder twice", id)
		}
		seen[id] = true
		truth := e.truth(id)
		c := e.Sim.Call(id)
		for col, v := range map[string]string{"to_name": truth["to_name"], "from_name": truth["from_name"], "cost": truth["cost"],
			"start_time": c.Start.Format(time.RFC3339), "duration": truth["duration"]} {
			if r[col] != v {
				t.Fatalf("call %d: %s = %q, the PBX has %q", id, col, r[col], v)
			}
		}
	}
	for _, id := range want {
		if !seen[id] {
			t.Fatalf("call %d missing from the folder", id)
		}
	}
	if len(seen) != len(want) {
		t.Fatalf("the folder holds %d calls, want %d", len(seen), len(want))
	}
}

// readCSVFile reads one data file's rows, by header.
func readCSVFile(t *testing.T, p string) []map[string]string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var r io.Reader = f
	if strings.HasSuffix(p, ".gz") {
		if r, err = gzip.NewReader(f); err != nil {
			t.Fatal(err)
		}
	}
	recs, err := csv.NewReader(r).ReadAll()
	if err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	var out []map[string]string
	for _, rec := range recs[1:] {
		m := map[string]string{}
		for i, h := range recs[0] {
			m[h] = rec[i]
		}
		out = append(out, m)
	}
	return out
}

// manifestSum adds up a number field of the call_history manifests whose
// name matches pattern.
func manifestSum(t *testing.T, dir, pattern, field string) int64 {
	t.Helper()
	ms, _ := filepath.Glob(filepath.Join(dir, "call_history", pattern+".manifest.json"))
	var n int64
	for _, p := range ms {
		b, _ := os.ReadFile(p)
		var m map[string]any
		json.Unmarshal(b, &m)
		f, _ := m[field].(float64)
		n += int64(f)
	}
	return n
}

// TestCSVEachRecordOnceAcrossBackfillsAndRuns: backfills, nightly runs and
// --force, in both orders, with a call corrected on the PBX between them,
// from a PBX that honours filter[id] and from one that ignores it (read by
// time windows, backfill windows by offset): after every step the folder
// holds each call once, in its form on the PBX now.
func TestCSVEachRecordOnceAcrossBackfillsAndRuns(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
	from, to := time.Date(2026, 1, 5, 12, 0, 0, 0, time.UTC), time.Date(2026, 1, 6, 12, 0, 0, 0, time.UTC)
	for _, ignoreID := range []bool{false, true} {
		for _, backfillFirst := range []bool{true, false} {
			name := fmt.Sprintf("backfill_first=%v/ignores_filter_id=%v", backfillFirst, ignoreID)
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				o := pbxsim.Options{Calls: 3000, CallsStart: start, CallGap: time.Minute}
				if ignoreID {
					o.IgnoreFilter = []string{"id"}
				}
				e := newEditedPBX(t, o)
				dir := t.TempDir()
				ctx := context.Background()
				eps := record.Builtin()[:1]
				// Each step is a new process: a new sink on the same folder.
				x := func() *exporter.Exporter {
					sink, err := NewCSV(CSVOptions{Dir: dir, Gzip: ignoreID})
					if err != nil {
						t.Fatal(err)
					}
					return newExporter(t, e.Fixture, sink)
				}
				var inRange []int64
				for _, id := range e.Sim.CallIDs() {
					if s := e.truth(id)["start"]; s >= "2026-01-05 12:00:00" && s < "2026-01-06 12:00:00" {
						inRange = append(inRange, id)
					}
				}
				edited := inRange[len(inRange)/2]
				nightly := func(what string) {
					t.Helper()
					if err := x().Run(ctx, exporter.NewRunID(time.Now()), "once", eps).Err(); err != nil {
						t.Fatalf("%s: %v", what, err)
					}
					checkFolderIsTruth(t, dir, e, nil)
				}
				backfill := func(what string, force bool, want []int64) {
					t.Helper()
					r := x().Backfill(ctx, exporter.NewRunID(time.Now()), eps, exporter.BackfillOptions{From: from, To: to, Window: 6 * time.Hour, Force: force})
					if err := r.Err(); err != nil {
						t.Fatalf("%s: %v", what, err)
					}
					checkFolderIsTruth(t, dir, e, want)
				}
				// After --force, the windows' files hold the range's calls,
				// and no other file holds any of them.
				forced := func(what string) {
					t.Helper()
					backfill(what, true, nil)
					var got []int64
					files, _ := filepath.Glob(filepath.Join(dir, "call_history", "*_backfill_*.csv*"))
					for _, p := range files {
						for _, r := range readCSVFile(t, p) {
							id, _ := strconv.ParseInt(r["id"], 10, 64)
							got = append(got, id)
						}
					}
					slices.Sort(got)
					if fmt.Sprint(got) != fmt.Sprint(inRange) {
						t.Fatalf("%s: the windows' files hold %d calls, want the %d of the range", what, len(got), len(inRange))
					}
				}
				if backfillFirst {
					backfill("backfill", false, inRange)
					e.edit(edited)
					nightly("nightly run after the backfill, a call corrected in between")
					if n := manifestSum(t, dir, "*_backfill_*", "rows"); n != int64(len(inRange)) {
						t.Fatalf("the nightly run left %d rows to the backfill's files, want %d (the corrected call updated there)", n, len(inRange))
					}
					if n := manifestSum(t, dir, "*_backfill_*", "rows_updated"); n != 1 {
						t.Fatalf("%d rows updated in the backfill's files, want 1", n)
					}
					forced("backfill --force")
					e.edit(edited)
					forced("backfill --force, the call corrected again")
				} else {
					nightly("nightly run")
					e.edit(edited)
					backfill("backfill after the nightly run, a call corrected in between", false, nil)
					if n := manifestSum(t, dir, "*", "rows_updated"); n != 1 {
						t.Fatalf("%d rows updated in the nightly run's files, want 1", n)
					}
					if n := manifestSum(t, dir, "*_backfill_*", "rows"); n != 0 {
						t.Fatalf("the backfill wrote %d rows, want 0: the nightly run's files hold the range, the corrected call updated there", n)
					}
					forced("backfill --force")
					e.edit(edited)
					forced("backfill --force, the call corrected again")
				}
				e.Sim.InsertCalls(25)
				nightly("nightly run with 25 new calls")
				if got := e.truth(edited)["to_name"]; !strings.HasSuffix(got, " v3") {
					t.Fatalf("the edited call reads %q: the test did not edit it", got)
				}
			})
		}
	}
}

// TestCSVCommitReplacingARowKilledAtEachPoint stops a commit that changes
// other files at every point where a killed process could stop completing
// it, then starts again: the folder always ends with each call once, the
// changed one in its new form, and each file matches its manifest.
//
// A backfill finding a call corrected on the PBX updates it in the file
// holding it: stopped anywhere, a reader of the data files sees every
// call exactly once. A redone window (backfill --force) takes its calls
// from the nightly file: stopped anywhere, a reader never sees one twice
// (those taken may be missing until the restart completes the commit,
// docs/sinks.md). Before the restart, a reader taking only files with
// their manifest never sees a call twice either.
func TestCSVCommitReplacingARowKilledAtEachPoint(t *testing.T) {
	t.Parallel()
	ep := record.Builtin()[0]
	ctx := context.Background()
	commit := func(s *CSV, info exporter.BatchInfo, rows []record.Row, state string) error {
		b, err := s.Begin(ctx, info)
		if err != nil {
			return err
		}
		defer b.Abort(ctx)
		if err := b.Write(ctx, rows); err != nil {
			return err
		}
		return b.Commit(ctx, []byte(state), exporter.Progress{})
	}
	// ids counts the calls of the data files (those with a manifest only,
	// when withManifest).
	ids := func(t *testing.T, dir string, withManifest bool) map[string]int {
		n := map[string]int{}
		files, _ := filepath.Glob(filepath.Join(dir, "call_history", "*.csv"))
		for _, p := range files {
			if _, err := os.Stat(manifestPath(p)); withManifest && err != nil {
				continue
			}
			for _, r := range readCSVFile(t, p) {
				n[r["id"]]++
			}
		}
		return n
	}
	window := &exporter.Window{From: "2026-01-01 00:00:00", To: "2026-01-02 00:00:00"}
	windowInfo := exporter.BatchInfo{PBX: "p", RunID: "r2", Endpoint: &ep, StateKey: window.StateKey(ep.Name), Window: window, Seq: 1}
	for _, force := range []bool{false, true} {
		t.Run(fmt.Sprintf("force=%v", force), func(t *testing.T) {
			t.Parallel()
			conv := &record.Converter{Endpoint: &ep} // one per goroutine: it keeps scratch state
			row := func(id int, name string) record.Row {
				r, err := conv.Convert(0, json.RawMessage(fmt.Sprintf(`{"id":"%d","start":"2026-01-01 10:00:00","to_name":%q,"timezone":"+0100"}`, id, name)))
				if err != nil {
					t.Fatal(err)
				}
				return r
			}
			for stop := 1; ; stop++ {
				dir := t.TempDir()
				s, _ := NewCSV(CSVOptions{Dir: dir})
				if err := commit(s, exporter.BatchInfo{PBX: "p", RunID: "r1", Endpoint: &ep, StateKey: ep.Name, Seq: 1},
					[]record.Row{row(1, "a"), row(2, "b"), row(3, "c")}, `{"cursor":3}`); err != nil {
					t.Fatal(err)
				}
				if force {
					// The window done once: every call unchanged, left in
					// the nightly file.
					if err := commit(s, windowInfo, []record.Row{row(1, "a"), row(2, "b"), row(3, "c")}, `{"done":true}`); err != nil {
						t.Fatal(err)
					}
				}
				// The backfill (or its redo) finds call 2 corrected, and 1
				// and 3 unchanged.
				n := 0
				s.crash = func() bool { n++; return n == stop }
				err := commit(s, windowInfo, []record.Row{row(1, "a"), row(2, "b v2"), row(3, "c")}, `{"done":true}`)
				completed := err == nil
				if !completed && err != nil && !strings.Contains(err.Error(), errCrashed.Error()) {
					t.Fatalf("stop %d: %v", stop, err)
				}
				// Killed there: a reader of the data files, and one taking
				// only the files with their manifest.
				for id, c := range ids(t, dir, false) {
					if c != 1 {
						t.Fatalf("stop %d: call %s is in %d data files", stop, id, c)
					}
				}
				if got := len(ids(t, dir, false)); !force && got != 3 {
					t.Fatalf("stop %d: %d calls in the data files, want 3: a call updated in its file is never missing", stop, got)
				}
				for id, c := range ids(t, dir, true) {
					if c > 1 {
						t.Fatalf("stop %d: call %s is in %d files with their manifest", stop, id, c)
					}
				}
				// The next process.
				s2, _ := NewCSV(CSVOptions{Dir: dir})
				if _, err := s2.State(ctx, "p", ep.Name); err != nil {
					t.Fatalf("stop %d: restart: %v", stop, err)
				}
				got := map[string]string{}
				for _, r := range readCSV(t, dir, "call_history") {
					if _, twice := got[r["id"]]; twice {
						t.Fatalf("stop %d: call %s twice after the restart", stop, r["id"])
					}
					got[r["id"]] = r["to_name"]
				}
				// Every stopping point is after the commit was decided: the
				// restart completes it.
				want := map[string]string{"1": "a", "2": "b v2", "3": "c"}
				st, _ := s2.State(ctx, "p", window.StateKey(ep.Name))
				if fmt.Sprint(got) != fmt.Sprint(want) || string(st) != `{"done":true}` {
					t.Fatalf("stop %d: the folder holds %v, want %v (window state %s)", stop, got, want, st)
				}
				wf := filepath.Join(dir, "call_history", "p_backfill_20260101T000000_20260102T000000.csv")
				if force {
					if inWindow := len(readCSVFile(t, wf)); inWindow != 3 {
						t.Fatalf("stop %d: the redone window's file holds %d calls, want 3: all of its own", stop, inWindow)
					}
				} else if _, err := os.Stat(wf); !errors.Is(err, fs.ErrNotExist) {
					t.Fatalf("stop %d: the window has a file (%v), want none: the nightly file holds its calls, call 2 updated there", stop, err)
				}
				// Every file matches its manifest, and the index knows each key once.
				files, _ := filepath.Glob(filepath.Join(dir, "call_history", "*.csv"))
				for _, p := range files {
					b, _ := os.ReadFile(p)
					var m struct {
						Rows   int
						SHA256 string
					}
					mb, err := os.ReadFile(manifestPath(p))
					if err != nil || json.Unmarshal(mb, &m) != nil {
						t.Fatalf("stop %d: %s has no manifest after the restart", stop, filepath.Base(p))
					}
					if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != m.SHA256 || len(readCSVFile(t, p)) != m.Rows {
						t.Fatalf("stop %d: %s differs from its manifest", stop, filepath.Base(p))
					}
				}
				idx, _, err := s2.readIndex("p", ep.Name)
				if err != nil {
					t.Fatal(err)
				}
				var keys []int64
				for _, ks := range idx.Files {
					for i := 0; i+1 < len(ks.Ranges); i += 2 {
						for k := ks.Ranges[i]; k <= ks.Ranges[i+1]; k++ {
							keys = append(keys, k)
						}
					}
				}
				slices.Sort(keys)
				if fmt.Sprint(keys) != "[1 2 3]" {
					t.Fatalf("stop %d: the key index holds %v, want [1 2 3]", stop, keys)
				}
				if completed {
					if stop < 5 {
						t.Fatalf("the commit completed with only %d stopping points: the test stopped nothing", stop)
					}
					break
				}
			}
		})
	}
}

// TestCSVKeyIndexRebuiltForAnEarlierFolder: a folder written by an earlier
// version (no key index; a backfill's calls also in a nightly file) gets
// its index from the files, and a later commit touching a doubled call
// leaves it once.
func TestCSVKeyIndexRebuiltForAnEarlierFolder(t *testing.T) {
	t.Parallel()
	ep := record.Builtin()[0]
	ctx := context.Background()
	conv := &record.Converter{Endpoint: &ep}
	dir := t.TempDir()
	s, _ := NewCSV(CSVOptions{Dir: dir})
	write := func(info exporter.BatchInfo, ids ...int) {
		t.Helper()
		b, err := s.Begin(ctx, info)
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range ids {
			r, _ := conv.Convert(0, json.RawMessage(fmt.Sprintf(`{"id":"%d","start":"2026-01-01 10:00:00","timezone":"+0100"}`, id)))
			if err := b.Write(ctx, []record.Row{r}); err != nil {
				t.Fatal(err)
			}
		}
		if err := b.Commit(ctx, []byte(`{}`), exporter.Progress{}); err != nil {
			t.Fatal(err)
		}
	}
	window := &exporter.Window{From: "2026-01-01 00:00:00", To: "2026-01-02 00:00:00"}
	write(exporter.BatchInfo{PBX: "p", RunID: "r1", Endpoint: &ep, StateKey: window.StateKey(ep.Name), Window: window, Seq: 1}, 3, 4)
	// As an earlier version left it: no index, calls 3 and 4 twice.
	os.Remove(s.indexPath("p", ep.Name))
	s, _ = NewCSV(CSVOptions{Dir: dir})
	b, _ := s.Begin(ctx, exporter.BatchInfo{PBX: "p", RunID: "r0", Endpoint: &ep, StateKey: ep.Name, Seq: 1})
	b.(*csvBatch).keys = nil // an earlier version knew no keys
	for _, id := range []int{1, 2, 3, 4, 5} {
		r, _ := conv.Convert(0, json.RawMessage(fmt.Sprintf(`{"id":"%d","start":"2026-01-01 10:00:00","timezone":"+0100"}`, id)))
		b.Write(ctx, []record.Row{r})
	}
	if err := b.Commit(ctx, []byte(`{"cursor":5}`), exporter.Progress{}); err != nil {
		t.Fatal(err)
	}
	os.Remove(s.indexPath("p", ep.Name))
	if n := len(readCSV(t, dir, "call_history")); n != 7 {
		t.Fatalf("the earlier folder holds %d rows, want 7 (3 and 4 twice)", n)
	}
	// This version warns of the doubles, naming what to do; the
	// backfill's window redone finds 3 and 4 in two files; it keeps them
	// once.
	var logs bytes.Buffer
	s, _ = NewCSV(CSVOptions{Dir: dir, Log: slog.New(slog.NewTextHandler(&logs, nil))})
	write(exporter.BatchInfo{PBX: "p", RunID: "r2", Endpoint: &ep, StateKey: window.StateKey(ep.Name), Window: window, Seq: 1}, 3, 4)
	if l := logs.String(); !strings.Contains(l, "level=WARN") || !strings.Contains(l, "backfill --force") || !strings.Contains(l, "records=2") {
		t.Fatalf("no warning of the 2 calls held twice naming backfill --force; the log:\n%s", l)
	}
	count := map[string]int{}
	for _, r := range readCSV(t, dir, "call_history") {
		count[r["id"]]++
	}
	if fmt.Sprint(count) != "map[1:1 2:1 3:1 4:1 5:1]" {
		t.Fatalf("the folder holds %v, want each call once", count)
	}
	if _, err := os.Stat(s.indexPath("p", ep.Name)); err != nil {
		t.Fatalf("no key index written: %v", err)
	}
}

func TestKeyCollectorAndLookup(t *testing.T) {
	t.Parallel()
	var c keyCollector
	for _, k := range []string{"5", "6", "7", "9", "3", "8", "x", "007", "-2", "6", "x"} {
		c.add(k)
	}
	ks := c.set()
	if fmt.Sprint(ks.Ranges) != "[-2 -2 3 3 5 9]" || fmt.Sprint(ks.Other) != "[007 x]" || ks.count() != 9 {
		t.Fatalf("ranges %v other %v count %d", ks.Ranges, ks.Other, ks.count())
	}
	for _, k := range []string{"5", "9", "x", "007", "-2"} {
		if !c.has(k) || c.add(k) {
			t.Errorf("%s: not seen", k)
		}
	}
	for _, k := range []string{"4", "10", "7.0", "y"} {
		if c.has(k) {
			t.Errorf("%s: seen", k)
		}
	}
	l := newKeyLookup(&keyIndex{Files: map[string]*keySet{
		"a": {Ranges: []int64{1, 100}}, "b": {Ranges: []int64{50, 50, 200, 300}, Other: []string{"x"}}, "c": {Ranges: []int64{101, 150}},
	}})
	for _, tc := range []struct {
		key, skip string
		want      []string
	}{
		{"1", "", []string{"a"}}, {"50", "", []string{"a", "b"}}, {"50", "a", []string{"b"}}, {"120", "", []string{"c"}},
		{"150", "", []string{"c"}}, {"151", "", nil}, {"250", "", []string{"b"}}, {"x", "", []string{"b"}}, {"0", "", nil},
	} {
		got := l.holders(nil, tc.key, []string{tc.skip})
		slices.Sort(got)
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("holders(%s, skip %q) = %v, want %v", tc.key, tc.skip, got, tc.want)
		}
	}
	// Key 50 is in a and b: one record held twice, found by the lookup.
	if l.doubled != 1 || fmt.Sprint(l.doubledIn) != "[a b]" {
		t.Errorf("doubled = %d in %v, want 1 in [a b]", l.doubled, l.doubledIn)
	}
	l = newKeyLookup(&keyIndex{Files: map[string]*keySet{
		"a": {Ranges: []int64{1, 10, 20, 30}, Other: []string{"x"}}, "b": {Ranges: []int64{5, 25}, Other: []string{"x"}}, "c": {Ranges: []int64{11, 19}},
	}})
	if l.doubled != 6+6+1+9 {
		t.Errorf("doubled = %d, want 22 (5-10 and 20-25 in a and b, x in both, 11-19 in b and c)", l.doubled)
	}
}

// TestScanFileAgreesWithEncodingCSV: the key index's own record splitter
// reads what encoding/csv writes (quotes, commas, line breaks, CR LF and
// leading spaces in cells, the key in any column, keys of two columns),
// giving each row's key as rowKey gives it and its bytes exactly as in
// the file, gzip-compressed or not.
func TestScanFileAgreesWithEncodingCSV(t *testing.T) {
	t.Parallel()
	cells := []string{"7", "", "a,b", `say "hi"`, "two\nlines", "cr\r\nlf", " lead", `"`, "\"quoted\",\n", "é ü", "-3", "x\r"}
	header := []string{"id", "name", "note"}
	var rows [][]string
	for i, a := range cells {
		for j, b := range cells {
			rows = append(rows, []string{a + strconv.Itoa(i), b, cells[(i+j)%len(cells)]})
		}
	}
	for _, gz := range []bool{false, true} {
		for _, keyCols := range [][]string{{"id"}, {"name"}, {"note", "id"}} {
			var plain bytes.Buffer
			w := csv.NewWriter(&plain)
			w.Write(header)
			w.WriteAll(rows)
			path := filepath.Join(t.TempDir(), "f.csv")
			data := plain.Bytes()
			if gz {
				path += ".gz"
				var z bytes.Buffer
				zw := gzip.NewWriter(&z)
				zw.Write(data)
				zw.Close()
				data = z.Bytes()
			}
			if err := os.WriteFile(path, data, 0o600); err != nil {
				t.Fatal(err)
			}
			var idx []int
			for _, k := range keyCols {
				idx = append(idx, slices.Index(header, k))
			}
			var got bytes.Buffer
			i := 0
			err := scanFile(path, keyCols, func(raw []byte) error {
				got.Write(raw)
				return nil
			}, func(key string, raw []byte) error {
				got.Write(raw)
				if want := rowKey(rows[i], idx); key != want {
					t.Errorf("gzip %v, key %v, row %d: key %q, want %q", gz, keyCols, i, key, want)
				}
				i++
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if i != len(rows) || !bytes.Equal(got.Bytes(), plain.Bytes()) {
				t.Fatalf("gzip %v, key %v: %d rows read, want %d; bytes equal: %v", gz, keyCols, i, len(rows), bytes.Equal(got.Bytes(), plain.Bytes()))
			}
		}
	}
}

// TestCSVTemporaryFilesOutsideTheDocumentedGlob: the DuckDB recipe of
// docs/reporting.md reads 'export/call_history/*.csv*', and DuckDB's glob,
// like filepath.Glob, lets * match a leading dot. A temporary file left
// by a process killed mid-batch or mid-commit (until the next start
// removes or renames it) must not match it: a rewritten file's temporary
// copy holds nearly every row of the file it replaces, and a new file's
// the rows that file will hold, so the recipe counted them twice.
func TestCSVTemporaryFilesOutsideTheDocumentedGlob(t *testing.T) {
	t.Parallel()
	ep := record.Builtin()[0]
	ctx := context.Background()
	conv := &record.Converter{Endpoint: &ep}
	row := func(id int, name string) record.Row {
		r, err := conv.Convert(0, json.RawMessage(fmt.Sprintf(`{"id":"%d","start":"2026-01-01 10:00:00","to_name":%q,"timezone":"+0100"}`, id, name)))
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	window := &exporter.Window{From: "2026-01-01 00:00:00", To: "2026-01-02 00:00:00"}
	for _, gz := range []bool{false, true} {
		for stop := 1; ; stop++ {
			dir := t.TempDir()
			s, _ := NewCSV(CSVOptions{Dir: dir, Gzip: gz})
			b, err := s.Begin(ctx, exporter.BatchInfo{PBX: "p", RunID: "r1", Endpoint: &ep, StateKey: ep.Name, Seq: 1})
			if err != nil {
				t.Fatal(err)
			}
			if err := b.Write(ctx, []record.Row{row(1, "a"), row(2, "b"), row(3, "c")}); err != nil {
				t.Fatal(err)
			}
			if err := b.Commit(ctx, []byte(`{"cursor":3}`), exporter.Progress{}); err != nil {
				t.Fatal(err)
			}
			// A backfill replacing call 2 stopped at each point of its
			// commit; a nightly batch killed before its commit beside it.
			n := 0
			s.crash = func() bool { n++; return n == stop }
			b, err = s.Begin(ctx, exporter.BatchInfo{PBX: "p", RunID: "r2", Endpoint: &ep, StateKey: window.StateKey(ep.Name), Window: window, Seq: 1})
			if err != nil {
				t.Fatal(err)
			}
			if err := b.Write(ctx, []record.Row{row(1, "a"), row(2, "b v2"), row(3, "c")}); err != nil {
				t.Fatal(err)
			}
			err = b.Commit(ctx, []byte(`{"done":true}`), exporter.Progress{})
			if err != nil && !strings.Contains(err.Error(), errCrashed.Error()) {
				t.Fatalf("stop %d: %v", stop, err)
			}
			noTmpMatches := func(when string) {
				t.Helper()
				matched, _ := filepath.Glob(filepath.Join(dir, "call_history", "*.csv*"))
				var tmps []string
				for _, m := range matched {
					if strings.HasPrefix(filepath.Base(m), ".") {
						tmps = append(tmps, filepath.Base(m))
					}
				}
				if len(tmps) > 0 {
					t.Fatalf("gzip=%v, stop %d, %s: temporary files match the recipe's glob *.csv*: %v", gz, stop, when, tmps)
				}
			}
			noTmpMatches("the commit stopped")
			s2, _ := NewCSV(CSVOptions{Dir: dir, Gzip: gz})
			killed, berr := s2.Begin(ctx, exporter.BatchInfo{PBX: "p", RunID: "r3", Endpoint: &ep, StateKey: ep.Name, Seq: 1})
			if berr != nil {
				t.Fatal(berr)
			}
			killed.Write(ctx, []record.Row{row(4, "d")})
			noTmpMatches("a batch in progress")
			killed.Abort(ctx)
			if err == nil {
				break
			}
		}
	}
}

// TestCSVRedoneWindowKeepsCallsThePBXNoLongerSends: a window's file is
// replaced when the window is redone (backfill --force), and after a
// backfill it is the only file holding its calls (the nightly runs left
// them there). A call the PBX deleted since (a retention purge) is not in
// the redone window's read: it stays in the folder, once, as PostgreSQL
// keeps its row. Dropping it lost 195 of 200 purged calls from outside.
func TestCSVRedoneWindowKeepsCallsThePBXNoLongerSends(t *testing.T) {
	t.Parallel()
	ep := record.Builtin()[0]
	ctx := context.Background()
	conv := &record.Converter{Endpoint: &ep}
	window := &exporter.Window{From: "2026-01-01 00:00:00", To: "2026-01-02 00:00:00"}
	for _, gz := range []bool{false, true} {
		dir := t.TempDir()
		commit := func(info exporter.BatchInfo, calls map[int]string) {
			t.Helper()
			s, _ := NewCSV(CSVOptions{Dir: dir, Gzip: gz})
			b, err := s.Begin(ctx, info)
			if err != nil {
				t.Fatal(err)
			}
			for id := 1; id <= 9; id++ {
				name, ok := calls[id]
				if !ok {
					continue
				}
				r, err := conv.Convert(0, json.RawMessage(fmt.Sprintf(`{"id":"%d","start":"2026-01-01 10:00:00","to_name":%q,"timezone":"+0100"}`, id, name)))
				if err != nil {
					t.Fatal(err)
				}
				if err := b.Write(ctx, []record.Row{r}); err != nil {
					t.Fatal(err)
				}
			}
			if err := b.Commit(ctx, []byte(`{"done":true}`), exporter.Progress{}); err != nil {
				t.Fatal(err)
			}
		}
		bf := exporter.BatchInfo{PBX: "p", RunID: "r1", Endpoint: &ep, StateKey: window.StateKey(ep.Name), Window: window, Seq: 1}
		commit(bf, map[int]string{1: "a", 2: "b", 3: "c", 4: "d"})
		// The nightly run finds 1-4 held unchanged, and writes 5.
		commit(exporter.BatchInfo{PBX: "p", RunID: "r2", Endpoint: &ep, StateKey: ep.Name, Seq: 1}, map[int]string{1: "a", 2: "b", 3: "c", 4: "d", 5: "e"})
		// Calls 1 and 3 purged on the PBX, 4 corrected: the window redone.
		bf.RunID = "r3"
		commit(bf, map[int]string{2: "b", 4: "d v2"})
		got := map[string]string{}
		for _, r := range readCSV(t, dir, "call_history") {
			if _, twice := got[r["id"]]; twice {
				t.Fatalf("gzip=%v: call %s twice", gz, r["id"])
			}
			got[r["id"]] = r["to_name"]
		}
		if want := "map[1:a 2:b 3:c 4:d v2 5:e]"; fmt.Sprint(got) != want {
			t.Fatalf("gzip=%v: the folder holds %v, want %s", gz, got, want)
		}
		s, _ := NewCSV(CSVOptions{Dir: dir, Gzip: gz})
		idx, _, err := s.readIndex("p", ep.Name)
		if err != nil {
			t.Fatal(err)
		}
		var n int64
		for _, ks := range idx.Files {
			n += ks.count()
		}
		if n != 5 {
			t.Fatalf("gzip=%v: the key index holds %d keys, want 5", gz, n)
		}
	}
}

// TestCSVRedoneWindowAfterGzipChanged: a window written as .csv, redone
// after EXPORT_CSV_GZIP was turned on, writes .csv.gz, whose manifest has
// the same name as the .csv's: the redo removes the .csv with it, taking
// its calls (those the PBX no longer sends too), so that one file holds
// the window's calls and one manifest describes it. And back again.
func TestCSVRedoneWindowAfterGzipChanged(t *testing.T) {
	t.Parallel()
	ep := record.Builtin()[0]
	ctx := context.Background()
	conv := &record.Converter{Endpoint: &ep}
	window := &exporter.Window{From: "2026-01-01 00:00:00", To: "2026-01-02 00:00:00"}
	dir := t.TempDir()
	commit := func(gz bool, info exporter.BatchInfo, ids ...int) {
		t.Helper()
		s, _ := NewCSV(CSVOptions{Dir: dir, Gzip: gz})
		b, err := s.Begin(ctx, info)
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range ids {
			r, err := conv.Convert(0, json.RawMessage(fmt.Sprintf(`{"id":"%d","start":"2026-01-01 10:00:00","timezone":"+0100"}`, id)))
			if err != nil {
				t.Fatal(err)
			}
			if err := b.Write(ctx, []record.Row{r}); err != nil {
				t.Fatal(err)
			}
		}
		if err := b.Commit(ctx, []byte(`{"done":true}`), exporter.Progress{}); err != nil {
			t.Fatal(err)
		}
	}
	bf := exporter.BatchInfo{PBX: "p", RunID: "r1", Endpoint: &ep, StateKey: window.StateKey(ep.Name), Window: window, Seq: 1}
	commit(false, bf, 1, 2, 3)
	commit(false, exporter.BatchInfo{PBX: "p", RunID: "r2", Endpoint: &ep, StateKey: ep.Name, Seq: 1}, 1, 2, 3, 4)
	wf := filepath.Join(dir, "call_history", "p_backfill_20260101T000000_20260102T000000.csv")
	for _, step := range []struct {
		gz   bool
		ids  []int
		file string
	}{{true, []int{1, 2}, wf + ".gz"}, {false, []int{2}, wf}} {
		commit(step.gz, bf, step.ids...) // call 3 purged on the PBX, then 1
		files, _ := filepath.Glob(filepath.Join(dir, "call_history", "*_backfill_*.csv*"))
		if len(files) != 1 || files[0] != step.file {
			t.Fatalf("gzip=%v: the window's files are %v, want %s alone", step.gz, files, filepath.Base(step.file))
		}
		var m struct {
			File   string
			Rows   int
			SHA256 string
		}
		mb, _ := os.ReadFile(manifestPath(step.file))
		json.Unmarshal(mb, &m)
		b, _ := os.ReadFile(step.file)
		sum := sha256.Sum256(b)
		rows := readCSVFile(t, step.file)
		if m.File != filepath.Base(step.file) || m.SHA256 != hex.EncodeToString(sum[:]) || m.Rows != len(rows) || len(rows) != 3 {
			t.Fatalf("gzip=%v: the window's file holds %d rows, its manifest says %d rows of %s: want 3 rows of it", step.gz, len(rows), m.Rows, m.File)
		}
		count := map[string]int{}
		for _, r := range readCSV(t, dir, "call_history") {
			count[r["id"]]++
		}
		if fmt.Sprint(count) != "map[1:1 2:1 3:1 4:1]" {
			t.Fatalf("gzip=%v: the folder holds %v, want each call once", step.gz, count)
		}
	}
}

// csvCommitter commits batches of calls (id and to_name) into dir as
// separate processes would, each with a new sink that set may adjust.
func csvCommitter(t *testing.T, dir string) func(gz bool, set func(*CSV), info exporter.BatchInfo, calls map[int]string) error {
	ep := record.Builtin()[0]
	conv := &record.Converter{Endpoint: &ep}
	ctx := context.Background()
	return func(gz bool, set func(*CSV), info exporter.BatchInfo, calls map[int]string) error {
		t.Helper()
		info.Endpoint = &ep
		s, _ := NewCSV(CSVOptions{Dir: dir, Gzip: gz})
		if set != nil {
			set(s)
		}
		b, err := s.Begin(ctx, info)
		if err != nil {
			return err
		}
		ids := slices.Sorted(maps.Keys(calls))
		for _, id := range ids {
			r, err := conv.Convert(0, json.RawMessage(fmt.Sprintf(`{"id":"%d","start":"2026-01-01 10:00:00","timezone":"+0100","to_name":%q}`, id, calls[id])))
			if err != nil {
				t.Fatal(err)
			}
			if err := b.Write(ctx, []record.Row{r}); err != nil {
				return err
			}
		}
		return b.Commit(ctx, []byte(`{"done":true}`), exporter.Progress{})
	}
}

// TestCSVTemporaryFilesSyncedBeforeTheirCommit: a commit's temporary files
// (its data file, the files it rewrites) are made durable in their folder
// before the pending record naming them is written. Without it a power cut
// could keep the record and lose the files, after recovery had already
// removed or rewritten others. Fails when decide does not sync the folder.
func TestCSVTemporaryFilesSyncedBeforeTheirCommit(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	folder := filepath.Join(dir, "call_history")
	commit := csvCommitter(t, dir)
	for _, c := range []struct {
		what  string
		run   string
		calls map[int]string
	}{
		{"a data file", "r1", map[int]string{1: "a", 2: "b", 3: "c"}},
		{"a file rewritten (call 2 changed on the PBX), no data file", "r2", map[int]string{2: "b v2"}},
	} {
		synced := false // the folder synced while it held temporary files and no pending record
		watch := func(s *CSV) {
			s.syncDir = func(d string) error {
				if d == folder {
					tmps, _ := filepath.Glob(filepath.Join(folder, ".p~*.tmp-*"))
					pending, _ := filepath.Glob(filepath.Join(dir, ".state", "p", "*.pending.json"))
					synced = synced || (len(tmps) > 0 && len(pending) == 0)
				}
				return safefile.SyncDir(d)
			}
		}
		ep := record.Builtin()[0]
		if err := commit(false, watch, exporter.BatchInfo{PBX: "p", RunID: c.run, StateKey: ep.Name, Seq: 1}, c.calls); err != nil {
			t.Fatal(err)
		}
		if !synced {
			t.Fatalf("%s: the folder was not synced between writing the temporary files and the pending record", c.what)
		}
	}
	count := map[string]string{}
	for _, r := range readCSV(t, dir, "call_history") {
		count[r["id"]] += r["to_name"]
	}
	if fmt.Sprint(count) != "map[1:a 2:b v2 3:c]" {
		t.Fatalf("the folder holds %v", count)
	}
}

// TestCSVRecoveryCountsARemovedFileAsApplied: a redone window whose gzip
// setting changed removes its other variant first; killed after that
// removal, and its new data file lost before the next start, the commit
// was partly applied (the old variant's calls are gone), and recovery
// must say so rather than discard it silently: the window's state said
// done, so nothing would ever write those calls again. Fails when
// recoverPath does not count a removed file as applied.
func TestCSVRecoveryCountsARemovedFileAsApplied(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	commit := csvCommitter(t, dir)
	ep := record.Builtin()[0]
	window := &exporter.Window{From: "2026-01-01 00:00:00", To: "2026-01-02 00:00:00"}
	bf := exporter.BatchInfo{PBX: "p", RunID: "r1", StateKey: window.StateKey(ep.Name), Window: window, Seq: 1}
	calls := map[int]string{1: "a", 2: "b", 3: "c"}
	if err := commit(false, nil, bf, calls); err != nil {
		t.Fatal(err)
	}
	killed := func(s *CSV) { s.crash = func() bool { return true } } // after the first removal
	if err := commit(true, killed, bf, calls); err == nil {
		t.Fatal("the commit was not stopped")
	}
	plain := filepath.Join(dir, "call_history", "p_backfill_20260101T000000_20260102T000000.csv")
	if _, err := os.Stat(plain); err == nil {
		t.Fatal("stopped before removing the window's plain file: the test no longer reaches its point")
	}
	tmps, _ := filepath.Glob(filepath.Join(dir, "call_history", ".p~*.tmp-*"))
	if len(tmps) != 1 {
		t.Fatalf("temporary files %v, want the new data file alone", tmps)
	}
	os.Remove(tmps[0]) // lost: another program, or a disk that did not keep it
	s, _ := NewCSV(CSVOptions{Dir: dir})
	_, err := s.State(context.Background(), "p", bf.StateKey)
	if err == nil || !strings.Contains(err.Error(), "partly completed") {
		t.Fatalf("recovery after the removed file: %v, want the commit found partly completed", err)
	}
}
