package sinks

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/wildix-export/wildix-export/exporter"
	"github.com/wildix-export/wildix-export/internal/safefile"
)

// Each CSV data file's manifest carries the pseudonymisation rule and key
// id its rows were last written or rewritten under ("privacy", the run's
// rule: never the key) and when that run started ("run_started"),
// written with the file. A rewrite that applies a run's rule to every row
// of the file (RewriteUnderRule, EditRows reason "pseudonymise") sets
// both to that run's, and names it ("privacy_run"; the file's "run_id"
// stays the run that first wrote it): review 20, R20-1, where a forced
// backfill pseudonymised every row in place and each manifest still said
// none. Other rewrites (forget, retention, a batch's updates in place,
// which change some rows only) keep the fields (updatedManifest keeps the
// fields it does not set). The state folder is not the only witness of
// the rule then (attack 7, F9): with .state, or .state/<pbx>, lost (not
// restored, a volume mounted without it) the rule file and the run
// ledger are gone together, and the folder still holding the rows would
// otherwise be taken for a first export, any rule fitting.

// runRule is the rule a run applies, from its start (StartRun), for the
// manifests of the files it writes.
type runRule struct {
	privacy exporter.Privacy
	started time.Time
}

// ruleStamp is the manifest fields a rewrite by run, applying its rule
// to every row of a file, sets (csvEdit.under); nil when the sink knows
// no rule of run (no StartRun), which leaves the fields as they were.
func (s *CSV) ruleStamp(run string) map[string]any {
	v, ok := s.runs.Load(run)
	if !ok || v.(runRule).privacy.Rule == "" {
		return nil
	}
	r := v.(runRule)
	return map[string]any{"privacy": r.privacy, "run_started": r.started.UTC().Format(time.RFC3339Nano), "privacy_run": run}
}

// stampManifest sets under's fields (ruleStamp; nil: none) in the
// manifest of the data file at path, which a rewrite under a run's rule
// read whole and left as it was: each of its rows already follows the
// rule (updated in place by a run under it, say: review 20, R20-1 with a
// PBX paging by time). The data file is unchanged, so its manifest is
// replaced alone, atomically.
func stampManifest(path string, under map[string]any) error {
	if under == nil {
		return nil
	}
	mb, err := os.ReadFile(manifestPath(path))
	if err != nil {
		return fmt.Errorf("set the pseudonymisation rule in its manifest: %w", err)
	}
	m := map[string]json.RawMessage{}
	if err := json.Unmarshal(mb, &m); err != nil {
		return fmt.Errorf("set the pseudonymisation rule in its manifest: it is damaged: %w", err)
	}
	for k, v := range under {
		m[k], _ = json.Marshal(v)
	}
	b, _ := json.MarshalIndent(m, "", "  ")
	if err := safefile.Write(manifestPath(path), b, fileMode); err != nil {
		return fmt.Errorf("set the pseudonymisation rule in its manifest: %w", err)
	}
	return nil
}

// manifestRule is what a PBX's data files' manifests say of the rule
// their rows were written under (CSV.manifestRule).
type manifestRule struct {
	files   int               // the PBX's data files (their manifests)
	rule    *exporter.Privacy // the rule of the newest file carrying one (by its run's start); nil: none carries one
	file    string            // that file, under the folder
	noRule  string            // a file whose manifest carries no rule (an earlier release's), "" if none
	run     string            // the run whose rule rule is (privacy_run, else the file's run_id)
	started time.Time         // when that run started (run_started)
	// mark is what each manifest told, by its name under the folder
	// and the identity of the version read (ruleMark); fresh, the names
	// whose entry the mark read lacks or holds for another version (to
	// be added to it), and markLines the entries the mark's file holds.
	mark      map[string]manifestSeen
	fresh     []string
	markLines int
	// bare are the PBX's data files whose manifest is missing
	// (bareFiles): nothing tells their rows' rule.
	bare []bareFile
}

// manifestSeen is what one manifest told manifestRule, as the PBX's
// mark of the manifests read keeps it (ruleMarkFile).
type manifestSeen struct {
	ID      string            `json:"id"`              // fileIdentity of the version read
	Other   bool              `json:"other,omitempty"` // another PBX's, whose name begins as this one's
	Name    string            `json:"name,omitempty"`  // the data file, under the folder
	Privacy *exporter.Privacy `json:"privacy,omitempty"`
	Started time.Time         `json:"started,omitzero"`
	Run     string            `json:"run,omitempty"`
}

