package sinks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/wildix-export/wildix-export/exporter"
	"github.com/wildix-export/wildix-export/internal/safefile"
)

// The pseudonymisation rule and key id a PBX's rows are written under
// (issue 30) are kept with its state, so that a run under another rule or
// key is seen before it writes (cmd refuses it unless forced: mixing two
// keys breaks every join). A PBX with state from before this was kept
// counts as rule none. A run's rule is stored only with its first batch
// commit, in that commit (PendPrivacyRule): a run that fails before
// writing anything, refused or not, leaves the stored rule as it was, and
// a change stored is always in the run ledger (PostgreSQL: in the same
// transaction; CSV: the run's line, and the rule file names the run).

// privacyKey is the export_state key of the rule: a space keeps it apart
// from every endpoint's and backfill window's key.
const privacyKey = "pseudonymisation rule"

// privacyFile is the CSV sink's file of the rule, in the PBX's state
// folder: a leading dot keeps it apart from every state file.
const privacyFile = ".privacy.json"

// PrivacyRule returns the rule pbx's rows were written under, and whether
// the PBX has rows or state at all (false: a first export, any rule
// fits). State from before the rule was kept gives rule none.
func (p *Postgres) PrivacyRule(ctx context.Context, pbx string) (exporter.Privacy, bool, error) {
	r, found, _, err := p.PrivacyRuleFrom(ctx, pbx)
	return r, found, err
}

// LostRule says that a PBX's stored rule is missing while its run ledger
// records runs under a rule (attack 6, F4: the export_state row deleted, a
// restore leaving out the state folder's dot files): the rows are taken
// as written under the rule of the ledger's runs since its last recorded
// change (a forced run that stored its rule), not under none.
//
// A CSV folder also reads its data files' manifests (each carries the
// rule its rows were last written or rewritten under: csv_rule.go), as a
// .state lost whole takes the ledger with it (attack 7, F9). With both,
// the later decides (manifestRule.weigh): the ledger when it records the
// run of the newest file's rule (it then records every run after it too,
// those that wrote no file), else the one whose run started later (R20-1).
// Taken from the manifests, File names the newest data file, whose rule
// it is, and Run is "". Data files
// whose manifests carry no rule (an earlier release's), with neither the
// record nor a ledger recording a rule, leave the rule unknown: Unknown,
// File naming one of them, and the rule returned is none but is no
// evidence (a run is refused unless forced).
type LostRule struct {
	Record  string   // where the stored rule was kept, to restore it
	Run     string   // the ledger's run whose rule is taken (the last marking a change, else the first to commit rows)
	Rules   []string // the distinct rules (with key ids) of the runs that speak for the rows, newest first
	File    string   // CSV: the data file (under the folder) whose manifest tells the rule, or with Unknown one carrying none
	Files   int      // CSV: the PBX's data files
	Unknown bool     // data files hold rows and nothing tells their rule
	// Unmanifested (CSV, with Unknown): the folder holds data files
	// (File, one of them) and no manifest, nor the PBX's state (review
	// 26): the state and the manifests were lost together. Nothing tells
	// the rows' rule, nor which calls the files hold (a run could not
	// tell its own rows from new ones, and would write every call again).
	Unmanifested bool
	// Stale (CSV) is the rule the record says, when the record is there
	// but older than a data file's manifest saying another rule (File):
	// restored from an older copy of the state (review 27, R27-2).
	Stale string
	// NoManifest (CSV, with Unknown and Stale): File is a data file of
	// the PBX whose manifest is missing, written after the record was
	// stored and not of a run the ledger records under the record's rule
	// (review 37, R37-1: an older copy of the state restored, the newer
	// files' manifests lost): nothing tells its rows' rule.
	NoManifest bool
	// Witness (CSV, with NoManifest) says what the rule was taken from
	// and why File is not accounted for by it: the record, the newest
	// manifest left or the run ledger (review 43, R43-1, R43-2), or
	// that nothing is left. With NoManifest, Stale is the rule it says.
	Witness string
	// Endpoint (CSV, with Unmanifested) is the endpoint whose cursor
	// state is missing while the PBX's other endpoints have theirs
	// (review 43, R43-3); "" when the PBX has no cursor state at all.
	Endpoint string
}

