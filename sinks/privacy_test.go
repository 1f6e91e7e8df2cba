package sinks

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/wildix-export/wildix-export/exporter"
	"github.com/wildix-export/wildix-export/exporter/record"
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
