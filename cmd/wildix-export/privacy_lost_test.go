package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wildix-export/wildix-export/internal/pbxsim"
	"github.com/wildix-export/wildix-export/internal/pseudonym"
)

// TestRunRefusesFolderWithoutStateOrManifests is review 26's finding: a
// CSV folder whose .state and data files' manifests are both lost, its
// .csv files kept, was taken by `run` for a first export (exit 0), which
// wrote every call again in clear beside the pseudonymised copies. Now
// the run is refused (exit 2), under each rule and with --force too,
// naming a data file and what to do, and changes no data file; forget
// already refused such a folder (sinks.CSVDataFile, shared).
func TestRunRefusesFolderWithoutStateOrManifests(t *testing.T) {
	t.Parallel()
	f := authorized(t, pbxsim.Options{Calls: 40})
	dir := t.TempDir()
	clear := fixtureEnv(f, dir, "EXPORT_ENDPOINTS=call_history,colleagues")
	numbers := append(append([]string(nil), clear...), "EXPORT_PSEUDONYMIZE=numbers", "EXPORT_PSEUDONYM_KEY="+testKey1)
	if r := runCLI(t, numbers, "run", "--once"); r.code != 0 {
		t.Fatalf("first run: exit %d: %v\n%s", r.code, r.err, r.stderr)
	}
	if err := os.RemoveAll(filepath.Join(dir, ".state")); err != nil {
		t.Fatal(err)
	}
	mans, _ := filepath.Glob(filepath.Join(dir, "*", "*.manifest.json"))
	if len(mans) == 0 {
		t.Fatal("no manifest written: the case is not the review's")
	}
	for _, m := range mans {
		if err := os.Remove(m); err != nil {
			t.Fatal(err)
		}
	}
	before := dataFiles(t, dir)
	for _, tc := range []struct {
		name string
		kv   []string
		args []string
	}{
		{"in clear", clear, []string{"run", "--once"}},
		{"in clear, forced", clear, []string{"run", "--once", "--force"}},
		{"under the rows' rule", numbers, []string{"run", "--once"}},
	} {
		r := runCLI(t, tc.kv, tc.args...)
		if r.code != exitConfig {
			t.Fatalf("%s: exit %d, %v; want 2\n%s", tc.name, r.code, r.err, r.stderr)
		}
		for _, w := range []string{"holds data files (call_history" + string(filepath.Separator), ".csv, for one) but neither PBX", "manifests", "--force or not", "restore the state folder and the manifests", "Nothing was changed"} {
			if !strings.Contains(r.err.Error(), w) {
				t.Errorf("%s: %v; want it to say %q", tc.name, r.err, w)
			}
		}
		if dataFiles(t, dir) != before {
			t.Fatalf("%s: the refused run changed the data files", tc.name)
		}
	}
}

