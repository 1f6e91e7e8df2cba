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
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// The retention limit a PBX's rows were last pruned under
// (EXPORT_RETENTION) is kept with its state, so that a shorter one, a
// typo deleting history for good, is seen before it prunes: cmd refuses
// it unless forced (README, Retention).

// retentionKey is the export_state key of the limit: a space keeps it
// apart from every endpoint's and backfill window's key.
const retentionKey = "retention limit"

// retentionFile is the CSV sink's file of the limit, in the PBX's state
// folder, named as rewrite_state.go says (a copy leaving out dot files
// keeps it); retentionDotFile is its name before: read, and removed
// with it.
const (
	retentionFile    = "retention~limit.json"
	retentionDotFile = ".retention.json"
)

type retentionLimit struct {
	Seconds int64  `json:"seconds"`
	RunID   string `json:"run_id,omitempty"`
}

func decodeLimit(b []byte) (time.Duration, error) {
	var l retentionLimit
	if err := json.Unmarshal(b, &l); err != nil || l.Seconds < 0 {
		return 0, fmt.Errorf("the stored retention limit is damaged (%d bytes, not shown): remove it, or set it again", len(b))
	}
	return time.Duration(l.Seconds) * time.Second, nil
}

// RetentionLimit returns the limit pbx's rows were last pruned under, 0
// when they never were.
func (p *Postgres) RetentionLimit(ctx context.Context, pbx string) (time.Duration, error) {
	b, err := p.State(ctx, pbx, retentionKey)
	if err != nil {
		return 0, fmt.Errorf("read the retention limit: %w", err)
	}
	if b == nil {
		return 0, nil
	}
	return decodeLimit(b)
}

// SetRetentionLimit stores the limit pbx's rows were pruned under by run.
func (p *Postgres) SetRetentionLimit(ctx context.Context, pbx, run string, limit time.Duration) error {
	b, _ := json.Marshal(retentionLimit{Seconds: int64(limit / time.Second), RunID: run})
	if err := p.setStateValue(ctx, pbx, retentionKey, b, run); err != nil {
		return fmt.Errorf("store the retention limit: %w", err)
	}
	return nil
}

// RetentionLimit returns the limit pbx's rows were last pruned under, 0
// when they never were.
func (s *CSV) RetentionLimit(_ context.Context, pbx string) (time.Duration, error) {
	b, _, err := readRecord(s.stateDir(pbx), retentionFile, retentionDotFile)
	switch {
	case err != nil:
		return 0, fmt.Errorf("read the retention limit: %w", err)
	case b == nil:
		return 0, nil
	}
	return decodeLimit(b)
}

// SetRetentionLimit stores the limit pbx's rows were pruned under by run
// (durably: safefile), then removes the record under the earlier dot name.
func (s *CSV) SetRetentionLimit(_ context.Context, pbx, run string, limit time.Duration) error {
	if _, err := s.mkStateDir(pbx); err != nil {
		return fmt.Errorf("store the retention limit: %w", err)
	}
	b, _ := json.Marshal(retentionLimit{Seconds: int64(limit / time.Second), RunID: run})
	if err := writeRecord(s.stateDir(pbx), b, retentionFile, retentionDotFile); err != nil {
		return fmt.Errorf("store the retention limit: %w", err)
	}
	return nil
}

// PruneNote begins the first note of a prune's "retention" result in
// the run ledger, followed by its cut (RFC 3339) and " (EXPORT_RETENTION)":
// LedgerLimit reads the limit back from it.
const PruneNote = "removing what concerns calls started before "

// ledgerLimit is the limit a run started at started pruned at cut
// under: the run reads its cut a moment before it starts (to the
// second), so the difference is the limit and that moment, which the
// minute drops.
func ledgerLimit(started time.Time, notes []string) (time.Duration, bool) {
	if len(notes) == 0 {
		return 0, false
	}
	at, ok := strings.CutPrefix(notes[0], PruneNote)
	if !ok {
		return 0, false
	}
	at, _, _ = strings.Cut(at, " ")
	cut, err := time.Parse(time.RFC3339, at)
	if err != nil || !started.After(cut) {
		return 0, false
	}
	return started.Sub(cut).Truncate(time.Minute), true
}

