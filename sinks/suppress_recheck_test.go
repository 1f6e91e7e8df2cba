package sinks

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestSuppressionCheckForgetLanding (review 21, R21-1): a forget landing
// while a run checks the list (after the check read the list, before it
// read the run ledger and the forget stamps, which the forget wrote
// meanwhile) no longer refuses the run: the check reads the list again
// and checks it again when it changed. A list restored from an older
// copy is still refused, read twice (it did not change). Both sinks.
func TestSuppressionCheckForgetLanding(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for kind, open := range rawLists(t) {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			r := open(t)
			forgetRun(t, r, "+393471100028", true)
			check := func(read func(context.Context) (*Suppression, error)) error {
				if r.csv != nil {
					return r.csv.checkSuppression(ctx, read, true)
				}
				return r.store.(*Postgres).checkSuppression(ctx, read)
			}
			reads := 0
			landing := func(ctx context.Context) (*Suppression, error) {
				reads++
				l, err := r.store.Suppression(ctx)
				if reads == 1 {
					forgetRun(t, r, "+393471100037", true) // lands here
				}
				return l, err
			}
			if err := check(landing); err != nil {
				t.Fatalf("a forget landing during the check: %v (want none: the list holds both numbers)", err)
			}
			if reads != 2 {
				t.Errorf("the list was read %d time(s), want 2 (read again once the check failed)", reads)
			}

			older := r.read()
			forgetRun(t, r, "+393471100046", true)
			r.write(older)
			reads = 0
			counted := func(ctx context.Context) (*Suppression, error) {
				reads++
				return r.store.Suppression(ctx)
			}
			if err := check(counted); !errors.Is(err, ErrSuppressionLost) {
				t.Fatalf("an older list restored: %v, want ErrSuppressionLost", err)
			}
			if reads != 2 {
				t.Errorf("the restored list was read %d time(s), want 2 (it did not change)", reads)
			}
		})
	}
}

// TestSuppressionDryCheckWritesNothing (review 21, R21-2): the read-only
// check forget --dry-run makes refuses a list the forget would be refused
// on (.state restored from a copy taken between two forgets, the forget
// stamp outside it naming the later one) and, passing, writes no mark of
// the manifests it read (.state/.suppressed.checked.json), which
// CheckSuppression writes.
func TestSuppressionDryCheckWritesNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := rawLists(t)["csv"](t)
	dir := r.csv.opt.Dir
	forgetRun(t, r, "+393471100028", true) // its check marks the folder as it is: no manifest
	man := filepath.Join(dir, "call_history", "pbx-1_20261207T113550Z-133c3d_0001.manifest.json")
	if err := os.MkdirAll(filepath.Dir(man), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(man, []byte(`{"file":"pbx-1_20261207T113550Z-133c3d_0001.csv","rows":600}`), 0o600); err != nil {
		t.Fatal(err)
	}
	was, _ := os.ReadFile(r.csv.checkedFile())
	if err := r.csv.CheckSuppressionReadOnly(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(r.csv.checkedFile()); string(got) != string(was) {
		t.Fatalf("the read-only check wrote the mark %s: %s", r.csv.checkedFile(), got)
	}
	if err := r.csv.CheckSuppression(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(r.csv.checkedFile()); string(got) == string(was) {
		t.Fatalf("CheckSuppression did not mark the new manifest either: the test proves nothing")
	}

	state := filepath.Join(dir, ".state")
	backup := filepath.Join(t.TempDir(), "state")
	if err := os.CopyFS(backup, os.DirFS(state)); err != nil {
		t.Fatal(err)
	}
	forgetRun(t, r, "+393471100037", true)
	if err := os.RemoveAll(state); err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(state, os.DirFS(backup)); err != nil {
		t.Fatal(err)
	}
	// Refusing, no check writes the mark (whether it may or not), so
	// only the refusal is asserted here (review 30, R30-1).
	err := r.csv.CheckSuppressionReadOnly(ctx)
	if !errors.Is(err, ErrSuppressionLost) {
		t.Fatalf("read-only check of the list restored from between two forgets: %v, want ErrSuppressionLost", err)
	}
}

// TestSuppressionCheckChangedStillLost (review 30, R30-1): a lost list
// (restored from a copy taken between two forgets) that changes between
// the check's reads (another run's TagSuppression, a forget's national
// forms) and stays lost is refused still: re-read, it is checked again,
// never accepted for having changed. Both sinks.
func TestSuppressionCheckChangedStillLost(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for kind, open := range rawLists(t) {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			r := open(t)
			forgetRun(t, r, "+393471100028", true)
			older := r.read()
			forgetRun(t, r, "+393471100046", true)
			r.write(older)
			reads := 0
			changing := func(ctx context.Context) (*Suppression, error) {
				reads++
				l, err := r.store.Suppression(ctx)
				if err == nil && reads > 1 {
					l.Numbers = append(l.Numbers, SuppressedNumber{Hash: fmt.Sprintf("t:national%d", reads), Added: time.Now(), National: true})
				}
				return l, err
			}
			var err error
			if r.csv != nil {
				err = r.csv.checkSuppression(ctx, changing, true)
			} else {
				err = r.store.(*Postgres).checkSuppression(ctx, changing)
			}
			if !errors.Is(err, ErrSuppressionLost) {
				t.Fatalf("a lost list that changed between reads: %v, want ErrSuppressionLost (read %d times)", err, reads)
			}
			if reads < 2 {
				t.Errorf("the list was read %d time(s): the changing read was never made, the test proves nothing", reads)
			}
		})
	}
}