// ledgerRules gathers LostRule from the ledger's runs, newest first, up to
// the last one marking a change (inclusive). Only runs that committed
// rows, or marked a change, speak for the rows (review 16, R16-1, R16-2):
// a run that committed nothing (refused, failed before any row, a forced
// run with nothing to write) marks no change and leaves the stored rule
// as it was, so it is passed over. The rule is the change's run's, else
// the first run's that committed rows (the one that stored the rule);
// runs that committed rows under more than one rule since the last change
// leave it unknown (more than one in Rules).
type ledgerRules struct {
	lost LostRule
	last exporter.Privacy
	done bool
	// CSV only, for manifestRule.weigh: every run the ledger records,
	// by its line (the later, the greater), and the line of the newest
	// run that speaks for the rows and when it started.
	runs     map[string]int
	starts   map[string]time.Time // when each run the ledger records started
	rules    map[string]string    // the rule (Privacy.String) each run the ledger records applied
	ended    time.Time            // when the latest run the ledger records ended
	changes  map[string]bool      // the runs a line of which marks a change of rule
	newestAt int
	newest   time.Time
}

// add takes the next older run, and whether it committed rows; it says
// whether to read on.
func (l *ledgerRules) add(run string, r exporter.Privacy, committed bool) bool {
	if l.done || r.Rule == "" || !committed && r.Changed == "" {
		return !l.done
	}
	l.lost.Run, l.last = run, exporter.Privacy{Rule: r.Rule, KeyID: r.KeyID}
	s := l.last.String()
	if !slices.Contains(l.lost.Rules, s) {
		l.lost.Rules = append(l.lost.Rules, s)
	}
	l.done = r.Changed != ""
	return !l.done
}

// PrivacyRuleFrom is PrivacyRule, and when the stored rule is missing
// while the run ledger records runs under a rule that speak for the rows
// (ledgerRules), that rule, found, and a LostRule saying so (nil when the
// rule is stored, or the ledger records none: rule none, as before rules
// were kept).
func (p *Postgres) PrivacyRuleFrom(ctx context.Context, pbx string) (exporter.Privacy, bool, *LostRule, error) {
	var b []byte
	err := p.pool.QueryRow(ctx, "SELECT state FROM "+p.ident("export_state")+" WHERE pbx = $1 AND key = $2", pbx, privacyKey).Scan(&b)
	switch {
	case err == nil:
		r, found, err := decodePrivacy(b)
		return r, found, nil, err
	case !errors.Is(err, pgx.ErrNoRows):
		return exporter.Privacy{}, false, nil, fmt.Errorf("read the pseudonymisation rule: %w", dbError(err))
	}
	// A run's rows are counted in export_run_endpoints in each batch's
	// transaction: a run killed after committing rows counts them too.
	rows, _ := p.pool.Query(ctx, "SELECT run_id, privacy_rule, coalesce(privacy_key_id, ''), coalesce(privacy_changed, ''), "+
		"EXISTS (SELECT 1 FROM "+p.ident("export_run_endpoints")+" e WHERE e.run_id = r.run_id AND e.rows > 0) FROM "+p.ident("export_runs")+
		" r WHERE pbx = $1 AND privacy_rule IS NOT NULL ORDER BY started_at DESC, run_id DESC", pbx)
	var l ledgerRules
	var run string
	var r exporter.Privacy
	var committed bool
	if _, err := pgx.ForEachRow(rows, []any{&run, &r.Rule, &r.KeyID, &r.Changed, &committed}, func() error {
		if !l.add(run, r, committed) {
			rows.Close()
		}
		return nil
	}); err != nil && !l.done {
		return exporter.Privacy{}, false, nil, fmt.Errorf("read the pseudonymisation rule from the run ledger: %w", dbError(err))
	}
	if l.lost.Run != "" {
		l.lost.Record = fmt.Sprintf("the export_state row pbx '%s' key '%s' of the postgres schema %s", pbx, privacyKey, p.schema)
		return l.last, true, &l.lost, nil
	}
	// The mark of the PBX's key of recordings' ids (idKeyMark) is not its
	// state: a start writes it before the run's first commit.
	var found bool
	if err := p.pool.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM "+p.ident("export_state")+" WHERE pbx = $1 AND key <> $2)", pbx, idKeyMark).Scan(&found); err != nil {
		return exporter.Privacy{}, false, nil, fmt.Errorf("read the pseudonymisation rule: %w", dbError(err))
	}
	return exporter.Privacy{Rule: "none"}, found, nil, nil
}