// LedgerLimit returns the limit of the last prune of pbx's rows that the
// run ledger records as successful, and its run's id; 0 when it records
// none. The stored limit (RetentionLimit) can be lost while the rows and
// the ledger stay (its export_state row deleted, a restore leaving out
// the state folder's dot files): the shorter-limit guard falls back on
// this.
func (p *Postgres) LedgerLimit(ctx context.Context, pbx string) (time.Duration, string, error) {
	rows, _ := p.pool.Query(ctx, "SELECT r.run_id, r.started_at, e.notes FROM "+p.ident("export_runs")+" r JOIN "+p.ident("export_run_endpoints")+
		" e USING (run_id) WHERE r.pbx = $1 AND e.endpoint = 'retention' AND e.error IS NULL AND e.notes[1] LIKE $2 ORDER BY r.started_at DESC LIMIT 1",
		pbx, PruneNote+"%")
	var run string
	var started time.Time
	var notes []string
	_, err := pgx.ForEachRow(rows, []any{&run, &started, &notes}, func() error { return nil })
	if err != nil {
		return 0, "", fmt.Errorf("read the run ledger's last prune: %w", dbError(err))
	}
	if d, ok := ledgerLimit(started, notes); ok {
		return d, run, nil
	}
	return 0, "", nil
}

// LedgerLimit returns the limit of the last prune of pbx's rows that its
// run ledger (.state/<pbx>/runs.jsonl) records as successful, and its
// run's id; 0 when it records none (Postgres.LedgerLimit says why).
func (s *CSV) LedgerLimit(_ context.Context, pbx string) (time.Duration, string, error) {
	b, err := os.ReadFile(filepath.Join(s.stateDir(pbx), "runs.jsonl"))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return 0, "", nil
	case err != nil:
		return 0, "", fmt.Errorf("read the run ledger's last prune: %w", err)
	}
	var limit time.Duration
	var id string
	for _, line := range bytes.Split(b, []byte{'\n'}) {
		if !bytes.Contains(line, []byte(PruneNote)) {
			continue
		}
		var run struct {
			ID        string    `json:"run_id"`
			Started   time.Time `json:"started"`
			Endpoints []struct {
				Endpoint string   `json:"endpoint"`
				Error    string   `json:"error"`
				Notes    []string `json:"notes"`
			} `json:"endpoints"`
		}
		if json.Unmarshal(line, &run) != nil {
			continue
		}
		for _, e := range run.Endpoints {
			if d, ok := ledgerLimit(run.Started, e.Notes); ok && e.Endpoint == "retention" && e.Error == "" {
				limit, id = d, run.ID
			}
		}
	}
	return limit, id, nil
}

// A prune removes a recording's stored file before its row (the row names
// the file: never a file kept that no row names), so a prune killed or
// failed between the two leaves rows naming files that are gone. Just
// before it removes files, it stores their names and its cut (the
// pending prune, with the state; PostgreSQL: a batch's, CSV: an
// endpoint's); it clears it once their rows are gone. The next prune, or
// the next run when EXPORT_RETENTION is off, settles it first
// (settlePending): of the rows naming those files, it removes those
// whose file the store no longer holds, and nothing else, whatever the
// limit is then: a file the current limit keeps is never removed, and no
// row is left naming a file a prune removed (review 6, R6-2; attack 4,
// F6).

// pendingPruneKey is the export_state key of the pending prune.
const pendingPruneKey = "retention pending prune"

// pendingPruneFile is the CSV sink's file of it, in the PBX's state
// folder, named as rewrite_state.go says (a copy leaving out dot files
// lost it, and a prune half done was left so in silence);
// pendingPruneDotFile is its name before: read, and removed with it.
const (
	pendingPruneFile    = "retention~pending.json"
	pendingPruneDotFile = ".retention-pending.json"
)

// pendingPrune is a prune that may have removed files whose rows are
// still there.
type pendingPrune struct {
	Cut time.Time `json:"cut"`
	// Names are the files it was removing (recordings' objects); nil in
	// a record of 8c65ea7, which stored only the cut: then any stored
	// recording's file before the cut.
	Names []string `json:"names,omitempty"`
	// Store is the recordings store it was removing them from
	// (PruneOptions.Store): it is settled against that store only
	// (sameStore). Empty in a record of b065c36 or 8c65ea7.
	Store string `json:"store,omitempty"`
	// where is the record's place, for people (set when read).
	where string
}

