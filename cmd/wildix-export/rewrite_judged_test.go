package main

import (
	"context"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
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

// TestRewriteEarlierKeyReadUnderLastRule is review 39's R39-1 HIGH
// (PostgreSQL, 7-digit extensions): rows of a run under an earlier key
// keep their run_id, so a rewrite under a later rule read them as their
// run's rule in the ledger wrote them, not as the rewrite that judged
// them since left them. names under k1; numbers,names under k2 (forced)
// and a backfill with --rewrite (the k1 rows' numbers replaced, their
// colleagues' 7-digit extensions kept readable); then the colleagues
// gone from the PBX and the sink; then all under k2 (forced) and a
// backfill with --rewrite: the k1 rows' readable extensions were judged
// again as if never judged (by names' rule: numbers still to replace),
// against the extensions known that day, and replaced for good. Now
// they are read as written under numbers,names, the union of their run's
// rule and the rules they were judged under (R42-1), and stay readable.
func TestRewriteEarlierKeyReadUnderLastRule(t *testing.T) {
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
		t.Fatalf("backfill with --rewrite under numbers,names: exit %d, %d rows rewritten (want some): %v\n%s", r.code, rewrittenRows(t, r.stderr), r.err, r.stderr)
	}
	for _, q := range []string{"DELETE FROM colleagues", "DELETE FROM devices"} {
		if _, err := pool.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	gone.Store(true)
	// The k1 run's rows no export writes again (a snapshot's rows the
	// forced run under all exports again get its run_id, and its rule's
	// judgement, as any export's): the recordings' (and calls').
	k1Rows := func() int {
		n := 0
		for _, table := range []string{"call_history", "recordings"} {
			for _, row := range queryStrings(t, pool, "SELECT t::text FROM "+table+" t JOIN export_runs r USING (run_id) WHERE r.privacy_rule = 'names'") {
				n += len(longExtension.FindAllString(row, -1))
			}
		}
		return n
	}
	before, all := k1Rows(), len(longExtension.FindAllString(dumpSchema(t, pool, schema), -1))
	if before == 0 {
		t.Fatal("no readable 7-digit extension in the earlier key's rows: the test proves nothing")
	}
	k2all := withEnv(env, "EXPORT_PSEUDONYMIZE=all", "EXPORT_PSEUDONYM_KEY="+testKey2, "EXPORT_PSEUDONYM_PREVIOUS_KEY="+testKey1)
	if r := runCLI(t, k2all, "run", "--once", "--force"); r.code != 0 {
		t.Fatalf("forced run under all, k2: exit %d: %v\n%s", r.code, r.err, r.stderr)
	}
	if r := c.backfill(t, k2all, "--rewrite"); r.code != 0 {
		t.Fatalf("backfill with --rewrite under all: exit %d: %v\n%s", r.code, r.err, r.stderr)
	}
	if after := k1Rows(); after != before {
		t.Errorf("readable 7-digit extensions in the earlier key's rows: %d before the rewrite under all, %d after (replaced for good; %d in the schema before)", before, after, all)
	}
}

// rulesUnionCase is the simulator of review 42's R42-1 tests: 7-digit
// extensions, and colleagues and devices gone (their extensions moved)
// once gone is set.
func rulesUnionCase(t *testing.T, gone *atomic.Bool) *rewriteCase {
	moved := regexp.MustCompile(`\b20002([0-9]{2})\b`)
	return newRewriteCase(t, 100, true, func(o *pbxsim.Options) {
		o.LongExtensions = true
		o.Rewrite = func(r *http.Request, status int, body []byte) (int, []byte) {
			if gone.Load() && (strings.Contains(r.URL.Path, "Colleagues") || strings.Contains(r.URL.Path, "Devices")) {
				return status, moved.ReplaceAll(body, []byte("30002$1"))
			}
			return status, body
		}
	})
}

// TestRewriteReadUnderRulesUnionPG is review 42's R42-1 HIGH
// (PostgreSQL): a rewrite keeps what the row's own rule replaced, so its
// rows are under the union of their run's rule and every rule a rewrite
// judged them under, not under the last. numbers under k1; names (under
// k2, k1 the previous key, or under k1 again: the same key, whose rows
// are restamped) forced, and a backfill with --force --rewrite; the
// colleagues gone; all forced, and a backfill with --rewrite. The
// recordings' rows (no export writes them again) keep every readable
// 7-digit extension: written under numbers, their numbers in clear were
// extensions. Before the fix: 12 -> 0 on both.
func TestRewriteReadUnderRulesUnionPG(t *testing.T) {
	for _, same := range []bool{false, true} {
		t.Run(map[bool]string{false: "earlier_key", true: "same_key"}[same], func(t *testing.T) {
			var gone atomic.Bool
			c := rulesUnionCase(t, &gone)
			ctx := context.Background()
			env, pool, _ := c.pg(t)
			k1 := withEnv(env, "EXPORT_PSEUDONYMIZE=numbers", "EXPORT_PSEUDONYM_KEY="+testKey1)
			if r := runCLI(t, k1, "run", "--once"); r.code != 0 {
				t.Fatalf("run under numbers, k1: exit %d: %v\n%s", r.code, r.err, r.stderr)
			}
			kv := []string{"EXPORT_PSEUDONYMIZE=names", "EXPORT_PSEUDONYM_KEY=" + testKey2, "EXPORT_PSEUDONYM_PREVIOUS_KEY=" + testKey1}
			if same {
				kv = []string{"EXPORT_PSEUDONYMIZE=names", "EXPORT_PSEUDONYM_KEY=" + testKey1}
			}
			if r := runCLI(t, withEnv(env, kv...), "run", "--once", "--force"); r.code != 0 {
				t.Fatalf("forced run under names: exit %d: %v\n%s", r.code, r.err, r.stderr)
			}
			if r := c.backfill(t, withEnv(env, kv...), "--force", "--rewrite"); r.code != 0 {
				t.Fatalf("backfill --force --rewrite under names: exit %d: %v\n%s", r.code, r.err, r.stderr)
			}
			for _, q := range []string{"DELETE FROM colleagues", "DELETE FROM devices"} {
				if _, err := pool.Exec(ctx, q); err != nil {
					t.Fatal(err)
				}
			}
			gone.Store(true)
			count := func() (n int) {
				for _, row := range queryStrings(t, pool, "SELECT t::text FROM recordings t") {
					n += len(longExtension.FindAllString(row, -1))
				}
				return n
			}
			before := count()
			if before == 0 {
				t.Fatal("no readable 7-digit extension in recordings: the test proves nothing")
			}
			kv[0] = "EXPORT_PSEUDONYMIZE=all"
			if r := runCLI(t, withEnv(env, kv...), "run", "--once", "--force"); r.code != 0 {
				t.Fatalf("forced run under all: exit %d: %v\n%s", r.code, r.err, r.stderr)
			}
			if r := c.backfill(t, withEnv(env, kv...), "--rewrite"); r.code != 0 {
				t.Fatalf("backfill --rewrite under all: exit %d: %v\n%s", r.code, r.err, r.stderr)
			}
			if after := count(); after != before {
				t.Errorf("readable 7-digit extensions in recordings: %d before the rewrite under all, %d after (replaced for good)", before, after)
			}
		})
	}
}

// TestRewriteReadUnderRulesUnionCSV is R42-1 on the CSV sink: a file's
// manifest took the rewrite's rule (names), so the next rewrite read the
// file as written under names alone. numbers under k1; names under k2
// forced, and a backfill with --force --rewrite; the colleagues gone; all
// forced, and a backfill with --rewrite: the recordings files keep every
// readable 7-digit extension. Before the fix: 6 -> 0.
func TestRewriteReadUnderRulesUnionCSV(t *testing.T) {
	var gone atomic.Bool
	c := rulesUnionCase(t, &gone)
	dir := t.TempDir()
	env := c.env(t, dir)
	k1 := withEnv(env, "EXPORT_PSEUDONYMIZE=numbers", "EXPORT_PSEUDONYM_KEY="+testKey1)
	if r := runCLI(t, k1, "run", "--once"); r.code != 0 {
		t.Fatalf("run under numbers, k1: exit %d: %v\n%s", r.code, r.err, r.stderr)
	}
	k2 := withEnv(env, "EXPORT_PSEUDONYMIZE=names", "EXPORT_PSEUDONYM_KEY="+testKey2, "EXPORT_PSEUDONYM_PREVIOUS_KEY="+testKey1)
	if r := runCLI(t, k2, "run", "--once", "--force"); r.code != 0 {
		t.Fatalf("forced run under names, k2: exit %d: %v\n%s", r.code, r.err, r.stderr)
	}
	if r := c.backfill(t, k2, "--force", "--rewrite"); r.code != 0 {
		t.Fatalf("backfill --force --rewrite under names: exit %d: %v\n%s", r.code, r.err, r.stderr)
	}
	gone.Store(true)
	for _, ep := range []string{"colleagues", "devices"} {
		os.RemoveAll(filepath.Join(dir, ep))
	}
	count := func() (n int) {
		filepath.WalkDir(filepath.Join(dir, "recordings"), func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() && !strings.HasSuffix(p, ".json") {
				b, _ := os.ReadFile(p)
				n += len(longExtension.FindAllString(string(b), -1))
			}
			return nil
		})
		return n
	}
	before := count()
	if before == 0 {
		t.Fatal("no readable 7-digit extension in the recordings files: the test proves nothing")
	}
	all := withEnv(env, "EXPORT_PSEUDONYMIZE=all", "EXPORT_PSEUDONYM_KEY="+testKey2, "EXPORT_PSEUDONYM_PREVIOUS_KEY="+testKey1)
	if r := runCLI(t, all, "run", "--once", "--force"); r.code != 0 {
		t.Fatalf("forced run under all: exit %d: %v\n%s", r.code, r.err, r.stderr)
	}
	if r := c.backfill(t, all, "--rewrite"); r.code != 0 {
		t.Fatalf("backfill --rewrite under all: exit %d: %v\n%s", r.code, r.err, r.stderr)
	}
	if after := count(); after != before {
		t.Errorf("readable 7-digit extensions in the recordings files: %d before the rewrite under all, %d after (replaced for good)", before, after)
	}
}

