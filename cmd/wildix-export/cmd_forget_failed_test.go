package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wildix-export/wildix-export/internal/pbxsim"
	"github.com/wildix-export/wildix-export/internal/pgtest"
	"github.com/wildix-export/wildix-export/internal/pseudonym"
)

// TestForgetFailedAfterRemovingRecordingsCountsThemOnce is review 13's
// R13-1: a forget that fails (not killed) after removing the number's
// recording files, before any row is erased (call_history held: its
// lock_timeout), records them in its failed ledger entry; the forget
// that completes the erasure finds them gone, takes them as removed by
// the failed attempt, and must not count them again: the ledger's
// forget entries count each file once (before the fix, twice: the
// failed entry and the completing one both said "recording files
// removed: n").
func TestForgetFailedAfterRemovingRecordingsCountsThemOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := recPBX(t, 120, 2*time.Hour, pbxsim.RecordingOptions{Every: 1})
	store := dirStore(t)
	schema, pool := pgtest.Schema(t)
	kv := fixtureEnv(f, t.TempDir(), append([]string{"EXPORT_SINK=postgres", "EXPORT_DB_SCHEMA=" + schema, "EXPORT_ENDPOINTS=call_history,recordings",
		"WILDIX_RECORDINGS_TOKEN=" + recToken}, store.env...)...)
	url := "EXPORT_DATABASE_URL=" + pgtest.URL()
	env := append(slices.Clone(kv), url)
	if r := runCLI(t, env, "run", "--once"); r.code != exitOK {
		t.Fatalf("run --once: exit %d: %v\n%s", r.code, r.err, r.stderr)
	}
	count := map[string]int{}
	for _, r := range f.Sim.Recordings() {
		if d, ok := pseudonym.Canonical(r.Number); ok && len(d) >= 7 {
			count[d]++
		}
	}
	number := ""
	for d, n := range count {
		if n > count[number] || n == count[number] && d < number {
			number = d
		}
	}
	before := len(store.files(t))
	dry := runCLI(t, env, "forget", "--number", "+"+number, "--dry-run")
	var files int
	for _, l := range strings.Split(dry.stdout, "\n") {
		if _, err := fmt.Sscanf(l, "found: %d stored recording file(s)", &files); err == nil {
			break
		}
	}
	if dry.code != exitOK || files == 0 {
		t.Fatalf("forget --dry-run: exit %d, %d recording files: the test proves nothing\n%s", dry.code, files, dry.stdout)
	}

	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, "SELECT 1 FROM call_history FOR UPDATE"); err != nil {
		t.Fatal(err)
	}
	sep := "?"
	if strings.Contains(pgtest.URL(), "?") {
		sep = "&"
	}
	r := runCLI(t, append(slices.Clone(kv), url+sep+"options=-c%20lock_timeout%3D500"), "forget", "--number", "+"+number)
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if r.code != exitFailed {
		t.Fatalf("forget with call_history held: exit %d (want 1): %v\n%s%s", r.code, r.err, r.stdout, r.stderr)
	}
	if gone := before - len(store.files(t)); gone != files {
		t.Fatalf("the failed forget removed %d of the %d files: not the moment the test needs\n%s%s%v", gone, files, r.stdout, r.stderr, r.err)
	}
	if r := runCLI(t, env, "forget", "--number", "+"+number); r.code != exitOK {
		t.Fatalf("forget again: exit %d: %v\n%s%s", r.code, r.err, r.stdout, r.stderr)
	}
	var removed int
	for _, n := range queryStrings(t, pool, `SELECT n FROM export_run_endpoints, unnest(notes) n WHERE endpoint = 'forget' AND n LIKE 'recording files removed: %'`) {
		var k int
		if _, err := fmt.Sscanf(n, "recording files removed: %d", &k); err != nil {
			t.Fatal(err)
		}
		removed += k
	}
	if removed != files {
		t.Errorf("the ledger's forget entries count %d recording files removed, want %d (each once)", removed, files)
	}
}
