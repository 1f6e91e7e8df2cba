package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wildix-export/wildix-export/internal/pbxsim"
)

// TestMaxRPSCapsRequestsOnThePBXSide exports 60 pages with EXPORT_MAX_RPS=20
// and counts, where the PBX receives them, the API requests in every
// one-second window: never more than 20, and the run takes at least 2.9 s.
func TestMaxRPSCapsRequestsOnThePBXSide(t *testing.T) {
	t.Parallel()
	const rps, pageSize, calls = 20, 100, 5950 // 60 pages, the last one partial
	sim := pbxsim.New(pbxsim.Options{Calls: calls, APIKeys: []string{"wsk-v1-rps"}})
	var (
		mu      sync.Mutex
		arrived []time.Time
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/api/") {
			mu.Lock()
			arrived = append(arrived, time.Now())
			mu.Unlock()
		}
		sim.ServeHTTP(w, r)
	}))
	defer srv.Close()
	dir := t.TempDir()
	env := baseEnv("WILDIX_PBX_URL="+srv.URL, "WILDIX_API_KEY=wsk-v1-rps", "EXPORT_CSV_DIR="+dir,
		"WILDIX_TIMEZONE=Europe/Rome", "EXPORT_LOG_FORMAT=json", "EXPORT_ENDPOINTS=call_history",
		"EXPORT_PAGE_SIZE=100", "EXPORT_CONCURRENCY=4", "EXPORT_MAX_RPS=20")
	began := time.Now()
	r := runBin(t, env, "", "run", "--once")
	took := time.Since(began)
	if r.code != 0 {
		t.Fatalf("run --once: exit %d\n%s", r.code, r.stderr)
	}
	exactlyOnce(t, csvCalls(t, dir), calls)

	mu.Lock()
	defer mu.Unlock()
	if len(arrived) < calls/pageSize+1 {
		t.Fatalf("the PBX saw %d API requests, want at least %d (one per page)", len(arrived), calls/pageSize+1)
	}
	if took < 2900*time.Millisecond {
		t.Fatalf("%d requests at EXPORT_MAX_RPS=%d took %s, want at least 2.9s", len(arrived), rps, took)
	}
	// arrived is in arrival order: a window starting at request i holds
	// the requests before i+rps+1 that came less than a second after it.
	for i := range arrived {
		if j := i + rps; j < len(arrived) && arrived[j].Sub(arrived[i]) < time.Second {
			t.Fatalf("requests %d to %d (%d) reached the PBX within %s, more than %d in one second",
				i, j, rps+1, arrived[j].Sub(arrived[i]), rps)
		}
	}
	t.Logf("%d API requests in %s (run took %s)", len(arrived), arrived[len(arrived)-1].Sub(arrived[0]), took)
}
