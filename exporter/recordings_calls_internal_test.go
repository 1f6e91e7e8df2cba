package exporter

import (
	"testing"
	"time"
)

// TestCallMatcherFind: a recording is matched to the leg answered in its
// start second. One leg there whose parties contradict a party the
// recording sends ("contradicted") leaves call_id NULL (0); before, it
// was filled as "time". The leg is taken ("time") only when the
// recording sends no party, or one that is the leg's.
func TestCallMatcherFind(t *testing.T) {
	at := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	one := map[int64][]leg{at.Unix(): {{id: 5, src: "201", dst: "+390212345678"}}}
	two := map[int64][]leg{at.Unix(): {{id: 5, src: "201", dst: "+390212345678"}, {id: 6, src: "202", dst: "+390212345678"}}}
	for _, tc := range []struct {
		name     string
		legs     map[int64][]leg
		ext, num string
		id       int64
		how      string
	}{
		{"both parties", one, "201", "390212345678", 5, "exact"},
		{"parties contradict", one, "305", "+441234567890", 0, "contradicted"},
		{"number contradicts", one, "201", "+441234567890", 0, "contradicted"},
		{"no party sent", one, "", " ", 5, "time"},
		{"only the extension, the leg's", one, "201", "", 5, "time"},
		{"only the extension, another", one, "305", "", 0, "contradicted"},
		{"two legs, one with both", two, "202", "+390212345678", 6, "exact"},
		{"two legs, neither", two, "305", "+441234567890", 0, "ambiguous"},
		{"no leg", map[int64][]leg{}, "201", "+390212345678", 0, "none"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := &callMatcher{legs: tc.legs}
			if id, how := m.find(at, tc.ext, tc.num); id != tc.id || how != tc.how {
				t.Errorf("recording %q ↔ %q: call_id %d, call_match %q; want %d, %q", tc.ext, tc.num, id, how, tc.id, tc.how)
			}
		})
	}
}
