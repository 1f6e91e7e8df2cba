package exporter

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/wildix-export/wildix-export/exporter/recordings"
	"github.com/wildix-export/wildix-export/internal/pseudonym"
)

// TestPendingLegacyEntryKeptOnRelist (review 50, R50-1): an entry holding
// only a file under a name of before ids were keyed (Legacy 1, its name
// never written) that a run lists again with a path the copier refuses
// (Erase keeps and removes nothing) stays, its count carried over, as an
// unlisted one does: dropped, the file stayed in the store unreported.
// Fails with keepUnproven looking at the entry's names only.
func TestPendingLegacyEntryKeptOnRelist(t *testing.T) {
	key, err := pseudonym.New([]byte("pending-test-key-0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 1, 2, 10, 0, 0, 0, time.UTC)
	r := recordings.Recording{ID: "rec-258-393761714455", Path: "https://elsewhere.example/x.wav", Start: start, IDKey: key}
	r.Key = recordings.StoredID(r)
	pr := pendingRemoval{Wall: "2026-01-02 11:00:00", Zone: "UTC", Legacy: 1, Why: "kept", Since: "r0", Tried: "r0"}
	p := &recPipe{e: &endpointRun{x: &Exporter{Recordings: &recordings.Copier{PBX: "pbx"}}, runID: "r1", log: slog.Default(), res: &EndpointResult{Recordings: &RecordingsResult{}}},
		rc: &recCursor{zone: "UTC", pending: map[string]pendingRemoval{r.Key: pr}}}
	// retryPending's steps after an Erase that left the file silently.
	p.pend([]recordings.Recording{r}, []string{pr.Wall}, recordings.Erased{})
	p.keepUnproven(context.Background(), r.Key, pr, pr.Wall, nil)
	if got, ok := p.rc.pending[r.Key]; !ok || got.Legacy != 1 || got.Why == "" {
		t.Errorf("entry with a legacy file pending removal: %+v (there %v); want kept with Legacy 1 and a reason", got, ok)
	}
}
