package sinks

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
)

// stateValue is the state export_state keeps for pbx under key (one
// of the records kept beside the endpoints' state: a rewrite due, a
// pending prune, the retention limit), nil when there is none. Its
// error is PostgreSQL's (dbError), for the caller to say what it read.
func (p *Postgres) stateValue(ctx context.Context, pbx, key string) ([]byte, error) {
	var b []byte
	err := p.pool.QueryRow(ctx, "SELECT state FROM "+p.ident("export_state")+" WHERE pbx = $1 AND key = $2", pbx, key).Scan(&b)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, dbError(err)
	}
	return b, nil
}

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
	_, err := p.pool.Exec(ctx, "INSERT INTO "+p.ident("export_state")+` (pbx, key, state, run_id) VALUES ($1, $2, $3, $4)
ON CONFLICT (pbx, key) DO UPDATE SET state = EXCLUDED.state, run_id = EXCLUDED.run_id, updated_at = now()`, pbx, key, b, runID)
	return dbError(err)
}
