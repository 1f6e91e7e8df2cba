package exporter_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wildix-export/wildix-export/auth"
	"github.com/wildix-export/wildix-export/exporter"
	"github.com/wildix-export/wildix-export/exporter/pbx"
	"github.com/wildix-export/wildix-export/exporter/record"
	"github.com/wildix-export/wildix-export/internal/pbxsim"
	"github.com/wildix-export/wildix-export/simtest"
	"github.com/wildix-export/wildix-export/sinks"
)

// setup starts a simulator (with an API key) and an exporter writing CSV.
func setup(t *testing.T, o pbxsim.Options) (*simtest.Fixture, *exporter.Exporter, string, *sinks.CSV) {
	t.Helper()
	o.APIKeys = append(o.APIKeys, "wsk-v1-test")
	f := simtest.New(t, o)
	c := f.Client(&http.Client{Transport: &auth.Transport{Source: auth.Static("wsk-v1-test")}})
	c.MaxAttempts = 2
	// Generous for a loaded machine: a 10 MB answer under -race on two busy
	// cores can take longer than the fixture's 2 s, and these tests are
	// about what the PBX sends, not about timeouts.
	c.Timeout = time.Minute
	dir := t.TempDir()
	sink, err := sinks.NewCSV(sinks.CSVOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	return f, &exporter.Exporter{Client: c, Sink: sink, PBX: "pbx", PageSize: 100, Concurrency: 3, BatchSize: 100, MaxPages: 1000}, dir, sink
}

func ids(t *testing.T, dir string) map[string]int {
	t.Helper()
	out := map[string]int{}
	for id, n := range csvIDs(t, dir) {
		out[strconv.FormatInt(id, 10)] = n
	}
	return out
}

func run(t *testing.T, x *exporter.Exporter) exporter.EndpointResult {
	t.Helper()
	return x.Run(context.Background(), exporter.NewRunID(time.Now()), "once", record.Builtin()[:1]).Endpoints[0]
}

func wantAll(t *testing.T, dir string, n int) {
	t.Helper()
	got := ids(t, dir)
	for i := 1; i <= n; i++ {
		if got[strconv.Itoa(i)] != 1 {
			t.Fatalf("call %d exported %d times", i, got[strconv.Itoa(i)])
		}
	}
	if len(got) != n {
		t.Fatalf("%d calls exported, want %d", len(got), n)
	}
}

func TestPagerAdaptsToACappedPageSize(t *testing.T) {
	t.Parallel()
	_, x, dir, _ := setup(t, pbxsim.Options{Calls: 1000, MaxCount: 70})
	if r := run(t, x); r.Err != nil {
		t.Fatal(r.Err)
	}
	wantAll(t, dir, 1000)
}

func TestPagerWithoutTotal(t *testing.T) {
	t.Parallel()
	noTotal := func(_ *http.Request, status int, body []byte) (int, []byte) {
		return status, bytes.Replace(body, []byte(`"total":`), []byte(`"ignored":`), 1)
	}
	_, x, dir, _ := setup(t, pbxsim.Options{Calls: 450, Rewrite: noTotal})
	if r := run(t, x); r.Err != nil {
		t.Fatal(r.Err)
	}
	wantAll(t, dir, 450)
}

func TestPagerStopsInsteadOfLooping(t *testing.T) {
	t.Parallel()
	// A snapshot is paged by offset: a PBX ignoring start sends the same
	// page again.
	var mu sync.Mutex
	var first []byte
	ignoresStart := func(r *http.Request, status int, body []byte) (int, []byte) {
		mu.Lock()
		defer mu.Unlock()
		if first == nil {
			first = body
		}
		return status, first
	}
	_, x, _, _ := setup(t, pbxsim.Options{Calls: 1, Rewrite: ignoresStart})
	x.Concurrency, x.PageSize = 1, 5
	r := x.Run(context.Background(), "r1", "once", record.Builtin()[1:2]).Endpoints[0]
	if r.Err == nil || !strings.Contains(r.Err.Error(), "same page again") {
		t.Fatalf("err = %v, want the repeated page detected", r.Err)
	}
	// Call history is paged by key: a PBX answering the same page whatever
	// is asked honours no filter, and the run stops, committing nothing
	// wrong: the first page, checked, and its cursor at most.
	var firstCalls []byte
	samePage := func(r *http.Request, status int, body []byte) (int, []byte) {
		mu.Lock()
		defer mu.Unlock()
		if r.URL.Query().Get("count") == "2" {
			return status, body // the upper bound
		}
		if firstCalls == nil {
			firstCalls = body
		}
		return status, firstCalls
	}
	_, x, dir, sink := setup(t, pbxsim.Options{Calls: 450, Rewrite: samePage})
	if r := run(t, x); r.Err == nil || !strings.Contains(r.Err.Error(), "it ignores filter[start]") {
		t.Fatalf("err = %v, want the run stopped", r.Err)
	}
	st, err := sink.State(context.Background(), "pbx", "call_history")
	var cur struct{ Cursor int64 }
	if err != nil || json.Unmarshal(st, &cur) != nil || cur.Cursor != 100 {
		t.Fatalf("state %s, %v: want the first page's cursor", st, err)
	}
	wantAll(t, dir, 100)
	_, x, _, _ = setup(t, pbxsim.Options{Calls: 1000})
	x.Concurrency = 1
	x.MaxPages = 3
	if r := run(t, x); r.Err == nil || !strings.Contains(r.Err.Error(), "EXPORT_MAX_PAGES=3") {
		t.Fatalf("err = %v, want the page cap", r.Err)
	}
}

// TestBadInput: a bad third page (ids from 201). Batches of 100 rows, so the
// first two pages are committed; the bad one fails with a message naming
// the endpoint, page and record, and nothing of its batch is committed.
func TestBadInput(t *testing.T) {
	t.Parallel()
	edit := func(f func(recs []map[string]any) []map[string]any) func([]byte) []byte {
		return func(body []byte) []byte {
			var env struct {
				Type   string `json:"type"`
				Result struct {
					Total   string           `json:"total"`
					Records []map[string]any `json:"records"`
				} `json:"result"`
			}
			if err := json.Unmarshal(body, &env); err != nil {
				panic(err)
			}
			env.Result.Records = f(env.Result.Records)
			env.Result.Total = "1000" // as if the PBX counted the whole table
			out, _ := json.Marshal(env)
			return out
		}
	}
	set := func(i int, k string, v any) func([]byte) []byte {
		return edit(func(recs []map[string]any) []map[string]any { recs[i][k] = v; return recs })
	}
	for _, tc := range []struct {
		name   string
		status int
		body   func([]byte) []byte
		err    string // "" when the page works as documented
	}{
		{"malformed JSON", 200, func(b []byte) []byte { return b[:len(b)/2] }, "malformed JSON"},
		{"HTML with 200", 200, func([]byte) []byte { return []byte("<html><body>Login</body></html>") }, `expected a JSON object, got "<html>`},
		{"error envelope with 200", 200, func([]byte) []byte { return []byte(`{"type":"error","reason":"Session expired"}`) }, `"Session expired"`},
		{"records missing", 200, func([]byte) []byte { return []byte(`{"type":"result","result":{"total":"100"}}`) }, "no records array"},
		{"records not an array", 200, func([]byte) []byte { return []byte(`{"type":"result","result":{"total":"100","records":"none"}}`) }, "not a list object"},
		{"total not numeric", 200, func(b []byte) []byte { return totalRe.ReplaceAll(b, []byte(`"total":"many"`)) }, "is not a count"},
		{"total negative", 200, func(b []byte) []byte { return totalRe.ReplaceAll(b, []byte(`"total":-5`)) }, "is not a count"},
		{"total smaller than returned", 200, func(b []byte) []byte { return totalRe.ReplaceAll(b, []byte(`"total":"3"`)) }, "smaller than the 100 records"},
		{"page longer than count", 200, edit(func(r []map[string]any) []map[string]any { return append(r, r[0]) }), "101 records for count=100"},
		{"record without key", 200, edit(func(r []map[string]any) []map[string]any { delete(r[5], "id"); return r }), `page from id 201: record 5: field "id": the key field is missing`},
		{"non-numeric id", 200, set(7, "id", "A-17"), `record 7 (key A-17): field "id"`},
		{"impossible timestamp", 200, set(3, "start", "2026-13-45 99:00:00"), `record 3 (key 204): field "start"`},
		{"deeply nested value", 200, set(2, "lastdata", nest(200)), "nested deeper than 64"},
		{"404 with reason", 404, func([]byte) []byte { return []byte(`{"type":"error","reason":"404 Not Found","code":404}`) }, "404 Not Found"},
		// Its total, counting the table, proves no range from 201 whole: once
		// the sort is taken as ignored, the ranges are halved down to one
		// key (pages of fewer than ten records are left as they are), then
		// read by time windows.
		{"duplicate key in page", 200, edit(func(r []map[string]any) []map[string]any {
			if len(r) > 9 {
				r[9] = r[8]
			}
			return r
		}), ""},
		{"10 MB field", 200, set(1, "lastdata", strings.Repeat("x", 10<<20)), ""},
		{"invalid UTF-8", 200, func(b []byte) []byte { return bytes.Replace(b, []byte(`"Dial"`), []byte("\"Di\xffal\""), 1) }, ""},
		{"NUL in a value", 200, set(4, "userfield", "a\x00b"), ""},
		{"numbers as numbers", 200, set(6, "duration", 61), ""},
		{"a cost that is no number (counted, not fatal)", 200, set(3, "cost", "a lot"), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			bad := func(r *http.Request, status int, body []byte) (int, []byte) {
				if r.URL.Query().Get("filter[id][from]") == "201" {
					return tc.status, tc.body(body)
				}
				return status, body
			}
			_, x, dir, sink := setup(t, pbxsim.Options{Calls: 1000, Rewrite: bad})
			res := run(t, x)
			if tc.err == "" {
				if res.Err != nil {
					t.Fatalf("want it to work, got %v", res.Err)
				}
				got := ids(t, dir)
				if len(got) < 998 {
					t.Fatalf("%d calls exported", len(got))
				}
				for id, n := range got {
					if n != 1 {
						t.Fatalf("call %s exported %d times", id, n)
					}
				}
				return
			}
			if res.Err == nil || !strings.Contains(res.Err.Error(), tc.err) {
				t.Fatalf("err = %v\nwant it to contain %q", res.Err, tc.err)
			}
			if !strings.Contains(res.Err.Error(), "page from id 201") {
				t.Fatalf("err = %v: does not name the page", res.Err)
			}
			st, _ := sink.State(context.Background(), "pbx", "call_history")
			var cur struct{ Cursor int64 }
			json.Unmarshal(st, &cur)
			if cur.Cursor != 200 {
				t.Fatalf("cursor %d, want 200: the failing batch must commit nothing", cur.Cursor)
			}
			wantAll(t, dir, 200)
		})
	}
}

