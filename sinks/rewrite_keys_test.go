package sinks

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
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
	if k := s.rekeyedIn("r1", "d", "f"); k == nil || !k.has("7") || s.rekeyedIn("r2", "d", "f") != nil {
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

// TestRekeyedRowsCompact is review 45's R45-4: every run records the
// rows it left in other files in its own form, a backfill --force nearly
// every row; kept as strings in maps, 2M rows held 136 MiB until the run
// ended. 200,000 call ids confirmed in 200 batches (consecutive per
// file, as a window's file holds them) must hold under 2 MiB; as
// a set of strings they held about 10 MiB. A composite key (not a whole number) is
// kept as it is.
func TestRekeyedRowsCompact(t *testing.T) {
	s, err := NewCSV(CSVOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	before := heap()
	for b := 0; b < 200; b++ {
		keys := make([]string, 1000)
		for i := range keys {
			keys[i] = strconv.Itoa(1_000_000 + b*1000 + i)
		}
		s.noteRekeyed("r1", &batchKeys{dir: "call_history", confirmed: map[string][]string{fmt.Sprintf("f%d", b/20): keys}})
	}
	held := int64(heap()) - int64(before)
	if held > 2<<20 {
		t.Errorf("200,000 rows left in their own form hold %d KiB, want under 2048", held>>10)
	}
	s.noteRekeyed("r1", &batchKeys{dir: "call_history", confirmed: map[string][]string{"f0": {"a\x1fb"}}})
	k := s.rekeyedIn("r1", "call_history", "f0")
	if k == nil || !k.has("1000005") || !k.has("a\x1fb") || k.has("1020000") || !s.rekeyedIn("r1", "call_history", "f9").has("1199999") {
		t.Error("the rows recorded are not the rows confirmed")
	}
	runtime.KeepAlive(s)
}