// TestRewriteUnionKeepsNoNumberInClearCSV is review 47's R47-1: the
// sequence of TestRewriteReadUnderRulesUnionCSV, counting call_history's
// external numbers in clear. The names backfill updated the first run's
// call rows in place (numbers in clear) while its manifest still said
// numbers; its rewrite stamped the union numbers,names, and the rewrite
// under all took the numbers for replaced: 124 in clear, exit 0. A union
// is now stamped and read only for a file no run updated in place.
func TestRewriteUnionKeepsNoNumberInClearCSV(t *testing.T) {
	for _, same := range []bool{false, true} {
		t.Run(map[bool]string{false: "earlier_key", true: "same_key"}[same], func(t *testing.T) {
			var gone atomic.Bool
			c := rulesUnionCase(t, &gone)
			dir := t.TempDir()
			env := c.env(t, dir)
			k1 := withEnv(env, "EXPORT_PSEUDONYMIZE=numbers", "EXPORT_PSEUDONYM_KEY="+testKey1)
			if r := runCLI(t, k1, "run", "--once"); r.code != 0 {
				t.Fatalf("run under numbers: exit %d: %v\n%s", r.code, r.err, r.stderr)
			}
			kv := []string{"EXPORT_PSEUDONYMIZE=names", "EXPORT_PSEUDONYM_KEY=" + testKey2, "EXPORT_PSEUDONYM_PREVIOUS_KEY=" + testKey1}
			allkv := []string{"EXPORT_PSEUDONYMIZE=all", "EXPORT_PSEUDONYM_KEY=" + testKey2, "EXPORT_PSEUDONYM_PREVIOUS_KEY=" + testKey1}
			if same {
				kv = []string{"EXPORT_PSEUDONYMIZE=names", "EXPORT_PSEUDONYM_KEY=" + testKey1}
				allkv = []string{"EXPORT_PSEUDONYMIZE=all", "EXPORT_PSEUDONYM_KEY=" + testKey1}
			}
			k2 := withEnv(env, kv...)
			if r := runCLI(t, k2, "run", "--once", "--force"); r.code != 0 {
				t.Fatalf("forced run under names: exit %d: %v\n%s", r.code, r.err, r.stderr)
			}
			if r := c.backfill(t, k2, "--force", "--rewrite"); r.code != 0 {
				t.Fatalf("backfill --force --rewrite under names: exit %d: %v\n%s", r.code, r.err, r.stderr)
			}
			all := withEnv(env, allkv...)
			if r := runCLI(t, all, "run", "--once", "--force"); r.code != 0 {
				t.Fatalf("forced run under all: exit %d: %v\n%s", r.code, r.err, r.stderr)
			}
			if r := c.backfill(t, all, "--rewrite"); r.code != 0 {
				t.Fatalf("backfill --rewrite under all: exit %d: %v\n%s", r.code, r.err, r.stderr)
			}
			if r := runCLI(t, all, "run", "--once"); r.code != 0 {
				t.Fatalf("run under all after: exit %d: %v\n%s", r.code, r.err, r.stderr)
			}
			clear := regexp.MustCompile(`\+39\d{8,}`)
			files, _ := filepath.Glob(filepath.Join(dir, "call_history", "*.csv"))
			if len(files) == 0 {
				t.Fatal("no call_history file: the test proves nothing")
			}
			n := 0
			for _, f := range files {
				b, _ := os.ReadFile(f)
				n += len(clear.FindAllString(string(b), -1))
			}
			if n > 0 {
				t.Errorf("call_history under rule all holds %d external numbers in clear", n)
			}
		})
	}
}
