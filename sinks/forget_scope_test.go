package sinks

import (
	"context"
	"slices"
	"testing"

	"github.com/wildix-export/wildix-export/exporter"
	"github.com/wildix-export/wildix-export/exporter/record"
)

// TestForgetScopePendingKey: a forced key change whose commit crashed
// right after its pending record (no rule file, no ledger line for it
// yet) still names its key in the CSV sink's scope, so forget asks for
// it: recovery will complete the commit and write rows under that key
// (review 30-fixes 3).
func TestForgetScopePendingKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, err := NewCSV(CSVOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	was := exporter.Privacy{Rule: "numbers", KeyID: "k:aaaaaaaa"}
	s.PendPrivacyRule("x", &was)
	commitOne(t, s, "r0")
	now := exporter.Privacy{Rule: "numbers", KeyID: "k:bbbbbbbb", Changed: was.String()}
	s.PendPrivacyRule("x", &now)
	s.crash = func() bool { return true } // stops right after the pending record
	ep := record.Builtin()[0]
	b, err := s.Begin(ctx, exporter.BatchInfo{PBX: "x", RunID: "r1", Endpoint: &ep, StateKey: ep.Name, Seq: 1, Snapshot: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(ctx, []byte(`{"cursor":1}`), exporter.Progress{}); err == nil {
		t.Fatal("the crash did not stop the commit")
	}
	sc, err := s.ForgetScope(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(sc.KeyIDs, []string{"k:aaaaaaaa", "k:bbbbbbbb"}) {
		t.Errorf("scope's keys %q, want both k:aaaaaaaa and the pending commit's k:bbbbbbbb", sc.KeyIDs)
	}
}
