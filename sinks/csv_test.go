package sinks

import (
	"compress/gzip"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wildix-export/wildix-export/exporter"
	"github.com/wildix-export/wildix-export/exporter/record"
	"github.com/wildix-export/wildix-export/internal/pbxsim"
	"github.com/wildix-export/wildix-export/simtest"
)

// hostile is the simulator at its worst: every fault at 5 %, live
// inserts, 2-second tokens and single-use refresh tokens.
func hostile(calls int64, start time.Time) pbxsim.Options {
	return pbxsim.Options{
		Calls: calls, CallsStart: start, CallGap: 30 * time.Second,
		LiveInsertEvery: 3, LiveInsertBatch: 7,
		AccessTokenTTL: 2 * time.Second, RotateRefreshTokens: true,
		Faults: pbxsim.Faults{ServerError: 0.05, HTMLGateway: 0.05, TooMany: 0.05, Cut: 0.05, Slow: 0.05,
			SlowDelay: 3 * time.Second, RetryAfter: time.Second},
	}
}

func newExporter(t *testing.T, f *simtest.Fixture, sink exporter.Sink) *exporter.Exporter {
	rome, _ := time.LoadLocation("Europe/Rome")
	return &exporter.Exporter{
		Client: f.Client(f.Authorize(t)), Sink: sink, PBX: f.URL.Host, Zone: rome,
		PageSize: 100, Concurrency: 4, BatchSize: 700, MaxPages: 10000,
	}
}

// readCSV reads every committed file of an endpoint: rows by header.
func readCSV(t *testing.T, dir, endpoint string) []map[string]string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, endpoint, "*.csv*"))
	var out []map[string]string
	for _, p := range files {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		var r io.Reader = f
		if strings.HasSuffix(p, ".gz") {
			if r, err = gzip.NewReader(f); err != nil {
				t.Fatal(err)
			}
		}
		recs, err := csv.NewReader(r).ReadAll()
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		for _, rec := range recs[1:] {
			m := map[string]string{}
			for i, h := range recs[0] {
				m[h] = rec[i]
			}
			out = append(out, m)
		}
	}
	return out
}

func checkCalls(t *testing.T, sim *pbxsim.Sim, rows []map[string]string) int64 {
	t.Helper()
	seen := map[int64]bool{}
	var maxID int64
	for _, r := range rows {
		id, err := strconv.ParseInt(r["id"], 10, 64)
		if err != nil {
			t.Fatalf("id %q", r["id"])
		}
		if seen[id] {
			t.Fatalf("call %d exported twice", id)
		}
		seen[id] = true
		maxID = max(maxID, id)
		c := sim.Call(id)
		var truth map[string]string
		json.Unmarshal(sim.CallJSON(id), &truth)
		want := map[string]string{
			"start_time": c.Start.Format(time.RFC3339), "end_time": c.End.Format(time.RFC3339),
			"duration": strconv.FormatInt(c.Duration, 10), "billsec": strconv.FormatInt(c.Billsec, 10),
			"from_name": truth["from_name"], "to_name": truth["to_name"], "cost": c.Cost, "tz_offset": c.Offset,
			"disposition": c.Disposition,
		}
		if !c.Answer.IsZero() {
			want["answer_time"] = c.Answer.Format(time.RFC3339)
		} else {
			want["answer_time"] = ""
		}
		for k, v := range want {
			if r[k] != v {
				t.Fatalf("call %d: %s = %q, want %q", id, k, r[k], v)
			}
		}
	}
	for id := int64(1); id <= maxID; id++ {
		if !seen[id] {
			t.Fatalf("call %d missing (exported up to %d)", id, maxID)
		}
	}
	return maxID
}

