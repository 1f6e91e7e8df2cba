package main

import (
	"regexp"
	"strings"
	"testing"

	"github.com/wildix-export/wildix-export/internal/pbxsim"
	"github.com/wildix-export/wildix-export/internal/pgtest"
	"github.com/wildix-export/wildix-export/internal/pseudonym"
	"github.com/wildix-export/wildix-export/simtest"
)

// TestCheckTokenUserUnderAll (attack 30 L5): check's token line names
// whom the token acts as, a colleague: under all by the pseudonym the
// colleagues table holds, under a rule without all by name, as that table.
func TestCheckTokenUserUnderAll(t *testing.T) {
	t.Parallel()
	f := simtest.New(t, pbxsim.Options{Calls: 10})
	f.Authorize(t)
	k, err := pseudonym.New([]byte(testKey1))
	if err != nil {
		t.Fatal(err)
	}
	actsAs := regexp.MustCompile(`acts as (.+) \(extension`)
	check := func(rule string) string {
		kv := fixtureEnv(f, t.TempDir(), "EXPORT_ENDPOINTS=call_history")
		if rule != "" {
			kv = append(kv, "EXPORT_PSEUDONYMIZE="+rule, "EXPORT_PSEUDONYM_KEY="+testKey1)
		}
		r := runCLI(t, kv, "check")
		m := actsAs.FindStringSubmatch(r.stdout)
		if r.code != 0 || m == nil {
			t.Fatalf("check under %q: exit %d %v, no token line\n%s%s", rule, r.code, r.err, r.stdout, r.stderr)
		}
		return m[1]
	}
	name := check("")
	if !strings.Contains(name, " ") {
		t.Fatalf("the token's user is %q: want a colleague's name, or the test proves nothing", name)
	}
	for rule, want := range map[string]string{"numbers,names": name, "all": k.Name(name)} {
		if got := check(rule); got != want {
			t.Errorf("under %s check says the token acts as %q, want %q", rule, got, want)
		}
	}
}

// TestCheckFreshSchema (review 10, R10-7): check of a PostgreSQL schema
// never migrated, or not there yet, says nothing of the forget journal
// (none is open): it warned that the journal could not be read.
func TestCheckFreshSchema(t *testing.T) {
	t.Parallel()
	f := simtest.New(t, pbxsim.Options{Calls: 10})
	f.Authorize(t)
	schema, _ := pgtest.Schema(t)
	for _, s := range []string{schema, schema + "_none"} {
		kv := fixtureEnv(f, t.TempDir(), "EXPORT_ENDPOINTS=call_history", "EXPORT_SINK=postgres", "EXPORT_DATABASE_URL="+pgtest.URL(), "EXPORT_DB_SCHEMA="+s)
		r := runCLI(t, kv, "check")
		if strings.Contains(r.stdout, "forget") || !strings.Contains(r.stdout, "sink") {
			t.Errorf("check of schema %s, never migrated: exit %d %v\n%s%s; want no forget line", s, r.code, r.err, r.stdout, r.stderr)
		}
	}
}
