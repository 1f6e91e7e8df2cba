package exporter_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/wildix-export/wildix-export/internal/pbxsim"
)

// TestRecordingsListedTwice (attack 7, F6): the PBX lists one recording
// twice in an answer, the second time with another number (in place of
// the record after it). The run keeps one row for it, the first
// listing's, as before, and no longer cuts the other silently: it counts
// it (listed_twice) and says so in a note naming the recording's key,
// never the numbers.
func TestRecordingsListedTwice(t *testing.T) {
	t.Parallel()
	var want atomic.Pointer[string]
	front := func(sim *pbxsim.Sim, w http.ResponseWriter, r *http.Request) bool {
		if want.Load() == nil || !strings.HasSuffix(r.URL.Path, "/PBX/recordings") {
			return false
		}
		target := *want.Load()
		rec := httptest.NewRecorder()
		sim.ServeHTTP(rec, r)
		var body map[string]any
		if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &body) != nil {
			return false
		}
		res, _ := body["result"].(map[string]any)
		records, _ := res["records"].([]any)
		for i, x := range records {
			if m, _ := x.(map[string]any); m != nil && fmt.Sprint(m["id"]) == target && i+1 < len(records) {
				dup := map[string]any{}
				for k, v := range m {
					dup[k] = v
				}
				dup["number"] = "+390299998888"
				records[i+1] = dup
				break
			}
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(body)
		return true
	}
	e := recSetup(t, pbxsim.Options{Seed: 41, Calls: 150}, "csv", front)
	recs := e.sim.Recordings()
	victim := recs[len(recs)/2]
	target := fmt.Sprint(victim.ID)
	want.Store(&target)
	res := e.run(t)
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	if res.Recordings.ListedTwice < 1 {
		t.Errorf("listed twice: %d; want the second listing of recording %s counted", res.Recordings.ListedTwice, target)
	}
	notes := strings.Join(res.Notes, "\n")
	if !strings.Contains(notes, "listed twice with different records (first: recording "+target+")") || strings.Contains(notes, "99998888") {
		t.Errorf("notes %q: want recording %s said listed twice, no number", res.Notes, target)
	}
	n := 0
	for key := range e.rows(t) {
		if key == target {
			n++
		}
	}
	if n != 1 {
		t.Errorf("recording %s: %d rows, want 1", target, n)
	}
}
