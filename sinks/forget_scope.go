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
// and its runs.jsonl's privacy key ids. It only reads.
func (s *CSV) ForgetScope(context.Context) (_ *ForgetScope, err error) {
	defer func() { err = s.advise(err) }()
	sc := &ForgetScope{}
	entries, err := os.ReadDir(filepath.Join(s.opt.Dir, ".state"))
	if errors.Is(err, fs.ErrNotExist) {
		return sc, nil
	}
	if err != nil {
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
	slices.Sort(sc.PBXes)
	slices.Sort(sc.KeyIDs)
	return sc, nil
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
