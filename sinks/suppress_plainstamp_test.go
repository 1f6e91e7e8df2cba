package sinks

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// TestSuppressionStampWithoutDot (attack 8, F2 MEDIUM): a restore that
// skips dot files skips .suppressed.stamp.json too. .state restored from
// a copy taken between forget A and forget B (B's number in no row, so
// B rewrote no data file), the dot stamp gone with the restore: the
// check passed (the list and the ledger agree, no manifest tells), and
// B's calls would be written again. The forget stamp is now also kept
// without the dot (wildix-export.forget-stamp.json), which such a restore keeps,
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

// TestSuppressionStampUsersFile (R31-1 LOW): a user's own file named
// suppressed.stamp.json (the name the stamp without the dot had) at the
// folder's top was read as forget's stamp, and every check refused (exit
// 2, "damaged"). The stamp is now written as wildix-export.forget-stamp.json;
// the old name is read only when it is a stamp the program wrote, and
// such a one still refuses a list restored from before its forget; the
// next forget removes it.
func TestSuppressionStampUsersFile(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newStampFolder(t, []int{1, 2, 3}, []int{4})
	if err := f.forget("+393471100028", 1, false); err != nil {
		t.Fatal(err)
	}
	for _, user := range []string{`{"hello":"world"}`, "not JSON at all", `{"numbers":0,"at":"2026-01-01T00:00:00Z"}`, `{"numbers":1,"at":"2026-01-01T00:00:00Z","tags":["a"],"mine":true}`} {
		if err := os.WriteFile(f.s.oldPlainStampFile(), []byte(user), 0o600); err != nil {
			t.Fatal(err)
		}
		f.open()
		if err := f.s.CheckSuppression(ctx); err != nil {
			t.Fatalf("a user's own %s (%s): %v", f.s.oldPlainStampFile(), user, err)
		}
	}
	if err := os.Remove(f.s.oldPlainStampFile()); err != nil {
		t.Fatal(err)
	}
	// Nor does a directory of that name (review 44, R44-4: read as a
	// file, it failed every run).
	if err := os.MkdirAll(filepath.Join(f.s.oldPlainStampFile(), "inside"), 0o700); err != nil {
		t.Fatal(err)
	}
	f.open()
	if err := f.s.CheckSuppression(ctx); err != nil {
		t.Fatalf("a directory named %s: %v", f.s.oldPlainStampFile(), err)
	}
	if err := os.RemoveAll(f.s.oldPlainStampFile()); err != nil {
		t.Fatal(err)
	}

	// A stamp the program wrote under the old name still counts.
	afterA := f.copyState()
	if err := f.forget("+393471100037", 0, false); err != nil { // in no row
		t.Fatal(err)
	}
	if _, err := os.Stat(f.s.plainStampFile()); err != nil {
		t.Fatalf("the stamp without the dot, under its new name: %v", err)
	}
	if err := os.Rename(f.s.plainStampFile(), f.s.oldPlainStampFile()); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(f.s.stampFile()); err != nil {
		t.Fatal(err)
	}
	afterB := f.copyState()
	f.restoreState(afterA)
	wantLost(t, "the state folder restored from between the forgets, the old stamp kept", f.s.CheckSuppression(ctx),
		f.s.oldPlainStampFile(), "held 2 number(s)", "1 of them missing")
	f.restoreState(afterB)
	if err := f.forget("+393471100046", 0, false); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(f.s.oldPlainStampFile()); !os.IsNotExist(err) {
		t.Errorf("the old stamp, the program's, after the next forget: %v; want it removed", err)
	}
}