// TestRunRefusesOlderRecordOfTheRule is review 27's R27-2: an older copy
// of .state, taken while the folder was in clear, restored with its dot
// files after pseudonymisation was turned on (forced): its record says
// none, and a run in clear was accepted (exit 0), writing rows in clear
// beside the pseudonymised ones. Now the record is weighed against the
// data files' manifests: the run in clear is refused (exit 2), saying the
// record is older than the rows and naming the file, and changes no data
// file; a run under numbers is accepted and stores the record again, and
// then a run in clear is refused as a change.
func TestRunRefusesOlderRecordOfTheRule(t *testing.T) {
	t.Parallel()
	f := authorized(t, pbxsim.Options{Calls: 40})
	dir := t.TempDir()
	clear := fixtureEnv(f, dir, "EXPORT_ENDPOINTS=call_history,colleagues")
	numbers := append(append([]string(nil), clear...), "EXPORT_PSEUDONYMIZE=numbers", "EXPORT_PSEUDONYM_KEY="+testKey1)
	if r := runCLI(t, clear, "run", "--once"); r.code != 0 {
		t.Fatalf("run in clear: exit %d: %v\n%s", r.code, r.err, r.stderr)
	}
	old := filepath.Join(t.TempDir(), "state")
	if err := os.CopyFS(old, os.DirFS(filepath.Join(dir, ".state"))); err != nil {
		t.Fatal(err)
	}
	if r := runCLI(t, numbers, "run", "--once", "--force"); r.code != 0 {
		t.Fatalf("forced run under numbers: exit %d: %v\n%s", r.code, r.err, r.stderr)
	}
	if err := os.RemoveAll(filepath.Join(dir, ".state")); err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(filepath.Join(dir, ".state"), os.DirFS(old)); err != nil {
		t.Fatal(err)
	}
	before := dataFiles(t, dir)
	r := runCLI(t, clear, "run", "--once")
	if r.code != exitConfig {
		t.Fatalf("older state restored, run in clear: exit %d, %v; want 2\n%s", r.code, r.err, r.stderr)
	}
	for _, w := range []string{"EXPORT_PSEUDONYMIZE changed", ".privacy.json) says rule none, but is older than the rows", "the manifest of data file colleagues" + string(filepath.Separator),
		"says its rows are written under rule numbers k:", "restore the whole state folder from the backup", "--force"} {
		if !strings.Contains(r.err.Error(), w) {
			t.Errorf("older state restored, run in clear: %v; want it to say %q", r.err, w)
		}
	}
	if dataFiles(t, dir) != before {
		t.Fatal("the refused run changed the data files")
	}
	if r := runCLI(t, numbers, "run", "--once"); r.code != 0 || !strings.Contains(r.stderr, "is older than the data files (it says none") {
		t.Fatalf("older state restored, run under numbers: exit %d: %v; want 0 and a warning\n%s", r.code, r.err, r.stderr)
	}
	if r := runCLI(t, clear, "run", "--once"); r.code != exitConfig || !strings.Contains(r.err.Error(), "EXPORT_PSEUDONYMIZE changed: the") {
		t.Fatalf("record stored again, run in clear: exit %d, %v; want 2 as a change", r.code, r.err)
	}
}

// TestForcedChangeWithNothingToWriteRecorded is attack 8's F1 (review
// 20, R20-7): pseudonymisation turned on with only call_history enabled
// and no new call on the PBX looped: `run --once --force` committed
// nothing, so stored nothing (the rule was stored only with a commit),
// and `backfill --force --rewrite` was refused asking for `run --once
// --force`. Now a forced run that ends well stores the change it
// accepted and its ledger entry marks it, rows or not; the backfill runs,
// and a run in clear is then refused as a change. For both sinks.
func TestForcedChangeWithNothingToWriteRecorded(t *testing.T) {
	t.Parallel()
	for _, sink := range []string{"csv", "postgres"} {
		t.Run(sink, func(t *testing.T) {
			t.Parallel()
			const calls = 30
			start := time.Now().UTC().Add(-calls * time.Minute).Add(-3 * time.Hour)
			f := authorized(t, pbxsim.Options{Calls: calls, CallGap: time.Minute, CallsStart: start})
			dir := t.TempDir()
			clear, pool := onSink(t, sink, fixtureEnv(f, dir, "EXPORT_ENDPOINTS=call_history"))
			numbers := append(append([]string(nil), clear...), "EXPORT_PSEUDONYMIZE=numbers", "EXPORT_PSEUDONYM_KEY="+testKey1)
			if r := runCLI(t, clear, "run", "--once"); r.code != 0 {
				t.Fatalf("run in clear: exit %d: %v\n%s", r.code, r.err, r.stderr)
			}
			if r := runCLI(t, numbers, "run", "--once", "--force"); r.code != 0 {
				t.Fatalf("forced run under numbers: exit %d: %v\n%s", r.code, r.err, r.stderr)
			}
			got := privacyLedger(t, pool, dir)
			k, _ := pseudonym.New([]byte(testKey1))
			if want := "numbers|" + k.KeyID() + "|none"; len(got) != 2 || got[1] != want {
				t.Fatalf("ledger %q: want the forced run's entry %q", got, want)
			}
			rome, _ := time.LoadLocation("Europe/Rome")
			from, to := start.In(rome).AddDate(0, 0, -1).Format("2006-01-02"), time.Now().In(rome).AddDate(0, 0, 2).Format("2006-01-02")
			if r := runCLI(t, numbers, "backfill", "--from", from, "--to", to, "--force", "--rewrite"); r.code != 0 {
				t.Fatalf("forced backfill with --rewrite: exit %d: %v\n%s", r.code, r.err, r.stderr)
			}
			if r := runCLI(t, clear, "run", "--once"); r.code != exitConfig || !strings.Contains(r.err.Error(), "EXPORT_PSEUDONYMIZE changed: the") {
				t.Fatalf("run in clear after: exit %d, %v; want 2 as a change", r.code, r.err)
			}
		})
	}
}

