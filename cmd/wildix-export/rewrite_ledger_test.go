package main

import (
	"net/http"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wildix-export/wildix-export/internal/pbxsim"
	"github.com/wildix-export/wildix-export/internal/pgtest"
)

// TestForcedRuleChangeRewritesTheLedger is attack 8's F3: a PBX sends
// free text in a call's duration ("call +39 333 7771234 Mario
// Verdisecret"); the export under rule none stores NULL and quotes the
// value in the run ledger's note. Then the README's procedure (`run
// --once --force` under all, `backfill --force --rewrite`): the sink (every table
// of the schema, every file of the folder, the ledger included) holds
// neither the number nor the name any more. Before the fix the ledger of
// the run under none still held both. Both sinks.
func TestForcedRuleChangeRewritesTheLedger(t *testing.T) {
	t.Parallel()
	const calls = 30
	var bad atomic.Bool
	bad.Store(true)
	duration := regexp.MustCompile(`"duration":"?[0-9]*"?`)
	start := time.Now().UTC().Add(-calls * time.Minute).Add(-time.Hour)
	f := authorized(t, pbxsim.Options{Calls: calls, CallGap: time.Minute, CallsStart: start,
		Rewrite: func(r *http.Request, status int, body []byte) (int, []byte) {
			if !bad.Load() || !strings.Contains(r.URL.Path, "CallHistory") {
				return status, body
			}
			return status, duration.ReplaceAll(body, []byte(`"duration":"call +39 333 7771234 Mario Verdisecret"`))
		}})
	rome, _ := time.LoadLocation("Europe/Rome")
	from, to := start.In(rome).AddDate(0, 0, -1).Format("2006-01-02"), time.Now().In(rome).AddDate(0, 0, 2).Format("2006-01-02")
	schema, pool := pgtest.Schema(t)
	dir := t.TempDir()
	sinks := map[string][]string{
		"postgres": fixtureEnv(f, t.TempDir(), "EXPORT_SINK=postgres", "EXPORT_DATABASE_URL="+pgtest.URL(), "EXPORT_DB_SCHEMA="+schema),
		"csv":      fixtureEnv(f, dir),
	}
	dump := func(name string) string {
		if name == "postgres" {
			return dumpSchema(t, pool, schema)
		}
		return dumpDir(t, dir)
	}
	for name, env := range sinks {
		if r := runCLI(t, env, "run", "--once"); r.code != 0 {
			t.Fatalf("%s: the export in clear: exit %d: %v\n%s", name, r.code, r.err, r.stderr)
		}
		if text := dump(name); !strings.Contains(text, "Verdisecret") {
			t.Fatalf("%s: the export in clear does not quote the value: the test proves nothing", name)
		}
	}
	bad.Store(false)
	for name, env := range sinks {
		on := append(append([]string(nil), env...), "EXPORT_PSEUDONYMIZE=all", "EXPORT_PSEUDONYM_KEY="+testKey1)
		if r := runCLI(t, on, "run", "--once", "--force"); r.code != 0 {
			t.Fatalf("%s: the forced run: exit %d: %v\n%s", name, r.code, r.err, r.stderr)
		}
		if r := runCLI(t, on, "backfill", "--from", from, "--to", to, "--force", "--rewrite"); r.code != 0 {
			t.Fatalf("%s: the backfill with --rewrite: exit %d: %v\n%s", name, r.code, r.err, r.stderr)
		}
		text := dump(name)
		for _, s := range []string{"Verdisecret", "7771234"} {
			if i := strings.Index(text, s); i >= 0 {
				t.Errorf("%s: after the README's procedure the sink holds %q in clear: …%s…", name, s, text[max(0, i-300):min(len(text), i+100)])
			}
		}
	}
}
