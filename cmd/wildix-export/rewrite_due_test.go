package main

import (
	"context"
	"errors"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wildix-export/wildix-export/exporter"
	"github.com/wildix-export/wildix-export/internal/pbxsim"
)

// storeDue stores a rewrite due for the PBX of c as a backfill with
// --rewrite stopped before its end leaves it (state: the record's text).
func storeDue(t *testing.T, pool *pgxpool.Pool, c *rewriteCase, state string) {
	t.Helper()
	if _, err := pool.Exec(context.Background(), `INSERT INTO export_state (pbx, key, state, run_id) VALUES ($1, 'pseudonymisation rewrite due', $2, 'asked-by-test')
ON CONFLICT (pbx, key) DO UPDATE SET state = EXCLUDED.state`, c.f.URL.Host, state); err != nil {
		t.Fatal(err)
	}
}

// dueRecords is how many rewrite-due records pool holds.
func dueRecords(t *testing.T, pool *pgxpool.Pool) string {
	t.Helper()
	return strings.Join(queryStrings(t, pool, "SELECT count(*)::text FROM export_state WHERE key = 'pseudonymisation rewrite due'"), "")
}

// TestRewriteDueNotCompletedFails is review 35's R35-2 (PostgreSQL): a
// plain backfill while a rewrite is due, the PBX's colleagues unreadable
// (403), rewrites nothing and must neither exit 0 nor record the rewrite
// as completed: its ledger entry says it is still due, and the record
// stays. With the colleagues readable again, the next plain backfill
// completes it (noted as completed, no recording's number left in
// clear, the record cleared).
func TestRewriteDueNotCompletedFails(t *testing.T) {
	t.Parallel()
	var deny atomic.Bool
	c := newRewriteCase(t, 60, true, func(o *pbxsim.Options) {
		o.Rewrite = func(r *http.Request, status int, body []byte) (int, []byte) {
			if deny.Load() && strings.Contains(r.URL.Path, "Colleagues") {
				return http.StatusForbidden, []byte(`{"type":"error","reason":"forbidden"}`)
			}
			return status, body
		}
	})
	env, pool, _ := c.pg(t)
	on := clearThenForced(t, env, numbersKey1...)
	if clearRecordings(t, pool) == 0 {
		t.Fatal("no recording's number in clear: the test proves nothing")
	}
	storeDue(t, pool, c, `{"run_id":"asked-by-test","rule":"numbers"}`)
	deny.Store(true)
	r := c.backfill(t, on)
	deny.Store(false)
	if r.code == 0 {
		t.Errorf("plain backfill, a rewrite due, colleagues unreadable: exit 0; want a failure\n%s", r.stderr)
	}
	if ledgerNoted(t, pool, "", noteRewriteDue, "completed by this backfill") {
		t.Error("the ledger says the rewrite due was completed; it was not")
	}
	if !ledgerNoted(t, pool, "", noteRewriteDue, "still due") {
		t.Errorf("the ledger does not say the rewrite is still due\n%s", r.stderr)
	}
	if n := dueRecords(t, pool); n != "1" {
		t.Errorf("%s rewrite-due records after the failed attempt, want 1", n)
	}
	if clearRecordings(t, pool) == 0 {
		t.Error("recordings rewritten with the colleagues unread")
	}
	r = c.backfill(t, on)
	if r.code != 0 || !ledgerNoted(t, pool, "", noteRewriteDue, "completed by this backfill") {
		t.Errorf("plain backfill, colleagues readable: exit %d (%v), want 0 and the note of the rewrite completed\n%s", r.code, r.err, r.stderr)
	}
	if n := clearRecordings(t, pool); n != 0 {
		t.Errorf("%d recordings' rows keep a number in clear after the rewrite completed", n)
	}
	if n := dueRecords(t, pool); n != "0" {
		t.Errorf("%s rewrite-due records after the rewrite completed, want 0", n)
	}
}

