package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wildix-export/wildix-export/internal/pbxsim"
	"github.com/wildix-export/wildix-export/internal/pgtest"
	"github.com/wildix-export/wildix-export/internal/pseudonym"
	"github.com/wildix-export/wildix-export/simtest"
)

// rewriteCase is the set-up the rewrite's tests share (review 29, D1):
// the simulator, its calls a minute apart ending an hour ago (with
// recordings, every 10th call, unless the options say otherwise), and
// the backfill's range over the whole history.
type rewriteCase struct {
	f        *simtest.Fixture
	from, to string
	recs     bool // the simulator serves recordings (a store is configured)
}

// newRewriteCase starts the simulator with calls calls, recordings
// (recs) and the options edit sets.
func newRewriteCase(t *testing.T, calls int64, recs bool, edit func(*pbxsim.Options)) *rewriteCase {
	t.Helper()
	start := time.Now().UTC().Add(-time.Duration(calls) * time.Minute).Add(-time.Hour)
	o := pbxsim.Options{Calls: calls, CallGap: time.Minute, CallsStart: start}
	if recs {
		o.APIKeys, o.Recordings = []string{recToken}, pbxsim.RecordingOptions{Every: 10, BytesPerSecond: 40}
	}
	if edit != nil {
		edit(&o)
	}
	rome, _ := time.LoadLocation("Europe/Rome")
	return &rewriteCase{f: authorized(t, o), recs: recs,
		from: start.In(rome).AddDate(0, 0, -1).Format("2006-01-02"), to: time.Now().In(rome).AddDate(0, 0, 2).Format("2006-01-02")}
}

// env is the environment of a sink (its settings kv), with a recordings
// store when the simulator serves recordings.
func (c *rewriteCase) env(t *testing.T, dir string, kv ...string) []string {
	t.Helper()
	if c.recs {
		kv = append([]string{"EXPORT_RECORDINGS_STORE=dir", "EXPORT_RECORDINGS_DIR=" + t.TempDir(), "WILDIX_RECORDINGS_TOKEN=" + recToken}, kv...)
	}
	return fixtureEnv(c.f, dir, kv...)
}

// pg is a new PostgreSQL schema's sink: its environment and pool.
func (c *rewriteCase) pg(t *testing.T) ([]string, *pgxpool.Pool, string) {
	t.Helper()
	schema, pool := pgtest.Schema(t)
	return c.env(t, t.TempDir(), "EXPORT_SINK=postgres", "EXPORT_DATABASE_URL="+pgtest.URL(), "EXPORT_DB_SCHEMA="+schema), pool, schema
}

// backfill runs a backfill over the whole history with flags.
func (c *rewriteCase) backfill(t *testing.T, env []string, flags ...string) cliResult {
	t.Helper()
	return runCLI(t, env, append([]string{"backfill", "--from", c.from, "--to", c.to}, flags...)...)
}

// withEnv is env and kv, a new slice.
func withEnv(env []string, kv ...string) []string {
	return append(append([]string(nil), env...), kv...)
}

// numbersKey1 is the rule the rewrite's tests turn on.
var numbersKey1 = []string{"EXPORT_PSEUDONYMIZE=numbers", "EXPORT_PSEUDONYM_KEY=" + testKey1}

// clearThenForced exports in clear into the sink of env, then turns on
// the rule of rule (EXPORT_PSEUDONYMIZE and the key) as the README says,
// `run --once --force`, and returns env with rule.
func clearThenForced(t *testing.T, env []string, rule ...string) []string {
	t.Helper()
	if r := runCLI(t, env, "run", "--once"); r.code != 0 {
		t.Fatalf("run in clear: exit %d: %v\n%s", r.code, r.err, r.stderr)
	}
	on := withEnv(env, rule...)
	if r := runCLI(t, on, "run", "--once", "--force"); r.code != 0 {
		t.Fatalf("forced run: exit %d: %v\n%s", r.code, r.err, r.stderr)
	}
	return on
}

