package sinks

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/wildix-export/wildix-export/exporter"
	"github.com/wildix-export/wildix-export/exporter/record"
)

// ForgetScope is what forget must know of a sink before it searches it
// (issue 30): which PBXes export into it (forget takes each one's export
// lock, as it erases every PBX's rows, so that no export running beside it
// writes the number after it) and every pseudonym key its rows were
// written under (forget must search for the number's pseudonym under each:
// without one, rows written under it are not found).
type ForgetScope struct {
	PBXes  []string // PBX ids with state or runs in the sink, sorted
	KeyIDs []string // pseudonym.KeyID of each key rows were written under, sorted
	// Lost is each PBX (CSV sink) whose data files remain while its
	// state folder is lost (.state or .state/<pbx> gone): forget refuses
	// such a folder, as the suppression list, the rule and the run
	// ledger are gone with it (review 20, R20-2). Sorted by PBX.
	Lost []LostState
}

// LostState is a PBX whose data files' manifests name it while the folder
// holds no state of it.
type LostState struct {
	PBX  string // the PBX the manifests name
	File string // one of its data files, under the folder
}

// Empty reports whether the sink holds no export at all: no PBX's state
// and no run. A mistyped EXPORT_CSV_DIR or EXPORT_DB_SCHEMA looks so.
func (sc *ForgetScope) Empty() bool { return len(sc.PBXes) == 0 }

func (sc *ForgetScope) addKey(id string) {
	if id != "" && !slices.Contains(sc.KeyIDs, id) {
		sc.KeyIDs = append(sc.KeyIDs, id)
	}
}

func (sc *ForgetScope) addPBX(pbx string) {
	if pbx != "" && !slices.Contains(sc.PBXes, pbx) {
		sc.PBXes = append(sc.PBXes, pbx)
	}
}

