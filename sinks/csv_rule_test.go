package sinks

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wildix-export/wildix-export/exporter"
	"github.com/wildix-export/wildix-export/exporter/record"
)

// TestManifestsCarryTheRule (attack 7, F9): each data file's manifest
// carries the rule of the run that wrote it and when that run began, a
// rewrite keeps it, and with the state folder lost PrivacyRuleFrom takes
// the rule of the PBX's newest file (by its run's start, not its name's
// order), leaving out another PBX's whose name begins as this one's;
// files carrying no rule (an earlier release's) leave it unknown. Fails
// with the manifests carrying no rule (every PBX then reads as a first
// export: rule none, not found). The tests of this file give runs ids of
// the sink's shape (exporter.NewRunID's): only files named as the sink
// names them are data files (review 36, R36-2).
func TestManifestsCarryTheRule(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	s, err := NewCSV(CSVOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	write := func(pbx, run string, started time.Time, rule exporter.Privacy) string {
		t.Helper()
		if rule.Rule != "" {
			if err := s.StartRun(ctx, &exporter.RunResult{ID: run, Mode: "once", PBX: pbx, Started: started, Privacy: rule}); err != nil {
				t.Fatal(err)
			}
		}
		ep := record.Builtin()[0]
		b, err := s.Begin(ctx, exporter.BatchInfo{PBX: pbx, RunID: run, Endpoint: &ep, StateKey: ep.Name, Seq: 1, Snapshot: true})
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Commit(ctx, []byte(`{"cursor":1}`), exporter.Progress{}); err != nil {
			t.Fatal(err)
		}
		return filepath.Join(ep.Name, safeName(pbx)+"_"+run+"_0001.csv")
	}
	numbers := exporter.Privacy{Rule: "numbers", KeyID: "k:aaaaaaaa"}
	write("a", "20200101T000000Z-00", time.Time{}, exporter.Privacy{}) // an earlier release's: no rule
	newest := write("a", "20200101T000000Z-01", t0.Add(time.Nanosecond), numbers)
	write("a", "20200101T000000Z-02", t0, exporter.Privacy{Rule: "none"})
	write("a_b", "20200101T000000Z-03", t0.Add(time.Hour), exporter.Privacy{Rule: "names", KeyID: "k:bbbbbbbb"})
	legacy := write("c", "20200101T000000Z-04", time.Time{}, exporter.Privacy{})

	man, err := updatedManifest(filepath.Join(dir, newest), 0, 0, "", map[string]int64{"rows_removed_forget": 1}, nil)
	if err != nil || !strings.Contains(string(man), `"rule": "numbers"`) || !strings.Contains(string(man), `"run_started"`) {
		t.Fatalf("a rewrite's manifest (%v): %s; want the rule kept", err, man)
	}
	if r, found, lost, err := s.PrivacyRuleFrom(ctx, "c"); err != nil || !found || lost != nil || r.Rule != "none" {
		t.Fatalf("state kept, no rule stored (before rules were kept): %v %v %+v %v; want none, found, not lost", r, found, lost, err)
	}

	if err := os.RemoveAll(filepath.Join(dir, ".state")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		pbx, rule, file string
		unknown         bool
	}{
		{"a", numbers.String(), newest, false},
		{"a_b", "names k:bbbbbbbb", filepath.Join("call_history", "a_b_20200101T000000Z-03_0001.csv"), false},
		{"c", "none", legacy, true},
	} {
		r, found, lost, err := s.PrivacyRuleFrom(ctx, tc.pbx)
		if err != nil || !found || lost == nil {
			t.Fatalf("%s, state lost: %v found %v lost %+v, %v; want found and lost", tc.pbx, r, found, lost, err)
		}
		if r.String() != tc.rule || lost.File != tc.file || lost.Unknown != tc.unknown || lost.Files != map[string]int{"a": 3, "a_b": 1, "c": 1}[tc.pbx] {
			t.Errorf("%s, state lost: rule %q, %+v; want %q from %s, unknown %v", tc.pbx, r, lost, tc.rule, tc.file, tc.unknown)
		}
	}
	if r, found, lost, err := s.PrivacyRuleFrom(ctx, "d"); err != nil || found || lost != nil || r.Rule != "none" {
		t.Fatalf("a PBX with no file: %v %v %+v %v; want a first export", r, found, lost, err)
	}

	// Review 26: the manifests lost too, the data files kept. Forget's
	// judgement of lost state (CSVStateLost) finds a PBX's files by the
	// names the sink gives them: that PBX is not taken for a first
	// export; a PBX with no file beside them still is.
	named := write("e", "20260102T030405Z-abcdef", t0, numbers)
	if err := os.RemoveAll(filepath.Join(dir, ".state")); err != nil {
		t.Fatal(err)
	}
	mans, _ := filepath.Glob(filepath.Join(dir, "*", "*.manifest.json"))
	for _, m := range mans {
		if err := os.Remove(m); err != nil {
			t.Fatal(err)
		}
	}
	r, found, lost, err := s.PrivacyRuleFrom(ctx, "e")
	if err != nil || !found || lost == nil || !lost.Unknown || !lost.Unmanifested || lost.File != named || r.Rule != "none" {
		t.Errorf("state and manifests lost: %v found %v lost %+v, %v; want found, unknown, unmanifested, naming %s", r, found, lost, err, named)
	}
	if r, found, lost, err := s.PrivacyRuleFrom(ctx, "d"); err != nil || found || lost != nil || r.Rule != "none" {
		t.Fatalf("a PBX with no file beside another's, state and manifests lost: %v %v %+v %v; want a first export", r, found, lost, err)
	}
}

// TestManifestsWeighedAgainstLedger is review 20's R20-1 (2): with the
// rule's record lost and the run ledger kept, the newest data file's
// rule was taken over the ledger's even when the ledger recorded a later
// forced change that wrote no file (its rows rewritten in place, or none
// yet): a run in clear was then accepted into a pseudonymised folder.
// Now the ledger decides when it records the run of the newest file's
// rule; otherwise the run that started later does (a ledger restored
// from an older copy misses the newest files' runs). Fails with the
// manifests taken first.
func TestManifestsWeighedAgainstLedger(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	none := exporter.Privacy{Rule: "none"}
	numbers := exporter.Privacy{Rule: "numbers", KeyID: "k:aaaaaaaa"}
	type run struct {
		id      string
		started time.Time
		rule    exporter.Privacy
		changed string
		empty   bool // committed no rows
	}
	for _, tc := range []struct {
		name    string
		file    run   // the run that wrote the PBX's only data file
		ledger  []run // the ledger's lines, oldest first
		want    string
		fromRun string // "": from the manifest
	}{
		{"forced change after the file, no file written", run{"20200101T000000Z-01", t0, none, "", false},
			[]run{{"20200101T000000Z-01", t0, none, "", false}, {"20200101T000000Z-02", t0.Add(time.Hour), numbers, "none", false}}, numbers.String(), "20200101T000000Z-02"},
		{"the ledger records the file's run, its clock behind", run{"20200101T000000Z-01", t0.Add(2 * time.Hour), none, "", false},
			[]run{{"20200101T000000Z-01", t0.Add(2 * time.Hour), none, "", false}, {"20200101T000000Z-02", t0.Add(time.Hour), numbers, "none", false}}, numbers.String(), "20200101T000000Z-02"},
		{"an older ledger, without the file's run", run{"20200101T000000Z-03", t0.Add(2 * time.Hour), numbers, "", false},
			[]run{{"20200101T000000Z-01", t0, none, "", false}}, numbers.String(), ""},
		{"the file's run, not in the ledger, started before its change", run{"20200101T000000Z-00", t0.Add(-time.Hour), none, "", false},
			[]run{{"20200101T000000Z-02", t0, numbers, "none", false}}, numbers.String(), "20200101T000000Z-02"},
		// Review 27, R27-1: a forced change to numbers killed between
		// its commit and its ledger line, then a backfill over an empty
		// range stamping its rule in that commit's file: the ledger
		// records the stamping run, which committed no rows, after the
		// last run that speaks for the rows (in clear).
		{"the file's run in the ledger after its last run speaking, with no rows", run{"20200101T000000Z-0b", t0.Add(2 * time.Hour), numbers, "", false},
			[]run{{"20200101T000000Z-01", t0, none, "", false}, {"20200101T000000Z-0b", t0.Add(2 * time.Hour), numbers, "", true}}, numbers.String(), ""},
		{"the file's run in the ledger before its last run speaking", run{"20200101T000000Z-0b", t0.Add(2 * time.Hour), numbers, "", false},
			[]run{{"20200101T000000Z-0b", t0.Add(2 * time.Hour), numbers, "", true}, {"20200101T000000Z-02", t0.Add(time.Hour), none, "", false}}, "none", "20200101T000000Z-02"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			s, err := NewCSV(CSVOptions{Dir: dir})
			if err != nil {
				t.Fatal(err)
			}
			if err := s.StartRun(ctx, &exporter.RunResult{ID: tc.file.id, Mode: "once", PBX: "a", Started: tc.file.started, Privacy: tc.file.rule}); err != nil {
				t.Fatal(err)
			}
			ep := record.Builtin()[0]
			b, err := s.Begin(ctx, exporter.BatchInfo{PBX: "a", RunID: tc.file.id, Endpoint: &ep, StateKey: ep.Name, Seq: 1, Snapshot: true})
			if err != nil {
				t.Fatal(err)
			}
			if err := b.Commit(ctx, []byte(`{"cursor":1}`), exporter.Progress{}); err != nil {
				t.Fatal(err)
			}
			var lines []byte
			for _, r := range tc.ledger {
				p := r.rule
				p.Changed = r.changed
				rows := 1
				if r.empty {
					rows = 0
				}
				line, _ := json.Marshal(map[string]any{"run_id": r.id, "pbx": "a", "started": r.started, "privacy": p,
					"endpoints": []map[string]any{{"endpoint": ep.Name, "rows": rows}}})
				lines = append(append(lines, line...), '\n')
			}
			if err := os.WriteFile(filepath.Join(s.stateDir("a"), "runs.jsonl"), lines, 0o600); err != nil {
				t.Fatal(err)
			}
			os.Remove(filepath.Join(s.stateDir("a"), privacyFile))
			r, found, lost, err := s.PrivacyRuleFrom(ctx, "a")
			if err != nil || !found || lost == nil {
				t.Fatalf("record lost: %v found %v lost %+v, %v; want found and lost", r, found, lost, err)
			}
			if r.String() != tc.want || lost.Run != tc.fromRun || len(lost.Rules) != 1 {
				t.Errorf("record lost: rule %q, %+v; want %q from run %q (\"\": the manifest)", r, lost, tc.want, tc.fromRun)
			}
		})
	}
}

