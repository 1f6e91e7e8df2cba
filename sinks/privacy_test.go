package sinks

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/wildix-export/wildix-export/exporter"
	"github.com/wildix-export/wildix-export/exporter/record"
	"github.com/wildix-export/wildix-export/internal/pgtest"
	"github.com/wildix-export/wildix-export/internal/pseudonym"
)

// TestPrivacyRuleStoredWithTheCommit: a rule pended is not stored by a
// batch aborted, nor by anything before a commit; the first commit
// stores it, with its ledger change, and a CSV commit a crash interrupted
// after its pending record stores it when completed (and PrivacyRule says
// so before: the rows are decided). Fails with the rule stored when
// pended, or stored after the commit.
func TestPrivacyRuleStoredWithTheCommit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	was := exporter.Privacy{Rule: "numbers", KeyID: "k:aaaaaaaa"}
	now := exporter.Privacy{Rule: "numbers,names", KeyID: "k:aaaaaaaa", Changed: was.String()}
	type store interface {
		exporter.Sink
		PrivacyRule(ctx context.Context, pbx string) (exporter.Privacy, bool, error)
		PendPrivacyRule(pbx string, r *exporter.Privacy)
	}
	rule := func(t *testing.T, s store) string {
		t.Helper()
		r, _, err := s.PrivacyRule(ctx, "x")
		if err != nil {
			t.Fatal(err)
		}
		return r.String()
	}
	first := func(t *testing.T, s store) {
		t.Helper()
		s.PendPrivacyRule("x", &was)
		commitOne(t, s, "r0")
		if got := rule(t, s); got != was.String() {
			t.Fatalf("after the first commit: rule %q, want %q", got, was)
		}
		s.PendPrivacyRule("x", &now)
		if got := rule(t, s); got != was.String() {
			t.Fatalf("pended: rule %q, want still %q", got, was)
		}
		ep := record.Builtin()[0]
		b, err := s.Begin(ctx, exporter.BatchInfo{PBX: "x", RunID: "r1", Endpoint: &ep, StateKey: ep.Name, Seq: 1})
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Abort(ctx); err != nil {
			t.Fatal(err)
		}
		if got := rule(t, s); got != was.String() {
			t.Fatalf("a batch aborted: rule %q, want still %q", got, was)
		}
	}

	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		p, pool := newPostgres(t)
		first(t, p)
		r := ledgerRun("r1")
		r.Privacy = exporter.Privacy{Rule: now.Rule, KeyID: now.KeyID}
		if err := p.StartRun(ctx, r); err != nil {
			t.Fatal(err)
		}
		commitOne(t, p, "r1")
		var changed string
		if err := pool.QueryRow(ctx, "SELECT coalesce(privacy_changed, '') FROM export_runs WHERE run_id = 'r1'").Scan(&changed); err != nil {
			t.Fatal(err)
		}
		if got := rule(t, p); got != now.String() || changed != was.String() {
			t.Fatalf("committed: rule %q, ledger change %q; want %q changed from %q", got, changed, now, was)
		}
	})
	t.Run("csv", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		s, err := NewCSV(CSVOptions{Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		first(t, s)
		s.crash = func() bool { return true } // stops right after the pending record
		ep := record.Builtin()[0]
		b, err := s.Begin(ctx, exporter.BatchInfo{PBX: "x", RunID: "r1", Endpoint: &ep, StateKey: ep.Name, Seq: 1, Snapshot: true})
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Commit(ctx, []byte(`{"cursor":1}`), exporter.Progress{}); err == nil {
			t.Fatal("the crash did not stop the commit")
		}
		if r := ruleFile(t, dir); r.String() != was.String() {
			t.Fatalf("crashed before completing: the rule file holds %q, want still %q", r, was)
		}
		if got := rule(t, s); got != now.String() {
			t.Fatalf("a commit decided, not completed: rule %q, want %q", got, now)
		}
		again, err := NewCSV(CSVOptions{Dir: dir}) // the next process
		if err != nil {
			t.Fatal(err)
		}
		if st, err := again.State(ctx, "x", ep.Name); err != nil || string(st) != `{"cursor":1}` {
			t.Fatalf("completed: state %s, %v", st, err)
		}
		if r := ruleFile(t, dir); r.String() != now.String() || r.Changed != was.String() || r.RunID != "r1" {
			t.Fatalf("completed: the rule file holds %+v, want %q changed from %q by r1", r, now, was)
		}
	})
}

// ruleFile is PBX x's rule file in the CSV folder dir.
func ruleFile(t *testing.T, dir string) storedRule {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, ".state", "x", privacyFile))
	if err != nil {
		t.Fatal(err)
	}
	var r storedRule
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

