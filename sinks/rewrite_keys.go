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
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"

	"github.com/wildix-export/wildix-export/exporter"
	"github.com/wildix-export/wildix-export/exporter/record"
)

// EarlierKeys is what a rewrite under the rule (RewriteUnderRule) cannot
// change: pbx's rows still as a run under another pseudonym key than the
// current one wrote them (the run ledger's key ids), whose pseudonyms
// cannot be made again under the current key as their values in clear
// are no longer anywhere in the sink.
type EarlierKeys struct {
	Keys []string  // the earlier keys' ids (k:…), never a key
	Left Rewritten // the rows per table or endpoint folder
}

// pseudonymForm matches a pseudonym (pseudonym.Keyed: "p:" or "n:" and
// 16 base32 letters) in a row's text: PostgreSQL's regular expression
// and Go's alike.
const pseudonymForm = `(^|[^a-z0-9])[pn]:[a-z2-7]{16}([^a-z0-9]|$)`

var pseudonymRE = regexp.MustCompile(pseudonymForm)

// EarlierKeyRows counts, in each of endpoints' tables, pbx's rows whose
// run (run_id) was recorded in the run ledger under a key id other than
// keyID (a run under rule none records none) and that hold a value of a
// pseudonym's form (review 17, R17-2: a row with none holds nothing of
// that key). A row RewriteUnderRule changed keeps the run_id of a run
// under another key (it may still hold that key's pseudonyms). A row
// written again since (a backfill, a later run) carries that run's id
// and is not counted.
// The last argument, the run calling it, is not needed here: the ledger
// holds that run's rule from its start.
func (p *Postgres) EarlierKeyRows(ctx context.Context, pbx, keyID, _ string, endpoints []record.Endpoint) (*EarlierKeys, error) {
	rows, err := p.pool.Query(ctx, "SELECT DISTINCT privacy_key_id FROM "+p.ident("export_runs")+
		" WHERE pbx = $1 AND coalesce(privacy_key_id, '') NOT IN ('', $2) ORDER BY 1", pbx, keyID)
	if err != nil {
		return nil, fmt.Errorf("read the run ledger's pseudonym keys: %w", dbError(err))
	}
	keys, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || len(keys) == 0 {
		return &EarlierKeys{}, dbError(err)
	}
	tables, err := p.tables(ctx)
	if err != nil {
		return nil, err
	}
	out := &EarlierKeys{Keys: keys}
	for _, e := range endpoints {
		if !slices.Contains(tables, e.Name) || len(e.Personal) == 0 && len(e.PersonalFields) == 0 {
			continue
		}
		var n int64
		if err := p.pool.QueryRow(ctx, "SELECT count(*) FROM "+p.ident(e.Name)+" t WHERE pbx = $1 AND run_id IN (SELECT run_id FROM "+
			p.ident("export_runs")+" WHERE pbx = $1 AND privacy_key_id = ANY($2)) AND t::text ~ $3", pbx, keys, pseudonymForm).Scan(&n); err != nil {
			return nil, fmt.Errorf("count the rows of %s written under an earlier pseudonym key: %w", e.Name, dbError(err))
		}
		if n > 0 {
			out.Left.Places = append(out.Left.Places, ForgetPlace{Name: e.Name, Rows: n})
		}
	}
	return out, nil
}

