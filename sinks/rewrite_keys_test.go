package sinks

import (
	"context"
	"testing"
	"time"

	"github.com/wildix-export/wildix-export/exporter"
)

// TestRekeyedRowsForgottenAtRunEnd: the rows a run left in other files
// in its own form (attack 9, F6) are kept for its AfterRun only, and
// dropped when its ledger line is written, so a worker running for
// months does not keep every run's keys.
func TestRekeyedRowsForgottenAtRunEnd(t *testing.T) {
	t.Parallel()
	s, err := NewCSV(CSVOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	s.noteRekeyed("r1", &batchKeys{dir: "d", confirmed: map[string][]string{"f": {"7"}}})
	if !s.rekeyedIn("r1", "d", "f")["7"] || s.rekeyedIn("r2", "d", "f") != nil {
		t.Fatal("the rows left in their own form are not recorded per run")
	}
	now := time.Now().UTC()
	if err := s.FinishRun(context.Background(), &exporter.RunResult{ID: "r1", PBX: "p", Mode: "backfill", Started: now, Ended: now, Status: "ok"}); err != nil {
		t.Fatal(err)
	}
	if s.rekeyedIn("r1", "d", "f") != nil {
		t.Error("the run's record of rows left in their own form outlives its end")
	}
}
