package exporter

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/wildix-export/wildix-export/exporter/paging"
	"github.com/wildix-export/wildix-export/exporter/pbx"
	"github.com/wildix-export/wildix-export/exporter/record"
	"github.com/wildix-export/wildix-export/internal/pbxsim"
)

// keyed adds the simulator's API key to each request.
type keyed struct{}

func (keyed) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer wsk-v1-test")
	return http.DefaultTransport.RoundTrip(r)
}

// simClient starts a simulator over HTTP on loopback and returns a client
// of it.
func simClient(t *testing.T, o pbxsim.Options) (*pbxsim.Sim, *pbx.Client) {
	t.Helper()
	o.APIKeys = append(o.APIKeys, "wsk-v1-test")
	sim := pbxsim.New(o)
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	return sim, &pbx.Client{HTTP: &http.Client{Transport: keyed{}}, Base: u, MaxAttempts: 2, Timeout: 5 * time.Second, MinBackoff: time.Millisecond}
}

// TestPagingKindsAreStrategies: the kinds a probe reports for the ways of
// reading are the ledger's names of paging's strategies.
func TestPagingKindsAreStrategies(t *testing.T) {
	t.Parallel()
	for kind, s := range map[string]paging.Strategy{PagingKeyset: paging.ByKey, PagingKeysetCapped: paging.ByKeyCapped,
		PagingKeyRanges: paging.ByKeyRanges, PagingTimeWindows: paging.ByTimeWindows, PagingOffset: paging.ByOffset} {
		if s.String() != kind {
			t.Fatalf("strategy %d named %q, probe kind %q", s, s, kind)
		}
	}
}

// TestProbe decides the paging of call history against simulated PBXes
// that honour, cap or ignore each parameter, over HTTP on loopback.
func TestProbe(t *testing.T) {
	cases := []struct {
		name     string
		o        pbxsim.Options
		kind     string
		cap      int64
		ignored  string
		sentence string
	}{
		{"honours all", pbxsim.Options{}, PagingKeyset, 0, "", "by id (filter[id] and sort=id honoured)"},
		{"total as a number", pbxsim.Options{Total: "number"}, PagingKeyset, 0, "", "by id"},
		{"total absent", pbxsim.Options{Total: "absent"}, PagingKeyset, 0, "", "by id"},
		{"exclusive upper bound", pbxsim.Options{FilterToExclusive: true}, PagingKeyset, 0, "", "by id"},
		{"cap", pbxsim.Options{MaxCount: 2}, PagingKeysetCapped, 2, "", "at most 2 records a page"},
		{"cap, total absent", pbxsim.Options{MaxCount: 2, Total: "absent"}, PagingKeysetCapped, 2, "", "at most 2 records a page"},
		{"cap above the order checks' pages", pbxsim.Options{MaxCount: 25}, PagingKeysetCapped, 25, "", "at most 25 records a page"},
		{"cap above the order checks' pages, total absent", pbxsim.Options{MaxCount: 25, Total: "absent"}, PagingKeysetCapped, 25, "", "at most 25 records a page"},
		{"cap at the page size", pbxsim.Options{MaxCount: 100}, PagingKeyset, 0, "", "by id"},
		{"id filter ignored", pbxsim.Options{IgnoreFilter: []string{"id"}}, PagingTimeWindows, 0, "filter[id]", "by filter[start] time windows: the PBX ignores filter[id]"},
		{"sort ignored", pbxsim.Options{IgnoreSort: true}, PagingKeyRanges, 0, "sort=id", "by id ranges, each read whole: the PBX ignores sort=id but honours filter[id]"},
		{"sort and time filter ignored", pbxsim.Options{IgnoreSort: true, IgnoreFilter: []string{"start"}}, PagingKeyRanges, 0, "sort=id", "by id ranges"},
		{"both ignored", pbxsim.Options{IgnoreFilter: []string{"id"}, IgnoreSort: true}, PagingTimeWindows, 0, "filter[id]", "time windows"},
		{"id and time filters ignored", pbxsim.Options{IgnoreFilter: []string{"id", "start"}}, PagingNone, 0, "filter[id]", "filter[start] as well"},
		{"all ignored", pbxsim.Options{IgnoreFilter: []string{"id", "start"}, IgnoreSort: true}, PagingNone, 0, "filter[id]", "none usable"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.o.Calls = 40
			sim, client := simClient(t, tc.o)
			ep := &record.Builtin()[0]
			if ep.Name != "call_history" {
				t.Fatalf("first built-in endpoint is %q, want call_history", ep.Name)
			}
			x := &Exporter{Client: client, PageSize: 100}
			got, err := x.Probe(context.Background(), ep)
			if err != nil {
				t.Fatalf("probe: %v", err)
			}
			if got.Kind != tc.kind || got.Cap != tc.cap || got.Ignored != tc.ignored {
				t.Fatalf("probe = %+v, want kind %q cap %d ignored %q", got, tc.kind, tc.cap, tc.ignored)
			}
			if !strings.Contains(got.Sentence, tc.sentence) {
				t.Fatalf("sentence %q does not contain %q", got.Sentence, tc.sentence)
			}
			if n := sim.Stats.CallRequests.Load(); n == 0 || n > 10 {
				t.Fatalf("the probe made %d call-history requests, want a handful (1 to 10)", n)
			}
			if n := sim.Stats.Deleted.Load(); n != 0 {
				t.Fatalf("the probe deleted %d calls", n)
			}
		})
	}
}

// TestProbeEmpty: a PBX with no call yet is not probed.
func TestProbeEmpty(t *testing.T) {
	_, client := simClient(t, pbxsim.Options{Calls: -1})
	ep := &record.Builtin()[0]
	got, err := (&Exporter{Client: client}).Probe(context.Background(), ep)
	if err != nil {
		t.Fatalf("probe: %v", err)
	}
	if got.Kind != PagingEmpty {
		t.Fatalf("probe = %+v, want %q", got, PagingEmpty)
	}
}
