package exporter

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/wildix-export/wildix-export/exporter/recordings"
	"github.com/wildix-export/wildix-export/internal/pseudonym"
	"github.com/wildix-export/wildix-export/sinks/recstore"
)

// TestPendNoLegacyName: a file kept under a name of before ids were
// keyed (recordings.LegacyID: a PBX id as it was, which may hold a
// number) is counted in its entry pending removal, never written there:
// neither the name nor, in why, the id (a store's error quoting it). A
// file kept under its keyed name is written; a recording with no file
// kept has no entry.
func TestPendNoLegacyName(t *testing.T) {
	key, err := pseudonym.New([]byte("pending-test-key-0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 1, 2, 10, 0, 0, 0, time.UTC)
	r := recordings.Recording{ID: "rec-258-393761714455", Path: "/rec/x.wav", Start: start, IDKey: key}
	r.Key = recordings.StoredID(r)
	other := recordings.Recording{ID: "77", Path: "/rec/y.wav", Start: start, IDKey: key}
	other.Key = recordings.StoredID(other)
	legacy, _ := recstore.Name("pbx", start, recordings.LegacyID(r))
	keyed, _ := recstore.Name("pbx", start, r.Key)
	if !strings.Contains(legacy, "393761714455") || strings.Contains(keyed, "393761714455") {
		t.Fatalf("names %s, %s: the test proves nothing", legacy, keyed)
	}
	p := &recPipe{e: &endpointRun{x: &Exporter{Recordings: &recordings.Copier{PBX: "pbx"}}, runID: "r1"},
		rc: &recCursor{zone: "UTC", pending: map[string]pendingRemoval{other.Key: {Wall: "2026-01-02 11:00:00"}}}}
	why := "the recordings store folder /s could not read it (lstat /s/" + legacy + ": permission denied)"
	p.pend([]recordings.Recording{r, other}, []string{"2026-01-02 11:00:00", "2026-01-02 11:00:00"},
		recordings.Erased{Kept: []recordings.KeptFile{{Name: legacy, Why: why}, {Name: keyed, Why: why}}})
	b, _ := json.Marshal(p.rc.pending)
	if strings.Contains(string(b), "393761714455") {
		t.Errorf("pending entries hold the number: %s", b)
	}
	pr, ok := p.rc.pending[r.Key]
	if !ok || pr.Legacy != 1 || len(pr.Names) != 1 || pr.Names[0] != keyed || pr.Since != "r1" {
		t.Errorf("entry %+v (%v); want %s named, one legacy file counted", pr, ok, keyed)
	}
	if _, ok := p.rc.pending[other.Key]; ok {
		t.Errorf("a recording with no file kept keeps its entry: %s", b)
	}
}