// PendPrivacyRule makes r the rule pbx's rows are written under from
// the next batch commit of pbx on: that commit stores it, in its
// transaction, and marks the change (r.Changed) in its run's ledger row.
// A run that commits nothing leaves the stored rule as it was. nil
// withdraws a rule not stored yet.
func (p *Postgres) PendPrivacyRule(pbx string, r *exporter.Privacy) { p.rules.pend(pbx, r) }

// saveRule stores, in the batch's transaction, the rule pending for its
// PBX and marks the change in its run's ledger row; done, called once the
// transaction committed, withdraws it.
func (p *Postgres) saveRule(ctx context.Context, tx pgx.Tx, info exporter.BatchInfo) (done func(), err error) {
	r, ok := p.rules.take(info.PBX, info.RunID)
	if !ok {
		return func() {}, nil
	}
	b, _ := json.Marshal(r)
	if _, err := tx.Exec(ctx, "INSERT INTO "+p.ident("export_state")+` (pbx, key, state, run_id) VALUES ($1, $2, $3, $4)
ON CONFLICT (pbx, key) DO UPDATE SET state = EXCLUDED.state, run_id = EXCLUDED.run_id, updated_at = now()`, info.PBX, privacyKey, b, info.RunID); err != nil {
		return nil, fmt.Errorf("store the pseudonymisation rule: %w", err)
	}
	if r.Changed != "" {
		if _, err := tx.Exec(ctx, "UPDATE "+p.ident("export_runs")+" SET privacy_changed = $2 WHERE run_id = $1", info.RunID, r.Changed); err != nil {
			return nil, fmt.Errorf("record the pseudonymisation change: %w", err)
		}
	}
	return func() { p.rules.done(info.PBX, r) }, nil
}

// RecordRuleChange stores, at the end of run, a run of pbx that ended
// well, the forced change of rule still pending for pbx (one no batch
// commit stored: the run committed nothing), and marks it in run's
// ledger row, in one transaction; it says whether there was one. A
// forced run with nothing to write (pseudonymisation turned on with no
// new call) stored nothing before, and `backfill --force --rewrite`
// then refused the change not recorded (attack 8, F1; review 20, R20-7).
// A rule that is no change (a first export, a record lost taken again)
// stays pending only: a run that commits nothing does not speak for
// rows (review 16, R16-1).
func (p *Postgres) RecordRuleChange(ctx context.Context, pbx, run string) (bool, error) {
	r, ok := p.rules.take(pbx, run)
	if !ok || r.Changed == "" {
		return false, nil
	}
	tx, err := p.pool.Begin(ctx)
	if err != nil {
		return false, fmt.Errorf("record the pseudonymisation change: %w", dbError(err))
	}
	defer tx.Rollback(ctx)
	if _, err := p.saveRule(ctx, tx, exporter.BatchInfo{PBX: pbx, RunID: run}); err != nil {
		return false, err
	}
	if err := tx.Commit(ctx); err != nil {
		return false, fmt.Errorf("record the pseudonymisation change: %w", dbError(err))
	}
	p.rules.done(pbx, r)
	return true, nil
}

// RecordRuleChange is Postgres.RecordRuleChange for the folder: the
// rule file, then the run's ledger line (FinishRun, after it) marks the
// change. Killed between the two (or between a commit storing a change
// and the line), the record names the run and the ledger misses it: the
// next start under the PBX's lock marks the change in the ledger
// (markRuleChange, review 38, R38-1), so that the ledger, which
// outlives a record lost, never misses a change stored.
func (s *CSV) RecordRuleChange(_ context.Context, pbx, run string) (_ bool, err error) {
	defer func() { err = s.advise(err) }()
	r, ok := s.rules.take(pbx, run)
	if !ok || r.Changed == "" {
		return false, nil
	}
	if err := s.saveRule(pbx, &r); err != nil {
		return false, err
	}
	s.rules.done(pbx, r)
	return true, nil
}

// Recover completes (or discards, when its data is gone) each commit a
// crash left for pbx, as State does first: a pending record's rule is the
// stored one only once its commit is completed, so a run checks the rule
// under its lock after Recover (review 30-fixes 4).
func (s *CSV) Recover(_ context.Context, pbx string) error {
	if err := s.recoverAll(pbx); err != nil {
		return s.advise(err)
	}
	return s.advise(s.markRuleChange(pbx))
}