// TestNewExportAdviceCarriesTheList: the way out into a new schema or
// folder that the refusals of a key give (review 10, R10-4: "export into
// a new schema or folder" alone left the suppression list behind, and an
// empty list writes every forgotten number again) asks for a new
// recordings store, and carries the list over as it says: the SQL it
// gives, run as given (NEW_SCHEMA replaced), or the file copied where it
// says, gives the new schema or folder the same list, kept by its first
// start's migration. Both sinks.
func TestNewExportAdviceCarriesTheList(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	type lister interface {
		Suppression(ctx context.Context) (*Suppression, error)
		Suppress(ctx context.Context, f *Forgotten, pk *pseudonym.Keyed) (string, bool, error)
		NewExportAdvice() string
	}
	for _, kind := range []string{"csv", "postgres"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			var old lister
			var carry func(advice string) lister
			if kind == "csv" {
				c, _ := NewCSV(CSVOptions{Dir: t.TempDir()})
				old = c
				carry = func(advice string) lister {
					m := regexp.MustCompile(`copy (\S+) to (\.state/\S+) in the new folder`).FindStringSubmatch(advice)
					if m == nil {
						t.Fatalf("%q: no file to copy", advice)
					}
					b, err := os.ReadFile(m[1])
					if err != nil {
						t.Fatal(err)
					}
					n, _ := NewCSV(CSVOptions{Dir: t.TempDir()})
					if err := os.MkdirAll(filepath.Join(n.opt.Dir, ".state"), 0o700); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(filepath.Join(n.opt.Dir, m[2]), b, 0o600); err != nil {
						t.Fatal(err)
					}
					return n
				}
			} else {
				p, pool := newPostgres(t)
				old = p
				carry = func(advice string) lister {
					m := regexp.MustCompile(`: (CREATE SCHEMA .*;) \(NEW_SCHEMA: the new EXPORT_DB_SCHEMA`).FindStringSubmatch(advice)
					if m == nil {
						t.Fatalf("%q: no SQL to carry the list", advice)
					}
					schema, npool := pgtest.Schema(t)
					if _, err := pool.Exec(ctx, strings.ReplaceAll(m[1], "NEW_SCHEMA", schema)); err != nil {
						t.Fatalf("the advice's SQL: %v", err)
					}
					n := NewPostgres(npool, schema, nil)
					if err := n.Migrate(ctx, record.Builtin()); err != nil {
						t.Fatal(err)
					}
					return n
				}
			}
			f, err := NewForgotten("+393528510009", nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := old.Suppress(ctx, f, nil); err != nil {
				t.Fatal(err)
			}
			advice := old.NewExportAdvice()
			for _, want := range []string{"new recordings store", "EXPORT_RECORDINGS_DIR", "before the first run there", "every number forgotten here again", "forget --allow-empty"} {
				if !strings.Contains(advice, want) {
					t.Errorf("%q: want it to say %q", advice, want)
				}
			}
			was, err := old.Suppression(ctx)
			if err != nil || len(was.Numbers) == 0 {
				t.Fatalf("the list: %+v, %v; want the number", was, err)
			}
			got, err := carry(advice).Suppression(ctx)
			if err != nil || !reflect.DeepEqual(got, was) {
				t.Fatalf("the new %s's list: %+v, %v; want %+v", kind, got, err, was)
			}
		})
	}
}