// TestChangeAdviceTrueForEachChange is review 29's R29-1 (the advice
// part) and R25-3: the refusal of a change of rule or key, and the
// forced run's warning, said for every change that `backfill --force
// --rewrite` "rewrites in place the rest"; false after a change to rule
// none (a pseudonym cannot be turned back, and the rewrite does nothing
// under none) or of key (the earlier key's pseudonyms cannot be made
// again). Now each says what the backfill does for that change.
func TestChangeAdviceTrueForEachChange(t *testing.T) {
	t.Parallel()
	f := authorized(t, pbxsim.Options{Calls: 20})
	dir := t.TempDir()
	base := fixtureEnv(f, dir, "EXPORT_ENDPOINTS=call_history")
	with := func(kv ...string) []string { return append(append([]string(nil), base...), kv...) }
	numbers := with("EXPORT_PSEUDONYMIZE=numbers", "EXPORT_PSEUDONYM_KEY="+testKey1)
	if r := runCLI(t, numbers, "run", "--once"); r.code != 0 {
		t.Fatalf("first run: exit %d: %v\n%s", r.code, r.err, r.stderr)
	}
	for _, tc := range []struct {
		name      string
		kv        []string
		want, not []string
	}{
		{"to none", with("EXPORT_PSEUDONYMIZE=none"),
			[]string{"keep their pseudonyms, which cannot be turned back", "--to <tomorrow> --force` over the whole history writes again in clear", "keeps them for good"},
			[]string{"--rewrite", "rewrites in place"}},
		{"another key", with("EXPORT_PSEUDONYMIZE=numbers", "EXPORT_PSEUDONYM_KEY="+testKey2),
			[]string{"keep the earlier key's pseudonyms, which cannot be made again under the new key", "--force --rewrite` over the whole history writes again under the new key", "do not join the new ones"},
			[]string{"rewrites in place the rest", "replaces in place"}},
		{"another key, names too", with("EXPORT_PSEUDONYMIZE=numbers,names", "EXPORT_PSEUDONYM_KEY="+testKey2),
			[]string{"cannot be made again under the new key", "and replaces in place in the rest what the earlier rule left in clear"},
			[]string{"rewrites in place the rest"}},
		{"names too", with("EXPORT_PSEUDONYMIZE=numbers,names", "EXPORT_PSEUDONYM_KEY="+testKey1),
			[]string{"--force --rewrite` over the whole history writes again under the new rule the calls the PBX still holds and rewrites in place the rest", "each value the earlier rule left in clear replaced"},
			[]string{"cannot be"}},
		{"names instead", with("EXPORT_PSEUDONYMIZE=names", "EXPORT_PSEUDONYM_KEY="+testKey1),
			[]string{"stays pseudonymised, as a pseudonym cannot be turned back", "with --rewrite it also replaces in place in the rest what the new rule replaces"},
			[]string{"rewrites in place the rest"}},
	} {
		r := runCLI(t, tc.kv, "run", "--once")
		if r.code != exitConfig {
			t.Fatalf("%s: exit %d, %v; want 2\n%s", tc.name, r.code, r.err, r.stderr)
		}
		for _, w := range tc.want {
			if !strings.Contains(r.err.Error(), w) {
				t.Errorf("%s: %v; want it to say %q", tc.name, r.err, w)
			}
		}
		for _, w := range tc.not {
			if strings.Contains(r.err.Error(), w) {
				t.Errorf("%s: %v; want it not to say %q", tc.name, r.err, w)
			}
		}
	}
	// The forced run's warning says the same.
	r := runCLI(t, with("EXPORT_PSEUDONYMIZE=none"), "run", "--once", "--force")
	if r.code != 0 || !strings.Contains(r.stderr, "keep their pseudonyms, which cannot be turned back") || strings.Contains(r.stderr, "rewrites in place") {
		t.Fatalf("forced change to none: exit %d, %v; want 0 and the advice for none\n%s", r.code, r.err, r.stderr)
	}
}

