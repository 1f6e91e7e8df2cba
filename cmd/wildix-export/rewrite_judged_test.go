package main

import (
	"context"
	"net/http"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/wildix-export/wildix-export/internal/pbxsim"
)

// TestRewriteEarlierKeyJudgedOnce is review 35's R35-1 (PostgreSQL,
// simulator with 7-digit extensions): rows of a run under an earlier key
// keep their run_id (EarlierKeyRows counts by it), yet a rewrite judges
// them once. names under k1, then numbers,names under k2 (forced, k1 as
// the previous key) and a backfill with --rewrite; then the colleagues
// and devices are gone (the PBX no longer knows the 7-digit extensions)
// and a second backfill with --rewrite must rewrite nothing and leave
// every readable 7-digit extension as it was. Before the fix it rewrote
// 4 rows and replaced 22 extensions for good.
func TestRewriteEarlierKeyJudgedOnce(t *testing.T) {
	var gone atomic.Bool
	moved := regexp.MustCompile(`\b20002([0-9]{2})\b`)
	c := newRewriteCase(t, 100, true, func(o *pbxsim.Options) {
		o.LongExtensions = true
		o.Rewrite = func(r *http.Request, status int, body []byte) (int, []byte) {
			if gone.Load() && (strings.Contains(r.URL.Path, "Colleagues") || strings.Contains(r.URL.Path, "Devices")) {
				return status, moved.ReplaceAll(body, []byte("30002$1"))
			}
			return status, body
		}
	})
	ctx := context.Background()
	env, pool, schema := c.pg(t)
	k1 := withEnv(env, "EXPORT_PSEUDONYMIZE=names", "EXPORT_PSEUDONYM_KEY="+testKey1)
	if r := runCLI(t, k1, "run", "--once"); r.code != 0 {
		t.Fatalf("run under names, k1: exit %d: %v\n%s", r.code, r.err, r.stderr)
	}
	k2 := withEnv(env, "EXPORT_PSEUDONYMIZE=numbers,names", "EXPORT_PSEUDONYM_KEY="+testKey2, "EXPORT_PSEUDONYM_PREVIOUS_KEY="+testKey1)
	if r := runCLI(t, k2, "run", "--once", "--force"); r.code != 0 {
		t.Fatalf("forced run under numbers,names, k2: exit %d: %v\n%s", r.code, r.err, r.stderr)
	}
	if r := c.backfill(t, k2, "--force", "--rewrite"); r.code != 0 || rewrittenRows(t, r.stderr) <= 0 {
		t.Fatalf("first backfill with --rewrite: exit %d, %d rows rewritten (want some): %v\n%s", r.code, rewrittenRows(t, r.stderr), r.err, r.stderr)
	}
	for _, q := range []string{"DELETE FROM colleagues", "DELETE FROM devices"} {
		if _, err := pool.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	gone.Store(true)
	before := len(longExtension.FindAllString(dumpSchema(t, pool, schema), -1))
	if before == 0 {
		t.Fatal("no readable 7-digit extension before the second rewrite: the test proves nothing")
	}
	r := c.backfill(t, k2, "--rewrite")
	if r.code != 0 {
		t.Fatalf("second backfill with --rewrite: exit %d: %v\n%s", r.code, r.err, r.stderr)
	}
	if n := rewrittenRows(t, r.stderr); n != 0 {
		t.Errorf("second backfill with --rewrite rewrote %d rows, want 0 (every row was judged by the first)", n)
	}
	if after := len(longExtension.FindAllString(dumpSchema(t, pool, schema), -1)); after != before {
		t.Errorf("readable 7-digit extensions: %d before the second rewrite, %d after (replaced for good)", before, after)
	}
	// The rows under k1 still count as under the earlier key.
	if !strings.Contains(r.stderr, "earlier") {
		t.Errorf("the second backfill no longer says rows are under the earlier key:\n%s", r.stderr)
	}
}