// clearRecordings is the recordings' rows of pool holding a number in
// clear.
func clearRecordings(t *testing.T, pool *pgxpool.Pool) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), "SELECT count(*) FROM recordings WHERE number <> '' AND number NOT LIKE 'p:%'").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestForcedRuleChangeLeavesNothingInClear is attack 6's F9: a PBX
// exported in clear (call history, snapshots, recordings), then
// pseudonymised as the README says (`run --once --force`, then
// `backfill --from <first day> --to <tomorrow> --force --rewrite`):
// every table of the schema and every file of the CSV folder is searched
// for every external number the clear export holds, in the forms needles
// gives: not one is found (before the fix, the recordings' rows and the
// CSV folder's earlier snapshot files kept them in clear). A second
// backfill with --rewrite rewrites nothing. Then a change of key (forced,
// with the earlier key as EXPORT_PSEUDONYM_PREVIOUS_KEY) and a backfill
// with --rewrite:
// the rows still under the earlier key (the recordings' rows, which no
// backfill writes again) are said, in a warning and in the ledger, with
// how many. Both sinks.
func TestForcedRuleChangeLeavesNothingInClear(t *testing.T) {
	t.Parallel()
	c := newRewriteCase(t, 200, true, nil)
	pgEnv, pool, schema := c.pg(t)
	dir := t.TempDir()
	sinks := map[string][]string{"postgres": pgEnv, "csv": c.env(t, dir)}
	for name, env := range sinks {
		if r := runCLI(t, env, "run", "--once"); r.code != 0 {
			t.Fatalf("%s: the export in clear: exit %d: %v\n%s", name, r.code, r.err, r.stderr)
		}
	}
	var copied int
	if err := pool.QueryRow(context.Background(), "SELECT count(*) FROM recordings WHERE status = 'copied' AND number <> ''").Scan(&copied); err != nil || copied < 5 {
		t.Fatalf("%d recordings copied with a number (%v): the test proves little", copied, err)
	}
	find := needles(t, pool, false)
	// A record PostgreSQL refused, kept in export_quarantine as the PBX
	// sent it (in clear, under rule none), holding an external number.
	var quarantined string
	for _, n := range find {
		if len(n) >= 9 && !strings.Contains(n, " ") {
			quarantined = n
			break
		}
	}
	if _, err := pool.Exec(context.Background(), `INSERT INTO export_quarantine (pbx, endpoint, key, run_id, field, error, record)
VALUES ($1, 'call_history', '9999', 'r', 'cost', 'refused', $2)`, c.f.URL.Host, `{"id":"9999","src":"+39`+quarantined+`","cost":"x"}`); err != nil || quarantined == "" {
		t.Fatalf("quarantine a record holding %q: %v", quarantined, err)
	}
	for name, env := range sinks {
		on := withEnv(env, "EXPORT_PSEUDONYMIZE=numbers", "EXPORT_PSEUDONYM_KEY="+testKey1, "EXPORT_PSEUDONYM_DISPLAY=true")
		if r := runCLI(t, on, "run", "--once", "--force"); r.code != 0 {
			t.Fatalf("%s: the forced run: exit %d: %v\n%s", name, r.code, r.err, r.stderr)
		}
		r := c.backfill(t, on, "--force", "--rewrite")
		if r.code != 0 {
			t.Fatalf("%s: the backfill with --rewrite: exit %d: %v\n%s", name, r.code, r.err, r.stderr)
		}
		if n := rewrittenRows(t, r.stderr); n <= 0 {
			t.Errorf("%s: the backfill with --rewrite rewrote %d rows in place; want the recordings' rows", name, n)
		}
		text := dumpDir(t, dir)
		if name == "postgres" {
			text = dumpSchema(t, pool, schema)
		}
		text = clockTimes.ReplaceAllString(text, "hh:mm:ss")
		var found []string
		for _, n := range find {
			if strings.Contains(text, n) {
				found = append(found, n)
			}
		}
		if len(found) > 0 {
			i := strings.Index(text, found[0])
			t.Errorf("%s: after the README's procedure the sink holds %d of %d numbers in clear (%q), e.g. %q in …%s…", name, len(found), len(find),
				found, found[0], text[max(0, i-300):min(len(text), i+100)])
		}
		if r := c.backfill(t, on, "--force", "--rewrite"); r.code != 0 || rewrittenRows(t, r.stderr) != 0 {
			t.Errorf("%s: a second backfill with --rewrite: exit %d (%v), %d rows rewritten; want 0 and none", name, r.code, r.err, rewrittenRows(t, r.stderr))
		}

		key2 := withEnv(env, "EXPORT_PSEUDONYMIZE=numbers", "EXPORT_PSEUDONYM_KEY="+testKey2, "EXPORT_PSEUDONYM_PREVIOUS_KEY="+testKey1)
		if r := runCLI(t, key2, "run", "--once", "--force"); r.code != 0 {
			t.Fatalf("%s: the forced change of key: exit %d: %v\n%s", name, r.code, r.err, r.stderr)
		}
		r = c.backfill(t, key2, "--force", "--rewrite")
		if r.code != 0 {
			t.Fatalf("%s: the backfill with --rewrite under the new key: exit %d: %v\n%s", name, r.code, r.err, r.stderr)
		}
		for _, l := range strings.Split(r.stderr, "\n") {
			if strings.Contains(l, "earlier pseudonym key") {
				t.Logf("%s: %s", name, l)
			}
		}
		var p *pgxpool.Pool
		if name == "postgres" {
			p = pool
		}
		if !strings.Contains(r.stderr, "earlier pseudonym key keep its pseudonyms") || !ledgerNoted(t, p, dir, noteEarlierKey, " in recordings") {
			t.Errorf("%s: want the warning and the ledger's note %q… in recordings\n%s", name, noteEarlierKey, r.stderr)
		}
		for _, s := range []string{r.stdout, r.stderr} {
			if strings.Contains(s, testKey1[:12]) || strings.Contains(s, testKey2[:12]) {
				t.Fatalf("%s: a key is shown:\n%s", name, s)
			}
		}
	}
}

// rewrittenRows is the rows the log says a backfill with --rewrite rewrote in
// place (-1: no such line).
func rewrittenRows(t *testing.T, logs string) int64 {
	t.Helper()
	for _, l := range strings.Split(logs, "\n") {
		var line struct {
			Msg  string `json:"msg"`
			Rows int64  `json:"rows"`
		}
		if json.Unmarshal([]byte(l), &line) == nil && strings.HasPrefix(line.Msg, "stored rows rewritten in place") {
			return line.Rows
		}
	}
	return -1
}

