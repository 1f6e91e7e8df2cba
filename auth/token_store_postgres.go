package auth

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wildix-export/wildix-export/internal/pglock"
)

// PostgresStore keeps tokens in the table oauth_tokens of a schema, one row
// per PBX, so a container keeps no state on its disk, and the
// authorizations in progress in oauth_pending. Both tables are created by
// the versioned migrations (sinks.Postgres.Migrate, version 3), which must
// have run: the store runs no DDL. Lock takes a session advisory lock per
// PBX on a connection it holds until unlock, which serialises refreshes
// across every process using the database.
type PostgresStore struct {
	pool    *pgxpool.Pool
	table   string
	pending string
	sealer  *sealer
}

// NewPostgresStore returns a store in schema; key, when not nil, is a
// 32-byte AES-256 key that encrypts the records.
func NewPostgresStore(pool *pgxpool.Pool, schema string, key []byte) (*PostgresStore, error) {
	s, err := newSealer(key)
	if err != nil {
		return nil, err
	}
	return &PostgresStore{
		pool: pool, sealer: s,
		table:   pgx.Identifier{schema, "oauth_tokens"}.Sanitize(),
		pending: pgx.Identifier{schema, "oauth_pending"}.Sanitize(),
	}, nil
}

// unlockTimeout bounds releasing the advisory lock once the run's context
// may already be cancelled.
const unlockTimeout = 5 * time.Second

// explainDB says what to do when the tables are missing.
func (s *PostgresStore) explainDB(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "42P01" { // undefined_table
		return fmt.Errorf("the token table %s or %s does not exist, the database schema is not migrated (run `wildix-export authorize` or `run --once`, which migrate it): %w", s.table, s.pending, err)
	}
	return err
}

// Load implements Store.
func (s *PostgresStore) Load(ctx context.Context, pbx string) (*Record, error) {
	var data string
	err := s.pool.QueryRow(ctx, "SELECT data FROM "+s.table+" WHERE pbx = $1", pbx).Scan(&data)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("%w for PBX %s in table %s", ErrNoToken, pbx, s.table)
	}
	if err != nil {
		return nil, fmt.Errorf("load token: %w", s.explainDB(err))
	}
	r, err := s.sealer.open(pbx, data)
	if errors.Is(err, errUnsealed) {
		return nil, refuseUnsealed("token of PBX "+pbx, "table "+s.table, deleteRow(s.table, pbx))
	}
	return r, err
}

// Save implements Store; it returns once the row is committed.
func (s *PostgresStore) Save(ctx context.Context, pbx string, r *Record) error {
	data, err := s.sealer.seal(pbx, r)
	if err != nil {
		return fmt.Errorf("encode token: %w", err)
	}
	_, err = s.pool.Exec(ctx, "INSERT INTO "+s.table+` (pbx, data, updated_at) VALUES ($1, $2, now())
ON CONFLICT (pbx) DO UPDATE SET data = EXCLUDED.data, updated_at = now()`, pbx, data)
	if err != nil {
		return fmt.Errorf("save token: %w", s.explainDB(err))
	}
	return nil
}

// Lock implements Store.
func (s *PostgresStore) Lock(ctx context.Context, pbx string) (func(), error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("lock token: %w", err)
	}
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1, hashtext($2))", pglock.TokenRefresh, pbx); err != nil {
		conn.Release()
		return nil, fmt.Errorf("lock token: %w", err)
	}
	return func() {
		// A fresh context: the lock must be released even when the run's
		// context is already cancelled.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), unlockTimeout)
		defer cancel()
		if _, err := conn.Exec(ctx, "SELECT pg_advisory_unlock($1, hashtext($2))", pglock.TokenRefresh, pbx); err != nil {
			// Closing the connection ends the session and its lock.
			conn.Conn().Close(ctx)
		}
		conn.Release()
	}, nil
}

// SavePending implements PendingStore.
func (s *PostgresStore) SavePending(ctx context.Context, pbx string, p *Pending) error {
	data, err := s.sealer.sealPending(pbx, p)
	if err != nil {
		return fmt.Errorf("encode authorization in progress: %w", err)
	}
	_, err = s.pool.Exec(ctx, "INSERT INTO "+s.pending+` (pbx, data, expires_at, updated_at) VALUES ($1, $2, $3, now())
ON CONFLICT (pbx) DO UPDATE SET data = EXCLUDED.data, expires_at = EXCLUDED.expires_at, updated_at = now()`, pbx, data, p.Expires)
	if err != nil {
		return fmt.Errorf("save authorization in progress: %w", s.explainDB(err))
	}
	return nil
}

// LoadPending implements PendingStore.
func (s *PostgresStore) LoadPending(ctx context.Context, pbx string) (*Pending, error) {
	var data string
	err := s.pool.QueryRow(ctx, "SELECT data FROM "+s.pending+" WHERE pbx = $1", pbx).Scan(&data)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("%w for PBX %s in table %s", ErrNoPending, pbx, s.pending)
	}
	if err != nil {
		return nil, fmt.Errorf("load authorization in progress: %w", s.explainDB(err))
	}
	p, err := s.sealer.openPending(pbx, data)
	if errors.Is(err, errUnsealed) {
		return nil, refuseUnsealed("authorization in progress of PBX "+pbx, "table "+s.pending, deleteRow(s.pending, pbx))
	}
	return p, err
}

// deleteRow is the statement that removes pbx's row from table, for a
// person to run.
func deleteRow(table, pbx string) string {
	return fmt.Sprintf("DELETE FROM %s WHERE pbx = '%s';", table, strings.ReplaceAll(pbx, "'", "''"))
}

// DeletePending implements PendingStore.
func (s *PostgresStore) DeletePending(ctx context.Context, pbx string) error {
	if _, err := s.pool.Exec(ctx, "DELETE FROM "+s.pending+" WHERE pbx = $1", pbx); err != nil {
		return fmt.Errorf("delete authorization in progress: %w", s.explainDB(err))
	}
	return nil
}
