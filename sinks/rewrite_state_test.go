package sinks

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wildix-export/wildix-export/exporter/record"
)

// removeDotFiles deletes the dot files of dir, as a copy of the folder
// leaving them out would.
func removeDotFiles(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") && e.Type().IsRegular() {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestCSVRecordsKeptWithoutDotFiles: the CSV sink's pending prune and
// retention limit were .state/<pbx>/.retention-pending.json and
// .retention.json, lost when a copy of the folder left out dot files:
// a prune stopped after removing recordings' files was then never
// settled (rows naming files that are gone, in silence), and the
// shorter-limit guard fell back on the run ledger. They are kept now
// (retention~pending.json, retention~limit.json, as rewrite~due.json);
// an earlier release's dot-named records are still read, and removed
// when stored again or cleared; and none of the three records alone is
// state (anyPBXState, hasCursorState).
func TestCSVRecordsKeptWithoutDotFiles(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cut := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	sp := newStoppedPrune(t, "csv", cut)
	sp.stopAt(t, cut, 3) // two files removed, their rows kept
	c := sp.s.(*CSV)
	if err := c.SetRetentionLimit(ctx, "p", "r1", 10*24*time.Hour); err != nil {
		t.Fatal(err)
	}
	removeDotFiles(t, c.stateDir("p"))
	s, err := NewCSV(CSVOptions{Dir: c.opt.Dir}) // the copy, in another process
	if err != nil {
		t.Fatal(err)
	}
	if d, err := s.RetentionLimit(ctx, "p"); err != nil || d != 10*24*time.Hour {
		t.Errorf("the retention limit after a copy without dot files: %v (%v), want 10 days", d, err)
	}
	if pp, err := s.pending(ctx, "p"); err != nil || pp == nil || !pp.Cut.Equal(cut) {
		t.Fatalf("the pending prune after a copy without dot files: %+v (%v), want its cut %v", pp, err, cut)
	}
	if _, was, err := s.FinishPrune(ctx, "p", record.Builtin(), PruneOptions{Batch: 4, Recordings: sp.store, Store: sp.where}); err != nil || !was.Equal(cut) {
		t.Fatalf("FinishPrune: cut %v (%v), want %v", was, err, cut)
	}
	rows, _ := sp.state()
	for id, name := range sp.rows() {
		if !sp.stored(name) {
			t.Errorf("recording %s: its row names %s, not stored", id, name)
		}
	}
	if len(rows) != 8 {
		t.Errorf("rows %v after the stopped prune was settled, want 8", rows)
	}

	// An earlier release's records, under their dot names.
	dir := s.stateDir("q")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{".retention.json": `{"seconds":864000}`, ".retention-pending.json": `{"cut":"2026-01-01T00:00:00Z"}`} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if d, err := s.RetentionLimit(ctx, "q"); err != nil || d != 10*24*time.Hour {
		t.Errorf("the dot-named retention limit: %v (%v), want 10 days", d, err)
	}
	if pp, err := s.pending(ctx, "q"); err != nil || pp == nil || !pp.Cut.Equal(cut) {
		t.Errorf("the dot-named pending prune: %+v (%v), want its cut", pp, err)
	}
	if err := s.SetRetentionLimit(ctx, "q", "r2", 20*24*time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := s.setPending(ctx, "q", nil); err != nil {
		t.Fatal(err)
	}
	if d, err := s.RetentionLimit(ctx, "q"); err != nil || d != 20*24*time.Hour {
		t.Errorf("the retention limit stored again: %v (%v), want 20 days", d, err)
	}
	if pp, err := s.pending(ctx, "q"); err != nil || pp != nil {
		t.Errorf("the pending prune cleared: %+v (%v), want none", pp, err)
	}
	if got, _ := filepath.Glob(filepath.Join(dir, ".retention*")); len(got) != 0 {
		t.Errorf("dot-named records left after storing and clearing: %v", got)
	}

	// The three records alone are no state.
	empty, err := NewCSV(CSVOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if err := empty.SetRetentionLimit(ctx, "r", "r3", 24*time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := empty.setPending(ctx, "r", &pendingPrune{Cut: cut}); err != nil {
		t.Fatal(err)
	}
	if err := empty.SetRewriteDue(ctx, "r", &RewriteDue{Run: "r3", Rule: "numbers", Asked: cut}); err != nil {
		t.Fatal(err)
	}
	if any, err := empty.anyPBXState(); err != nil || any {
		t.Errorf("anyPBXState with only the records: %v (%v), want false", any, err)
	}
	if has, err := empty.hasCursorState("r"); err != nil || has {
		t.Errorf("hasCursorState with only the records: %v (%v), want false", has, err)
	}
}
