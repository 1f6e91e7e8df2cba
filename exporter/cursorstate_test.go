package exporter

import (
	"encoding/json"
	"testing"

	"github.com/wildix-export/wildix-export/exporter/paging"
)

// TestBoundInTheState: the from-bound is stored as earlier versions
// stored it ("inclusive", "exclusive", left out when unknown), and a value
// they did not write is read as unknown, not as an error.
func TestBoundInTheState(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		b    paging.Bound
		json string
	}{{paging.BoundUnknown, `{"cursor":7,"run_id":"","at":"0001-01-01T00:00:00Z"}`},
		{paging.BoundInclusive, `{"cursor":7,"run_id":"","at":"0001-01-01T00:00:00Z","from":"inclusive"}`},
		{paging.BoundExclusive, `{"cursor":7,"run_id":"","at":"0001-01-01T00:00:00Z","from":"exclusive"}`}} {
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
	if err := json.Unmarshal([]byte(`{"cursor":7,"from":"sideways"}`), &st); err != nil || st.From != paging.BoundUnknown {
		t.Fatalf("an unknown from read as %v, %v: want unknown, no error", st.From, err)
	}
}
