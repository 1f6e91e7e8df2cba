package sinks

import (
	"context"
	"os"
	"testing"
)

// TestSuppressionStampWithoutDot (attack 8, F2 MEDIUM): a restore that
// skips dot files skips .suppressed.stamp.json too. .state restored from
// a copy taken between forget A and forget B (B's number in no row, so
// B rewrote no data file), the dot stamp gone with the restore: the
// check passed (the list and the ledger agree, no manifest tells), and
// B's calls would be written again. The forget stamp is now also kept
// without the dot (suppressed.stamp.json), which such a restore keeps,
// and the check refuses naming it. With the list restored from after B,
// it passes.
func TestSuppressionStampWithoutDot(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newStampFolder(t, []int{1, 2, 3}, []int{4})
	if err := f.forget("+393471100028", 1, false); err != nil {
		t.Fatal(err)
	}
	afterA := f.copyState()
	if err := f.forget("+393471100037", 0, false); err != nil { // in no row
		t.Fatal(err)
	}
	afterB := f.copyState()
	f.restoreState(afterA)
	if err := os.Remove(f.s.stampFile()); err != nil {
		t.Fatal(err)
	}
	f.open()
	wantLost(t, "the state folder restored from between the forgets, the dot stamp skipped", f.s.CheckSuppression(ctx),
		f.s.plainStampFile(), "held 2 number(s)", "1 of them missing")

	f.restoreState(afterB)
	if err := f.s.CheckSuppression(ctx); err != nil {
		t.Fatalf("the list restored from after forget B: %v", err)
	}
}