// add takes one manifest's word.
func (mr *manifestRule) add(c manifestSeen) {
	if c.Other {
		return
	}
	mr.files++
	if c.Privacy == nil {
		if mr.noRule == "" {
			mr.noRule = c.Name
		}
		return
	}
	if mr.rule == nil || c.Started.After(mr.started) {
		r := *c.Privacy
		mr.rule, mr.file, mr.started, mr.run = &r, c.Name, c.Started, c.Run
	}
}

// manifestRule reads the manifest of each of pbx's data files in every
// endpoint's folder and returns the rule of the newest file carrying one
// (the run that started last): after a forced change the files of before
// keep the earlier rule, and the newest file's is the rule the rows are
// written under now; a forced backfill's rewrite under the new rule
// stamps it, with its run's start, in the files it rewrites. A run that
// only updated some rows of files of before in place leaves their rule
// as it was: the rule then found is the earlier one, and PrivacyRuleFrom
// weighs it against the run ledger, when it survives, by which run is
// later. A manifest removed while it is read (a prune, a forget beside)
// is no evidence and is skipped. The PBX's data files are those named as
// the sink names them (listPBXFiles): a manifest with no such file beside
// it (a user's own) is none (review 36, R36-2), and the files whose
// manifest is missing are returned (bare: review 37, R37-1; R38-2).
//
// Asked at each check (the record of the rule is weighed against it too:
// review 27, R27-2), a manifest is read only when the PBX's mark
// (ruleMarkFile, saveRuleMark) does not hold it under the identity it
// has now (fileIdentity: device, inode, size, times), as forget's check
// of the list does (suppress.go): a folder reads each manifest once. A
// mark restored with .state from an older copy vouches only for the
// files as they were then: a manifest written or replaced since is not
// in it and is read.
func (s *CSV) manifestRule(pbx string) (manifestRule, error) {
	var mr manifestRule
	files, err := s.listPBXFiles(pbx)
	if err != nil {
		return mr, fmt.Errorf("read the data files' pseudonymisation rule: %w", err)
	}
	marked := s.readRuleMark(pbx)
	was := marked.seen
	mr.mark, mr.markLines = map[string]manifestSeen{}, marked.lines
	for _, rel := range files.manifests {
		path := filepath.Join(s.opt.Dir, rel)
		if fi, err := os.Stat(path); err == nil {
			if c, ok := was[rel]; ok && c.ID != "" && c.ID == fileIdentity(fi) {
				mr.mark[rel] = c
				mr.add(c)
				continue
			}
		}
		c, err := s.readManifestSeen(path, rel, pbx)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return mr, fmt.Errorf("read the data files' pseudonymisation rule: %w", err)
		}
		if c.ID != "" {
			mr.mark[rel] = c
		}
		mr.add(c)
	}
	for rel, c := range mr.mark {
		if was[rel].ID != c.ID {
			mr.fresh = append(mr.fresh, rel)
		}
	}
	slices.Sort(mr.fresh)
	if mr.bare, err = s.bareFiles(pbx, files); err != nil {
		return mr, fmt.Errorf("read the data files' pseudonymisation rule: %w", err)
	}
	return mr, nil
}