func TestCSVExactlyOnceUnderFaults(t *testing.T) {
	t.Parallel()
	// The calls span the night of 2026-10-25, when Rome's clocks go back.
	f := simtest.New(t, hostile(3000, time.Date(2026, 10, 24, 20, 0, 0, 0, time.UTC)))
	dir := t.TempDir()
	sink, err := NewCSV(CSVOptions{Dir: dir, Gzip: true})
	if err != nil {
		t.Fatal(err)
	}
	x := newExporter(t, f, sink)
	ctx := context.Background()
	eps := defaultEndpoints()

	r1 := x.Run(ctx, exporter.NewRunID(time.Now()), "once", eps)
	if err := r1.Err(); err != nil {
		t.Fatal(err)
	}
	after1 := f.Sim.CallCount()
	max1 := checkCalls(t, f.Sim, readCSV(t, dir, "call_history"))
	if max1 < 3000 {
		t.Fatalf("first run exported up to %d, want at least the 3000 present at its start", max1)
	}
	for _, name := range []string{"colleagues", "phonebooks", "contacts", "devices"} {
		rows := readCSV(t, dir, name)
		truth := f.Sim.Records(name)
		if len(rows) != len(truth) {
			t.Fatalf("%s: %d rows, want %d", name, len(rows), len(truth))
		}
		for i, raw := range truth {
			var m map[string]any
			json.Unmarshal(raw, &m)
			if id := strings.TrimSuffix(strings.TrimSuffix(jsonText(m["id"]), ".0"), ""); !slices.ContainsFunc(rows, func(r map[string]string) bool { return r["id"] == id }) {
				t.Fatalf("%s: record %d (id %s) missing", name, i, id)
			}
		}
	}
	if f.Sim.Stats.Faults.Load() == 0 || f.Sim.Stats.Refreshes.Load() == 0 {
		t.Fatalf("faults %d, refreshes %d: the test did not exercise them", f.Sim.Stats.Faults.Load(), f.Sim.Stats.Refreshes.Load())
	}

	// The second run exports exactly what arrived in between.
	r2 := x.Run(ctx, exporter.NewRunID(time.Now()), "once", eps[:1])
	if err := r2.Err(); err != nil {
		t.Fatal(err)
	}
	max2 := checkCalls(t, f.Sim, readCSV(t, dir, "call_history"))
	if max2 < after1 || r2.Endpoints[0].Rows != max2-max1 {
		t.Fatalf("second run: %d rows, up to id %d; want the %d records after %d", r2.Endpoints[0].Rows, max2, after1-max1, max1)
	}
	st, err := sink.State(ctx, f.URL.Host, "call_history")
	if err != nil {
		t.Fatal(err)
	}
	var cur struct{ Cursor int64 }
	json.Unmarshal(st, &cur)
	if cur.Cursor < max2 {
		t.Fatalf("cursor %d behind the exported %d", cur.Cursor, max2)
	}
}

func TestCSVNothingNewCostsOneRequest(t *testing.T) {
	t.Parallel()
	f := simtest.New(t, pbxsim.Options{Calls: 500})
	dir := t.TempDir()
	sink, _ := NewCSV(CSVOptions{Dir: dir})
	x := newExporter(t, f, sink)
	ctx := context.Background()
	eps := record.Builtin()[:1]
	if err := x.Run(ctx, exporter.NewRunID(time.Now()), "once", eps).Err(); err != nil {
		t.Fatal(err)
	}
	before, _ := filepath.Glob(filepath.Join(dir, "call_history", "*"))
	reqs := f.Sim.Stats.APIRequests.Load()
	r := x.Run(ctx, exporter.NewRunID(time.Now()), "once", eps)
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	after, _ := filepath.Glob(filepath.Join(dir, "call_history", "*"))
	if n := f.Sim.Stats.APIRequests.Load() - reqs; n != 1 || len(after) != len(before) || r.Endpoints[0].Rows != 0 {
		t.Fatalf("nothing new cost %d requests, %d new files, %d rows; want 1, 0, 0", n, len(after)-len(before), r.Endpoints[0].Rows)
	}
	f.Sim.InsertCalls(5)
	if r := x.Run(ctx, exporter.NewRunID(time.Now()), "once", eps); r.Endpoints[0].Rows != 5 {
		t.Fatalf("after 5 inserts: %d rows, err %v", r.Endpoints[0].Rows, r.Err())
	}
}