// markRuleChange adds to the PBX's run ledger the line of a forced
// change of rule the record says was stored (its changed and run_id)
// when the ledger has no line of that run: the run was killed after the
// record was written and before its own line (review 38, R38-1: the
// change stayed unmarked for good, and with the record lost later the
// ledger's earlier rule was taken). The line says the run was
// interrupted, committed no rows it knows of and changed the rule. It is
// called under the PBX's lock (Recover), once the commits a crash left
// are completed, so the run is no other process's; a run of this process
// still going (StartRun, no FinishRun yet) is left to write its own.
func (s *CSV) markRuleChange(pbx string) error {
	dir := s.stateDir(pbx)
	b, err := os.ReadFile(filepath.Join(dir, privacyFile))
	if err != nil {
		return nil // no record (or none readable: the check of the rule says so)
	}
	var rec storedRule
	if json.Unmarshal(b, &rec) != nil || rec.Changed == "" || rec.RunID == "" || rec.Rule == "" {
		return nil
	}
	if _, running := s.runs.Load(rec.RunID); running {
		return nil
	}
	l, err := s.ledgerRules(pbx)
	if err != nil {
		return err
	}
	if l.changes[rec.RunID] {
		return nil // a line of the run that decodes and marks the change (review 43, R43-4: not a torn one holding its id)
	}
	started := rec.Started
	if started.IsZero() && len(rec.RunID) >= 16 {
		started, _ = time.Parse("20060102T150405Z", rec.RunID[:16])
	}
	line, _ := json.Marshal(struct {
		ID        string            `json:"run_id"`
		Mode      string            `json:"mode"`
		PBX       string            `json:"pbx"`
		Started   time.Time         `json:"started"`
		Status    string            `json:"status"`
		Endpoints []any             `json:"endpoints"`
		Privacy   *exporter.Privacy `json:"privacy"`
		Note      string            `json:"note"`
	}{ID: rec.RunID, Mode: "unknown", PBX: pbx, Started: started, Status: "interrupted", Endpoints: []any{}, Privacy: &rec.Privacy,
		Note: "the run stored this forced change of pseudonymisation rule and was stopped before its own line: marked at the next start"})
	if err := safefile.AppendLine(filepath.Join(dir, "runs.jsonl"), fileMode, line); err != nil {
		return fmt.Errorf("mark the pseudonymisation change in the run ledger: %w", err)
	}
	s.opt.Log.Warn("a forced change of pseudonymisation rule was stored by a run stopped before its ledger line: marked in the run ledger now", "run_id", rec.RunID, "from", rec.Changed, "to", rec.Privacy.String())
	return nil
}

// PrivacyRule is Postgres.PrivacyRule for the folder: state is any file
// in the PBX's state folder.
func (s *CSV) PrivacyRule(ctx context.Context, pbx string) (exporter.Privacy, bool, error) {
	r, found, _, err := s.PrivacyRuleFrom(ctx, pbx)
	return r, found, err
}

// PrivacyRuleFrom is Postgres.PrivacyRuleFrom for the folder: its ledger
// is the PBX's runs.jsonl, which a restore leaving out dot files keeps.
// Data files of the PBX whose manifests are missing while no cursor
// state is left (unmanifested) are refused whatever the record and the
// ledger say.
func (s *CSV) PrivacyRuleFrom(_ context.Context, pbx string) (_ exporter.Privacy, _ bool, _ *LostRule, err error) {
	defer func() { err = s.advise(err) }()
	if r, err := s.pendingRule(pbx); err != nil {
		return exporter.Privacy{}, false, nil, err
	} else if r != nil {
		r.Changed = ""
		return r.Privacy, true, nil, nil
	}
	record := filepath.Join(s.stateDir(pbx), privacyFile)
	b, err := os.ReadFile(record)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return exporter.Privacy{}, false, nil, fmt.Errorf("read the pseudonymisation rule: %w", err)
	}
	recorded := err == nil
	mr, err := s.manifestRule(pbx)
	if err != nil {
		return exporter.Privacy{}, false, nil, err
	}
	keys, err := s.cursorKeys(pbx)
	if err != nil {
		return exporter.Privacy{}, false, nil, err
	}
	found := len(keys) > 0
	if b, ep := cursorless(mr.bare, keys); b != nil {
		return s.unmanifested(record, mr, b, ep)
	}
	if recorded {
		return s.recordedRule(pbx, b, mr)
	}
	return s.unrecordedRule(pbx, record, mr, found)
}