// readManifestSeen reads the manifest at path (rel under the folder) of
// one of pbx's data files, with the identity of the version read.
func (s *CSV) readManifestSeen(path, rel, pbx string) (manifestSeen, error) {
	var c manifestSeen
	f, err := os.Open(path)
	if err != nil {
		return c, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil {
		c.ID = fileIdentity(fi)
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return c, err
	}
	s.manifestReads.Add(1)
	var m struct {
		PBX     string            `json:"pbx"`
		File    string            `json:"file"`
		Run     string            `json:"run_id"`
		Privacy *exporter.Privacy `json:"privacy"`
		Started time.Time         `json:"run_started"`
		By      string            `json:"privacy_run"`
	}
	if json.Unmarshal(b, &m) == nil && m.PBX != pbx {
		c.Other = true // another PBX's whose name begins as this one's
		return c, nil
	}
	c.Name = rel
	if m.File != "" {
		c.Name = filepath.Join(filepath.Dir(rel), filepath.Base(m.File))
	}
	if m.Privacy == nil || m.Privacy.Rule == "" {
		return c, nil
	}
	c.Privacy = &exporter.Privacy{Rule: m.Privacy.Rule, KeyID: m.Privacy.KeyID}
	c.Started, c.Run = m.Started, m.Run
	if m.By != "" {
		c.Run = m.By
	}
	return c, nil
}

// ruleMarkFile is the PBX's mark of the manifests manifestRule read: a
// dot file of its state folder, which is no state (a cache: lost, every
// manifest is read again). One line per entry (markEntry), a later line
// of a name replacing an earlier one: a check that read new manifests
// appends their lines instead of writing the whole mark again (review
// 43, R43-6: 6 MB written at each run's start after a run wrote files).
func (s *CSV) ruleMarkFile(pbx string) string {
	return filepath.Join(s.stateDir(pbx), ".privacy.manifests.jsonl")
}

// oldRuleMarkFile is the mark as an earlier release kept it (one JSON
// object), removed when the mark is written whole.
func (s *CSV) oldRuleMarkFile(pbx string) string {
	return filepath.Join(s.stateDir(pbx), ".privacy.manifests.json")
}

// markEntry is one line of the mark: a manifest's name under the folder
// and what it told.
type markEntry struct {
	Name string `json:"n"`
	manifestSeen
}

// ruleMark is the mark as read: the newest entry of each name, and the
// entries (lines) the file holds, superseded ones too.
type ruleMark struct {
	seen  map[string]manifestSeen
	lines int
}

// readRuleMark reads the PBX's mark (once for as long as it stays the
// same version: cachedState); empty when it is missing. A line that does
// not decode (an append cut short) is passed over: its manifest is read
// again. The caller must not change the map.
func (s *CSV) readRuleMark(pbx string) ruleMark {
	v, err := s.cachedState(s.ruleMarkFile(pbx), "", &s.markReads, func(b []byte) (any, error) {
		m := ruleMark{seen: map[string]manifestSeen{}}
		for _, l := range bytes.Split(b, []byte{'\n'}) {
			var e markEntry
			if len(l) == 0 || json.Unmarshal(l, &e) != nil || e.Name == "" {
				continue
			}
			m.seen[e.Name] = e.manifestSeen
			m.lines++
		}
		return m, nil
	})
	if m, ok := v.(ruleMark); err == nil && ok {
		return m
	}
	return ruleMark{}
}

// saveRuleMark adds to the mark the entries of mr's fresh manifests
// (appended), or writes it whole, atomically, when it has none yet or
// holds more than twice the entries it needs (superseded, of files
// removed); only when the PBX's state folder is there (a check never
// makes it: a folder without state is taken for one whose state is
// lost). Failing costs only reads; so does an append cut short, or two
// checks appending at once (each line stands alone).
func (s *CSV) saveRuleMark(pbx string, mr manifestRule) {
	if len(mr.fresh) == 0 {
		return
	}
	if _, err := os.Stat(s.stateDir(pbx)); err != nil {
		return
	}
	names, whole := mr.fresh, mr.markLines == 0 || mr.markLines+len(mr.fresh) > 2*len(mr.mark)+64
	if whole {
		names = slices.Sorted(maps.Keys(mr.mark))
	}
	lines := make([][]byte, 0, len(names))
	for _, n := range names {
		b, _ := json.Marshal(markEntry{Name: n, manifestSeen: mr.mark[n]})
		lines = append(lines, b)
	}
	b := bytes.Join(lines, []byte{'\n'})
	var err error
	if whole {
		if err = safefile.Write(s.ruleMarkFile(pbx), append(b, '\n'), fileMode); err == nil {
			os.Remove(s.oldRuleMarkFile(pbx))
		}
	} else {
		err = safefile.AppendLine(s.ruleMarkFile(pbx), fileMode, b)
	}
	if err != nil {
		s.opt.Log.Warn("the mark of the manifests read for the pseudonymisation rule could not be written: the next check reads them again", "file", s.ruleMarkFile(pbx), "err", s.advise(err))
	}
}

// weigh says whether the manifests' rule (mr.rule, not nil) is taken
// over the run ledger's (l), the rule's record being lost (review 20,
// R20-1): a forced change that wrote no data file is in the ledger only,
// and an older ledger (a restored copy) misses the runs of the newest
// files. The ledger decides when it records none, or records the run of
// the newest file's rule: it then records the runs after it, in the
// order they ran, whatever the clocks said; unless that run's line
// comes after the line of the ledger's newest run speaking for the rows
// (review 27, R27-1: a forced change killed between its commit and its
// ledger line, then a backfill committing no rows that stamped its rule
// in the change's files: the ledger passes the backfill over, and its
// rule is of older rows), when the manifests' rule is the newer word.
// Otherwise the run that started later decides; runs started at the same
// instant under other rules cannot be ordered, and the manifests' rule
// is added to the ledger's, which leaves the rule unknown (a run is
// refused unless forced).
func (mr manifestRule) weigh(l *ledgerRules) bool {
	at, recorded := l.runs[mr.run]
	switch {
	case l.lost.Run == "":
		return true
	case recorded:
		return at > l.newestAt
	case mr.started.After(l.newest):
		return true
	case l.newest.After(mr.started):
		return false
	}
	if r := mr.rule.String(); !slices.Contains(l.lost.Rules, r) {
		l.lost.Rules = append(l.lost.Rules, r)
	}
	return false
}

// newerThan says whether the newest manifest carrying a rule (mr.rule,
// not nil) was written after the record rec was stored (recordedRule):
// by the ledger's order when it records both runs, whatever the clocks
// said; else by the runs' starts, the record's taken from the record,
// else its run's ledger line, else its run id (to the second, a bound
// from below: a record of another process's completed commit, its run
// killed before its line), else the zero time (a record of before
// records named their run).
func (mr manifestRule) newerThan(rec storedRule, l *ledgerRules) bool {
	ma, mok := l.runs[mr.run]
	ra, rok := l.runs[rec.RunID]
	if mok && rok && rec.RunID != "" {
		return ma > ra
	}
	return mr.started.After(l.recordedAt(rec))
}

// recordedAt is when the record rec was stored, at the earliest: its
// run's start, taken from the record, else its run's ledger line, else
// its run id (to the second), else the zero time (a record of before
// records named their run).
func (l *ledgerRules) recordedAt(rec storedRule) time.Time {
	at := rec.Started
	if at.IsZero() {
		at = l.starts[rec.RunID]
	}
	if at.IsZero() && len(rec.RunID) >= 16 {
		at, _ = time.Parse("20060102T150405Z", rec.RunID[:16])
	}
	return at
}

// ruleWitness is what a check of the rule took the rule from (the
// record, the newest manifest saying one, the run ledger, or nothing),
// for judging the data files without a manifest (unaccounted).
type ruleWitness struct {
	at     time.Time // when what it says was written, at the earliest
	rule   string    // the rule it says (Privacy.String)
	record string    // where the record of the rule is kept
	said   string    // for the refusal: what it is and says, and that the file is newer
}

// unaccounted returns the first of mr's data files without a manifest
// (bare) that the witness w does not account for, nil if none (review
// 37, R37-1; review 43, R43-1, R43-2): one written after w (by its
// modification time, or its run's start by its name when later), unless
// its run is one the ledger l records under w's rule and the file was
// not changed after the ledger's latest run ended. Such a file may hold
// rows under a rule w does not know (an older copy of the state
// restored, with or without its record, the newer files' manifests
// lost): w is no longer the rule's witness. A file written before w
// holds rows of before it, whatever their rule. Every branch of the
// check asks it (PrivacyRuleFrom, recordedRule), each with its witness.
func (mr manifestRule) unaccounted(w ruleWitness, l *ledgerRules) *bareFile {
	if len(mr.bare) == 0 {
		return nil
	}
	if l == nil {
		l = &ledgerRules{}
	}
	for i, b := range mr.bare {
		if !b.At.After(w.at) {
			continue
		}
		if r, ok := l.rules[b.Run]; ok && b.Run != "" && r == w.rule && !b.At.After(l.ended) {
			continue
		}
		return &mr.bare[i]
	}
	return nil
}

// judged is r (with lost, nil when the record is trusted) as the check
// took it from w, unless a data file without a manifest is unaccounted
// for (unaccounted): then the rule is not known (LostRule.NoManifest).
func (mr manifestRule) judged(r exporter.Privacy, lost *LostRule, w ruleWitness, l *ledgerRules) (exporter.Privacy, bool, *LostRule, error) {
	if b := mr.unaccounted(w, l); b != nil {
		return r, true, &LostRule{Record: w.record, File: b.Name, Files: mr.files + len(mr.bare), Unknown: true, NoManifest: true,
			Stale: w.rule, Witness: w.said}, nil
	}
	return r, true, lost, nil
}