// ledgerNoted reports whether the last run's ledger entry (the backfill
// just run) has a note starting with prefix and holding with: its
// pseudonymisation result's notes (PostgreSQL), the last line of the
// folder's runs.jsonl (CSV) (review 35, R35-6: before, any entry).
func ledgerNoted(t *testing.T, pool *pgxpool.Pool, dir, prefix, with string) bool {
	t.Helper()
	var notes []string
	if pool != nil {
		notes = queryStrings(t, pool, "SELECT unnest(notes) FROM export_run_endpoints WHERE endpoint = 'pseudonymisation' AND run_id = (SELECT run_id FROM export_runs ORDER BY started_at DESC, run_id DESC LIMIT 1)")
	} else {
		files, err := filepath.Glob(filepath.Join(dir, ".state", "*", "runs.jsonl"))
		if err != nil || len(files) != 1 {
			t.Fatalf("the folder's run ledger: %v, %d files (want 1)", err, len(files))
		}
		b, err := os.ReadFile(files[0])
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
		notes = lines[len(lines)-1:]
	}
	for _, n := range notes {
		if i := strings.Index(n, prefix); i >= 0 && strings.Contains(n[i:], with) {
			return true
		}
	}
	return false
}

// TestForcedRewriteKeepsExtensionsReadable is review 17's R17-1: the
// rewrite in place cannot be undone, so it never replaces an extension
// an export keeps readable. PostgreSQL, simulator with 7-digit
// extensions and recordings. (a) Rows written under numbers keep their
// long extensions readable through a backfill with --rewrite whose colleagues
// read fails (403): the rewrite is skipped, said in a warning and in the
// ledger; and through one whose read succeeds (their run's rule covered
// numbers already). (b) A colleague removed from the PBX, whose row the
// sink keeps (deleted_at set): the long extension rows written in clear
// hold stays readable when the rule is turned on; the other numbers are
// replaced.
func TestForcedRewriteKeepsExtensionsReadable(t *testing.T) {
	t.Parallel()
	var forbid atomic.Bool
	c := newRewriteCase(t, 200, true, func(o *pbxsim.Options) {
		o.LongExtensions = true
		o.Rewrite = func(r *http.Request, status int, body []byte) (int, []byte) {
			if forbid.Load() && strings.Contains(r.URL.Path, "Colleagues") {
				return http.StatusForbidden, []byte(`{"type":"error","reason":"Forbidden"}`)
			}
			return status, body
		}
	})
	ctx := context.Background()
	count := func(pool *pgxpool.Pool, like string) int {
		var n int
		if err := pool.QueryRow(ctx, "SELECT count(*) FROM recordings WHERE extension LIKE $1", like).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	t.Run("written under numbers", func(t *testing.T) {
		env, pool, _ := c.pg(t)
		env = withEnv(env, numbersKey1...)
		if r := runCLI(t, env, "run", "--once"); r.code != 0 {
			t.Fatalf("run: exit %d: %v\n%s", r.code, r.err, r.stderr)
		}
		readable, replaced := count(pool, "200%"), count(pool, "p:%")
		if readable == 0 {
			t.Fatal("no recording with a readable 7-digit extension: the test proves little")
		}
		forbid.Store(true)
		r := c.backfill(t, env, "--force", "--rewrite")
		forbid.Store(false)
		if r.code != 0 {
			t.Fatalf("backfill --rewrite, colleagues forbidden: exit %d: %v\n%s", r.code, r.err, r.stderr)
		}
		if !strings.Contains(r.stderr, "stored rows not rewritten in place") || !ledgerNoted(t, pool, "", noteRewriteUnread, "") {
			t.Errorf("colleagues unread: want the warning and the ledger's note %q\n%s", noteRewriteUnread, r.stderr)
		}
		if a, b := count(pool, "200%"), count(pool, "p:%"); a != readable || b != replaced {
			t.Errorf("after the backfill with --rewrite with the colleagues unread: %d readable extensions, %d pseudonyms; want %d and %d", a, b, readable, replaced)
		}
		r = c.backfill(t, env, "--force", "--rewrite")
		if r.code != 0 {
			t.Fatalf("forced backfill: exit %d: %v\n%s", r.code, r.err, r.stderr)
		}
		if a, b := count(pool, "200%"), count(pool, "p:%"); a != readable || b != replaced || rewrittenRows(t, r.stderr) != 0 {
			t.Errorf("after a forced backfill: %d readable extensions, %d pseudonyms, %d rows rewritten; want %d, %d and 0", a, b, rewrittenRows(t, r.stderr), readable, replaced)
		}
	})

	t.Run("a colleague removed", func(t *testing.T) {
		env, pool, _ := c.pg(t)
		if r := runCLI(t, env, "run", "--once"); r.code != 0 {
			t.Fatalf("run in clear: exit %d: %v\n%s", r.code, r.err, r.stderr)
		}
		for _, q := range []string{
			`INSERT INTO colleagues SELECT (jsonb_populate_record(NULL::colleagues, to_jsonb(c) || '{"id":999999,"extension":"2000999"}')).* FROM colleagues c WHERE id = (SELECT min(id) FROM colleagues)`,
			`UPDATE colleagues SET deleted_at = now() WHERE id = 999999`,
			`UPDATE recordings SET extension = '2000999' WHERE ctid = (SELECT min(ctid) FROM recordings WHERE extension LIKE '200%')`,
		} {
			if tag, err := pool.Exec(ctx, q); err != nil || tag.RowsAffected() != 1 {
				t.Fatalf("%s: %v, %d rows", q, err, tag.RowsAffected())
			}
		}
		env = withEnv(env, numbersKey1...)
		if r := runCLI(t, env, "run", "--once", "--force"); r.code != 0 {
			t.Fatalf("forced run: exit %d: %v\n%s", r.code, r.err, r.stderr)
		}
		r := c.backfill(t, env, "--force", "--rewrite")
		if r.code != 0 || rewrittenRows(t, r.stderr) <= 0 {
			t.Fatalf("forced backfill: exit %d (%v), %d rows rewritten; want some\n%s", r.code, r.err, rewrittenRows(t, r.stderr), r.stderr)
		}
		if n := count(pool, "2000999"); n != 1 {
			t.Errorf("the removed colleague's extension 2000999 readable in %d recordings' rows; want 1", n)
		}
		var clear int
		if err := pool.QueryRow(ctx, "SELECT count(*) FROM recordings WHERE number <> '' AND number NOT LIKE 'p:%'").Scan(&clear); err != nil || clear != 0 {
			t.Errorf("%d recordings' rows with a number in clear (%v); want 0", clear, err)
		}
	})
}

// TestRewriteOnlyWhenAsked is review 25's R25-1 and review 28's R28-1:
// the rewrite in place, which cannot be undone and judges a row's
// extensions by those known when it runs, runs only when a backfill is
// given --rewrite, not at every backfill nor at every --force (which
// only redoes windows): either judged again the rows an earlier rewrite
// left, and replaced for good the extension of a colleague removed
// since. A forced change of rule (`run --once --force`), then a plain
// backfill, then one with --force: nothing rewritten (no log line), the
// recordings' rows still in clear; then one with --rewrite: rewritten,
// no recording's number in clear. PostgreSQL. (Review 17's R17-5 and
// review 28's R28-2, a backfill with --rewrite stopped and resumed
// without it: TestRewriteDueCompleted.)
func TestRewriteOnlyWhenAsked(t *testing.T) {
	t.Parallel()
	c := newRewriteCase(t, 100, true, nil)
	env, pool, _ := c.pg(t)
	if r := runCLI(t, env, "run", "--once"); r.code != 0 {
		t.Fatalf("run in clear: exit %d: %v\n%s", r.code, r.err, r.stderr)
	}
	clear := func() int { return clearRecordings(t, pool) }
	if clear() < 3 {
		t.Fatalf("%d recordings with a number in clear: the test proves little", clear())
	}
	env = withEnv(env, numbersKey1...)
	if r := runCLI(t, env, "run", "--once", "--force"); r.code != 0 {
		t.Fatalf("forced run: exit %d: %v\n%s", r.code, r.err, r.stderr)
	}
	before := clear()
	r := c.backfill(t, env)
	if r.code != 0 {
		t.Fatalf("backfill: exit %d: %v\n%s", r.code, r.err, r.stderr)
	}
	if n, rw := clear(), rewrittenRows(t, r.stderr); n != before || rw != -1 {
		t.Errorf("after a backfill without --force: %d recordings' rows with a number in clear (%d before), rewrite's log line rows %d; want them unchanged and no rewrite", n, before, rw)
	}
	r = c.backfill(t, env, "--force")
	if r.code != 0 {
		t.Fatalf("backfill --force: exit %d: %v\n%s", r.code, r.err, r.stderr)
	}
	if n, rw := clear(), rewrittenRows(t, r.stderr); n != before || rw != -1 {
		t.Errorf("after a backfill with --force (windows redone, no --rewrite): %d recordings' rows with a number in clear (%d before), rewrite's log line rows %d; want them unchanged and no rewrite", n, before, rw)
	}
	r = c.backfill(t, env, "--rewrite")
	if r.code != 0 {
		t.Fatalf("backfill --rewrite: exit %d: %v\n%s", r.code, r.err, r.stderr)
	}
	if n := clear(); n != 0 || rewrittenRows(t, r.stderr) <= 0 {
		t.Errorf("after a backfill with --rewrite: %d recordings' rows with a number in clear, %d rows rewritten; want 0 and some", n, rewrittenRows(t, r.stderr))
	}
}

// TestEarlierKeyRowsCountedByContent is review 17's R17-2: after a change
// of key (and rule: numbers under k1, then numbers,names under k2), the
// rows still under the earlier key are counted by what they hold. A call
// the PBX no longer has, written under k1 (a p: number of k1, a name in
// clear), gets its name replaced by the backfill with --rewrite's rewrite, keeps
// its k1 run_id and is counted: the only row, exactly 1 in call_history
// (before: 0 there, and 40 rows of devices, call groups and internal
// calls that hold no pseudonym counted instead). PostgreSQL.
func TestEarlierKeyRowsCountedByContent(t *testing.T) {
	t.Parallel()
	c := newRewriteCase(t, 100, false, nil)
	env, pool, _ := c.pg(t)
	k1 := withEnv(env, numbersKey1...)
	if r := runCLI(t, k1, "run", "--once"); r.code != 0 {
		t.Fatalf("run under k1: exit %d: %v\n%s", r.code, r.err, r.stderr)
	}
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `UPDATE call_history SET id = -1, from_name = 'Mario Rossi', from_number = 'p:olderkeyaaaaaaaa' WHERE id = (SELECT max(id) FROM call_history)`); err != nil {
		t.Fatal(err)
	}
	k2 := withEnv(env, "EXPORT_PSEUDONYMIZE=numbers,names", "EXPORT_PSEUDONYM_KEY="+testKey2, "EXPORT_PSEUDONYM_PREVIOUS_KEY="+testKey1)
	if r := runCLI(t, k2, "run", "--once", "--force"); r.code != 0 {
		t.Fatalf("forced change: exit %d: %v\n%s", r.code, r.err, r.stderr)
	}
	r := c.backfill(t, k2, "--force", "--rewrite")
	if r.code != 0 {
		t.Fatalf("forced backfill: exit %d: %v\n%s", r.code, r.err, r.stderr)
	}
	row := queryStrings(t, pool, "SELECT from_number||' '||from_name FROM call_history WHERE id = -1")
	if len(row) != 1 || !strings.HasPrefix(row[0], "p:olderkeyaaaaaaaa n:") {
		t.Errorf("the call under k1: %q; want its k1 number and its name replaced", row)
	}
	var notes []string
	for _, n := range queryStrings(t, pool, "SELECT unnest(notes) FROM export_run_endpoints WHERE endpoint = 'pseudonymisation'") {
		if strings.HasPrefix(n, noteEarlierKey) {
			notes = append(notes, n[strings.LastIndex(n, ": ")+2:])
		}
	}
	if strings.Join(notes, ", ") != "1 in call_history" {
		t.Errorf("rows under the earlier key: %q; want exactly 1 in call_history", notes)
	}
}