// totalRe matches a page's total, whatever the range asked.
var totalRe = regexp.MustCompile(`"total":"\d+"`)

func nest(n int) any {
	var v any = "deep"
	for range n {
		v = []any{v}
	}
	return v
}

// TestSnapshotChangedWhilePagingCommitsNothing: a colleague removed, or one
// added whose id sorts first, while a snapshot is paged shifts the pages, so
// a record is missed (and, when added, another read twice). A change once
// is met by reading the snapshot again; a change on both reads fails the
// endpoint with nothing committed, so nothing is wrongly marked deleted;
// the next run (the PBX quiet again) commits it whole. The change comes
// right after page 0, which is always read before the others, so every
// later page is read after it, whatever order the concurrent fetches take.
func TestSnapshotChangedWhilePagingCommitsNothing(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		change string
		times  int
	}{{"removed", 1}, {"added", 1}, {"removed", 2}, {"added", 2}} {
		t.Run(fmt.Sprintf("%s %d times", tc.change, tc.times), func(t *testing.T) {
			t.Parallel()
			var sim *pbxsim.Sim
			var mu sync.Mutex
			changes := 0
			shift := func(r *http.Request, status int, body []byte) (int, []byte) {
				mu.Lock()
				defer mu.Unlock()
				if changes < tc.times && strings.Contains(strings.ToLower(r.URL.Path), "colleagues") && r.URL.Query().Get("start") == "0" {
					changes++
					if tc.change == "removed" {
						if !sim.RemoveRecord("colleagues", lowestID(t, sim)) {
							panic("no colleague removed")
						}
					} else {
						sim.AddRecord("colleagues", map[string]string{"id": strconv.Itoa(changes), "name": "New Hire", "extension": "999"})
					}
				}
				return status, body
			}
			f, x, dir, sink := setup(t, pbxsim.Options{Calls: 1, Rewrite: shift})
			sim = f.Sim
			x.PageSize, x.Concurrency = 5, 1
			r := x.Run(context.Background(), "r1", "once", record.Builtin()[1:2])
			if tc.times == 1 {
				res := r.Endpoints[0]
				if res.Err != nil || res.Rows != int64(len(sim.Records("colleagues"))) || len(res.Notes) != 1 || !strings.Contains(res.Notes[0], "read again") {
					t.Fatalf("%d rows, notes %q, err %v; want the whole snapshot, read again", res.Rows, res.Notes, res.Err)
				}
				return
			}
			if r.Err() == nil || !strings.Contains(r.Err().Error(), "records changed while paging") {
				t.Fatalf("err = %v, want the change detected", r.Err())
			}
			if st, err := sink.State(context.Background(), "pbx", "colleagues"); err != nil || st != nil {
				t.Fatalf("snapshot committed: %s, %v", st, err)
			}
			if files, _ := filepath.Glob(filepath.Join(dir, "colleagues", "*.csv")); len(files) != 0 {
				t.Fatalf("files %v", files)
			}
			if r := x.Run(context.Background(), "r2", "once", record.Builtin()[1:2]); r.Err() != nil || r.Endpoints[0].Rows != int64(len(sim.Records("colleagues"))) {
				t.Fatalf("next run: %d rows, %v; want the whole snapshot", r.Endpoints[0].Rows, r.Err())
			}
		})
	}
}

