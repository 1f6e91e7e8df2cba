package main

import (
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wildix-export/wildix-export/internal/pbxsim"
)

// TestMaxRPSCapsRequestsOnThePBXSide exports 60 pages with EXPORT_MAX_RPS=20
// and checks, where the PBX receives them, the API requests against the
// cap's own schedule: the k-th request to arrive came no earlier than
// (k-1)/20 s after the run began. Every request passes the limiter before
// it is sent and arrives after it is sent, and the limiter was made after
// the run began, so this holds however loaded the machine (the k-th
// arrival is no earlier than the k-th send); it fails if requests go out
// faster than 20 a second, or in a burst of more than the start-up's few
// slots (burst 20: the 20th arrives about 1 s early). How many reach the
// PBX within one second depends on how long each takes on its way, which
// the limiter cannot govern (its 10% margin absorbs 100 ms a second;
// this test once saw 21 within 0.97 s at load 13): it is logged, not
// asserted.
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
			at := time.Now()
			mu.Lock()
			arrived = append(arrived, at)
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
	slices.SortFunc(arrived, time.Time.Compare)
	for k, at := range arrived {
		if earliest := time.Duration(k) * time.Second / rps; at.Sub(began) < earliest {
			t.Fatalf("request %d of %d reached the PBX %s after the run began; at EXPORT_MAX_RPS=%d it cannot before %s",
				k+1, len(arrived), at.Sub(began), rps, earliest)
		}
	}
	tightest := time.Duration(math.MaxInt64) // the shortest time rps+1 requests took to arrive
	for i := 0; i+rps < len(arrived); i++ {
		tightest = min(tightest, arrived[i+rps].Sub(arrived[i]))
	}
	t.Logf("%d API requests in %s (run took %s); %d in a row arrived within %s at the least",
		len(arrived), arrived[len(arrived)-1].Sub(arrived[0]), took, rps+1, tightest)
}