// EarlierKeyRows is Postgres.EarlierKeyRows for the folder, where a data
// file's rows are its manifest's run's, which an edit keeps: a file
// RewriteUnderRule rewrote under an earlier key still names the run, in
// clear, that first wrote it. So once the PBX's runs.jsonl records an
// earlier key, the rows counted are those holding a value of a
// pseudonym's form in every file of an endpoint with personal data not
// written by a run under keyID (fileKey: the ledger's key of its run,
// else its manifest's, which a rewrite sets). run is the run under keyID
// calling it, whose line runs.jsonl does not hold yet.
func (s *CSV) EarlierKeyRows(ctx context.Context, pbx, keyID, run string, endpoints []record.Endpoint) (*EarlierKeys, error) {
	b, err := os.ReadFile(filepath.Join(s.stateDir(pbx), "runs.jsonl"))
	if errors.Is(err, fs.ErrNotExist) {
		return &EarlierKeys{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the run ledger's pseudonym keys: %w", err)
	}
	keyOf := map[string]string{run: keyID} // run's line is not written yet
	out := &EarlierKeys{}
	for _, l := range bytes.Split(b, []byte{'\n'}) {
		var run struct {
			ID      string            `json:"run_id"`
			Privacy *exporter.Privacy `json:"privacy"`
		}
		if json.Unmarshal(l, &run) != nil || run.Privacy == nil {
			continue
		}
		keyOf[run.ID] = run.Privacy.KeyID
		if run.Privacy.KeyID != keyID && run.Privacy.KeyID != "" && !slices.Contains(out.Keys, run.Privacy.KeyID) {
			out.Keys = append(out.Keys, run.Privacy.KeyID)
		}
	}
	if len(out.Keys) == 0 {
		return out, nil
	}
	slices.Sort(out.Keys)
	for _, e := range endpoints {
		dir := filepath.Join(s.opt.Dir, e.Name)
		if len(e.Personal) == 0 && len(e.PersonalFields) == 0 {
			continue
		}
		if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		n, err := s.earlierKeyFileRows(ctx, pbx, keyID, run, &e, keyOf)
		if err != nil {
			return nil, fmt.Errorf("count the rows of %s written under an earlier pseudonym key: %w", e.Name, err)
		}
		if n > 0 {
			out.Left.Places = append(out.Left.Places, ForgetPlace{Name: e.Name, Rows: n})
		}
	}
	return out, nil
}

// earlierKeyFileRows is EarlierKeyRows of e's folder: the rows holding a
// value of a pseudonym's form in its files not under keyID, but those
// run left there in its own form (rekeyedIn: attack 9, F6); a file
// whose every such row is one of those, and whose rule is run's, gets
// run's rule and key in its manifest and rekeyedRun (markRekeyed).
// Six parameters: EarlierKeyRows' own, and the ledger's keys it read.
func (s *CSV) earlierKeyFileRows(ctx context.Context, pbx, keyID, run string, e *record.Endpoint, keyOf map[string]string) (int64, error) {
	dir := filepath.Join(s.opt.Dir, e.Name)
	cols := csvKeyColumns(e)
	var n int64
	var file string            // the file being read
	var idx []int              // its key columns, in its header
	var header []string        // its header
	left := map[string]int64{} // file → rows counted
	confirmed := map[string]int64{}
	var rekeyed *keyCollector
	pick := func(f ownFile) bool {
		file, header = f.Name, nil
		rekeyed = s.rekeyedIn(run, dir, f.Name)
		return fileKey(filepath.Join(dir, f.Name), keyOf) != keyID
	}
	_, err := s.editFiles(ctx, csvEdit{pbx: pbx, ep: e, reason: "look", pick: pick, edit: func(h, cells []string) (RowEdit, error) {
		if !pseudonymRE.MatchString(strings.Join(cells, "\t")) {
			return RowEdit{}, nil
		}
		if header == nil || !slices.Equal(h, header) {
			header, idx = slices.Clone(h), keyIndexes(h, cols)
		}
		if idx != nil && rekeyed != nil && rekeyed.has(rowKey(cells, idx)) {
			confirmed[file]++
			return RowEdit{}, nil
		}
		left[file]++
		n++
		return RowEdit{}, nil
	}})
	if err != nil {
		return 0, err
	}
	for f, c := range confirmed {
		if c > 0 && left[f] == 0 {
			if err := s.markRekeyed(filepath.Join(dir, f), run); err != nil {
				return 0, err
			}
		}
	}
	return n, nil
}

// keyIndexes is the index in header of each of cols, nil when one is
// missing.
func keyIndexes(header, cols []string) []int {
	var idx []int
	for _, c := range cols {
		i := slices.Index(header, c)
		if i < 0 {
			return nil
		}
		idx = append(idx, i)
	}
	return idx
}

// markRekeyed records in the manifest of the data file data that every
// pseudonym it holds is under run's key (rekeyedRun), with run's rule and
// key (ruleStamp), when its rule is run's: so fileKey, the earlier-key
// count and a reader of the manifest name the key its rows are now under.
func (s *CSV) markRekeyed(data, run string) error {
	under := s.ruleStamp(run)
	if under == nil {
		return nil
	}
	if p, ok := under["privacy"].(exporter.Privacy); !ok {
		return nil
	} else if rule, _, _ := fileRule(data, map[string]string{}); rule != p.Rule {
		return nil
	}
	under[rekeyedRun] = run
	return stampManifest(data, under)
}

// fileKey is the key id of the run that wrote the data file data: as the
// ledger (keyOf) records its run (the manifest's run_id, which edits and
// rewrites keep) when it records one; else as its manifest says (its
// "privacy"); "" when neither tells or the run was under rule none. The
// ledger first: a rewrite under the rule sets its own rule and key in the
// manifest of every file it reads (csv_rule.go), and a file a run under
// an earlier key wrote still holds that key's pseudonyms after it (a
// change of rule and key: review 29, found with R29-5's fix). A file of
// a run under none that a rewrite changed holds the pseudonyms of the
// rewrite's key, which its manifest then records.
func fileKey(data string, keyOf map[string]string) string {
	var m struct {
		Run     string            `json:"run_id"`
		Privacy *exporter.Privacy `json:"privacy"`
		Rekeyed string            `json:"keyed_run"` // rekeyedRun
	}
	b, err := os.ReadFile(manifestPath(data))
	if err != nil || json.Unmarshal(b, &m) != nil {
		return ""
	}
	if k := keyOf[m.Rekeyed]; m.Rekeyed != "" && k != "" {
		return k
	}
	if k := keyOf[m.Run]; k != "" {
		return k
	}
	if m.Privacy != nil && m.Privacy.Rule != "" {
		return m.Privacy.KeyID
	}
	return ""
}

// Rows a run leaves in another run's file (CSV): a backfill finding a
// call another file holds, unchanged or in another form, leaves it there
// (updated in place), in the backfill's own form: under its rule and key.
// The file's manifest keeps naming the run that wrote it, so after a
// change of key such a file read as wholly under the earlier key (attack
// 9, F6: 273 rows the backfill had written again under the new key
// counted as "still under the earlier key", the manifests naming the old
// key). The sink remembers, per run, which rows it so confirmed (only in
// this process: after a restart the count errs on the safe side, rows
// that may hold the earlier key's pseudonyms), and EarlierKeyRows counts
// only the others, and marks a file whose every pseudonym is the run's
// as under the run's key (rekeyedRun).

// rekeyedRun is the manifest field naming the run under whose key every
// pseudonym of the file is (fileKey reads it before the file's own run).
const rekeyedRun = "keyed_run"

// rekeyedRows is a run's rows left in other files in its own form:
// endpoint folder → file → row keys, range-compressed (keyCollector: a
// file's call ids are mostly consecutive). Every run records them, a
// backfill --force nearly every row: as strings in maps they took 136
// MiB for 2M rows (review 45, R45-4).
type rekeyedRows struct {
	mu    sync.Mutex
	files map[string]map[string]*keyCollector
}

// confirm records that the row of key in file is left in the batch's
// own form (csvBatch.place).
func (k *batchKeys) confirm(file, key string) {
	if k.confirmed == nil {
		k.confirmed = map[string][]string{}
	}
	k.confirmed[file] = append(k.confirmed[file], key)
}

// noteRekeyed adds, once a batch of run committed, the rows it left in
// other files in its own form (k nil: none).
func (s *CSV) noteRekeyed(run string, k *batchKeys) {
	if k == nil || len(k.confirmed) == 0 {
		return
	}
	v, _ := s.rekeyed.LoadOrStore(run, &rekeyedRows{files: map[string]map[string]*keyCollector{}})
	r := v.(*rekeyedRows)
	r.mu.Lock()
	defer r.mu.Unlock()
	dir := r.files[k.dir]
	if dir == nil {
		dir = map[string]*keyCollector{}
		r.files[k.dir] = dir
	}
	for file, keys := range k.confirmed {
		if dir[file] == nil {
			dir[file] = &keyCollector{}
		}
		for _, key := range keys {
			dir[file].add(key)
		}
	}
}

// rekeyedIn is the keys of the rows of file in dir that run left in its
// own form (nil: none).
func (s *CSV) rekeyedIn(run, dir, file string) *keyCollector {
	v, ok := s.rekeyed.Load(run)
	if !ok {
		return nil
	}
	r := v.(*rekeyedRows)
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.files[dir][file]
}
