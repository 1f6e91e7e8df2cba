package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wildix-export/wildix-export/internal/pbxsim"
	"github.com/wildix-export/wildix-export/internal/pgtest"
	"github.com/wildix-export/wildix-export/internal/pseudonym"
	"github.com/wildix-export/wildix-export/simtest"
)

// TestForgetPBXesUnderTheirOwnKeys (attack 9, F4 HIGH), on both sinks:
// PBX a (key A) and PBX b (key B) export into one folder or schema.
// Forget, run with a's configuration and key B given with
// --previous-key-file, kept the number in the suppression list under key
// A only: every later run of b was refused ("set that key again"), and
// setting key A for b was refused as a key change. Now the list keeps it
// under each key: runs and a backfill over the whole history of both
// PBXes exit 0 and neither brings the number back. A PBX of a third key,
// and one in clear, joining the sink are refused (exit 2) saying to run
// forget again with their configuration; forget run so for the one in
// clear lets it run, the number kept out of its rows.
func TestForgetPBXesUnderTheirOwnKeys(t *testing.T) {
	t.Parallel()
	const keyA, keyB, keyC = "key of PBX a, at least 32 bytes long", "key of PBX b, at least 32 bytes long", "key of PBX c, at least 32 bytes long"
	for _, pg := range []bool{false, true} {
		t.Run(fmt.Sprintf("postgres=%v", pg), func(t *testing.T) {
			t.Parallel()
			const calls = 150
			dir := t.TempDir()
			var pool *pgxpool.Pool
			var sinkEnv []string
			if pg {
				var schema string
				schema, pool = pgtest.Schema(t)
				sinkEnv = []string{"EXPORT_SINK=postgres", "EXPORT_DATABASE_URL=" + pgtest.URL(), "EXPORT_DB_SCHEMA=" + schema}
			}
			snap := func() map[string][]string {
				if pg {
					return tableRows(t, pool)
				}
				return csvFolder(t, dir)
			}
			pbx := func(id string, extra ...string) ([]string, *simtest.Fixture) {
				f := simtest.New(t, pbxsim.Options{Calls: calls, CallGap: time.Minute, APIKeys: []string{recToken}})
				kv := fixtureEnv(f, dir, "WILDIX_PBX_ID="+id, "WILDIX_API_KEY="+recToken, "WILDIX_CLIENT_ID=", "WILDIX_CLIENT_SECRET=")
				return append(append(kv, sinkEnv...), extra...), f
			}
			kvA, fa := pbx("a", "EXPORT_PSEUDONYMIZE=numbers", "EXPORT_PSEUDONYM_KEY="+keyA)
			kvB, fb := pbx("b", "EXPORT_PSEUDONYMIZE=numbers", "EXPORT_PSEUDONYM_KEY="+keyB)
			d := simNumber(t, fa.Sim, calls)
			if simNumber(t, fb.Sim, calls) != d {
				t.Fatal("the two simulators' calls differ: the test proves nothing")
			}
			run := func(what string, kv []string, want int, args ...string) cliResult {
				t.Helper()
				r := runCLI(t, kv, args...)
				if r.code != want {
					t.Fatalf("%s: exit %d, want %d: %v\n%s%s", what, r.code, want, r.err, r.stdout, r.stderr)
				}
				return r
			}
			run("run of a", kvA, exitOK, "run", "--once")
			run("run of b", kvB, exitOK, "run", "--once")
			kA, _ := pseudonym.New([]byte(keyA))
			kB, _ := pseudonym.New([]byte(keyB))
			held := func(m map[string][]string, v string) []string {
				var out []string
				for tb, rows := range m {
					for _, row := range rows {
						if strings.Contains(row, v) && !strings.Contains(tb, "suppress") && !strings.HasPrefix(row, `("","suppressed numbers",`) {
							out = append(out, tb+": "+row)
						}
					}
				}
				return out
			}
			if len(held(snap(), kA.Number(d))) == 0 || len(held(snap(), kB.Number(d))) == 0 {
				t.Fatal("the sink does not hold the number's pseudonym under both keys: the test proves nothing")
			}
			keyFile := func(k string) string {
				p := filepath.Join(t.TempDir(), "key")
				if err := os.WriteFile(p, []byte(k+"\n"), 0o600); err != nil {
					t.Fatal(err)
				}
				return p
			}
			fileA, fileB, fileC := keyFile(keyA), keyFile(keyB), keyFile(keyC)
			run("forget with a's configuration", kvA, exitOK, "forget", "--number", "+"+d, "--previous-key-file", fileB)
			for _, p := range []struct {
				name string
				kv   []string
			}{{"a", kvA}, {"b", kvB}} {
				run("run of "+p.name+" after forget", p.kv, exitOK, "run", "--once")
				run("backfill of "+p.name+" after forget", p.kv, exitOK, "backfill", "--from", "2025-01-01", "--to", "2027-01-01", "--force", "--window", "2160h")
			}
			after := snap()
			if back := slices.Concat(held(after, kA.Number(d)), held(after, kB.Number(d))); len(back) > 0 {
				t.Errorf("the number's pseudonym came back: %q", back)
			}
			// b's key still cannot change while the list keeps numbers under it.
			moved := append(slices.DeleteFunc(slices.Clone(kvB), func(s string) bool { return strings.HasPrefix(s, "EXPORT_PSEUDONYM_KEY=") }),
				"EXPORT_PSEUDONYM_KEY="+keyC, "EXPORT_PSEUDONYM_PREVIOUS_KEY="+keyB)
			// The refusal names b's own key, not a's (review 44, R44-1).
			if r := run("b's key changed, forced", moved, exitConfig, "run", "--once", "--force"); !strings.Contains(fmt.Sprint(r.err), "written under EXPORT_PSEUDONYM_KEY "+kB.KeyID()) {
				t.Errorf("b's key changed, forced: %v; want it to name b's key %s", r.err, kB.KeyID())
			}

			// A third key, and a PBX in clear, joining: refused, saying what to do.
			kvC, _ := pbx("c", "EXPORT_PSEUDONYMIZE=numbers", "EXPORT_PSEUDONYM_KEY="+keyC)
			kvD, _ := pbx("d")
			for _, p := range []struct {
				name string
				kv   []string
			}{{"c (a third key)", kvC}, {"d (in clear)", kvD}} {
				r := run("first run of "+p.name, p.kv, exitConfig, "run", "--once")
				if msg := fmt.Sprint(r.err); !strings.Contains(msg, "wildix-export forget") || !strings.Contains(msg, "--previous-key-file") || !strings.Contains(msg, "forgotten numbers (1)") {
					t.Errorf("first run of %s: %v; want it to say to run forget again, with the keys", p.name, r.err)
				}
			}
			if back := held(snap(), d); len(back) > 0 {
				t.Errorf("a refused run wrote the number in clear: %q", back)
			}
			// Forget again with each one's configuration, every key of the
			// list given, lets each run (review 44, R44-5: c was never shown
			// running after its forget).
			run("forget with c's configuration", kvC, exitOK, "forget", "--number", "+"+d, "--previous-key-file", fileA, "--previous-key-file", fileB)
			run("run of c after forget", kvC, exitOK, "run", "--once")
			run("forget with d's configuration", kvD, exitOK, "forget", "--number", "+"+d, "--previous-key-file", fileA, "--previous-key-file", fileB, "--previous-key-file", fileC, "--new-pbx-in-clear")
			run("run of d after forget", kvD, exitOK, "run", "--once")
			for _, p := range []struct {
				name string
				kv   []string
			}{{"a", kvA}, {"b", kvB}, {"c", kvC}} {
				run("run of "+p.name+" after the last forget", p.kv, exitOK, "run", "--once")
			}
			kC, _ := pseudonym.New([]byte(keyC))
			wrote := false
			for id := int64(1); id <= calls && !wrote; id++ {
				if o, ok := pseudonym.Canonical(fa.Sim.Call(id).Src); ok && len(o) >= 7 && o != d {
					wrote = len(held(snap(), kC.Number(o))) > 0
				}
			}
			if !wrote {
				t.Error("c's run wrote no pseudonym under its key: the test proves nothing of c")
			}
			after = snap()
			if back := slices.Concat(held(after, d), held(after, kA.Number(d)), held(after, kB.Number(d)), held(after, kC.Number(d))); len(back) > 0 {
				t.Errorf("the number came back: %q", back)
			}
		})
	}
}
