package sinks

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/wildix-export/wildix-export/internal/safefile"
)

// TestCSVStateCleansWhatAKilledRunLeft: a run killed mid-batch or while
// writing a manifest or the key index leaves a temporary file; the next
// run may find nothing new, or a backfill every window done, and begin no
// batch, so reading any state of the PBX (the nightly cursor's or a
// backfill window's) cleans them all. Another PBX's temporary file in the
// same folder, even one whose id starts the same, stays.
func TestCSVStateCleansWhatAKilledRunLeft(t *testing.T) {
	t.Parallel()
	for _, key := range []string{"call_history", "backfill/call_history/2026-01-01 00:00:00/2026-01-02 00:00:00"} {
		t.Run(key, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			folder := filepath.Join(dir, "call_history")
			state := filepath.Join(dir, ".state", "a")
			for _, d := range []string{folder, state} {
				if err := os.MkdirAll(d, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			past := time.Now().Add(-time.Hour)
			mine := []string{
				filepath.Join(folder, tmpPrefix("a")+"a_run_0013.csv.tmp-0123abcd"),
				// A manifest's, as safefile.WriteVia names it.
				filepath.Join(folder, tmpPrefix("a")+"a_backfill_20260101T000000_20260102T000000.manifest.json.tmp-123456"),
				// The key index's, as safefile.Write names it.
				filepath.Join(state, ".call_history~keys.json.tmp-987654"),
			}
			other := filepath.Join(folder, tmpPrefix("a_b")+"a_b_run_0002.csv.tmp-89abcdef")
			for _, p := range append(mine, other) {
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
			if _, err := s.State(context.Background(), "a", key); err != nil {
				t.Fatal(err)
			}
			for _, p := range mine {
				if _, err := os.Stat(p); !os.IsNotExist(err) {
					t.Errorf("a's temporary file %s of a killed run is still there (%v)", filepath.Base(p), err)
				}
			}
			if _, err := os.Stat(other); err != nil {
				t.Fatalf("a_b's file was touched: %v", err)
			}
		})
	}
}

// TestCSVStateCleansListTemporaries: a forget killed while it replaced
// the suppression list or the forget journal (safefile.Write) left
// "..suppressed.json.tmp-NNN" or "..forget-journal.json.tmp-NNN" in
// .state for good (attack 6, F2). The next start removes those of
// exactly that form left before it started, under the list's lock: held
// by another, they stay until a later start; a name of another form, or
// one made after the start, stays.
func TestCSVStateCleansListTemporaries(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	state := filepath.Join(dir, ".state")
	if err := os.MkdirAll(state, 0o755); err != nil {
		t.Fatal(err)
	}
	past := time.Now().Add(-time.Hour)
	write := func(name string, at time.Time) string {
		t.Helper()
		p := filepath.Join(state, name)
		if err := os.WriteFile(p, []byte(`{"numbers":[]}`), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, at, at); err != nil {
			t.Fatal(err)
		}
		return p
	}
	stale := []string{
		write("..suppressed.json.tmp-1711639279", past),
		write("..forget-journal.json.tmp-2101015597", past),
		write("..suppressed.checked.json.tmp-42", past),
	}
	kept := []string{
		write(".suppressed.json", past),
		write("..suppressed.json.tmp-12ab", past),
		write("..suppressed.json.tmp-", past),
		write("x..suppressed.json.tmp-1", past),
		write("..idkeys.json.tmp-77", past), // not this sweep's
		write("..suppressed.json.tmp-5", time.Now().Add(time.Hour)),
	}
	exists := func(p string) bool {
		_, err := os.Stat(p)
		return err == nil
	}
	// The list's lock held by another process: nothing removed.
	held := safefile.NewLock(filepath.Join(state, ".suppressed.lock"), fileMode)
	if ok, err := held.TryLock(); err != nil || !ok {
		t.Fatalf("lock: %v %v", ok, err)
	}
	s, err := NewCSV(CSVOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Recover(context.Background(), "a"); err != nil {
		t.Fatal(err)
	}
	for _, p := range stale {
		if !exists(p) {
			t.Errorf("%s removed while another held the list's lock", filepath.Base(p))
		}
	}
	held.Unlock()
	s, err = NewCSV(CSVOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Recover(context.Background(), "a"); err != nil {
		t.Fatal(err)
	}
	for _, p := range stale {
		if exists(p) {
			t.Errorf("the killed forget's temporary %s is still there", filepath.Base(p))
		}
	}
	for _, p := range kept {
		if !exists(p) {
			t.Errorf("%s was removed: not a stale temporary of the list's", filepath.Base(p))
		}
	}
}
