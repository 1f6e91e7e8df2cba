package paging

import (
	"context"
	"testing"

	"github.com/wildix-export/wildix-export/internal/pbxsim"
)

// TestProbe finds the rung of call history on simulated PBXes that honour,
// cap or ignore each parameter, in process, within a handful of requests
// (exporter › TestProbe checks the same over HTTP, with what check prints).
func TestProbe(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		o       pbxsim.Options
		want    Finding
		maxReqs int64
	}{
		{"honours all", pbxsim.Options{}, Finding{Way: ByKey}, 10},
		{"total absent", pbxsim.Options{Total: "absent"}, Finding{Way: ByKey}, 10},
		{"exclusive upper bound", pbxsim.Options{FilterToExclusive: true}, Finding{Way: ByKey}, 10},
		{"exclusive lower bound", pbxsim.Options{FilterFromExclusive: []string{"id"}}, Finding{Way: ByKey}, 10},
		{"cap below the order checks' pages", pbxsim.Options{MaxCount: 2}, Finding{Way: ByKeyCapped, Cap: 2}, 10},
		{"cap above them", pbxsim.Options{MaxCount: 25}, Finding{Way: ByKeyCapped, Cap: 25}, 10},
		{"cap above them, total absent", pbxsim.Options{MaxCount: 25, Total: "absent"}, Finding{Way: ByKeyCapped, Cap: 25}, 10},
		{"cap at the page size", pbxsim.Options{MaxCount: 100}, Finding{Way: ByKey}, 10},
		{"id filter ignored", pbxsim.Options{IgnoreFilter: []string{"id"}}, Finding{Way: ByTimeWindows, Ignored: FilterParam}, 10},
		{"sort ignored", pbxsim.Options{IgnoreSort: true}, Finding{Way: ByKeyRanges, Ignored: SortParam}, 10},
		{"both ignored", pbxsim.Options{IgnoreFilter: []string{"id"}, IgnoreSort: true}, Finding{Way: ByTimeWindows, Ignored: FilterParam}, 10},
		{"id and time filters ignored", pbxsim.Options{IgnoreFilter: []string{"id", "start"}},
			Finding{Way: ByTimeWindows, Ignored: FilterParam, None: true}, 10},
		{"empty", pbxsim.Options{Calls: -1}, Finding{Empty: true}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o := tc.o
			if o.Calls == 0 {
				o.Calls = 40
			}
			_, l := newSim(o)
			rd := newReader(l, ProbeCount, 1)
			got, err := (&Ladder{Reader: rd}).Probe(context.Background(), 100)
			if err != nil {
				t.Fatal(err)
			}
			if got.None && got.TimeSeen < "2000" {
				t.Fatalf("none usable, but the time seen for a window in 1970 is %q", got.TimeSeen)
			}
			got.TimeSeen = ""
			if got != tc.want {
				t.Fatalf("probe found %+v, want %+v", got, tc.want)
			}
			if n := rd.Counters.Requests.Load(); n == 0 || n > tc.maxReqs {
				t.Fatalf("%d requests, want 1 to %d", n, tc.maxReqs)
			}
		})
	}
}

// TestProbeWithoutTimeField: an endpoint with no time field that the key
// rungs cannot read has no way at all.
func TestProbeWithoutTimeField(t *testing.T) {
	t.Parallel()
	_, l := newSim(pbxsim.Options{Calls: 40, IgnoreFilter: []string{"id"}})
	rd := newReader(l, ProbeCount, 1)
	ep := *rd.Endpoint
	ep.TimeField = ""
	rd.Endpoint = &ep
	got, err := (&Ladder{Reader: rd}).Probe(context.Background(), 100)
	if err != nil || !got.None || got.Ignored != FilterParam {
		t.Fatalf("probe found %+v, %v: want none usable, the key filter ignored", got, err)
	}
}