// lowestID is the id of the colleague that sorts first.
func lowestID(t *testing.T, sim *pbxsim.Sim) string {
	best, bestN := "", int64(-1)
	for _, rec := range sim.Records("colleagues") {
		var m struct{ ID string }
		if err := json.Unmarshal(rec, &m); err != nil {
			panic(err)
		}
		n, err := strconv.ParseInt(m.ID, 10, 64)
		if err != nil {
			panic(err)
		}
		if bestN < 0 || n < bestN {
			best, bestN = m.ID, n
		}
	}
	return best
}

// TestUnstorableValueIsCountedNotFatal: a value that cannot be stored in
// its typed column (a cost that is no number) neither stops the export nor
// disappears silently: the record is exported with the value empty, and
// the endpoint's notes (the log and the ledger) count it with an example.
func TestUnstorableValueIsCountedNotFatal(t *testing.T) {
	t.Parallel()
	bad := func(r *http.Request, status int, body []byte) (int, []byte) {
		if r.URL.Query().Get("filter[id][from]") == "201" {
			return status, bytes.Replace(body, []byte(`"cost":"`), []byte(`"cost":"a lot`), 2)
		}
		return status, body
	}
	_, x, dir, _ := setup(t, pbxsim.Options{Calls: 1000, Rewrite: bad})
	res := run(t, x)
	if res.Err != nil {
		t.Fatalf("want it to work, got %v", res.Err)
	}
	wantAll(t, dir, 1000)
	notes := strings.Join(res.Notes, "\n")
	if len(res.Notes) != 1 || !strings.HasPrefix(notes, "2 ") || !strings.Contains(notes, `"cost"`) {
		t.Fatalf("notes = %q, want one note counting the 2 costs that are no number", res.Notes)
	}
}