// TestRecordWeighedAgainstManifests is review 27's R27-2: an older copy
// of .state restored with its dot files (its record of the rule says
// none) was trusted without a look at the data files' manifests, which
// say numbers since a forced change: a run in clear then wrote beside
// the pseudonymised rows. Now a record older than a manifest saying
// another rule is stale: the manifests' rule is returned, with a
// LostRule saying what the record says. A record newer than the files
// of another rule (a forced change that wrote none yet), or later in the
// ledger whatever the clocks said, is trusted. Each manifest is read
// once: a second check reads none. Fails with the record trusted as it
// is (none, not lost).
func TestRecordWeighedAgainstManifests(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	none := exporter.Privacy{Rule: "none"}
	numbers := exporter.Privacy{Rule: "numbers", KeyID: "k:aaaaaaaa"}
	ep := record.Builtin()[0]
	// run runs one export of PBX "a" under rule (changed: a forced change
	// from it), writing one data file when rows, and its ledger line.
	run := func(t *testing.T, s *CSV, id string, started time.Time, rule exporter.Privacy, changed string, rows bool) {
		t.Helper()
		if err := s.StartRun(ctx, &exporter.RunResult{ID: id, Mode: "once", PBX: "a", Started: started, Privacy: rule}); err != nil {
			t.Fatal(err)
		}
		p := rule
		p.Changed = changed
		s.PendPrivacyRule("a", &p)
		n := int64(0)
		if rows {
			b, err := s.Begin(ctx, exporter.BatchInfo{PBX: "a", RunID: id, Endpoint: &ep, StateKey: ep.Name, Seq: 1, Snapshot: true})
			if err != nil {
				t.Fatal(err)
			}
			if err := b.Commit(ctx, []byte(`{"cursor":1}`), exporter.Progress{}); err != nil {
				t.Fatal(err)
			}
			n = 1
		} else {
			// A forced change with no row to write stores its record all
			// the same (review 27, finding 4).
			b, _ := json.Marshal(storedRule{Privacy: p, RunID: id, Started: started})
			if err := os.WriteFile(filepath.Join(s.stateDir("a"), privacyFile), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		s.PendPrivacyRule("a", nil)
		if err := s.FinishRun(ctx, &exporter.RunResult{ID: id, Mode: "once", PBX: "a", Started: started, Status: "ok", Privacy: rule,
			Endpoints: []exporter.EndpointResult{{Endpoint: ep.Name, Rows: n}}}); err != nil {
			t.Fatal(err)
		}
	}
	copyState := func(t *testing.T, from, to string) {
		t.Helper()
		if err := os.CopyFS(to, os.DirFS(from)); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name    string
		do      func(t *testing.T, s *CSV, dir string)
		want    string
		stale   string // the record's rule, when stale
		newFile bool   // the stale word is the newest run's file
	}{
		{"an older .state restored, dot files too", func(t *testing.T, s *CSV, dir string) {
			run(t, s, "20200101T000000Z-01", t0, none, "", true)
			old := filepath.Join(t.TempDir(), "state")
			copyState(t, filepath.Join(dir, ".state"), old)
			run(t, s, "20200101T000000Z-02", t0.Add(time.Hour), numbers, "none", true)
			run(t, s, "20200101T000000Z-03", t0.Add(2*time.Hour), numbers, "", true)
			if err := os.RemoveAll(filepath.Join(dir, ".state")); err != nil {
				t.Fatal(err)
			}
			copyState(t, old, filepath.Join(dir, ".state"))
		}, numbers.String(), "none", true},
		{"a forced change that wrote no file yet", func(t *testing.T, s *CSV, dir string) {
			run(t, s, "20200101T000000Z-01", t0, none, "", true)
			run(t, s, "20200101T000000Z-02", t0.Add(time.Hour), numbers, "none", false)
		}, numbers.String(), "", false},
		{"a forced change later in the ledger, its clock behind", func(t *testing.T, s *CSV, dir string) {
			run(t, s, "20200101T000000Z-01", t0.Add(2*time.Hour), none, "", true)
			run(t, s, "20200101T000000Z-02", t0.Add(time.Hour), numbers, "none", false)
		}, numbers.String(), "", false},
		{"the files of before a forced change", func(t *testing.T, s *CSV, dir string) {
			run(t, s, "20200101T000000Z-01", t0, none, "", true)
			run(t, s, "20200101T000000Z-02", t0.Add(time.Hour), numbers, "none", true)
			run(t, s, "20200101T000000Z-03", t0.Add(2*time.Hour), none, numbers.String(), true)
		}, "none", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			s, err := NewCSV(CSVOptions{Dir: dir})
			if err != nil {
				t.Fatal(err)
			}
			tc.do(t, s, dir)
			// A new sink: what a later process reads.
			s, err = NewCSV(CSVOptions{Dir: dir})
			if err != nil {
				t.Fatal(err)
			}
			r, found, lost, err := s.PrivacyRuleFrom(ctx, "a")
			if err != nil || !found || r.String() != tc.want {
				t.Fatalf("rule %q found %v lost %+v, %v; want %q", r, found, lost, err, tc.want)
			}
			switch {
			case tc.stale == "" && lost != nil:
				t.Fatalf("record current: lost %+v; want none", lost)
			case tc.stale != "" && (lost == nil || lost.Stale != tc.stale || !strings.Contains(lost.File, "-03_")):
				t.Fatalf("record stale: lost %+v; want it saying the record's %q and r3's file", lost, tc.stale)
			}
			reads := s.manifestReads.Load()
			if _, _, _, err := s.PrivacyRuleFrom(ctx, "a"); err != nil {
				t.Fatal(err)
			}
			if got := s.manifestReads.Load() - reads; tc.stale == "" && got != 0 {
				t.Errorf("the second check read %d manifest(s); want none (the mark holds them)", got)
			}
		})
	}
}
