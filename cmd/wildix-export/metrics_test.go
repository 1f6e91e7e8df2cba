package main

import (
	"context"
	"io"
	"net"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/wildix-export/wildix-export/exporter"
	"github.com/wildix-export/wildix-export/internal/pbxsim"
)

// TestMetricsCountFilteredAndVanished: what a run dropped as outside the
// asked bounds, and what vanished while it read, reach /metrics, added up
// over runs.
func TestMetricsCountFilteredAndVanished(t *testing.T) {
	t.Parallel()
	m := newMetrics()
	m.endpoint(exporter.EndpointResult{Endpoint: "call_history", Rows: 5, Filtered: 7, Vanished: 3})
	m.endpoint(exporter.EndpointResult{Endpoint: "call_history", Rows: 1, Filtered: 2})
	rec := httptest.NewRecorder()
	promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	got := parseMetrics(rec.Body.String())
	for name, want := range map[string]float64{
		`wildix_export_filtered_records_total{endpoint="call_history"}`: 9,
		`wildix_export_vanished_records_total{endpoint="call_history"}`: 3,
		`wildix_export_rows_total{endpoint="call_history"}`:             6,
	} {
		if got[name] != want {
			t.Errorf("%s = %v, want %v\n%s", name, got[name], want, rec.Body.String())
		}
	}
}

// TestMetricsRunWarned: a run that ended well while a rewrite in place is
// due (its "pseudonymisation" result DUE: pagingRewriteDue) is counted in
// wildix_export_runs_total as warned, not ok (it was ok: review 41's
// R41-1 left /metrics out); so is one whose recordings ended well with
// files of recordings not kept pending removal (attack11 F4: a forgotten
// number's voice left in the store for want of proof); a run without
// either stays ok, and a failed run with it stays failed.
func TestMetricsRunWarned(t *testing.T) {
	t.Parallel()
	m := newMetrics()
	due := exporter.EndpointResult{Endpoint: "pseudonymisation", Paging: pagingRewriteDue, Notes: []string{"a rewrite is due"}}
	for _, r := range []*exporter.RunResult{
		{Status: "ok", Endpoints: []exporter.EndpointResult{{Endpoint: "call_history", Rows: 3}, due}},
		{Status: "ok", Endpoints: []exporter.EndpointResult{{Endpoint: "call_history", Rows: 3}}},
		{Status: "ok", Endpoints: []exporter.EndpointResult{{Endpoint: "recordings", Recordings: &exporter.RecordingsResult{PendingRemoval: 1}}}},
		{Status: "ok", Endpoints: []exporter.EndpointResult{{Endpoint: "recordings", Recordings: &exporter.RecordingsResult{Copied: 2}}}},
		{Status: "failed", Endpoints: []exporter.EndpointResult{{Endpoint: "call_history", Err: io.EOF}, due}},
	} {
		m.run(r, time.Second)
	}
	rec := httptest.NewRecorder()
	promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	got := parseMetrics(rec.Body.String())
	for outcome, want := range map[string]float64{"ok": 2, "warned": 2, "failed": 1} {
		if name := `wildix_export_runs_total{outcome="` + outcome + `"}`; got[name] != want {
			t.Errorf("%s = %v, want %v\n%s", name, got[name], want, rec.Body.String())
		}
	}
}

// TestStatusPortCannotStarveTheExport: the worker limited to 48 file
// descriptors, 200 connections to its status port held open, each with a
// request sent and its answer never read (keep-alive, then idle), and
// scheduled exports go on succeeding: the port holds at most statusConns
// of them at once, and each for a bounded time.
func TestStatusPortCannotStarveTheExport(t *testing.T) {
	t.Parallel()
	f := authorized(t, pbxsim.Options{Calls: 200})
	addr := freeAddr(t)
	env, pool, _ := pgEnv(t, f, "EXPORT_SCHEDULE=@every 1s", "EXPORT_PAGE_SIZE=50", "EXPORT_CONCURRENCY=4",
		"EXPORT_ENDPOINTS=call_history,colleagues", "EXPORT_HTTP_ADDR="+addr)
	cmd := exec.Command("sh", "-c", `ulimit -n 48 && exec "$0" run`, binary)
	cmd.Env = env
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	ctx := context.Background()
	runs := func(status string, since time.Time) int {
		var exists bool
		if err := pool.QueryRow(ctx, "SELECT to_regclass('export_runs') IS NOT NULL").Scan(&exists); err != nil {
			t.Fatal(err)
		}
		n := 0
		if exists {
			if err := pool.QueryRow(ctx, "SELECT count(*) FROM export_runs WHERE mode = 'scheduled' AND status = $1 AND started_at > $2",
				status, since).Scan(&n); err != nil {
				t.Fatal(err)
			}
		}
		return n
	}
	eventually(t, "a first scheduled export", func() bool { return runs("ok", time.Time{}) >= 1 }, stderr.String)

	for i := range 200 {
		c, err := net.DialTimeout("tcp", addr, 10*time.Second)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		t.Cleanup(func() { c.Close() })
		if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: status\r\n\r\n"); err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
	}
	held := time.Now()
	eventually(t, "three scheduled exports with 200 connections held", func() bool { return runs("ok", held) >= 3 }, stderr.String)
	if n := runs("failed", held); n != 0 {
		t.Fatalf("%d scheduled exports failed with the connections held\n%s", n, stderr.String())
	}
	if strings.Contains(stderr.String(), "too many open files") {
		t.Fatalf("the worker ran out of file descriptors:\n%s", stderr.String())
	}
}