// TestNotStartedAfterAFailureSaysSoOnce: when a failure makes the other
// endpoints pointless, each of them says which endpoint failed first,
// without repeating its error, yet still wraps it (the CLI's exit code is
// found through it).
func TestNotStartedAfterAFailureSaysSoOnce(t *testing.T) {
	t.Parallel()
	refuse := func(r *http.Request, status int, body []byte) (int, []byte) {
		return 403, []byte(`{"type":"error","reason":"Forbidden for this test"}`)
	}
	_, x, _, _ := setup(t, pbxsim.Options{Calls: 10, Rewrite: refuse})
	x.Abort = func(error) bool { return true }
	r := x.Run(context.Background(), exporter.NewRunID(time.Now()), "once", record.Builtin()[:3])
	if len(r.Endpoints) != 3 || r.Endpoints[0].Err == nil {
		t.Fatalf("results %+v, want the first endpoint failed", r.Endpoints)
	}
	for _, e := range r.Endpoints[1:] {
		var api *pbx.APIError
		if e.Err == nil || e.Err.Error() != "not started: call_history failed first" || !errors.As(e.Err, &api) || api.Status != 403 {
			t.Fatalf("%s: err %v, want a short 'not started' wrapping the 403", e.Endpoint, e.Err)
		}
	}
}

