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
