package sinks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/wildix-export/wildix-export/internal/safefile"
)

// The retention limit a PBX's rows were last pruned under
// (EXPORT_RETENTION) is kept with its state, so that a shorter one, a
// typo deleting history for good, is seen before it prunes: cmd refuses
// it unless forced (README, Retention).

// retentionKey is the export_state key of the limit: a space keeps it
// apart from every endpoint's and backfill window's key.
const retentionKey = "retention limit"

// retentionFile is the CSV sink's file of the limit, in the PBX's state
// folder: a leading dot keeps it apart from every state file.
const retentionFile = ".retention.json"

type retentionLimit struct {
	Seconds int64  `json:"seconds"`
	RunID   string `json:"run_id,omitempty"`
}

func decodeLimit(b []byte) (time.Duration, error) {
	var l retentionLimit
	if err := json.Unmarshal(b, &l); err != nil || l.Seconds < 0 {
		return 0, fmt.Errorf("the stored retention limit is damaged (%q): remove it, or set it again", b)
	}
	return time.Duration(l.Seconds) * time.Second, nil
}

// RetentionLimit returns the limit pbx's rows were last pruned under, 0
// when they never were.
func (p *Postgres) RetentionLimit(ctx context.Context, pbx string) (time.Duration, error) {
	var b []byte
	err := p.pool.QueryRow(ctx, "SELECT state FROM "+p.ident("export_state")+" WHERE pbx = $1 AND key = $2", pbx, retentionKey).Scan(&b)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return 0, nil
	case err != nil:
		return 0, fmt.Errorf("read the retention limit: %w", dbError(err))
	}
	return decodeLimit(b)
}

// SetRetentionLimit stores the limit pbx's rows were pruned under by run.
func (p *Postgres) SetRetentionLimit(ctx context.Context, pbx, run string, limit time.Duration) error {
	b, _ := json.Marshal(retentionLimit{Seconds: int64(limit / time.Second), RunID: run})
	if _, err := p.pool.Exec(ctx, "INSERT INTO "+p.ident("export_state")+` (pbx, key, state, run_id) VALUES ($1, $2, $3, $4)
ON CONFLICT (pbx, key) DO UPDATE SET state = EXCLUDED.state, run_id = EXCLUDED.run_id, updated_at = now()`, pbx, retentionKey, b, run); err != nil {
		return fmt.Errorf("store the retention limit: %w", dbError(err))
	}
	return nil
}

// RetentionLimit returns the limit pbx's rows were last pruned under, 0
// when they never were.
func (s *CSV) RetentionLimit(_ context.Context, pbx string) (time.Duration, error) {
	b, err := os.ReadFile(filepath.Join(s.stateDir(pbx), retentionFile))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return 0, nil
	case err != nil:
		return 0, fmt.Errorf("read the retention limit: %w", err)
	}
	return decodeLimit(b)
}

// SetRetentionLimit stores the limit pbx's rows were pruned under by run.
func (s *CSV) SetRetentionLimit(_ context.Context, pbx, run string, limit time.Duration) error {
	if _, err := s.mkStateDir(pbx); err != nil {
		return fmt.Errorf("store the retention limit: %w", err)
	}
	b, _ := json.Marshal(retentionLimit{Seconds: int64(limit / time.Second), RunID: run})
	if err := safefile.Write(filepath.Join(s.stateDir(pbx), retentionFile), b, fileMode); err != nil {
		return fmt.Errorf("store the retention limit: %w", err)
	}
	return nil
}

// A prune removes a recording's stored file before its row (the row names
// the file: never a file kept that no row names), so a prune killed or
// failed between the two leaves rows naming files that are gone. Before
// it removes the first file it stores its cut (the pending prune, with
// the state); it clears it once every recording's file and row older
// than the cut are gone. A pending prune is completed by the next prune,
// with the later of the two cuts, or, when EXPORT_RETENTION is off or
// longer now, by the next run (FinishPrune): the rows and files it
// started on go whatever the limit says then (attack 4, F6).

// pendingPruneKey is the export_state key of the pending prune's cut.
const pendingPruneKey = "retention pending prune"

// pendingPruneFile is the CSV sink's file of it, in the PBX's state folder.
const pendingPruneFile = ".retention-pending.json"

type pendingPrune struct {
	Cut time.Time `json:"cut"`
}

// decodePending reads the pending prune stored at where.
func decodePending(b []byte, where string) (time.Time, error) {
	var p pendingPrune
	if err := json.Unmarshal(b, &p); err != nil || p.Cut.IsZero() {
		return time.Time{}, fmt.Errorf("the pending prune stored in %s is damaged (%q): remove it, then run once with the EXPORT_RETENTION of the prune that was stopped, so that it completes", where, b)
	}
	return p.Cut, nil
}

// pendingCut returns the cut of pbx's pending prune, zero when none is.
func (p *Postgres) pendingCut(ctx context.Context, pbx string) (time.Time, error) {
	var b []byte
	err := p.pool.QueryRow(ctx, "SELECT state FROM "+p.ident("export_state")+" WHERE pbx = $1 AND key = $2", pbx, pendingPruneKey).Scan(&b)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return time.Time{}, nil
	case err != nil:
		return time.Time{}, fmt.Errorf("read the pending prune: %w", dbError(err))
	}
	return decodePending(b, fmt.Sprintf("export_state (pbx %q, key %q)", pbx, pendingPruneKey))
}

// setPendingCut stores cut as pbx's pending prune (zero: clears it).
func (p *Postgres) setPendingCut(ctx context.Context, pbx string, cut time.Time) error {
	var err error
	if cut.IsZero() {
		_, err = p.pool.Exec(ctx, "DELETE FROM "+p.ident("export_state")+" WHERE pbx = $1 AND key = $2", pbx, pendingPruneKey)
	} else {
		b, _ := json.Marshal(pendingPrune{Cut: cut.UTC()})
		_, err = p.pool.Exec(ctx, "INSERT INTO "+p.ident("export_state")+` (pbx, key, state) VALUES ($1, $2, $3)
ON CONFLICT (pbx, key) DO UPDATE SET state = EXCLUDED.state, updated_at = now()`, pbx, pendingPruneKey, b)
	}
	if err != nil {
		return fmt.Errorf("store the pending prune: %w", dbError(err))
	}
	return nil
}

// pendingCut returns the cut of pbx's pending prune, zero when none is.
func (s *CSV) pendingCut(_ context.Context, pbx string) (time.Time, error) {
	path := filepath.Join(s.stateDir(pbx), pendingPruneFile)
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return time.Time{}, nil
	case err != nil:
		return time.Time{}, fmt.Errorf("read the pending prune: %w", err)
	}
	return decodePending(b, path)
}

// setPendingCut stores cut as pbx's pending prune (zero: clears it),
// durably (safefile) before any file is removed.
func (s *CSV) setPendingCut(_ context.Context, pbx string, cut time.Time) error {
	path := filepath.Join(s.stateDir(pbx), pendingPruneFile)
	if cut.IsZero() {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("clear the pending prune: %w", err)
		}
		return nil
	}
	if _, err := s.mkStateDir(pbx); err != nil {
		return fmt.Errorf("store the pending prune: %w", err)
	}
	b, _ := json.Marshal(pendingPrune{Cut: cut.UTC()})
	if err := safefile.Write(path, b, fileMode); err != nil {
		return fmt.Errorf("store the pending prune: %w", err)
	}
	return nil
}
