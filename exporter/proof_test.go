package exporter_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wildix-export/wildix-export/auth"
	"github.com/wildix-export/wildix-export/exporter"
	"github.com/wildix-export/wildix-export/internal/pbxsim"
)

// The proof tests: a PBX whose answers cannot be proven complete by their
// total (time windows around a record dated in the future, a snapshot
// without a total while a record is deleted) must still give exactly the
// simulator's records, or fail; never ok and short.

// proofExporter serves the simulator through front, which may answer a
// request itself.
func proofExporter(t *testing.T, sim *pbxsim.Sim, sink exporter.Sink, pageSize int, front func(w http.ResponseWriter, r *http.Request) bool) *exporter.Exporter {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if front == nil || !front(w, r) {
			sim.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	rome, err := time.LoadLocation("Europe/Rome")
	if err != nil {
		t.Fatal(err)
	}
	c := &exporter.Client{HTTP: &http.Client{Transport: &auth.Transport{Source: auth.Static("wsk-v1-test")}}, Base: u,
		MaxAttempts: 12, Timeout: time.Minute, MinBackoff: 5 * time.Millisecond}
	return &exporter.Exporter{Client: c, Sink: sink, PBX: "pbx", Zone: rome, PageSize: pageSize, Concurrency: 4, BatchSize: 500, MaxPages: 100000}
}

// TestProofTimeWindowsFutureRecord: on a PBX read by time windows (it
// ignores sort=id), one call dated 20 hours ahead must not move the time
// cursor: the calls that arrive after it are exported by the next run,
// each call exactly once (the future one too), and the run says so.
func TestProofTimeWindowsFutureRecord(t *testing.T) {
	t.Parallel()
	for _, tg := range targets {
		t.Run(tg.name, func(t *testing.T) {
			t.Parallel()
			sink, exported := tg.open(t)
			const bogusID = "500"
			future := time.Now().UTC().Add(20 * time.Hour).Format("2006-01-02 15:04:05")
			var mu sync.Mutex
			var bogus map[string]any // call 500 as the PBX sends it, once seen
			o := pbxsim.Options{Calls: 1000, IgnoreSort: true, Total: "number", APIKeys: []string{"wsk-v1-test"},
				// The PBX dates call 500 at future: it answers it in the
				// windows holding future, not in those of its real time.
				Rewrite: func(r *http.Request, st int, b []byte) (int, []byte) {
					mu.Lock()
					defer mu.Unlock()
					var env struct {
						Type   string `json:"type"`
						Result struct {
							Total   *float64         `json:"total,omitempty"`
							Records []map[string]any `json:"records"`
						} `json:"result"`
					}
					if st != http.StatusOK || json.Unmarshal(b, &env) != nil || env.Type != "result" {
						return st, b
					}
					q := r.URL.Query()
					from, to := q.Get("filter[start][from]"), q.Get("filter[start][to]")
					inWindow := from != "" && future >= from && future <= to
					kept := env.Result.Records[:0]
					found := false
					for _, rec := range env.Result.Records {
						if rec["id"] == bogusID {
							rec["start"] = future
							bogus = rec
							if from != "" && !inWindow {
								if env.Result.Total != nil {
									*env.Result.Total--
								}
								continue
							}
							found = true
						}
						kept = append(kept, rec)
					}
					env.Result.Records = kept
					if inWindow && bogus != nil && !found && q.Get("start") == "0" {
						// A full page leaves it out; its total still counts
						// it, so the window is split until it fits.
						if count, err := strconv.Atoi(q.Get("count")); err == nil && len(kept) < count {
							env.Result.Records = append(env.Result.Records, bogus)
						}
						if env.Result.Total != nil {
							*env.Result.Total++
						}
					}
					out, err := json.Marshal(env)
					if err != nil {
						panic(err)
					}
					return st, out
				}}
			sim := pbxsim.New(o)
			x := proofExporter(t, sim, sink, 100, nil)
			exactlyOnce := func(run int, r exporter.EndpointResult, rows int64) {
				t.Helper()
				if r.Err != nil || r.Rows != rows || r.Paging != "time-windows" {
					t.Fatalf("run %d: err %v, rows %d (want %d), paging %q (want time-windows), notes %q", run, r.Err, r.Rows, rows, r.Paging, r.Notes)
				}
				got := exported(t)
				want := sim.CallIDs()
				var missing, doubled []int64
				for _, id := range want {
					switch got[id] {
					case 0:
						missing = append(missing, id)
					case 1:
					default:
						doubled = append(doubled, id)
					}
				}
				if len(missing)+len(doubled) > 0 || len(got) != len(want) {
					t.Fatalf("run %d: PBX holds %d calls, exported %d distinct; missing %v, doubled %v", run, len(want), len(got), missing, doubled)
				}
			}
			r := runCalls(t, x)
			exactlyOnce(1, r, 1000)
			if !slices.ContainsFunc(r.Notes, func(s string) bool { return strings.HasPrefix(s, "1 records dated after now at the PBX") }) {
				t.Fatalf("run 1 notes %q: want the call dated in the future counted once", r.Notes)
			}
			sim.InsertCalls(50)
			exactlyOnce(2, runCalls(t, x), 50)
			sim.InsertCalls(7)
			exactlyOnce(3, runCalls(t, x), 7)
		})
	}
}