// TestRewriteDueDamaged is review 35's R35-3 (PostgreSQL): a damaged
// record of a rewrite due (holding a number) fails a plain backfill with
// an error that gives its advice once and quotes nothing of the record;
// that advice, a backfill with --rewrite, works: it replaces the record
// and completes the rewrite. Before, every backfill failed for good.
func TestRewriteDueDamaged(t *testing.T) {
	t.Parallel()
	c := newRewriteCase(t, 60, true, nil)
	env, pool, _ := c.pg(t)
	on := clearThenForced(t, env, numbersKey1...)
	if clearRecordings(t, pool) == 0 {
		t.Fatal("no recording's number in clear: the test proves nothing")
	}
	storeDue(t, pool, c, `{"junk":"+39 333 7771234"}`)
	r := c.backfill(t, on)
	if r.code == 0 || r.err == nil {
		t.Fatalf("plain backfill, the record damaged: exit %d (%v); want a failure\n%s", r.code, r.err, r.stderr)
	}
	msg := r.err.Error()
	if n := strings.Count(msg, "backfill --rewrite"); n != 1 {
		t.Errorf("the error gives its advice %d times, want once: %s", n, msg)
	}
	if strings.Contains(r.stderr+msg, "7771234") || strings.Contains(r.stderr+msg, "junk") {
		t.Errorf("the record's text is quoted: %s\n%s", msg, r.stderr)
	}
	r = c.backfill(t, on, "--rewrite")
	if r.code != 0 || rewrittenRows(t, r.stderr) <= 0 {
		t.Fatalf("backfill --rewrite, the record damaged: exit %d (%v), %d rows rewritten; want 0 and some\n%s", r.code, r.err, rewrittenRows(t, r.stderr), r.stderr)
	}
	if n := clearRecordings(t, pool); n != 0 {
		t.Errorf("%d recordings' rows keep a number in clear", n)
	}
	if n := dueRecords(t, pool); n != "0" {
		t.Errorf("%s rewrite-due records after the rewrite, want 0", n)
	}
	if r := c.backfill(t, on); r.code != 0 {
		t.Errorf("plain backfill afterwards: exit %d (%v)", r.code, r.err)
	}
}

// TestRewriteDueShownInSummaryAndNotification is review 41's R41-1 (the
// result's part): a run's "pseudonymisation" result saying a rewrite in
// place is due printed "ok rows=0" in the run's summary and counted as ok
// in the notification. Now the summary shows DUE and its note, and the
// notification's outcome marks it warned, not failed; a rewrite's own
// result shows its notes too.
func TestRewriteDueShownInSummaryAndNotification(t *testing.T) {
	t.Parallel()
	due := exporter.EndpointResult{Endpoint: "pseudonymisation", Paging: pagingRewriteDue, Notes: []string{noteRewriteDue + " is due: this run did not complete it"}}
	done := exporter.EndpointResult{Endpoint: "pseudonymisation", Paging: "rewrite", Notes: []string{noteRuleRewritten + " numbers: 3 in recordings"}}
	var b strings.Builder
	summary(&b, &exporter.RunResult{Endpoints: []exporter.EndpointResult{due, done}})
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "pseudonymisation DUE    "+noteRewriteDue) || strings.Contains(lines[0], "rows=") {
		t.Errorf("summary of a rewrite due: %q; want DUE and its note", lines[0])
	}
	if len(lines) != 2 || !strings.HasPrefix(lines[1], "pseudonymisation ok     "+noteRuleRewritten) {
		t.Errorf("summary of a rewrite: %q; want ok and its note", lines)
	}
	o := outcome(&exporter.RunResult{ID: "r", Endpoints: []exporter.EndpointResult{due, done}}, nil, exitOK)
	if len(o.Results) != 2 || !o.Results[0].Warned || o.Results[0].Failed || o.Results[1].Warned {
		t.Errorf("notification's outcome %+v; want the rewrite due warned, not failed, the rewrite not warned", o.Results)
	}
}