// unrecordedRule is PrivacyRuleFrom when the PBX's record of the rule
// is missing (record: where it is kept) and its cursor state is there
// (found) or no data file lacks its manifest: the rule is the newest
// manifest's or the run ledger's (manifestRule.weigh), or none; each
// judged against the data files without a manifest (judged: review 43,
// R43-1, an older copy of .state restored without its dot files and the
// newer manifests deleted was taken for rule none).
func (s *CSV) unrecordedRule(pbx, record string, mr manifestRule, found bool) (exporter.Privacy, bool, *LostRule, error) {
	l, err := s.ledgerRules(pbx)
	if err != nil {
		return exporter.Privacy{}, false, nil, err
	}
	if mr.rule != nil && mr.weigh(l) {
		return mr.judged(*mr.rule, &LostRule{Record: record, Rules: []string{mr.rule.String()}, File: mr.file, Files: mr.files}, mr.witness(record), l)
	}
	if l.lost.Run != "" {
		l.lost.Record = record
		return mr.judged(l.last, &l.lost, ruleWitness{at: l.newest, rule: l.last.String(), record: record,
			said: fmt.Sprintf("it was written after the newest run with rows the run ledger (%s) records started (it says rule %s), by no run the ledger records under that rule",
				filepath.Join(filepath.Dir(record), "runs.jsonl"), l.last)}, l)
	}
	if !found && mr.files > 0 {
		// Rows and no state: the state lost, the rows' rule not told.
		return exporter.Privacy{Rule: "none"}, true, &LostRule{Record: record, File: mr.noRule, Files: mr.files, Unknown: true}, nil
	}
	if len(mr.bare) > 0 {
		r, _, lost, err := mr.judged(exporter.Privacy{Rule: "none"}, nil, ruleWitness{rule: "none", record: record,
			said: "no record of the rule, no manifest saying one and no run ledger line under one is left to account for it"}, l)
		return r, found, lost, err
	}
	return exporter.Privacy{Rule: "none"}, found, nil, nil
}

// witness is the newest manifest carrying a rule (mr.rule, not nil) as
// the witness of the rule (unaccounted), record being where the record
// of the rule is kept.
func (mr manifestRule) witness(record string) ruleWitness {
	return ruleWitness{at: mr.started, rule: mr.rule.String(), record: record,
		said: fmt.Sprintf("it was written after the run of the newest data file that still has its manifest (%s, which says rule %s) started, by no run the run ledger records under that rule", mr.file, mr.rule)}
}

// cursorKeys returns the names (without .json, .pending.json) of the
// PBX's cursor state files (hasCursorState), empty when it has none.
func (s *CSV) cursorKeys(pbx string) (map[string]bool, error) {
	entries, err := os.ReadDir(s.stateDir(pbx))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read the pseudonymisation rule: %w", err)
	}
	keys := map[string]bool{}
	for _, e := range entries {
		if n := e.Name(); strings.HasSuffix(n, ".json") && !strings.HasPrefix(n, ".") && !strings.Contains(n, "~") {
			keys[strings.TrimSuffix(strings.TrimSuffix(n, ".json"), ".pending")] = true
		}
	}
	return keys, nil
}

// cursorless returns the first data file without a manifest (bare) that
// no cursor state accounts for, nil if none, and its endpoint when the
// PBX has cursor state of other endpoints: with no cursor state (keys
// empty), any; else one written by an export run (its name holds the
// run: not a backfill window's, which a backfill redoing the window
// replaces by name) in an endpoint's folder whose cursor state
// (<endpoint>.json, or its pending commit's) is missing (review 43,
// R43-3: that endpoint's state and manifests lost, another's kept, and a
// run wrote every call of it again).
func cursorless(bare []bareFile, keys map[string]bool) (*bareFile, string) {
	for i, b := range bare {
		if len(keys) == 0 {
			return &bare[i], ""
		}
		ep, _, _ := strings.Cut(b.Name, string(filepath.Separator))
		if b.Run != "" && !keys[safeName(ep)] {
			return &bare[i], ep
		}
	}
	return nil, ""
}