// ForgetScope reads the schema's PBXes and key ids from export_state (the
// rule each PBX's rows are written under) and the run ledger
// (export_runs.privacy_key_id, every key any run wrote under, earlier ones
// after a key change included). It only reads: a schema not there, or not
// migrated, gives what it holds (nothing when it has no export_state).
func (p *Postgres) ForgetScope(ctx context.Context) (*ForgetScope, error) {
	sc := &ForgetScope{}
	var state, runs, keyCol bool
	err := p.pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL, to_regclass($2) IS NOT NULL,
EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = $3 AND table_name = 'export_runs' AND column_name = 'privacy_key_id')`,
		p.ident("export_state"), p.ident("export_runs"), p.schema).Scan(&state, &runs, &keyCol)
	if err != nil {
		return nil, fmt.Errorf("read which PBXes export into schema %s: %w", p.schema, dbError(err))
	}
	var q []string
	if state {
		q = append(q, "SELECT pbx, CASE WHEN key = '"+privacyKey+"' THEN coalesce(state->>'key_id', '') ELSE '' END FROM "+p.ident("export_state")+" WHERE pbx <> ''")
	}
	if runs {
		k := "''"
		if keyCol {
			k = "coalesce(privacy_key_id, '')"
		}
		q = append(q, "SELECT pbx, "+k+" FROM "+p.ident("export_runs")+" WHERE mode <> 'forget'")
	}
	if len(q) == 0 {
		return sc, nil
	}
	rows, err := p.pool.Query(ctx, "SELECT DISTINCT * FROM ("+strings.Join(q, " UNION ")+") t")
	if err != nil {
		return nil, fmt.Errorf("read which PBXes export into schema %s: %w", p.schema, dbError(err))
	}
	defer rows.Close()
	for rows.Next() {
		var pbx, key string
		if err := rows.Scan(&pbx, &key); err != nil {
			return nil, fmt.Errorf("read which PBXes export into schema %s: %w", p.schema, dbError(err))
		}
		sc.addPBX(pbx)
		sc.addKey(key)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read which PBXes export into schema %s: %w", p.schema, dbError(err))
	}
	slices.Sort(sc.PBXes)
	slices.Sort(sc.KeyIDs)
	return sc, nil
}

// ForgetScope is Postgres.ForgetScope for the folder: each PBX's state
// folder under .state with state files or a run ledger, its .privacy.json
// and its runs.jsonl's privacy key ids; and each data file's manifest's
// PBX and key id, with the PBXes whose state is lost (manifestScope). It
// only reads.
func (s *CSV) ForgetScope(context.Context) (_ *ForgetScope, err error) {
	defer func() { err = s.advise(err) }()
	sc := &ForgetScope{}
	entries, err := os.ReadDir(filepath.Join(s.opt.Dir, ".state"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) { // none: the data files' manifests still tell
		return nil, fmt.Errorf("read which PBXes export into %s: %w", s.opt.Dir, err)
	}
	for _, e := range entries {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		pbx, err := url.PathUnescape(e.Name())
		if err != nil || safeName(pbx) != e.Name() {
			continue // not a PBX's folder
		}
		dir := filepath.Join(s.opt.Dir, ".state", e.Name())
		files, err := os.ReadDir(dir)
		if err != nil {
			return nil, fmt.Errorf("read which PBXes export into %s: %w", s.opt.Dir, err)
		}
		for _, f := range files {
			if f.Name() == "runs.jsonl" || strings.HasSuffix(f.Name(), ".json") && !strings.HasPrefix(f.Name(), ".") {
				sc.addPBX(pbx)
			}
			// A commit decided but not completed (a crashed run) holds its
			// run's rule in its pending record only, until recovery
			// completes it: its rows will be under that key (review
			// 30-fixes 3).
			if strings.HasSuffix(f.Name(), ".pending.json") && !strings.HasPrefix(f.Name(), ".") {
				if err := pendingKey(filepath.Join(dir, f.Name()), sc); err != nil {
					return nil, fmt.Errorf("read the unfinished commits of %s: %w", pbx, err)
				}
			}
		}
		if b, err := os.ReadFile(filepath.Join(dir, privacyFile)); err == nil {
			var r exporter.Privacy
			if json.Unmarshal(b, &r) == nil {
				sc.addPBX(pbx)
				sc.addKey(r.KeyID)
			}
		}
		if err := csvRunKeys(filepath.Join(dir, "runs.jsonl"), sc); err != nil {
			return nil, fmt.Errorf("read the run ledger of %s: %w", pbx, err)
		}
	}
	if err := s.manifestScope(sc); err != nil {
		return nil, err
	}
	slices.Sort(sc.PBXes)
	slices.Sort(sc.KeyIDs)
	return sc, nil
}

// manifestScope adds to sc the PBX and the rule's key id of each data
// file's manifest, and, to sc.Lost, each PBX the manifests name whose
// state folder holds no state (a key index, <endpoint>~keys.json, made
// again from the data files by forget's rewrites, is none). With the
// state lost, the manifests are what is left of which PBXes export into
// the folder and under which keys (review 20, R20-2).
func (s *CSV) manifestScope(sc *ForgetScope) error {
	j := newStateJudge(s.opt.Dir)
	err := csvDataManifests(s.opt.Dir, func(file string, m dataManifest) error {
		sc.addPBX(m.PBX)
		if m.Privacy != nil {
			sc.addKey(m.Privacy.KeyID)
		}
		return j.judge(m.PBX, file)
	})
	if err == nil {
		err = j.judgeNamed()
	}
	if err != nil {
		return fmt.Errorf("read which PBXes export into %s from its data files' manifests: %w", s.opt.Dir, err)
	}
	sc.Lost = j.result()
	return nil
}

// csvHasState reports whether a PBX's state folder holds state: a state
// file, a rule file or a run ledger (not a key index, nor a temporary or
// lock file).
func csvHasState(dir string) (bool, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	for _, e := range entries {
		n := e.Name()
		if n == "runs.jsonl" || n == privacyFile || strings.HasSuffix(n, ".json") && !strings.HasPrefix(n, ".") && !strings.HasSuffix(n, "~keys.json") {
			return true, nil
		}
	}
	return false, nil
}

// csvHasCursorState reports whether a PBX's state folder holds a
// cursor's state (<key>.json, or a pending commit's record), as
// CSV.hasCursorState judges it for a run: not the run ledger, the dot
// files (the record of the rule, the marks) nor a file whose name holds
// a "~" (a key index, rewrite~due.json, the retention records).
func csvHasCursorState(dir string) (bool, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	for _, e := range entries {
		if n := e.Name(); strings.HasSuffix(n, ".json") && !strings.HasPrefix(n, ".") && !strings.Contains(n, "~") {
			return true, nil
		}
	}
	return false, nil
}

// dataManifest is what forget reads of a data file's manifest.
type dataManifest struct {
	PBX     string            `json:"pbx"`
	File    string            `json:"file"`
	Privacy *exporter.Privacy `json:"privacy"`
}

// csvDataManifests calls fn with each data file's manifest under dir
// (<endpoint>/<name>.manifest.json; dot folders and files, the state
// folder and temporary files, skipped) and the data file's name under
// dir. Only the manifest of a data file named as the sink names them
// (csvDataName, .csv or .csv.gz) beside it in an endpoint's folder
// counts, as for a run (listPBXFiles): a user's own *.manifest.json is
// none (review 36, R36-2, on forget's side: its "pbx" or key was taken
// for a PBX of the folder, whose state was then lost, or a key forget
// must be given). A manifest removed while it is read (a prune beside) is
// skipped; one that is not JSON is a data file all the same, of no PBX
// known.
func csvDataManifests(dir string, fn func(file string, m dataManifest) error) error {
	paths, err := filepath.Glob(filepath.Join(dir, "*", "*.manifest.json"))
	if err != nil {
		return err
	}
	for _, path := range paths {
		rel, err := filepath.Rel(dir, path)
		if err != nil || strings.HasPrefix(rel, ".") || strings.HasPrefix(filepath.Base(rel), ".") || !hasSinkDataFile(dir, rel) {
			continue
		}
		b, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		var m dataManifest
		_ = json.Unmarshal(b, &m) // not JSON: a data file of no PBX known
		file := strings.TrimSuffix(rel, ".manifest.json")
		if m.File != "" {
			file = filepath.Join(filepath.Dir(rel), filepath.Base(m.File))
		}
		if err := fn(file, m); err != nil {
			return err
		}
	}
	return nil
}

// hasSinkDataFile reports whether the manifest rel (under dir) stands in
// an endpoint's folder beside its data file, named as the sink names them
// (csvDataName).
func hasSinkDataFile(dir, rel string) bool {
	if !record.Identifier(filepath.Dir(rel)) {
		return false
	}
	base := strings.TrimSuffix(rel, ".manifest.json")
	for _, data := range []string{base + ".csv", base + ".csv.gz"} {
		if !csvDataName.MatchString(filepath.Base(data)) {
			continue
		}
		if _, err := os.Lstat(filepath.Join(dir, data)); err == nil {
			return true
		}
	}
	return false
}

// CSVDataFile returns one data file of the CSV export folder dir, under
// it, or "" when it holds none: one a manifest names, else a file of an
// endpoint's folder named as the sink names its data files (the
// manifests lost with the state: review 26, R26-2; a user's own CSV file
// beside them is none: review 28, R28-5, csvNamedDataFiles). It only reads: forget asks it of a folder without
// .state before opening the sink, which would create the folder (review
// 20, R20-2).
func CSVDataFile(dir string) (string, error) {
	var one string
	errFound := errors.New("found")
	err := csvDataManifests(dir, func(file string, _ dataManifest) error {
		one = file
		return errFound
	})
	if err != nil && !errors.Is(err, errFound) {
		return "", fmt.Errorf("read the data files of %s: %w", dir, err)
	}
	if one != "" {
		return one, nil
	}
	named, err := csvNamedDataFiles(dir)
	if err != nil {
		return "", fmt.Errorf("read the data files of %s: %w", dir, err)
	}
	if len(named) > 0 {
		one = named[0].File
	}
	return one, nil
}

// pendingKey adds the key id of the rule in the pending record at path.
func pendingKey(path string, sc *ForgetScope) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // completed meanwhile
	}
	if err != nil {
		return err
	}
	var p struct {
		Rule *storedRule `json:"privacy_rule"`
	}
	if json.Unmarshal(b, &p) == nil && p.Rule != nil {
		sc.addKey(p.Rule.KeyID)
	}
	return nil
}

// csvRunKeys adds the privacy key id of each run in the ledger file.
func csvRunKeys(path string, sc *ForgetScope) error {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	sn := bufio.NewScanner(f)
	sn.Buffer(make([]byte, 64*1024), 16<<20)
	for sn.Scan() {
		var line struct {
			Privacy exporter.Privacy `json:"privacy"`
		}
		if json.Unmarshal(sn.Bytes(), &line) == nil {
			sc.addKey(line.Privacy.KeyID)
		}
	}
	return sn.Err()
}