func TestBackfillEqualsFullExportAndResumes(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 3, 27, 0, 0, 0, 0, time.UTC) // spans the spring change
	f := simtest.New(t, pbxsim.Options{Calls: 4000, CallsStart: start, CallGap: 2 * time.Minute})
	ctx := context.Background()
	from, to := time.Date(2026, 3, 28, 0, 0, 0, 0, time.UTC), time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
	inRange := func(rows []map[string]string) map[string]bool {
		set := map[string]bool{}
		for _, r := range rows {
			id, _ := strconv.ParseInt(r["id"], 10, 64)
			var m map[string]string
			json.Unmarshal(f.Sim.CallJSON(id), &m)
			if m["start"] >= "2026-03-28 00:00:00" && m["start"] < "2026-04-01 00:00:00" {
				set[r["id"]] = true
			}
		}
		return set
	}
	fullDir := t.TempDir()
	full, _ := NewCSV(CSVOptions{Dir: fullDir})
	if err := newExporter(t, f, full).Run(ctx, "full", "once", record.Builtin()[:1]).Err(); err != nil {
		t.Fatal(err)
	}
	want := inRange(readCSV(t, fullDir, "call_history"))

	dir := t.TempDir()
	sink, _ := NewCSV(CSVOptions{Dir: dir})
	x := newExporter(t, f, sink)
	// Interrupted after two windows.
	cctx, cancel := context.WithCancel(ctx)
	r := x.Backfill(cctx, "bf1", record.Builtin()[:1], exporter.BackfillOptions{From: from, To: to, Window: 24 * time.Hour,
		Progress: func(p exporter.BackfillProgress) {
			if p.Done == 2 {
				cancel()
			}
		}})
	if r.Err() == nil || r.Endpoints[0].Windows != 2 {
		t.Fatalf("interrupted backfill: windows %d, err %v", r.Endpoints[0].Windows, r.Err())
	}
	r = x.Backfill(ctx, "bf2", record.Builtin()[:1], exporter.BackfillOptions{From: from, To: to, Window: 24 * time.Hour})
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	if r.Endpoints[0].Skipped != 2 || r.Endpoints[0].Windows != 2 {
		t.Fatalf("rerun: %d skipped, %d exported; want 2 and 2", r.Endpoints[0].Skipped, r.Endpoints[0].Windows)
	}
	rows := readCSV(t, dir, "call_history")
	got := map[string]bool{}
	for _, row := range rows {
		if got[row["id"]] {
			t.Fatalf("call %s in two windows", row["id"])
		}
		got[row["id"]] = true
	}
	if len(got) != len(want) || len(want) == 0 {
		t.Fatalf("backfill has %d calls, the full export %d in range", len(got), len(want))
	}
	for id := range want {
		if !got[id] {
			t.Fatalf("call %s missing from the backfill", id)
		}
	}
	if st, _ := sink.State(ctx, f.URL.Host, "call_history"); st != nil {
		t.Fatalf("backfill moved the nightly cursor: %s", st)
	}
	// --force redoes every window, replacing their files.
	r = x.Backfill(ctx, "bf3", record.Builtin()[:1], exporter.BackfillOptions{From: from, To: to, Force: true})
	if r.Err() != nil || r.Endpoints[0].Windows != 4 || len(readCSV(t, dir, "call_history")) != len(want) {
		t.Fatalf("forced: %+v %v", r.Endpoints[0], r.Err())
	}
}

func jsonText(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	return ""
}

func TestSafeNameCannotLeaveItsFolder(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"acme.wildixin.com", "acme.wildixin.com"},
		{"127.0.0.1:8443", "127.0.0.1%3A8443"},
		{"..", "%2E."},
		{"../../etc/passwd", "%2E.%2F..%2Fetc%2Fpasswd"},
		{"backfill/call_history/2026-01-01 00:00:00", "backfill%2Fcall_history%2F2026-01-01%2000%3A00%3A00"},
	} {
		if got := safeName(tc.in); got != tc.want {
			t.Errorf("safeName(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if got := safeName(tc.in); strings.Contains(got, "/") || got == "." || got == ".." {
			t.Errorf("safeName(%q) = %q can climb out", tc.in, got)
		}
	}
}