// hasCursorState says whether the PBX's state folder holds a cursor's
// state (<key>.json, or a pending commit's record). A key index
// (<endpoint>~keys.json) is no state: it is made again from the data
// files, by forget's rewrites too (attack 7, F8: after `forget
// --allow-empty` on a folder whose state was lost it made the rows read
// as from before rules were kept, rule none); nor is any other file
// whose name holds a "~", which a state key's (safeName) never does
// (rewrite~due.json, a rewrite left to do), the run ledger and the dot
// files (the record of the rule, the marks).
func (s *CSV) hasCursorState(pbx string) (bool, error) {
	keys, err := s.cursorKeys(pbx)
	return len(keys) > 0, err
}

// unmanifested is PrivacyRuleFrom for a PBX with no cursor state whose
// data files (named as the sink names them: mr.bare) are there without
// their manifests (review 26: the state and the manifests lost, the .csv
// and .csv.gz files kept; review 38, R38-2: the same with the run ledger
// left, which once made the ledger's rule taken and every row written
// again). A run tells its own rows by their files' manifests: it could
// not tell them from new ones, nor their rule. Each PBX by its own files
// and state, so that this PBX's first export beside another's files is
// no loss, nor a user's own CSV file.
// With ep, the PBX has cursor state of other endpoints, not of ep, whose
// folder holds b (review 43, R43-3): the same, for that endpoint.
func (s *CSV) unmanifested(record string, mr manifestRule, b *bareFile, ep string) (exporter.Privacy, bool, *LostRule, error) {
	return exporter.Privacy{Rule: "none"}, true, &LostRule{Record: record, File: b.Name, Files: mr.files + len(mr.bare), Unknown: true, Unmanifested: true, Endpoint: ep}, nil
}

// recordedRule is PrivacyRuleFrom when the PBX's record of the rule, b,
// is there: it is weighed against the data files' manifests (review 27,
// R27-2: an older copy of .state restored with its dot files, whose
// record says none, was trusted while the files written since say
// numbers, and a run in clear wrote beside them). When the newest
// manifest carrying a rule says another rule (or key) than the record and
// was written after it (manifestRule.newerThan), the record is stale: the
// manifests' rule is returned, as when the record is lost, with a
// LostRule saying what the record says (Stale). Every run writing rows
// under another rule stores its record with its first commit, and a
// forced change stores its record and ledger line even with no row to
// write (RecordRuleChange), so a current record is never older than a
// file under another rule. A rewrite in place stamps the files it
// rewrote whole with its run's rule (csv_rule.go): a completed rewrite
// under the record's rule is the newest word, and agrees.
func (s *CSV) recordedRule(pbx string, b []byte, mr manifestRule) (exporter.Privacy, bool, *LostRule, error) {
	r, found, err := decodePrivacy(b)
	if err != nil {
		return r, found, nil, err
	}
	var rec storedRule
	_ = json.Unmarshal(b, &rec) // decoded above
	record := filepath.Join(s.stateDir(pbx), privacyFile)
	var l *ledgerRules
	if mr.rule != nil && mr.rule.String() != r.String() && mr.run != rec.RunID || len(mr.bare) > 0 {
		if l, err = s.ledgerRules(pbx); err != nil {
			return exporter.Privacy{}, false, nil, err
		}
	}
	if mr.rule != nil && mr.rule.String() != r.String() && mr.run != rec.RunID && mr.newerThan(rec, l) {
		// Review 43, R43-2: files newer still, their manifests lost,
		// are judged against the manifest taken.
		return mr.judged(*mr.rule, &LostRule{Record: record, Rules: []string{mr.rule.String()},
			File: mr.file, Files: mr.files, Stale: r.String()}, mr.witness(record), l)
	}
	s.saveRuleMark(pbx, mr)
	var at time.Time
	if l != nil {
		at = l.recordedAt(rec)
	}
	return mr.judged(r, nil, ruleWitness{at: at, rule: rec.Privacy.String(), record: record,
		said: fmt.Sprintf("it was written after the record of the rule (%s, which says %s) was stored, by no run the run ledger records under that rule", record, r)}, l)
}

