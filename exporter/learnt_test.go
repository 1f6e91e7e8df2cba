package exporter

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestBoundInTheState: the from-bound is stored as earlier versions
// stored it ("inclusive", "exclusive", left out when unknown), and a value
// they did not write is read as unknown, not as an error.
func TestBoundInTheState(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		b    bound
		json string
	}{{boundUnknown, `{"cursor":7,"run_id":"","at":"0001-01-01T00:00:00Z"}`},
		{boundInclusive, `{"cursor":7,"run_id":"","at":"0001-01-01T00:00:00Z","from":"inclusive"}`},
		{boundExclusive, `{"cursor":7,"run_id":"","at":"0001-01-01T00:00:00Z","from":"exclusive"}`}} {
		b, err := json.Marshal(cursorState{Cursor: 7, From: tc.b})
		if err != nil || string(b) != tc.json {
			t.Fatalf("%v stored as %s (%v), want %s", tc.b, b, err, tc.json)
		}
		var st cursorState
		if err := json.Unmarshal(b, &st); err != nil || st.From != tc.b {
			t.Fatalf("%s read as %v (%v), want %v", b, st.From, err, tc.b)
		}
	}
	var st cursorState
	if err := json.Unmarshal([]byte(`{"cursor":7,"from":"sideways"}`), &st); err != nil || st.From != boundUnknown {
		t.Fatalf("an unknown from read as %v, %v: want unknown, no error", st.From, err)
	}
	if !strings.Contains(sortParam.what("id"), "sort=id") || filterParam.what("id") != "filter[id]" {
		t.Fatalf("params named %q and %q", sortParam.what("id"), filterParam.what("id"))
	}
}
