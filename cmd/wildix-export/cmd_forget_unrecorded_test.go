package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/wildix-export/wildix-export/internal/pbxsim"
	"github.com/wildix-export/wildix-export/simtest"
	"github.com/wildix-export/wildix-export/sinks"
)

// TestForgetStoppedAfterTheList (attack 9, F1 MEDIUM), PostgreSQL: a
// forget stopped between adding its number to the suppression list and
// writing its journal entry (here: the list's Suppress alone) left the
// rows with the number, and no warning; a rerun said "already in the
// list" and recorded no addition, so a list lost later was not refused
// and a backfill brought the number back. Now a run's start warns of
// it, the rerun erases the rows and records the addition, and the list
// lost afterwards is refused (exit 2).
func TestForgetStoppedAfterTheList(t *testing.T) {
	t.Parallel()
	const calls = 150
	f := simtest.New(t, pbxsim.Options{Calls: calls, CallGap: time.Minute})
	f.Authorize(t)
	kv, pool, schema := pgEnv(t, f)
	if r := runBin(t, kv, "", "run", "--once"); r.code != 0 {
		t.Fatalf("run: exit %d\n%s", r.code, r.stderr)
	}
	d := simNumber(t, f.Sim, calls)
	n, err := sinks.NewForgotten("+" + d)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, added, err := sinks.NewPostgres(pool, schema, nil).Suppress(ctx, n, nil); err != nil || !added {
		t.Fatalf("Suppress: %v, %v", added, err)
	}
	r := runBin(t, kv, "", "run", "--once")
	if r.code != 0 || !strings.Contains(r.stderr, "a forget was stopped after adding its number") {
		t.Errorf("run after the stopped forget: exit %d, want 0 warning of it\n%s", r.code, r.stderr)
	}
	r = runBin(t, kv, "", "forget", "--number", "+"+d)
	if r.code != 0 || !strings.Contains(r.stdout, "erased: call_history") {
		t.Fatalf("forget again: exit %d, want 0 erasing the rows\n%s%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, "records the addition") {
		t.Errorf("forget again does not say it records the addition:\n%s", r.stdout)
	}
	if r := runBin(t, kv, "", "run", "--once"); r.code != 0 || strings.Contains(r.stderr, "a forget was stopped after adding its number") {
		t.Errorf("run after the rerun: exit %d, want 0 and no warning\n%s", r.code, r.stderr)
	}
	// The list lost: refused, not a backfill writing the number again.
	if _, err := pool.Exec(ctx, fmt.Sprintf(`DELETE FROM %q.export_state WHERE pbx = '' AND key = 'suppressed numbers'`, schema)); err != nil {
		t.Fatal(err)
	}
	r = runBin(t, kv, "", "backfill", "--from", "2025-01-01", "--to", "2027-01-01", "--force", "--window", "2160h")
	if r.code != exitConfig || !strings.Contains(r.stderr, "missing numbers") {
		t.Errorf("backfill with the list lost: exit %d, want %d refusing it\n%s", r.code, exitConfig, r.stderr)
	}
}

// TestForgetUnrecordedJournalApart (attack 9, F1): the additions the
// forget journal's open entries made are not counted as unrecorded: a
// forget of number X killed after its journal entry (which records X's
// addition when completed), then a forget of Y, listed and recorded
// already, must not record an addition too, else completing X made the
// ledger count more additions than the list holds numbers, and every
// run was refused as if the list were lost.
func TestForgetUnrecordedJournalApart(t *testing.T) {
	t.Parallel()
	const calls = 150
	f := simtest.New(t, pbxsim.Options{Calls: calls, CallGap: time.Minute})
	f.Authorize(t)
	kv, pool, schema := pgEnv(t, f)
	if r := runBin(t, kv, "", "run", "--once"); r.code != 0 {
		t.Fatalf("run: exit %d\n%s", r.code, r.stderr)
	}
	const y = "+390123456789"
	if r := runBin(t, kv, "", "forget", "--number", y); r.code != 0 {
		t.Fatalf("forget Y: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	x := "+" + simNumber(t, f.Sim, calls)
	n, err := sinks.NewForgotten(x)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	p := sinks.NewPostgres(pool, schema, nil)
	h, added, err := p.Suppress(ctx, n, nil)
	if err != nil || !added {
		t.Fatalf("Suppress X: %v, %v", added, err)
	}
	started := time.Now().UTC()
	if err := p.BeginForget(ctx, sinks.ForgetBegun{ID: "forget-x", PBX: "pbx", Started: started, Tag: sinks.ForgetTag(h), Search: forgetSearch(n, false, nil), Rows: 1, Added: true}); err != nil {
		t.Fatal(err)
	}
	r := runBin(t, kv, "", "forget", "--number", y)
	if r.code != 0 || strings.Contains(r.stdout, "records the addition") || !strings.Contains(r.stdout, "Already in the suppression list.") {
		t.Errorf("forget Y again: exit %d, want 0 recording no addition\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := runBin(t, kv, "", "forget", "--number", x); r.code != 0 || !strings.Contains(r.stdout, "Completing the erasure") {
		t.Fatalf("forget X again: exit %d, want 0 completing it\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := runBin(t, kv, "", "run", "--once"); r.code != 0 {
		t.Errorf("run after both: exit %d, want 0\n%s", r.code, r.stderr)
	}
}