// ledgerRules reads the PBX's run ledger for PrivacyRuleFrom, newest
// line first.
func (s *CSV) ledgerRules(pbx string) (*ledgerRules, error) {
	var l ledgerRules
	b, err := os.ReadFile(filepath.Join(s.stateDir(pbx), "runs.jsonl"))
	if errors.Is(err, fs.ErrNotExist) {
		return &l, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the pseudonymisation rule from the run ledger: %w", err)
	}
	lines := ledgerRecords(b)
	l.runs, l.starts, l.rules, l.changes = map[string]int{}, map[string]time.Time{}, map[string]string{}, map[string]bool{}
	for i := len(lines) - 1; i >= 0; i-- {
		var run struct {
			ID        string            `json:"run_id"`
			Started   time.Time         `json:"started"`
			Ended     time.Time         `json:"ended"`
			Privacy   *exporter.Privacy `json:"privacy"`
			Endpoints []struct {
				Rows int64 `json:"rows"`
			} `json:"endpoints"`
		}
		if json.Unmarshal(lines[i], &run) != nil {
			continue
		}
		if _, later := l.runs[run.ID]; !later {
			l.runs[run.ID], l.starts[run.ID] = i, run.Started
			if run.Privacy != nil {
				l.rules[run.ID] = run.Privacy.String()
			}
		}
		if run.Ended.After(l.ended) {
			l.ended = run.Ended
		}
		if run.Privacy != nil && run.Privacy.Changed != "" {
			l.changes[run.ID] = true
		}
		if run.Privacy == nil || l.done {
			continue
		}
		committed := false
		for _, e := range run.Endpoints {
			committed = committed || e.Rows > 0
		}
		had := l.lost.Run != ""
		l.add(run.ID, *run.Privacy, committed)
		if !had && l.lost.Run != "" {
			l.newest, l.newestAt = run.Started, i
		}
	}
	return &l, nil
}

// ledgerRecords cuts the run ledger b into its records: its lines, and a
// line holding more than one record (one whose newline was lost, the
// next appended to it) cut at each record's start (ledgerPieces, as the
// ledger's rewrite does). A torn record is kept as it is, to be passed
// over by the reader: it does not decode.
func ledgerRecords(b []byte) [][]byte {
	var out [][]byte
	for _, line := range bytes.Split(b, []byte{'\n'}) {
		out = append(out, ledgerPieces(line)...)
	}
	return out
}

// PendPrivacyRule is Postgres.PendPrivacyRule for the folder: the next
// batch's pending record carries the rule, and completing it writes the
// rule file just before the state (crashed, the next run completes both);
// the run's ledger line says the change (FinishRun).
func (s *CSV) PendPrivacyRule(pbx string, r *exporter.Privacy) { s.rules.pend(pbx, r) }

// saveRule writes the rule file of a pending commit (nil: none), with
// when its run started when this process runs it (recordedRule weighs
// the record against the manifests by it).
func (s *CSV) saveRule(pbx string, r *storedRule) error {
	if r == nil {
		return nil
	}
	if v, ok := s.runs.Load(r.RunID); ok && r.Started.IsZero() {
		c := *r
		c.Started = v.(runRule).started
		r = &c
	}
	b, _ := json.Marshal(r)
	dir, err := s.mkStateDir(pbx)
	if err == nil {
		err = safefile.Write(filepath.Join(dir, privacyFile), b, fileMode)
	}
	if err != nil {
		return fmt.Errorf("store the pseudonymisation rule: %w", err)
	}
	return nil
}

// storedRule is the rule as stored: Changed and RunID say which run
// stored it and from what rule, when it was a forced change.
type storedRule struct {
	exporter.Privacy
	RunID string `json:"run_id,omitempty"`
	// Started is when that run started (CSV: "" in a record of before,
	// or one a later process completed).
	Started time.Time `json:"run_started,omitzero"`
}

// pendingRules are the rules runs apply that no batch stored yet, by
// PBX, and the changes stored, by run (for the CSV ledger's line).
type pendingRules struct {
	mu      sync.Mutex
	pending map[string]storedRule
	changed map[string]string
}

func (p *pendingRules) pend(pbx string, r *exporter.Privacy) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if r == nil {
		delete(p.pending, pbx)
		return
	}
	if p.pending == nil {
		p.pending = map[string]storedRule{}
	}
	p.pending[pbx] = storedRule{Privacy: *r}
}

// take returns the rule pending for pbx, to be stored by run.
func (p *pendingRules) take(pbx, run string) (storedRule, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	r, ok := p.pending[pbx]
	r.RunID = run
	return r, ok
}