// TestRewriteFailedSaysHowToComplete is review 17's R17-8: a rewrite in
// place that fails after the backfill's windows (PostgreSQL refusing the
// recordings' updates) fails the backfill with a message saying the
// windows are done and that a backfill with --rewrite again completes
// the rewrite (only one with --rewrite rewrites: R25-1, R28-1); once the
// cause is gone,
// that backfill does: no
// recording's number stays in clear. PostgreSQL.
func TestRewriteFailedSaysHowToComplete(t *testing.T) {
	t.Parallel()
	c := newRewriteCase(t, 100, true, nil)
	env, pool, _ := c.pg(t)
	env = clearThenForced(t, env, numbersKey1...)
	ctx := context.Background()
	for _, q := range []string{
		`CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$`,
		`CREATE TRIGGER refuse BEFORE UPDATE ON recordings FOR EACH ROW EXECUTE FUNCTION refuse()`,
	} {
		if _, err := pool.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	r := c.backfill(t, env, "--force", "--rewrite")
	out := r.stderr + fmt.Sprint(r.err)
	if r.code == 0 || !strings.Contains(out, "refused by the test") || !strings.Contains(out, "run `wildix-export backfill --rewrite` again") {
		t.Errorf("backfill with the rewrite refused: exit %d; want a failure saying to run a backfill again\n%s", r.code, out)
	}
	if _, err := pool.Exec(ctx, `DROP TRIGGER refuse ON recordings`); err != nil {
		t.Fatal(err)
	}
	if r := c.backfill(t, env, "--force", "--rewrite"); r.code != 0 {
		t.Fatalf("backfill again: exit %d: %v\n%s", r.code, r.err, r.stderr)
	}
	if n := clearRecordings(t, pool); n != 0 {
		t.Errorf("after the backfill again: %d recordings' rows with a number in clear; want 0", n)
	}
}

// TestRewriteUnderRuleNoneRefused is review 29's R29-1: `backfill
// --rewrite` under rule none (EXPORT_PSEUDONYMIZE unset, or none) did
// nothing and said nothing, exit 0. Now it is refused, exit 2, naming
// the setting, before anything is read or written: the folder exported
// in clear is byte for byte as it was.
func TestRewriteUnderRuleNoneRefused(t *testing.T) {
	t.Parallel()
	f := authorized(t, pbxsim.Options{Calls: 20, CallGap: time.Minute, CallsStart: time.Now().UTC().Add(-2 * time.Hour)})
	dir := t.TempDir()
	env := fixtureEnv(f, dir)
	if r := runCLI(t, env, "run", "--once"); r.code != 0 {
		t.Fatalf("run in clear: exit %d: %v\n%s", r.code, r.err, r.stderr)
	}
	before := dumpDir(t, dir)
	for _, set := range [][]string{nil, {"EXPORT_PSEUDONYMIZE=none"}} {
		r := runCLI(t, append(append([]string(nil), env...), set...), "backfill", "--from", "2026-01-01", "--to", "2026-01-02", "--rewrite")
		if r.code != exitConfig || r.err == nil || !strings.Contains(r.err.Error(), "EXPORT_PSEUDONYMIZE") || !strings.Contains(r.err.Error(), "cannot be turned back") {
			t.Errorf("%q backfill --rewrite: exit %d (%v); want %d naming EXPORT_PSEUDONYMIZE and saying a pseudonym cannot be turned back", set, r.code, r.err, exitConfig)
		}
	}
	if after := dumpDir(t, dir); after != before {
		t.Errorf("the refused backfill changed the folder")
	}
}

// longExtension matches the simulator's 7-digit extensions
// (LongExtensions: 2000201…) standing alone, not inside a longer number
// or a hash.
var longExtension = regexp.MustCompile(`(^|[^0-9a-z])20002[0-9]{2}([^0-9a-z]|$)`)

// TestRewriteJudgesOnce is review 29's R29-5: a rewrite in place judges
// a row written in clear against the extensions known that day; one it
// left unchanged kept its run_id (and a quarantined record its own), so
// the next rewrite judged it again, and a colleague's 7-digit extension
// judged internal by the first, removed since from the PBX and from the
// sink's colleagues rows, was replaced for good. Now every row (file) a
// rewrite reads is recorded as judged under the rule: the second
// rewrite (a backfill with --rewrite over an empty range: the rewrite
// covers the whole history) rewrites nothing and the extensions stay
// readable. Both sinks; in PostgreSQL a quarantined record in clear
// holding only extensions (under numbers, a rule without names, it is
// read).
func TestRewriteJudgesOnce(t *testing.T) {
	t.Parallel()
	var gone atomic.Bool // the PBX no longer knows the 7-digit extensions
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
	pgEnv, pool, schema := c.pg(t)
	dir := t.TempDir()
	for _, name := range []string{"postgres", "csv"} {
		gone.Store(false)
		env := c.env(t, dir)
		if name == "postgres" {
			env = pgEnv
		}
		on := clearThenForced(t, env, numbersKey1...)
		if name == "postgres" {
			if _, err := pool.Exec(ctx, `INSERT INTO export_quarantine (pbx, endpoint, key, run_id, field, error, record)
VALUES ($1, 'call_history', '9999', 'r', 'cost', 'refused', '{"id":"9999","src":"2000201","dst":"2000202","cost":"x"}')`, c.f.URL.Host); err != nil {
				t.Fatal(err)
			}
		}
		if r := c.backfill(t, on, "--force", "--rewrite"); r.code != 0 || rewrittenRows(t, r.stderr) <= 0 {
			t.Fatalf("%s: the first rewrite: exit %d (%v), %d rows rewritten; want some\n%s", name, r.code, r.err, rewrittenRows(t, r.stderr), r.stderr)
		}
		// The colleagues removed: from the PBX, and from the sink.
		gone.Store(true)
		dump := func() string { return dumpDir(t, dir) }
		if name == "postgres" {
			for _, q := range []string{"DELETE FROM colleagues", "DELETE FROM devices"} {
				if _, err := pool.Exec(ctx, q); err != nil {
					t.Fatal(err)
				}
			}
			dump = func() string { return dumpSchema(t, pool, schema) }
		} else {
			for _, ep := range []string{"colleagues", "devices"} {
				if err := os.RemoveAll(filepath.Join(dir, ep)); err != nil {
					t.Fatal(err)
				}
			}
		}
		before := len(longExtension.FindAllString(dump(), -1))
		if before == 0 {
			t.Fatalf("%s: no 7-digit extension readable after the first rewrite: the test proves nothing", name)
		}
		r := runCLI(t, on, "backfill", "--from", "2020-01-01", "--to", "2020-01-02", "--rewrite")
		if r.code != 0 {
			t.Fatalf("%s: the second rewrite: exit %d: %v\n%s", name, r.code, r.err, r.stderr)
		}
		if n, after := rewrittenRows(t, r.stderr), len(longExtension.FindAllString(dump(), -1)); n != 0 || after != before {
			t.Errorf("%s: the second rewrite rewrote %d rows; %d 7-digit extensions readable, %d before; want 0 and all kept", name, n, after, before)
		}
		if name == "postgres" {
			if rec := queryStrings(t, pool, "SELECT record::text FROM export_quarantine WHERE key = '9999'"); len(rec) != 1 || !strings.Contains(rec[0], `"2000201"`) {
				t.Errorf("the quarantined record: %q; want its extensions readable", rec)
			}
		}
	}
}

// TestRewriteDueCompleted is review 28's R28-2: a backfill with
// --rewrite stopped during its windows (the PBX failing the call
// history), resumed without --rewrite, left the rows it does not write
// again (the recordings') in clear, exit 0. Now --rewrite leaves a
// record that the rewrite is due from its start: the backfill resumed
// without it completes the rewrite, says so in a warning and in the
// ledger, and clears the record (the next backfill rewrites nothing).
// Both sinks.
func TestRewriteDueCompleted(t *testing.T) {
	t.Parallel()
	var fail atomic.Bool
	c := newRewriteCase(t, 100, true, func(o *pbxsim.Options) {
		o.Rewrite = func(r *http.Request, status int, body []byte) (int, []byte) {
			if fail.Load() && strings.Contains(r.URL.Path, "CallHistory") {
				return http.StatusBadRequest, []byte(`{"type":"error","reason":"refused by the test"}`)
			}
			return status, body
		}
	})
	pgEnv, pool, _ := c.pg(t)
	dir := t.TempDir()
	if r := runCLI(t, pgEnv, "run", "--once"); r.code != 0 {
		t.Fatalf("run in clear: exit %d: %v\n%s", r.code, r.err, r.stderr)
	}
	numbers := queryStrings(t, pool, "SELECT DISTINCT number FROM recordings WHERE number <> ''")
	if len(numbers) < 3 {
		t.Fatalf("%d recordings' numbers: the test proves little", len(numbers))
	}
	for _, name := range []string{"postgres", "csv"} {
		env := c.env(t, dir)
		var p *pgxpool.Pool
		if name == "postgres" {
			env, p = pgEnv, pool
		}
		on := clearThenForced(t, env, numbersKey1...)
		fail.Store(true)
		r := c.backfill(t, on, "--force", "--rewrite")
		fail.Store(false)
		if r.code == 0 || rewrittenRows(t, r.stderr) != -1 {
			t.Fatalf("%s: the backfill failing in its windows: exit %d, rewrite's log line rows %d; want a failure and no rewrite\n%s", name, r.code, rewrittenRows(t, r.stderr), r.stderr)
		}
		// A run while the rewrite is due does not complete it and does
		// not report ok in silence (review 35, R35-4).
		if r := runCLI(t, on, "run", "--once"); r.code != 0 || !strings.Contains(r.stderr, "a run does not complete it") || !ledgerNoted(t, p, dir, noteRewriteDue, "this run did not complete it") {
			t.Errorf("%s: a run while the rewrite is due: exit %d (%v); want 0, a warning and the ledger's note\n%s", name, r.code, r.err, r.stderr)
		} else if !regexp.MustCompile(`(?m)^pseudonymisation +DUE +` + regexp.QuoteMeta(noteRewriteDue) + ` is due`).MatchString(r.stdout) {
			// Its summary too (review 41, R41-1), not "ok rows=0".
			t.Errorf("%s: the run's summary does not show the rewrite due:\n%s", name, r.stdout)
		}
		r = c.backfill(t, on)
		if r.code != 0 || rewrittenRows(t, r.stderr) <= 0 || !strings.Contains(r.stderr, "attempting the rewrite in place") || !ledgerNoted(t, p, dir, noteRewriteDue, "completed by this backfill") {
			t.Errorf("%s: the backfill resumed without --rewrite: exit %d (%v), %d rows rewritten; want 0, some, a warning and the ledger's note %q\n%s",
				name, r.code, r.err, rewrittenRows(t, r.stderr), noteRewriteDue, r.stderr)
		}
		var text string
		if name == "postgres" {
			text = strings.Join(queryStrings(t, pool, "SELECT number FROM recordings"), "\n")
		} else {
			text = dumpDir(t, dir)
		}
		for _, n := range numbers {
			if strings.Contains(text, n) {
				t.Errorf("%s: the recordings' number %q still in clear after the resumed backfill", name, n)
				break
			}
		}
		if r := c.backfill(t, on); r.code != 0 || rewrittenRows(t, r.stderr) != -1 {
			t.Errorf("%s: a backfill after the rewrite completed: exit %d (%v), rewrite's log line rows %d; want 0 and no rewrite", name, r.code, r.err, rewrittenRows(t, r.stderr))
		}
	}
}

// TestQuarantineNotRewrittenUnderNames is review 28's R28-7 (R25-2's
// gate, end to end): a quarantined record in clear (a colleague's name
// beside an extension, an external party's number and name) is not
// rewritten by a backfill with --rewrite under numbers,names, a rule
// with names: the record has no columns to tell the colleague's name
// from the external party's, and a replacement cannot be undone. It is
// left byte for byte; the recordings' rows are rewritten. PostgreSQL.
func TestQuarantineNotRewrittenUnderNames(t *testing.T) {
	t.Parallel()
	c := newRewriteCase(t, 50, true, nil)
	env, pool, _ := c.pg(t)
	ctx := context.Background()
	const record = `{"id":"9998","src":"201","src_name":"Anna Colleague","dst":"+39 333 7654321","dst_name":"Mario Outsider","cost":"x"}`
	if r := runCLI(t, env, "run", "--once"); r.code != 0 {
		t.Fatalf("run in clear: exit %d: %v\n%s", r.code, r.err, r.stderr)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO export_quarantine (pbx, endpoint, key, run_id, field, error, record)
VALUES ($1, 'call_history', '9998', 'r', 'cost', 'refused', $2)`, c.f.URL.Host, record); err != nil {
		t.Fatal(err)
	}
	stored := func() string {
		q := queryStrings(t, pool, "SELECT record::text FROM export_quarantine WHERE key = '9998'")
		if len(q) != 1 {
			t.Fatalf("quarantined records: %q", q)
		}
		return q[0]
	}
	was := stored()
	on := withEnv(env, "EXPORT_PSEUDONYMIZE=numbers,names", "EXPORT_PSEUDONYM_KEY="+testKey1)
	if r := runCLI(t, on, "run", "--once", "--force"); r.code != 0 {
		t.Fatalf("forced run: exit %d: %v\n%s", r.code, r.err, r.stderr)
	}
	r := c.backfill(t, on, "--force", "--rewrite")
	if r.code != 0 || rewrittenRows(t, r.stderr) <= 0 {
		t.Fatalf("backfill --rewrite: exit %d (%v), %d rows rewritten; want some\n%s", r.code, r.err, rewrittenRows(t, r.stderr), r.stderr)
	}
	if now := stored(); now != was {
		t.Errorf("the quarantined record under numbers,names: %s; want it as it was: %s", now, was)
	}
	if n := clearRecordings(t, pool); n != 0 {
		t.Errorf("%d recordings' rows with a number in clear; want 0", n)
	}
}

// TestRefusalAdviceNamesRewrite is review 29's R29-4: the refusal of a
// change of rule and the forced run's warning name the backfill that
// rewrites the rows written before, `--force --rewrite` (the tests
// passed with --rewrite missing from both). CSV.
func TestRefusalAdviceNamesRewrite(t *testing.T) {
	t.Parallel()
	c := newRewriteCase(t, 20, false, nil)
	env := c.env(t, t.TempDir())
	const advice = "backfill --from <first day> --to <tomorrow> --force --rewrite"
	if r := runCLI(t, env, "run", "--once"); r.code != 0 {
		t.Fatalf("run in clear: exit %d: %v\n%s", r.code, r.err, r.stderr)
	}
	on := withEnv(env, numbersKey1...)
	if r := runCLI(t, on, "run", "--once"); r.code != exitConfig || r.err == nil || !strings.Contains(r.err.Error(), advice) {
		t.Errorf("the change refused: exit %d, %v; want %d naming %q", r.code, r.err, exitConfig, advice)
	}
	if r := runCLI(t, on, "run", "--once", "--force"); r.code != 0 || !strings.Contains(r.stdout+r.stderr, advice) {
		t.Errorf("the forced change: exit %d (%v); want 0 and a warning naming %q\n%s", r.code, r.err, advice, r.stderr)
	}
}

// TestEarlierKeyFilesCountedAfterRuleChange: a CSV folder whose files a
// run under numbers and k1 wrote, then a forced change of rule and key
// (numbers,names under k2) and a backfill with --rewrite: the rewrite
// reads the recordings' files (which no backfill writes again) and sets
// k2 in their manifests, but their numbers are still k1's pseudonyms:
// they are counted as rows under the earlier key, in a warning and in
// the ledger (before: the manifest's k2 hid them, no warning).
func TestEarlierKeyFilesCountedAfterRuleChange(t *testing.T) {
	t.Parallel()
	c := newRewriteCase(t, 100, true, nil)
	dir := t.TempDir()
	env := c.env(t, dir)
	if r := runCLI(t, withEnv(env, numbersKey1...), "run", "--once"); r.code != 0 {
		t.Fatalf("run under k1: exit %d: %v\n%s", r.code, r.err, r.stderr)
	}
	k2 := withEnv(env, "EXPORT_PSEUDONYMIZE=numbers,names", "EXPORT_PSEUDONYM_KEY="+testKey2, "EXPORT_PSEUDONYM_PREVIOUS_KEY="+testKey1)
	if r := runCLI(t, k2, "run", "--once", "--force"); r.code != 0 {
		t.Fatalf("forced change: exit %d: %v\n%s", r.code, r.err, r.stderr)
	}
	r := c.backfill(t, k2, "--force", "--rewrite")
	if r.code != 0 {
		t.Fatalf("backfill --rewrite: exit %d: %v\n%s", r.code, r.err, r.stderr)
	}
	if !strings.Contains(r.stderr, "earlier pseudonym key keep its pseudonyms") || !ledgerNoted(t, nil, dir, noteEarlierKey, " in recordings") {
		t.Errorf("want the warning and the ledger's note %q… in recordings\n%s", noteEarlierKey, r.stderr)
	}
}

// TestEarlierKeyRowsRewrittenByBackfillNotCounted is attack 9's F6
// (CSV): numbers under k1, then numbers under k2 (forced) and a backfill
// with --force --rewrite, which finds every call in the k1 run's file and
// updates it there in place under k2. The ledger's note said those rows
// were "still under an earlier key" (93 in call_history), and the file's
// manifest kept naming k1. Now rows the backfill left in its own form are
// not counted, and the file, all of whose pseudonyms are now k2's, names
// k2 in its manifest (with the backfill as keyed_run).
func TestEarlierKeyRowsRewrittenByBackfillNotCounted(t *testing.T) {
	t.Parallel()
	c := newRewriteCase(t, 100, true, nil)
	dir := t.TempDir()
	env := c.env(t, dir)
	if r := runCLI(t, withEnv(env, numbersKey1...), "run", "--once"); r.code != 0 {
		t.Fatalf("run under k1: exit %d: %v\n%s", r.code, r.err, r.stderr)
	}
	k2 := withEnv(env, "EXPORT_PSEUDONYMIZE=numbers", "EXPORT_PSEUDONYM_KEY="+testKey2, "EXPORT_PSEUDONYM_PREVIOUS_KEY="+testKey1)
	if r := runCLI(t, k2, "run", "--once", "--force"); r.code != 0 {
		t.Fatalf("forced change of key: exit %d: %v\n%s", r.code, r.err, r.stderr)
	}
	if r := c.backfill(t, k2, "--force", "--rewrite"); r.code != 0 {
		t.Fatalf("backfill --force --rewrite: exit %d: %v\n%s", r.code, r.err, r.stderr)
	}
	if ledgerNoted(t, nil, dir, noteEarlierKey, " in call_history") {
		t.Error("the ledger says call_history rows are still under the earlier key; the backfill wrote every call again under k2")
	}
	k1, _ := pseudonym.New([]byte(testKey1))
	k2id, _ := pseudonym.New([]byte(testKey2))
	mans, _ := filepath.Glob(filepath.Join(dir, "call_history", "*.manifest.json"))
	for _, m := range mans {
		b, err := os.ReadFile(m)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), k1.KeyID()) || !strings.Contains(string(b), k2id.KeyID()) {
			t.Errorf("%s names %s or not %s, its rows all written again under the new key:\n%s", filepath.Base(m), k1.KeyID(), k2id.KeyID(), b)
		}
	}
}
