package exporter_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/wildix-export/wildix-export/internal/pbxsim"
)

// TestRecordingsNoneListed: a list answering no record to every form of
// from/to is asked once without them. Records there: the PBX takes
// from/to in a form not tried (say ISO 8601), and the endpoint fails
// naming the forms tried and saying to report the PBX's version; before,
// it succeeded every night with "nothing to copy" while the PBX dropped
// its copies. No record there either: nothing to copy, noted.
func TestRecordingsNoneListed(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		empty func(r *http.Request) bool // answered with no record
		fail  bool
	}{
		{"records without from/to", func(r *http.Request) bool { return r.URL.Query().Has("from") }, true},
		{"no record at all", func(*http.Request) bool { return true }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			front := func(sim *pbxsim.Sim, w http.ResponseWriter, r *http.Request) bool {
				if !strings.HasPrefix(r.URL.Path, "/api/v1/PBX/recordings") || !tc.empty(r) {
					return false
				}
				w.Write([]byte(`{"type":"result","result":{"total":"0","records":[]}}`))
				return true
			}
			e := recSetup(t, pbxsim.Options{Seed: 19, Calls: 100}, "csv", front)
			res := e.run(t)
			t.Logf("err %v; notes %q", res.Err, res.Notes)
			if res.Rows != 0 || res.Recordings.Listed != 0 {
				t.Fatalf("rows %d, listed %d", res.Rows, res.Recordings.Listed)
			}
			if tc.fail {
				if res.Err == nil || !strings.Contains(res.Err.Error(), "wall: no record; epoch: no record") || !strings.Contains(res.Err.Error(), "report this PBX's version") {
					t.Fatalf("the PBX lists %d recordings without from/to and none with them: err %v, want one naming the forms tried", len(e.sim.Recordings()), res.Err)
				}
				return
			}
			if res.Err != nil || !strings.Contains(strings.Join(res.Notes, "\n"), "nothing to copy") {
				t.Fatalf("err %v, notes %q; want nothing to copy, noted", res.Err, res.Notes)
			}
		})
	}
}