// done withdraws r, stored, and remembers its run's change.
func (p *pendingRules) done(pbx string, r storedRule) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if q, ok := p.pending[pbx]; ok && q.Privacy == r.Privacy {
		delete(p.pending, pbx)
	}
	if r.Changed != "" {
		if p.changed == nil {
			p.changed = map[string]string{}
		}
		p.changed[r.RunID] = r.Changed
	}
}

// changedBy is the change run stored, "" if none.
func (p *pendingRules) changedBy(run string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.changed[run]
}

// pendingRule is the rule of a commit decided but not completed (a crash
// interrupted it; the next State completes it), nil if none: it is the
// rule, although its file may not say so yet. It only reads, so that it
// may be asked without the PBX's lock.
func (s *CSV) pendingRule(pbx string) (*storedRule, error) {
	var rule *storedRule
	err := s.readPending(pbx, "the pseudonymisation rule", func(b []byte) {
		var p struct {
			Rule *storedRule `json:"privacy_rule"`
		}
		if json.Unmarshal(b, &p) == nil && p.Rule != nil && p.Rule.Rule != "" {
			rule = p.Rule
		}
	})
	if err != nil {
		return nil, err
	}
	return rule, nil
}

func decodePrivacy(b []byte) (exporter.Privacy, bool, error) {
	var r storedRule
	if err := json.Unmarshal(b, &r); err != nil || r.Rule == "" {
		return exporter.Privacy{}, true, fmt.Errorf("the stored pseudonymisation rule (%d bytes) is damaged: restore it from a backup, or remove it and run with --force", len(b))
	}
	r.Changed = ""
	return r.Privacy, true, nil
}

// NewExportAdvice is the way out that the refusals of a key (of
// recordings' ids, or a pseudonym key) give when the sink's key cannot be
// had: export into a new schema, and all it takes for nothing to be lost
// or doubled there. A new recordings store, as this one's files are named
// by this schema's rows (its k- recordings would be stored again beside
// them under new names, and a forget or prune in either schema would
// remove files the other's rows name). This schema's suppression list
// carried over before the first run there (review 10, R10-4): an empty
// list writes every number forgotten here again. The SQL copies the
// list's row into the new schema's export_state, made as this one's
// (the first run's migration keeps it).
func (p *Postgres) NewExportAdvice() string {
	t := p.ident("export_state")
	return fmt.Sprintf("export into a new schema (EXPORT_DB_SCHEMA) and a new recordings store (another EXPORT_RECORDINGS_DIR, or S3 bucket or prefix: this one's files are named by this schema's rows), "+
		"carrying this schema's suppression list over before the first run there, as an empty list writes every number forgotten here again: "+
		"CREATE SCHEMA IF NOT EXISTS NEW_SCHEMA; CREATE TABLE NEW_SCHEMA.export_state (LIKE %s INCLUDING ALL); INSERT INTO NEW_SCHEMA.export_state SELECT * FROM %s WHERE pbx = '%s' AND key = '%s'; "+
		"(NEW_SCHEMA: the new EXPORT_DB_SCHEMA; with that list lost too, restore it from the backup, or run `wildix-export forget --allow-empty` there, before its first run, for each number your record of erasure requests holds)",
		t, t, suppressionPBX, suppressionKey)
}

// NewExportAdvice is Postgres.NewExportAdvice for the folder: the list
// is its file, copied into the new folder's state folder.
func (s *CSV) NewExportAdvice() string {
	return fmt.Sprintf("export into a new folder (EXPORT_CSV_DIR) and a new recordings store (another EXPORT_RECORDINGS_DIR, or S3 bucket or prefix: this one's files are named by this folder's rows), "+
		"carrying this folder's suppression list over before the first run there, as an empty list writes every number forgotten here again: "+
		"copy %s to .state/%s in the new folder "+
		"(with that list lost too, restore it from the backup, or run `wildix-export forget --allow-empty` there, before its first run, for each number your record of erasure requests holds)",
		s.suppressionFile(), filepath.Base(s.suppressionFile()))
}

// newExportAdvice is NewExportAdvice for a sink not known here.
const newExportAdvice = "export into a new schema or folder and a new recordings store, carrying the suppression list over before the first run there (PostgreSQL: the export_state row pbx '' key 'suppressed numbers'; a CSV folder: .state/.suppressed.json), as an empty list writes every number forgotten here again"
