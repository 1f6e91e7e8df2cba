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

// EarlierKeyRows counts, in each of endpoints' tables, pbx's rows whose
// run (run_id) was recorded in the run ledger under a key id other than
// keyID (a run under rule none records none; a row RewriteUnderRule
// changed carries the id of the run that did). A row written again since
// (a backfill, a later run) carries that run's id and is not counted.
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
		if err := p.pool.QueryRow(ctx, "SELECT count(*) FROM "+p.ident(e.Name)+" WHERE pbx = $1 AND run_id IN (SELECT run_id FROM "+
			p.ident("export_runs")+" WHERE pbx = $1 AND privacy_key_id = ANY($2))", pbx, keys).Scan(&n); err != nil {
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
// earlier key, the rows counted are those of every file of an endpoint
// with personal data not written by a run under keyID: rows that may
// hold an earlier key's pseudonyms. run is the run under keyID calling
// it, whose line runs.jsonl does not hold yet.
func (s *CSV) EarlierKeyRows(_ context.Context, pbx, keyID, run string, endpoints []record.Endpoint) (*EarlierKeys, error) {
	b, err := os.ReadFile(filepath.Join(s.stateDir(pbx), "runs.jsonl"))
	if errors.Is(err, fs.ErrNotExist) {
		return &EarlierKeys{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the run ledger's pseudonym keys: %w", err)
	}
	current := map[string]bool{run: true} // runs under keyID: run's line is not written yet
	out := &EarlierKeys{}
	for _, l := range bytes.Split(b, []byte{'\n'}) {
		var run struct {
			ID      string            `json:"run_id"`
			Privacy *exporter.Privacy `json:"privacy"`
		}
		if json.Unmarshal(l, &run) != nil || run.Privacy == nil {
			continue
		}
		if run.Privacy.KeyID == keyID {
			current[run.ID] = true
			continue
		}
		if run.Privacy.KeyID != "" && !slices.Contains(out.Keys, run.Privacy.KeyID) {
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
		files, err := s.ownFiles(pbx, dir)
		if err != nil {
			return nil, err
		}
		var n int64
		for _, f := range files {
			var m struct {
				Run  string `json:"run_id"`
				Rows int64  `json:"rows"`
			}
			mb, err := os.ReadFile(manifestPath(filepath.Join(dir, f.Name)))
			if err == nil && json.Unmarshal(mb, &m) == nil && !current[m.Run] {
				n += m.Rows
			}
		}
		if n > 0 {
			out.Left.Places = append(out.Left.Places, ForgetPlace{Name: e.Name, Rows: n})
		}
	}
	return out, nil
}