// TestCallIDBelowOneIsNamed: a PBX that honours filter[id] is never asked
// below id 1 by the keyset reader, so a first run asks once whether it
// holds an id below 1 and names such a record (in the notes, and as the
// run's error once the other calls are in) instead of leaving it out
// without a word; a PBX that ignores the filter proves nothing. Later runs
// do not ask: one such record never stops the export for good.
func TestCallIDBelowOneIsNamed(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, answer, err string
	}{
		{"id 0", `{"type":"result","result":{"total":"1","records":[{"id":"0"}]}}`, `key 0): field "id": cursor 0 is below 1`},
		{"negative id beside id 1", `{"type":"result","result":{"total":"2","records":[{"id":1},{"id":"-7"}]}}`, `key -7): field "id": cursor -7 is below 1`},
		{"filter ignored", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var asked atomic.Int64
			below := func(r *http.Request, status int, body []byte) (int, []byte) {
				if r.URL.Query().Get("filter[id][to]") == "1" && r.URL.Query().Get("filter[id][from]") == "" {
					asked.Add(1)
					if tc.answer != "" {
						return 200, []byte(tc.answer)
					}
				}
				return status, body
			}
			_, x, dir, _ := setup(t, pbxsim.Options{Calls: 30, Rewrite: below})
			res := run(t, x)
			if asked.Load() != 1 {
				t.Fatalf("asked %d times, want once", asked.Load())
			}
			wantAll(t, dir, 30)
			if tc.err == "" && res.Err != nil {
				t.Fatal(res.Err)
			}
			if tc.err != "" && (res.Err == nil || !strings.Contains(res.Err.Error(), tc.err) || !strings.Contains(strings.Join(res.Notes, "\n"), tc.err)) {
				t.Fatalf("err = %v, notes %q: want %q in both", res.Err, res.Notes, tc.err)
			}
			if res := run(t, x); res.Err != nil || asked.Load() != 1 {
				t.Fatalf("second run: %v, asked %d times in all, want once", res.Err, asked.Load())
			}
		})
	}
}