// TestRewriteDueAdviceTrue is review 41's R41-2 (PostgreSQL): a run
// while a rewrite is due advised "the next backfill does" in every case,
// false for a damaged record (a backfill without --rewrite fails on it)
// and under rule none (a backfill under none rewrites nothing). Now each
// case gets advice that holds, in the warning and the ledger's note; and
// a backfill under none failing on a damaged record says what to do.
func TestRewriteDueAdviceTrue(t *testing.T) {
	t.Parallel()
	c := newRewriteCase(t, 40, false, nil)
	env, pool, _ := c.pg(t)
	on := clearThenForced(t, env, numbersKey1...)
	const plain, rewrite, none = "the next backfill (any --from and --to) completes it", "run `wildix-export backfill --rewrite` (any --from and --to), which replaces the record", "EXPORT_PSEUDONYMIZE is none here"
	for _, tc := range []struct {
		name, state string
		kv          []string
		args        []string
		want        string
		not         []string
	}{
		{"due, under the rule", `{"run_id":"asked-by-test","rule":"numbers"}`, on, []string{"run", "--once"}, plain, []string{rewrite, none}},
		{"damaged, under the rule", `{"junk":1}`, on, []string{"run", "--once"}, rewrite, []string{plain, none}},
		{"damaged, forced to none", `{"junk":1}`, env, []string{"run", "--once", "--force"}, none, []string{plain}},
		{"due, under none", `{"run_id":"asked-by-test","rule":"numbers"}`, env, []string{"run", "--once"}, none + ", under which no backfill rewrites anything: set it (and EXPORT_PSEUDONYM_KEY) to the rows' rule (numbers when it was asked for), run `wildix-export run --once --force`", []string{plain, rewrite}},
	} {
		storeDue(t, pool, c, tc.state)
		r := runCLI(t, tc.kv, tc.args...)
		if r.code != 0 {
			t.Fatalf("%s: exit %d: %v\n%s", tc.name, r.code, r.err, r.stderr)
		}
		if !strings.Contains(r.stderr, tc.want) || !ledgerNoted(t, pool, "", noteRewriteDue, tc.want) {
			t.Errorf("%s: the warning or the ledger's note does not say %q\n%s", tc.name, tc.want, r.stderr)
		}
		for _, n := range tc.not {
			if strings.Contains(r.stderr, n) {
				t.Errorf("%s: the warning says %q, false here\n%s", tc.name, n, r.stderr)
			}
		}
	}
	storeDue(t, pool, c, `{"junk":1}`)
	if r := c.backfill(t, env); r.code == 0 || r.err == nil || !strings.Contains(r.err.Error(), none+", under which no backfill rewrites anything, and its record is damaged") {
		t.Errorf("backfill under none, the record damaged: exit %d, %v; want a failure saying what to do under none", r.code, r.err)
	}
}

// TestRewriteDueAdviceUnderNoneFollowed is review 42's R42-2: under rule
// none (after a forced change to none) the advice said "set the rule,
// then run a backfill", and the backfill so run was refused, exit 2 (the
// rule changed: `run --once --force` accepts it). The advice is followed
// here, whole record and damaged: the forced run, then the backfill it
// names, exit 0, and the record cleared.
func TestRewriteDueAdviceUnderNoneFollowed(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, state string
		want        string
		backfill    []string
	}{
		{"whole", `{"run_id":"asked-by-test","rule":"numbers"}`, "run `wildix-export run --once --force` to accept the change, then a backfill", nil},
		{"damaged", `{"junk":1}`, "run `wildix-export run --once --force` to accept the change, then `wildix-export backfill --rewrite`", []string{"--rewrite"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newRewriteCase(t, 40, false, nil)
			env, pool, _ := c.pg(t)
			on := clearThenForced(t, env, numbersKey1...)
			storeDue(t, pool, c, tc.state)
			if r := runCLI(t, env, "run", "--once", "--force"); r.code != 0 {
				t.Fatalf("forced to none: exit %d: %v\n%s", r.code, r.err, r.stderr)
			}
			r := runCLI(t, env, "run", "--once")
			if r.code != 0 || !strings.Contains(r.stderr, tc.want) {
				t.Fatalf("run under none: exit %d; want 0 and the advice %q\n%s", r.code, tc.want, r.stderr)
			}
			if r := runCLI(t, on, "run", "--once", "--force"); r.code != 0 {
				t.Fatalf("the advice's forced run under numbers: exit %d: %v\n%s", r.code, r.err, r.stderr)
			}
			if r := c.backfill(t, on, tc.backfill...); r.code != 0 {
				t.Fatalf("the advice's backfill %v under numbers: exit %d: %v\n%s", tc.backfill, r.code, r.err, r.stderr)
			}
			if n := dueRecords(t, pool); n != "0" {
				t.Errorf("the advice followed: %s rewrite-due records left, want 0", n)
			}
		})
	}
}