// TestCSVCrashBetweenCommitRecordAndRename stops a commit exactly where a
// crash would leave it: data on disk under its temporary name, the pending
// record written, nothing renamed. The next start completes it; if the
// data was lost instead, it discards the commit. Either way no row is
// doubled or lost, and no partial file has a final name.
func TestCSVCrashBetweenCommitRecordAndRename(t *testing.T) {
	t.Parallel()
	for _, lose := range []bool{false, true} {
		dir := t.TempDir()
		ep := record.Builtin()[0]
		ctx := context.Background()
		s, _ := NewCSV(CSVOptions{Dir: dir})
		b, err := s.Begin(ctx, exporter.BatchInfo{PBX: "p", RunID: "r1", Endpoint: &ep, StateKey: ep.Name, Seq: 1})
		if err != nil {
			t.Fatal(err)
		}
		row, _ := (&record.Converter{Endpoint: &ep}).Convert(0, json.RawMessage(`{"id":"7","start":"2026-01-01 10:00:00"}`))
		b.Write(ctx, []record.Row{row})
		if err := b.(*csvBatch).decide([]byte(`{"cursor":7}`)); err != nil {
			t.Fatal(err)
		}
		if files, _ := filepath.Glob(filepath.Join(dir, "call_history", "*.csv")); len(files) != 0 {
			t.Fatalf("a file has its final name before the commit completed: %v", files)
		}
		if lose {
			os.Remove(b.(*csvBatch).tmp)
		}
		// The next process starts.
		s2, _ := NewCSV(CSVOptions{Dir: dir})
		st, err := s2.State(ctx, "p", ep.Name)
		if err != nil {
			t.Fatal(err)
		}
		files, _ := filepath.Glob(filepath.Join(dir, "call_history", "*.csv"))
		if lose {
			if st != nil || len(files) != 0 {
				t.Fatalf("lost data: state %s, files %v; want the commit discarded", st, files)
			}
			continue
		}
		if string(st) != `{"cursor":7}` || len(files) != 1 {
			t.Fatalf("state %s, files %v; want the commit completed", st, files)
		}
		if _, err := os.Stat(strings.TrimSuffix(files[0], ".csv") + ".manifest.json"); err != nil {
			t.Fatalf("manifest missing: %v", err)
		}
		if pend, _ := filepath.Glob(filepath.Join(dir, ".state", "p", "*.pending.json")); len(pend) != 0 {
			t.Fatalf("pending record left: %v", pend)
		}
	}
}

// TestCSVTimesKeepTheirFraction: a time with a fraction of a second is
// written with it, to the microsecond PostgreSQL keeps, so that both sinks
// hold the same instant; a whole second is written without one.
func TestCSVTimesKeepTheirFraction(t *testing.T) {
	t.Parallel()
	s := &CSV{}
	for _, tc := range []struct {
		in   time.Time
		want string
	}{
		{time.Date(2026, 1, 10, 9, 0, 5, 250_000_000, time.UTC), "2026-01-10T09:00:05.25Z"},
		{time.Date(2026, 1, 10, 9, 0, 5, 123_456_789, time.UTC), "2026-01-10T09:00:05.123456Z"},
		{time.Date(2026, 1, 10, 9, 0, 5, 0, time.UTC), "2026-01-10T09:00:05Z"},
	} {
		if got := s.cell(record.Timestamp, tc.in); got != tc.want {
			t.Errorf("%v: %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestCSVDiskRefusalsSayWhatToDo: an error of the export folder's disk
// (full, over quota, read-only, not writable by this user) names
// EXPORT_CSV_DIR and what to do, and keeps its cause; any other error is
// left as it is. (Measured from outside on a full and on a read-only
// tmpfs; as root, the tests cannot make a disk refuse.) Fails when
// advise adds nothing.
func TestCSVDiskRefusalsSayWhatToDo(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, err := NewCSV(CSVOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		cause error
		want  string // "" when the error is to be left alone
	}{
		{syscall.ENOSPC, "free space there"},
		{syscall.EDQUOT, "free space there"},
		{syscall.EROFS, "mount it writable"},
		{syscall.EACCES, "give it write access"},
		{syscall.EPERM, "give it write access"},
		{syscall.EIO, ""},
	} {
		in := fmt.Errorf("commit: %w", &fs.PathError{Op: "write", Path: filepath.Join(dir, "call_history", "x"), Err: c.cause})
		got := s.advise(in)
		if !errors.Is(got, c.cause) {
			t.Fatalf("%v: the cause is lost: %v", c.cause, got)
		}
		if c.want == "" {
			if got != in {
				t.Fatalf("%v: changed to %v", c.cause, got)
			}
			continue
		}
		if msg := got.Error(); !strings.Contains(msg, c.want) || !strings.Contains(msg, "EXPORT_CSV_DIR "+dir) || !strings.Contains(msg, "committed is kept") {
			t.Fatalf("%v: %q does not name EXPORT_CSV_DIR %s and say %q", c.cause, msg, dir, c.want)
		}
	}
	if s.advise(nil) != nil {
		t.Fatal("advise(nil) is an error")
	}
}
