package sinks

import (
	"context"
	"fmt"
	"time"

	"github.com/wildix-export/wildix-export/internal/pglock"
)

// Forget erases every PBX's rows of a sink, so it holds every PBX's
// export lock while it works (issue 30). LockPBXes takes them all at once,
// without waiting: on PostgreSQL on one connection, so that a sink with
// as many PBXes as the pool has connections leaves forget the others to
// work with (review 30-fixes 2). On failure every lock taken is released,
// and the error names the PBX whose lock is held (ErrLocked) or could not
// be taken.

// LockPBXes takes the export lock of each of pbxes (CSV: LockPBX's files).
func (s *CSV) LockPBXes(ctx context.Context, pbxes []string) (func(), error) {
	var unlocks []func()
	unlock := func() {
		for i := len(unlocks) - 1; i >= 0; i-- {
			unlocks[i]()
		}
	}
	for _, pbx := range pbxes {
		u, err := s.LockPBX(ctx, pbx)
		if err != nil {
			unlock()
			return nil, fmt.Errorf("PBX %s: %w", pbx, err)
		}
		unlocks = append(unlocks, u)
	}
	return unlock, nil
}

// LockPBXes takes the export lock of each of pbxes (LockPBX's session
// advisory locks) on one dedicated connection, held until unlock or
// until the process's connection ends.
func (p *Postgres) LockPBXes(ctx context.Context, pbxes []string) (func(), error) {
	conn, err := p.pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("lock the PBXes: %w", dbError(err))
	}
	var held []string
	unlock := func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		for _, pbx := range held {
			if _, err := conn.Exec(uctx, "SELECT pg_advisory_unlock($1, hashtext($2 || '/' || $3))", pglock.Export, p.schema, pbx); err != nil {
				conn.Conn().Close(uctx) // ending the session releases them all
				break
			}
		}
		conn.Release()
	}
	for _, pbx := range pbxes {
		var ok bool
		if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1, hashtext($2 || '/' || $3))", pglock.Export, p.schema, pbx).Scan(&ok); err != nil {
			unlock()
			return nil, fmt.Errorf("lock PBX %s: %w", pbx, dbError(err))
		}
		if !ok {
			unlock()
			return nil, fmt.Errorf("PBX %s: %w (PostgreSQL advisory lock in schema %s)", pbx, ErrLocked, p.schema)
		}
		held = append(held, pbx)
	}
	return unlock, nil
}