// TestRunRefusesNewerFileWithoutManifest is review 37's R37-1: an older
// copy of .state (its record says none) restored with its dot files
// after pseudonymisation was turned on (forced), AND the manifests of
// the files written since deleted: the record was trusted, as the check
// read only the manifests, and a run in clear exited 0, writing numbers
// in clear beside the pseudonymised history. Now the PBX's data files
// are listed by the names the sink gives them: the run is refused (exit
// 2) naming a file without a manifest written after the record, and
// changes no data file; forced under the rows' rule, it records that
// rule. Seen failing (exit 0) with the files without a manifest not
// looked at.
func TestRunRefusesNewerFileWithoutManifest(t *testing.T) {
	t.Parallel()
	f := authorized(t, pbxsim.Options{Calls: 40})
	dir := t.TempDir()
	clear := fixtureEnv(f, dir, "EXPORT_ENDPOINTS=call_history,colleagues")
	numbers := append(append([]string(nil), clear...), "EXPORT_PSEUDONYMIZE=numbers", "EXPORT_PSEUDONYM_KEY="+testKey1)
	if r := runCLI(t, clear, "run", "--once"); r.code != 0 {
		t.Fatalf("run in clear: exit %d: %v\n%s", r.code, r.err, r.stderr)
	}
	old := filepath.Join(t.TempDir(), "state")
	if err := os.CopyFS(old, os.DirFS(filepath.Join(dir, ".state"))); err != nil {
		t.Fatal(err)
	}
	had, _ := filepath.Glob(filepath.Join(dir, "*", "*.manifest.json"))
	if r := runCLI(t, numbers, "run", "--once", "--force"); r.code != 0 {
		t.Fatalf("forced run under numbers: exit %d: %v\n%s", r.code, r.err, r.stderr)
	}
	if err := os.RemoveAll(filepath.Join(dir, ".state")); err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(filepath.Join(dir, ".state"), os.DirFS(old)); err != nil {
		t.Fatal(err)
	}
	mans, _ := filepath.Glob(filepath.Join(dir, "*", "*.manifest.json"))
	removed := 0
	for _, m := range mans {
		if !slices.Contains(had, m) {
			if err := os.Remove(m); err != nil {
				t.Fatal(err)
			}
			removed++
		}
	}
	if removed == 0 {
		t.Fatal("the forced run wrote no file: the case is not the review's")
	}
	before := dataFiles(t, dir)
	r := runCLI(t, clear, "run", "--once")
	if r.code != exitConfig {
		t.Fatalf("older state restored, newer manifests deleted, run in clear: exit %d, %v; want 2\n%s", r.code, r.err, r.stderr)
	}
	for _, w := range []string{"is not known: the data file ", "has no manifest", "was written after the record of the rule", "which says none", "restore the whole state folder and the manifests", "--force", "Nothing was changed"} {
		if !strings.Contains(r.err.Error(), w) {
			t.Errorf("run in clear: %v; want it to say %q", r.err, w)
		}
	}
	if dataFiles(t, dir) != before {
		t.Fatal("the refused run changed the data files")
	}
	if r := runCLI(t, numbers, "run", "--once"); r.code != exitConfig {
		t.Fatalf("run under numbers, not forced: exit %d, %v; want 2 (nothing tells the rule)", r.code, r.err)
	}
	if r := runCLI(t, numbers, "run", "--once", "--force"); r.code != 0 {
		t.Fatalf("forced run under numbers: exit %d: %v\n%s", r.code, r.err, r.stderr)
	}
	if r := runCLI(t, numbers, "run", "--once"); r.code != 0 {
		t.Fatalf("run under numbers after the forced one: exit %d: %v\n%s", r.code, r.err, r.stderr)
	}
	if r := runCLI(t, clear, "run", "--once"); r.code != exitConfig || !strings.Contains(r.err.Error(), "EXPORT_PSEUDONYMIZE changed: the") {
		t.Fatalf("run in clear after: exit %d, %v; want 2 as a change", r.code, r.err)
	}
}