// holds returns whether name is one of the files p was removing.
func (p *pendingPrune) holds() func(string) bool {
	if p.Names == nil {
		return func(string) bool { return true }
	}
	in := make(map[string]bool, len(p.Names))
	for _, n := range p.Names {
		in[n] = true
	}
	return func(name string) bool { return in[name] }
}

// decodePending reads the pending prune stored at where.
func decodePending(b []byte, where string) (*pendingPrune, error) {
	var p pendingPrune
	if err := json.Unmarshal(b, &p); err != nil || p.Cut.IsZero() {
		return nil, fmt.Errorf("the pending prune stored in %s is damaged (%d bytes, not shown): replace it with {\"cut\":\"<time>\"}, the cut of the prune that stopped "+
			"(the run ledger's retention line: removing what concerns calls started before <time>), so that the next run removes the recordings' rows "+
			"before it whose files are gone and no others", where, len(b))
	}
	p.where = where
	return &p, nil
}

// pending returns pbx's pending prune, nil when none is.
func (p *Postgres) pending(ctx context.Context, pbx string) (*pendingPrune, error) {
	b, err := p.State(ctx, pbx, pendingPruneKey)
	if err != nil {
		return nil, fmt.Errorf("read the pending prune: %w", err)
	}
	if b == nil {
		return nil, nil
	}
	return decodePending(b, fmt.Sprintf("export_state (pbx %q, key %q)", pbx, pendingPruneKey))
}

// setPending stores pp as pbx's pending prune (nil: clears it).
func (p *Postgres) setPending(ctx context.Context, pbx string, pp *pendingPrune) error {
	if pp == nil {
		if err := p.setStateValue(ctx, pbx, pendingPruneKey, nil, ""); err != nil {
			return fmt.Errorf("clear the pending prune: %w", err)
		}
		return nil
	}
	b, _ := json.Marshal(pendingPrune{Cut: pp.Cut.UTC(), Names: pp.Names, Store: pp.Store})
	if err := p.setStateValue(ctx, pbx, pendingPruneKey, b, ""); err != nil {
		return fmt.Errorf("store the pending prune: %w", err)
	}
	return nil
}

// pending returns pbx's pending prune, nil when none is.
func (s *CSV) pending(_ context.Context, pbx string) (*pendingPrune, error) {
	b, path, err := readRecord(s.stateDir(pbx), pendingPruneFile, pendingPruneDotFile)
	switch {
	case err != nil:
		return nil, fmt.Errorf("read the pending prune: %w", err)
	case b == nil:
		return nil, nil
	}
	return decodePending(b, path)
}

// setPending stores pp as pbx's pending prune (nil: clears it),
// durably (safefile) before any file is removed; the record under the
// earlier dot name goes either way.
func (s *CSV) setPending(_ context.Context, pbx string, pp *pendingPrune) error {
	if pp == nil {
		if err := writeRecord(s.stateDir(pbx), nil, pendingPruneFile, pendingPruneDotFile); err != nil {
			return fmt.Errorf("clear the pending prune: %w", err)
		}
		return nil
	}
	if _, err := s.mkStateDir(pbx); err != nil {
		return fmt.Errorf("store the pending prune: %w", err)
	}
	b, _ := json.Marshal(pendingPrune{Cut: pp.Cut.UTC(), Names: pp.Names, Store: pp.Store})
	if err := writeRecord(s.stateDir(pbx), b, pendingPruneFile, pendingPruneDotFile); err != nil {
		return fmt.Errorf("store the pending prune: %w", err)
	}
	return nil
}

// pendingHint is pendingStore's: the statement storing pp.
func (p *Postgres) pendingHint(pbx string, pp pendingPrune) string {
	b, _ := json.Marshal(pendingPrune{Cut: pp.Cut.UTC(), Store: pp.Store})
	return fmt.Sprintf("run INSERT INTO %s (pbx, key, state) VALUES (%s, %s, %s)", p.ident("export_state"),
		sqlText(pbx), sqlText(pendingPruneKey), sqlText(string(b)))
}

// sqlText is s as an SQL string literal.
func sqlText(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// pendingHint is pendingStore's: the file and what to write in it.
func (s *CSV) pendingHint(pbx string, pp pendingPrune) string {
	b, _ := json.Marshal(pendingPrune{Cut: pp.Cut.UTC(), Store: pp.Store})
	return fmt.Sprintf("write %s to %s", b, filepath.Join(s.stateDir(pbx), pendingPruneFile))
}
