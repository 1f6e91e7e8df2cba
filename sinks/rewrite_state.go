package sinks

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"github.com/wildix-export/wildix-export/internal/safefile"
)

// setStateValue stores b (JSON) as pbx's state under key, written by
// run ("": none), or removes it when b is nil. Its error is PostgreSQL's
// (dbError), for the caller to say what it stored.
func (p *Postgres) setStateValue(ctx context.Context, pbx, key string, b []byte, run string) error {
	if b == nil {
		_, err := p.pool.Exec(ctx, "DELETE FROM "+p.ident("export_state")+" WHERE pbx = $1 AND key = $2", pbx, key)
		return dbError(err)
	}
	var runID any
	if run != "" {
		runID = run
	}
	_, err := p.pool.Exec(ctx, p.upsertState(), pbx, key, b, runID)
	return dbError(err)
}

// upsertState is the statement storing a state ($3, JSON) under pbx ($1)
// and key ($2), written by run_id $4, over the one there: setStateValue's
// and markJudged's, which runs it in the rewrite's own transaction
// (review 42, R42-3). The records read back with State.
func (p *Postgres) upsertState() string {
	return "INSERT INTO " + p.ident("export_state") + ` (pbx, key, state, run_id) VALUES ($1, $2, $3, $4)
ON CONFLICT (pbx, key) DO UPDATE SET state = EXCLUDED.state, run_id = EXCLUDED.run_id, updated_at = now()`
}

// The CSV sink keeps the same records as files in the PBX's state folder
// (.state/<pbx>/): a "~", which safeName never writes, keeps each apart
// from every state file, and no leading dot, so that a copy of the
// folder leaving out dot files keeps them with runs.jsonl (attack 9, F5:
// a rewrite due lost so was left unfinished in silence; a pending prune
// or the retention limit the same way). An earlier release's record
// under a dot name is still read, and removed when the record is stored
// again or cleared.

// pbxRecords are those files' names: they are records, not state, for
// whoever asks whether a PBX has state (isPBXRecord).
var pbxRecords = []string{rewriteDueFile, retentionFile, pendingPruneFile}

// isPBXRecord reports whether name, a file of a PBX's state folder, is
// one of pbxRecords: none is a cursor's state, so none alone makes a PBX
// one with state.
func isPBXRecord(name string) bool { return slices.Contains(pbxRecords, name) }

// readRecord reads the PBX record name in the state folder dir, else the
// one an earlier release stored there under dot: its bytes and path, nil
// when neither is there.
func readRecord(dir, name, dot string) ([]byte, string, error) {
	for _, n := range []string{name, dot} {
		path := filepath.Join(dir, n)
		b, err := os.ReadFile(path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			continue
		case err != nil:
			return nil, path, err
		}
		return b, path, nil
	}
	return nil, filepath.Join(dir, name), nil
}

// writeRecord stores b as the record name in the state folder dir, then
// removes the record under the earlier name dot, so that it is never
// read again in place of the new one; b nil removes both, dot first.
func writeRecord(dir string, b []byte, name, dot string) error {
	gone := []string{dot}
	if b == nil {
		gone = append(gone, name)
	} else if err := safefile.Write(filepath.Join(dir, name), b, fileMode); err != nil {
		return err
	}
	for _, n := range gone {
		if err := os.Remove(filepath.Join(dir, n)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}