// TestRunRefusesLedgerOnlyStateWithoutManifests is review 38's R38-2:
// the state folder emptied but for runs.jsonl, and the data files'
// manifests deleted: the ledger's rule was taken, and a run wrote every
// call again (doubled) and exited 0, as the refusal of review 26 took the
// ledger for state. Now data files without manifests and no cursor state
// are refused (exit 2), --force or not, whatever the ledger says, and no
// data file is changed. Seen failing (exit 0) with the ledger consulted
// before that check.
func TestRunRefusesLedgerOnlyStateWithoutManifests(t *testing.T) {
	t.Parallel()
	f := authorized(t, pbxsim.Options{Calls: 40})
	dir := t.TempDir()
	numbers := fixtureEnv(f, dir, "EXPORT_ENDPOINTS=call_history,colleagues", "EXPORT_PSEUDONYMIZE=numbers", "EXPORT_PSEUDONYM_KEY="+testKey1)
	if r := runCLI(t, numbers, "run", "--once"); r.code != 0 {
		t.Fatalf("first run: exit %d: %v\n%s", r.code, r.err, r.stderr)
	}
	states, _ := filepath.Glob(filepath.Join(dir, ".state", "*", "*"))
	for _, p := range states {
		if filepath.Base(p) == "runs.jsonl" {
			continue
		}
		if err := os.RemoveAll(p); err != nil {
			t.Fatal(err)
		}
	}
	mans, _ := filepath.Glob(filepath.Join(dir, "*", "*.manifest.json"))
	for _, m := range mans {
		if err := os.Remove(m); err != nil {
			t.Fatal(err)
		}
	}
	before := dataFiles(t, dir)
	for _, args := range [][]string{{"run", "--once"}, {"run", "--once", "--force"}} {
		r := runCLI(t, numbers, args...)
		if r.code != exitConfig {
			t.Fatalf("%v: exit %d, %v; want 2\n%s", args, r.code, r.err, r.stderr)
		}
		for _, w := range []string{"holds data files (", "no cursor state; a run ledger alone does not count", "--force or not", "Nothing was changed"} {
			if !strings.Contains(r.err.Error(), w) {
				t.Errorf("%v: %v; want it to say %q", args, r.err, w)
			}
		}
		if dataFiles(t, dir) != before {
			t.Fatalf("%v: the refused run changed the data files", args)
		}
	}
}

// restoreOlderState puts the copy old of dir's .state back, with its
// dot files (the record of the rule) or without, and deletes the
// manifests not in had (those of the files written since the copy); it
// fails when none was deleted.
func restoreOlderState(t *testing.T, dir, old string, had []string, dots bool) {
	t.Helper()
	if err := os.RemoveAll(filepath.Join(dir, ".state")); err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(filepath.Join(dir, ".state"), os.DirFS(old)); err != nil {
		t.Fatal(err)
	}
	if !dots {
		files, _ := filepath.Glob(filepath.Join(dir, ".state", "*", ".*"))
		for _, f := range files {
			if err := os.Remove(f); err != nil {
				t.Fatal(err)
			}
		}
	}
	mans, _ := filepath.Glob(filepath.Join(dir, "*", "*.manifest.json"))
	removed := 0
	for _, m := range mans {
		if !slices.Contains(had, m) {
			if err := os.Remove(m); err != nil {
				t.Fatal(err)
			}
			removed++
		}
	}
	if removed == 0 {
		t.Fatal("no file written since the copy: the case is not the review's")
	}
}

