package sinks

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestCSVStateCleansWhatAKilledRunLeft: a run killed mid-batch leaves a
// temporary file; the next run may find nothing new and begin no batch,
// so reading the endpoint's state cleans it. Another PBX's temporary file
// in the same folder, even one whose id starts the same, stays.
func TestCSVStateCleansWhatAKilledRunLeft(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	folder := filepath.Join(dir, "call_history")
	if err := os.Mkdir(folder, 0o755); err != nil {
		t.Fatal(err)
	}
	past := time.Now().Add(-time.Hour)
	mine := filepath.Join(folder, tmpPrefix("a")+"a_run_0013.csv.tmp-0123abcd")
	other := filepath.Join(folder, tmpPrefix("a_b")+"a_b_run_0002.csv.tmp-89abcdef")
	for _, p := range []string{mine, other} {
		if err := os.WriteFile(p, []byte("id\n1\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, past, past); err != nil {
			t.Fatal(err)
		}
	}
	s, err := NewCSV(CSVOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.State(context.Background(), "a", "call_history"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(mine); !os.IsNotExist(err) {
		t.Fatalf("a's file of a killed run is still there (%v)", err)
	}
	if _, err := os.Stat(other); err != nil {
		t.Fatalf("a_b's file was touched: %v", err)
	}
}
