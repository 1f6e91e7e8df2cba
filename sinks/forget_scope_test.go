package sinks

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
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

// TestPrivacyRuleAfterRecover: a crashed commit whose temporary data file
// is gone is discarded by Recover, its pending rule with it: PrivacyRule
// then gives the rule stored before, as a run checks it under its lock
// (review 30-fixes 4).
func TestPrivacyRuleAfterRecover(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	s, err := NewCSV(CSVOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	was := exporter.Privacy{Rule: "numbers", KeyID: "k:aaaaaaaa"}
	s.PendPrivacyRule("x", &was)
	commitOne(t, s, "r0")
	now := exporter.Privacy{Rule: "numbers,names", KeyID: "k:aaaaaaaa", Changed: was.String()}
	s.PendPrivacyRule("x", &now)
	s.crash = func() bool { return true } // stops right after the pending record
	var ep record.Endpoint
	for _, x := range record.Builtin() {
		if x.Name == "call_history" {
			ep = x
		}
	}
	b, err := s.Begin(ctx, exporter.BatchInfo{PBX: "x", RunID: "r1", Endpoint: &ep, StateKey: ep.Name, Seq: 1, Snapshot: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Write(ctx, []record.Row{cleanRow(t, &ep, 1)}); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(ctx, []byte(`{"cursor":1}`), exporter.Progress{}); err == nil {
		t.Fatal("the crash did not stop the commit")
	}
	tmps, _ := filepath.Glob(filepath.Join(dir, ep.Name, tmpPrefix("x")+"*"))
	if len(tmps) == 0 {
		t.Fatal("no temporary data file to remove")
	}
	for _, f := range tmps {
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}
	again, err := NewCSV(CSVOptions{Dir: dir, Log: slog.New(slog.DiscardHandler)}) // the next process
	if err != nil {
		t.Fatal(err)
	}
	if err := again.Recover(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	if r, _, err := again.PrivacyRule(ctx, "x"); err != nil || r.String() != was.String() {
		t.Fatalf("after Recover discarded the commit: rule %q, %v; want %q", r, err, was)
	}
}

// TestForgetScopeManifests (review 20, R20-2): the CSV sink's scope takes
// each data file's manifest's PBX and key id, and names each PBX whose
// data files remain while its state is lost (.state gone, .state/<pbx>
// gone, or holding only a key index); manifests under dot folders are
// skipped. A data file whose manifest is lost too counts by its name, of
// the PBX its name gives, when it is named as the sink names them (review
// 26, R26-2; R28-5: not a user's own CSV file); each PBX is judged by its
// own state folder, a PBX without data files never lost (R26-3).
// CSVStateLost, which a run may ask, says the same.
func TestForgetScopeManifests(t *testing.T) {
	t.Parallel()
	const run = "20261207T113550Z-133c3d_0001"
	manifest := func(pbx, key string) string {
		if key == "" {
			return `{"pbx":"` + pbx + `","file":"` + pbx + `_` + run + `.csv"}`
		}
		return `{"pbx":"` + pbx + `","file":"` + pbx + `_` + run + `.csv","privacy":{"rule":"numbers","key_id":"` + key + `"}}`
	}
	for _, tc := range []struct {
		name  string
		files map[string]string
		pbxes []string
		keys  []string
		lost  []LostState
	}{
		{"state lost", map[string]string{
			"call_history/a_" + run + ".manifest.json": manifest("a", "k:1"),
			"call_history/a_" + run + ".csv":           "id\n1\n",
		},
			[]string{"a"}, []string{"k:1"}, []LostState{{"a", "call_history/a_" + run + ".csv"}}},
		{"one PBX's state lost", map[string]string{
			".state/b/runs.jsonl":                      `{"id":"r","pbx":"b"}` + "\n",
			"call_history/a_" + run + ".manifest.json": manifest("a", "k:1"),
			"call_history/a_" + run + ".csv":           "id\n1\n",
			"call_history/b_" + run + ".manifest.json": manifest("b", ""),
			"call_history/b_" + run + ".csv":           "id\n1\n",
		}, []string{"a", "b"}, []string{"k:1"}, []LostState{{"a", "call_history/a_" + run + ".csv"}}},
		{"only a key index left", map[string]string{
			".state/a/call_history~keys.json":          `{}`,
			"call_history/a_" + run + ".manifest.json": manifest("a", "k:1"),
			"call_history/a_" + run + ".csv":           "id\n1\n",
		}, []string{"a"}, []string{"k:1"}, []LostState{{"a", "call_history/a_" + run + ".csv"}}},
		{"state kept, the manifest's key added", map[string]string{
			".state/a/call_history.json":               `{"cursor":1}`,
			"call_history/a_" + run + ".manifest.json": manifest("a", "k:2"),
			"call_history/a_" + run + ".csv":           "id\n1\n",
		}, []string{"a"}, []string{"k:2"}, nil},
		{"manifests lost with the state, a data file kept", map[string]string{
			"call_history/a_20261207T113550Z-133c3d_0001.csv": "id\n1\n",
		}, nil, nil, []LostState{{"a", "call_history/a_20261207T113550Z-133c3d_0001.csv"}}},
		// Review 28, R28-5: any .csv was taken for a data file.
		{"a user's own CSV files", map[string]string{
			"reports/mine.csv":                           "a,b\n",
			"call_history/export.csv":                    "a,b\n",
			"call_history/a_r_0001.csv.gz":               "",
			"Reports/a_20261207T113550Z-133c3d_0001.csv": "id\n",
		}, nil, nil, nil},
		// Review 26, R26-3: each PBX judged by its own state folder.
		{"one PBX's state and manifests lost, another's state kept", map[string]string{
			".state/b/runs.jsonl":                                             `{"id":"r","pbx":"b"}` + "\n",
			".state/b/call_history.json":                                      `{"cursor":1}`,
			"call_history/b_20261207T113550Z-133c3d_0001.csv":                 "id\n1\n",
			"call_history/a%3A1_20261207T113550Z-133c3d_0002.csv":             "id\n1\n",
			"call_history/a%3A1_backfill_20261201T000000_20261202T000000.csv": "id\n1\n",
		}, []string{"b"}, nil, []LostState{{"a:1", "call_history/a%3A1_20261207T113550Z-133c3d_0002.csv"}}},
		{"a PBX with no state and no data file, another's state kept", map[string]string{
			".state/b/runs.jsonl":                             `{"id":"r","pbx":"b"}` + "\n",
			".state/b/call_history.json":                      `{"cursor":1}`,
			".state/c/export.lock":                            "",
			"call_history/b_20261207T113550Z-133c3d_0001.csv": "id\n1\n",
		}, []string{"b"}, nil, nil},
		// Review 43, R43-5: the run ledger, the record of the rule and a
		// rewrite left to do are no cursor state, as the run judges it.
		{"manifests lost, a run ledger alone left", map[string]string{
			".state/a/runs.jsonl":                             `{"id":"r","pbx":"a"}` + "\n",
			".state/a/.privacy.json":                          `{"rule":"none"}`,
			".state/a/rewrite~due.json":                       `{}`,
			"call_history/a_20261207T113550Z-133c3d_0001.csv": "id\n1\n",
		}, []string{"a"}, nil, []LostState{{"a", "call_history/a_20261207T113550Z-133c3d_0001.csv"}}},
		{"a backfill's data file kept, its state lost", map[string]string{
			"calls/a_backfill_20261201T000000_20261202T000000.csv.gz": "",
		}, nil, nil, []LostState{{"a", "calls/a_backfill_20261201T000000_20261202T000000.csv.gz"}}},
		// Review 36, R36-2 on forget's side: a user's own manifest, of no
		// data file named as the sink names them, is none.
		{"a user's own manifests", map[string]string{
			"call_history/mine.manifest.json":          manifest("x", "k:9"),
			"call_history/mine.csv":                    "a,b\n",
			"call_history/x_" + run + ".manifest.json": manifest("x", "k:9"),
		}, nil, nil, nil},
		{"dot folders skipped", map[string]string{
			".state/a/runs.jsonl":                  "\n",
			".quarantine/c_r_0001.manifest.json":   manifest("c", "k:3"),
			".quarantine/c_r_0001.csv":             "id\n",
			"call_history/.c_r_0001.manifest.json": manifest("c", "k:3"),
		}, []string{"a"}, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			for name, body := range tc.files {
				if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			s, err := NewCSV(CSVOptions{Dir: dir})
			if err != nil {
				t.Fatal(err)
			}
			sc, err := s.ForgetScope(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(sc.PBXes, tc.pbxes) || !slices.Equal(sc.KeyIDs, tc.keys) || !slices.Equal(sc.Lost, tc.lost) {
				t.Errorf("scope PBXes %q keys %q lost %v; want %q %q %v", sc.PBXes, sc.KeyIDs, sc.Lost, tc.pbxes, tc.keys, tc.lost)
			}
			lost, err := CSVStateLost(dir)
			if err != nil || !slices.Equal(lost, tc.lost) {
				t.Errorf("CSVStateLost %v, %v; want %v", lost, err, tc.lost)
			}
			one, err := CSVDataFile(dir)
			if err != nil {
				t.Fatal(err)
			}
			if want := len(tc.lost) > 0 || strings.Contains(tc.name, "kept"); (one != "") != want {
				t.Errorf("CSVDataFile %q; want one: %v", one, want)
			}
		})
	}
}