// TestRewriteDueKeptWithoutDotFiles is attack 9's F5 (CSV): a backfill
// with --rewrite stopped during its windows leaves the rewrite due; a
// copy of the folder leaving out dot files (the state folder's files
// copied by a shell glob) lost its record, `.rewrite-due.json`, and the
// next plain backfill left the recordings' rows in clear, exit 0, in
// silence. Now the record has no leading dot and survives such a copy:
// the plain backfill completes the rewrite. A record an earlier release
// stored under the dot name is still read, and cleared.
func TestRewriteDueKeptWithoutDotFiles(t *testing.T) {
	t.Parallel()
	var fail atomic.Bool
	c := newRewriteCase(t, 60, true, func(o *pbxsim.Options) {
		o.Rewrite = func(r *http.Request, status int, body []byte) (int, []byte) {
			if fail.Load() && strings.Contains(r.URL.Path, "CallHistory") {
				return http.StatusBadRequest, []byte(`{"type":"error","reason":"refused by the test"}`)
			}
			return status, body
		}
	})
	dir := t.TempDir()
	on := clearThenForced(t, c.env(t, dir), numbersKey1...)
	fail.Store(true)
	if r := c.backfill(t, on, "--force", "--rewrite"); r.code == 0 {
		t.Fatalf("the backfill failing in its windows: exit 0\n%s", r.stderr)
	}
	fail.Store(false)
	var states []string
	all, err := filepath.Glob(filepath.Join(dir, ".state", "*", "runs.jsonl"))
	for _, f := range all {
		states = append(states, filepath.Dir(f))
	}
	if err != nil || len(states) != 1 {
		t.Fatalf("the PBX's state folder: %v %v", states, err)
	}
	dots, _ := filepath.Glob(filepath.Join(states[0], ".*"))
	for _, f := range dots {
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}
	r := c.backfill(t, on)
	if r.code != 0 || rewrittenRows(t, r.stderr) <= 0 || !ledgerNoted(t, nil, dir, noteRewriteDue, "completed by this backfill") {
		t.Fatalf("plain backfill after the dot files were lost: exit %d (%v), %d rows rewritten; want 0, some, and the note of the rewrite completed\n%s", r.code, r.err, rewrittenRows(t, r.stderr), r.stderr)
	}
	// An earlier release's record, under the dot name.
	old := filepath.Join(states[0], ".rewrite-due.json")
	if err := os.WriteFile(old, []byte(`{"run_id":"asked-by-test","rule":"numbers"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := c.backfill(t, on); r.code != 0 || !ledgerNoted(t, nil, dir, noteRewriteDue, "completed by this backfill") {
		t.Errorf("plain backfill, a record under the earlier dot name: exit %d (%v); want 0 and the rewrite completed\n%s", r.code, r.err, r.stderr)
	}
	if _, err := os.Stat(old); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the record under the earlier dot name is still there after the rewrite completed: %v", err)
	}
}