// TestLedgerRuleOnlyFromRunsThatCommitted is review 16's R16-1 and R16-2:
// with the stored rule missing, the ledger's runs that committed nothing
// spoke for the rows. A first run that failed before any row made the
// empty sink's next run under another rule a "record missing" refusal
// (R16-1); a forced change that committed nothing made the ledger's rules
// disagree, every run refused (R16-2). Now only runs that committed rows,
// or marked a change, count: the rule is the change's run's, else the
// first committing run's. Both sinks (a CSV folder with no data file, so
// that its ledger is what tells).
func TestLedgerRuleOnlyFromRunsThatCommitted(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	numbers := exporter.Privacy{Rule: "numbers", KeyID: "k:aaaaaaaa"}
	none := exporter.Privacy{Rule: "none"}
	type store interface {
		exporter.Sink
		PrivacyRuleFrom(ctx context.Context, pbx string) (exporter.Privacy, bool, *LostRule, error)
		PendPrivacyRule(pbx string, r *exporter.Privacy)
	}
	t0 := time.Now().UTC()
	n := 0
	// run is a run of PBX x under rule, stored first when pend, whose one
	// batch commits (rows: 3 rows in the ledger) or which commits nothing.
	run := func(t *testing.T, s store, id string, rule exporter.Privacy, pend *exporter.Privacy, rows bool) {
		t.Helper()
		n++
		r := ledgerRun(id)
		r.Started, r.Privacy = t0.Add(time.Duration(n)*time.Second), rule
		if err := s.StartRun(ctx, r); err != nil {
			t.Fatal(err)
		}
		s.PendPrivacyRule("x", pend)
		r.Endpoints[0].Rows = 0
		if rows {
			commitOne(t, s, id)
			r.Endpoints[0].Rows = 3
		}
		s.PendPrivacyRule("x", nil)
		if err := s.FinishRun(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	check := func(t *testing.T, s store, what, want, wantRun string, wantRules int) {
		t.Helper()
		r, found, lost, err := s.PrivacyRuleFrom(ctx, "x")
		if err != nil {
			t.Fatal(err)
		}
		if want == "" {
			if found || lost != nil {
				t.Fatalf("%s: rule %q found %v lost %+v; want a first export", what, r, found, lost)
			}
			return
		}
		if !found || lost == nil || r.String() != want || lost.Run != wantRun || len(lost.Rules) != wantRules {
			t.Fatalf("%s: rule %q found %v lost %+v; want %q from %s, %d rule(s)", what, r, found, lost, want, wantRun, wantRules)
		}
	}
	for _, sink := range []string{"postgres", "csv"} {
		t.Run(sink, func(t *testing.T) {
			t.Parallel()
			var s store
			var lose func()
			if sink == "postgres" {
				p, pool := newPostgres(t)
				s, lose = p, func() {
					if _, err := pool.Exec(ctx, "DELETE FROM export_state WHERE key = $1", privacyKey); err != nil {
						t.Fatal(err)
					}
				}
			} else {
				dir := t.TempDir()
				c, err := NewCSV(CSVOptions{Dir: dir})
				if err != nil {
					t.Fatal(err)
				}
				s, lose = c, func() {
					if err := os.Remove(filepath.Join(dir, ".state", "x", privacyFile)); err != nil && !os.IsNotExist(err) {
						t.Fatal(err)
					}
				}
			}
			// R16-1: a first run failing before any row.
			run(t, s, "r1", numbers, &numbers, false)
			check(t, s, "a first run that committed nothing", "", "", 0)
			// The first rows, then R16-2: a forced change committing nothing.
			run(t, s, "r2", none, &none, true)
			changed := numbers
			changed.Changed = none.String()
			run(t, s, "r3", numbers, &changed, false)
			run(t, s, "r4", none, nil, true)
			lose()
			check(t, s, "a forced change that committed nothing", "none", "r2", 1)
			// A forced change that committed: its rule, whatever came before.
			run(t, s, "r5", numbers, &changed, true)
			run(t, s, "r6", numbers, nil, true)
			run(t, s, "r7", none, nil, false) // refused
			lose()
			check(t, s, "a forced change that committed", numbers.String(), "r5", 1)
		})
	}
}

// TestDamagedRuleRecordNotQuoted: a stored rule that cannot be read is
// refused with its size, never its bytes, which may hold anything (here a
// phone number written into it by hand or by a torn write), on both
// sinks. Fails with the record quoted in the error (%q).
func TestDamagedRuleRecordNotQuoted(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// JSON without a rule for PostgreSQL (its column takes only JSON), a
	// torn record for CSV.
	const noRule, torn = `{"note": "+39 352 8512784"}`, `{"rule": "numbers", "note": "+39 352 8512784`
	check := func(t *testing.T, err error) {
		t.Helper()
		if err == nil || !strings.Contains(err.Error(), "is damaged") {
			t.Fatalf("a damaged rule record: %v, want it refused as damaged", err)
		}
		if strings.Contains(err.Error(), "8512784") || strings.Contains(err.Error(), "note") {
			t.Fatalf("the error quotes the record: %v", err)
		}
	}
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		p, pool := newPostgres(t)
		if _, err := pool.Exec(ctx, "INSERT INTO export_state (pbx, key, state) VALUES ('x', $1, $2)", privacyKey, []byte(noRule)); err != nil {
			t.Fatal(err)
		}
		_, _, err := p.PrivacyRule(ctx, "x")
		check(t, err)
	})
	t.Run("csv", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		if err := os.MkdirAll(filepath.Join(dir, ".state", "x"), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, ".state", "x", privacyFile), []byte(torn), 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := NewCSV(CSVOptions{Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = s.PrivacyRule(ctx, "x")
		check(t, err)
	})
}
