package main

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wildix-export/wildix-export/internal/pbxsim"
	"github.com/wildix-export/wildix-export/internal/pgtest"
)

// Two pseudonym keys: never to be shown anywhere.
const (
	testKey1 = "first-pseudonym-key-0123456789abcdef"
	testKey2 = "second-pseudonym-key-0123456789abcdef"
)

// ledgerPrivacy is each run's rule, key id and forced change, oldest
// first, as the sink's run ledger holds them.
type ledgerPrivacy func(t *testing.T) []string

// TestPrivacyRuleChangeRefused: on a sink holding rows written under one
// rule and key, a run under another rule or key exits 2 naming the
// setting and why, writes nothing and shows no key; with --force it runs
// and the ledger records the change; the same settings again run. For
// both sinks.
func TestPrivacyRuleChangeRefused(t *testing.T) {
	t.Parallel()
	for _, sink := range []string{"csv", "postgres"} {
		t.Run(sink, func(t *testing.T) {
			t.Parallel()
			f := authorized(t, pbxsim.Options{Calls: 120})
			dir := t.TempDir()
			base := fixtureEnv(f, dir, "EXPORT_ENDPOINTS=call_history,colleagues")
			var ledger ledgerPrivacy
			if sink == "postgres" {
				schema, pool := pgtest.Schema(t)
				base = append(base, "EXPORT_SINK=postgres", "EXPORT_DATABASE_URL="+pgtest.URL(), "EXPORT_DB_SCHEMA="+schema)
				ledger = func(t *testing.T) []string {
					rows, err := pool.Query(context.Background(), `SELECT coalesce(privacy_rule, '') || '|' || coalesce(privacy_key_id, '') || '|' || coalesce(privacy_changed, '')
FROM export_runs ORDER BY started_at, run_id`)
					if err != nil {
						t.Fatal(err)
					}
					defer rows.Close()
					var out []string
					for rows.Next() {
						var s string
						if err := rows.Scan(&s); err != nil {
							t.Fatal(err)
						}
						out = append(out, s)
					}
					return out
				}
			} else {
				ledger = func(t *testing.T) []string {
					files, _ := filepath.Glob(filepath.Join(dir, ".state", "*", "runs.jsonl"))
					if len(files) != 1 {
						t.Fatalf("run ledgers %v, want one", files)
					}
					fh, err := os.Open(files[0])
					if err != nil {
						t.Fatal(err)
					}
					defer fh.Close()
					var out []string
					for sc := bufio.NewScanner(fh); sc.Scan(); {
						var p map[string]map[string]string
						json.Unmarshal(sc.Bytes(), &p)
						out = append(out, p["privacy"]["rule"]+"|"+p["privacy"]["key_id"]+"|"+p["privacy"]["changed"])
					}
					return out
				}
			}
			with := func(extra ...string) []string { return append(append([]string(nil), base...), extra...) }
			numbers1 := with("EXPORT_PSEUDONYMIZE=numbers", "EXPORT_PSEUDONYM_KEY="+testKey1)
			numbers2 := with("EXPORT_PSEUDONYMIZE=numbers", "EXPORT_PSEUDONYM_KEY="+testKey2)

			if r := runCLI(t, base, "run", "--once"); r.code != 0 {
				t.Fatalf("first run: exit %d: %v\n%s", r.code, r.err, r.stderr)
			}
			r := runCLI(t, numbers1, "run", "--once")
			if r.code != exitConfig || !strings.Contains(r.err.Error(), "EXPORT_PSEUDONYMIZE changed") || !strings.Contains(r.err.Error(), "rule none") ||
				!strings.Contains(r.err.Error(), "breaks every join") || !strings.Contains(r.err.Error(), "--force") {
				t.Fatalf("rule none → numbers: exit %d, %v; want 2 naming the change, why and --force", r.code, r.err)
			}
			if r := runCLI(t, numbers1, "run", "--once", "--force"); r.code != 0 {
				t.Fatalf("forced: exit %d: %v\n%s", r.code, r.err, r.stderr)
			}
			r = runCLI(t, numbers2, "run", "--once")
			if r.code != exitConfig || !strings.Contains(r.err.Error(), "EXPORT_PSEUDONYM_KEY changed") {
				t.Fatalf("another key: exit %d, %v; want 2 naming EXPORT_PSEUDONYM_KEY", r.code, r.err)
			}
			for _, s := range []string{r.stdout, r.stderr, r.err.Error()} {
				if strings.Contains(s, testKey1[:12]) || strings.Contains(s, testKey2[:12]) {
					t.Fatalf("a key is shown:\n%s", s)
				}
			}
			if r := runCLI(t, numbers1, "run", "--once"); r.code != 0 {
				t.Fatalf("the same rule and key again: exit %d: %v\n%s", r.code, r.err, r.stderr)
			}
			got := ledger(t)
			if len(got) != 3 || got[0] != "none||" || !strings.HasPrefix(got[1], "numbers|k:") || !strings.HasSuffix(got[1], "|none") ||
				got[2] != strings.TrimSuffix(got[1], "none") {
				t.Fatalf("ledger %q: want none, then numbers with its key id changed from none, then the same unchanged", got)
			}
		})
	}
}