// TestMetricsRecordings: what the recordings endpoint did with the files
// reaches /metrics, added up over runs, and the age of the oldest
// recording listed and not stored is computed when scraped: no sample
// before a run has listed (rec-fresh 6: a 0 read as "all stored" while
// runs failed before listing), kept (and ageing) after a run that failed
// before listing, cleared by a run that stored them all. Above 5 days
// the run also logs a warning.
func TestMetricsRecordings(t *testing.T) {
	t.Parallel()
	m := newMetrics()
	scrape := func() map[string]float64 {
		rec := httptest.NewRecorder()
		promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		return parseMetrics(rec.Body.String())
	}
	if got := scrape(); got[`wildix_export_recordings_total{outcome="failed"}`] != 0 || len(got) == 0 {
		t.Fatalf("before any run: %v", got)
	}
	const age = "wildix_export_recordings_oldest_pending_age_seconds"
	if v, ok := scrape()[age]; ok {
		t.Errorf("before any run: %s = %v, want no sample", age, v)
	}
	m.endpoint(exporter.EndpointResult{Endpoint: "recordings", Err: io.EOF, Recordings: &exporter.RecordingsResult{}}) // failed before listing
	if v, ok := scrape()[age]; ok {
		t.Errorf("after a run that failed before listing: %s = %v, want no sample", age, v)
	}
	old := time.Now().Add(-6 * 24 * time.Hour)
	var logs strings.Builder
	a := &app{log: newLogger(&logs, "json", "info")}
	for _, r := range []exporter.EndpointResult{
		{Endpoint: "recordings", Recordings: &exporter.RecordingsResult{Copied: 3, Skipped: 1, Vanished: 2, Refused: 1, Bytes: 3000}},
		{Endpoint: "recordings", Err: io.ErrUnexpectedEOF, Recordings: &exporter.RecordingsResult{Copied: 1, Failed: 1, Bytes: 500, OldestPending: &old}},
		{Endpoint: "recordings", Err: io.EOF, Recordings: &exporter.RecordingsResult{}}, // failed before listing
	} {
		m.endpoint(r)
		a.warnRecordings(r)
	}
	got := scrape()
	for name, want := range map[string]float64{
		`wildix_export_recordings_total{outcome="copied"}`:   4,
		`wildix_export_recordings_total{outcome="skipped"}`:  1,
		`wildix_export_recordings_total{outcome="vanished"}`: 2,
		`wildix_export_recordings_total{outcome="refused"}`:  1,
		`wildix_export_recordings_total{outcome="failed"}`:   1,
		`wildix_export_recordings_bytes_total`:               3500,
	} {
		if got[name] != want {
			t.Errorf("%s = %v, want %v", name, got[name], want)
		}
	}
	if v := got[age]; v < 6*24*3600 || v > 7*24*3600 {
		t.Errorf("oldest pending age %v s, want about 6 days", v)
	}
	if n := strings.Count(logs.String(), "recordings falling behind"); n != 1 {
		t.Errorf("%d warning(s) logged, want 1:\n%s", n, logs.String())
	}
	m.endpoint(exporter.EndpointResult{Endpoint: "recordings", Recordings: &exporter.RecordingsResult{Copied: 1}})
	if v, ok := scrape()[age]; !ok || v != 0 {
		t.Errorf("after a run that stored every recording: age %v (a sample: %v), want 0", v, ok)
	}
}