// TestRunRefusesOlderStateWithoutRecordOrManifests is review 43's R43-1
// and R43-2 (proofs TestRev43NoDotRestore, TestRev43StalePartial): an
// older copy of .state restored WITHOUT its dot files (no record of the
// rule: the run ledger's rule, none, was taken), or with them while only
// the newest files' manifests are deleted (the record judged stale by the
// newest manifest left, none, taken): the files newer still were never
// looked at, and a run in clear exited 0 beside pseudonymised rows. Now
// every branch of the check judges the files without a manifest against
// what the rule was taken from: exit 2, naming the file, no data file
// changed. Seen failing (exit 0) with the judgement on the record's
// branch only.
func TestRunRefusesOlderStateWithoutRecordOrManifests(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		stale bool // runs: numbers, [copy], clear forced, [had], numbers forced; else clear, [copy, had], numbers forced
		said  string
	}{
		{"no dot files restored", false, "newest run with rows the run ledger"},
		{"only the newest manifests deleted", true, "newest data file that still has its manifest"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := authorized(t, pbxsim.Options{Calls: 40})
			dir := t.TempDir()
			clear := fixtureEnv(f, dir, "EXPORT_ENDPOINTS=call_history,colleagues")
			numbers := append(append([]string(nil), clear...), "EXPORT_PSEUDONYMIZE=numbers", "EXPORT_PSEUDONYM_KEY="+testKey1)
			first := clear
			if tc.stale {
				first = numbers
			}
			if r := runCLI(t, first, "run", "--once"); r.code != 0 {
				t.Fatalf("first run: exit %d: %v\n%s", r.code, r.err, r.stderr)
			}
			old := filepath.Join(t.TempDir(), "state")
			if err := os.CopyFS(old, os.DirFS(filepath.Join(dir, ".state"))); err != nil {
				t.Fatal(err)
			}
			if tc.stale {
				if r := runCLI(t, clear, "run", "--once", "--force"); r.code != 0 {
					t.Fatalf("forced run in clear: exit %d: %v\n%s", r.code, r.err, r.stderr)
				}
			}
			had, _ := filepath.Glob(filepath.Join(dir, "*", "*.manifest.json"))
			if r := runCLI(t, numbers, "run", "--once", "--force"); r.code != 0 {
				t.Fatalf("forced run under numbers: exit %d: %v\n%s", r.code, r.err, r.stderr)
			}
			restoreOlderState(t, dir, old, had, tc.stale)
			before := dataFiles(t, dir)
			r := runCLI(t, clear, "run", "--once")
			if r.code != exitConfig {
				t.Fatalf("run in clear: exit %d, %v; want 2\n%s", r.code, r.err, r.stderr)
			}
			for _, w := range []string{"is not known: the data file ", "has no manifest", tc.said, "says rule none", "restore the whole state folder and the manifests", "Nothing was changed"} {
				if !strings.Contains(r.err.Error(), w) {
					t.Errorf("run in clear: %v; want it to say %q", r.err, w)
				}
			}
			if dataFiles(t, dir) != before {
				t.Fatal("the refused run changed the data files")
			}
		})
	}
}

// TestRunRefusesEndpointWithoutCursorState is review 43's R43-3 (proof
// TestRev43OneEndpointLost): call_history's cursor state, its key index
// and its files' manifests deleted while colleagues' cursor state and the
// record are kept: the PBX had cursor state, so the run was accepted and
// wrote all 40 calls again (doubled), exit 0. Now cursor state is judged
// per endpoint folder: exit 2, --force or not, naming the endpoint, no
// data file changed. Seen failing (exit 0) with it judged for the whole
// PBX.
func TestRunRefusesEndpointWithoutCursorState(t *testing.T) {
	t.Parallel()
	f := authorized(t, pbxsim.Options{Calls: 40})
	dir := t.TempDir()
	numbers := fixtureEnv(f, dir, "EXPORT_ENDPOINTS=call_history,colleagues", "EXPORT_PSEUDONYMIZE=numbers", "EXPORT_PSEUDONYM_KEY="+testKey1)
	if r := runCLI(t, numbers, "run", "--once"); r.code != 0 {
		t.Fatalf("first run: exit %d: %v\n%s", r.code, r.err, r.stderr)
	}
	states, _ := filepath.Glob(filepath.Join(dir, ".state", "*", "call_history*"))
	mans, _ := filepath.Glob(filepath.Join(dir, "call_history", "*.manifest.json"))
	if len(states) == 0 || len(mans) == 0 {
		t.Fatalf("state %v, manifests %v: want call_history's", states, mans)
	}
	for _, p := range append(states, mans...) {
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
	before := dataFiles(t, dir)
	for _, args := range [][]string{{"run", "--once"}, {"run", "--once", "--force"}} {
		r := runCLI(t, numbers, args...)
		if r.code != exitConfig {
			t.Fatalf("%v: exit %d, %v; want 2\n%s", args, r.code, r.err, r.stderr)
		}
		for _, w := range []string{"holds data files of endpoint call_history", "call_history.json", "--force or not", "Nothing was changed"} {
			if !strings.Contains(r.err.Error(), w) {
				t.Errorf("%v: %v; want it to say %q", args, r.err, w)
			}
		}
		if dataFiles(t, dir) != before {
			t.Fatalf("%v: the refused run changed the data files", args)
		}
	}
}
