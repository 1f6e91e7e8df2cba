package sinks

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/wildix-export/wildix-export/exporter"
	"github.com/wildix-export/wildix-export/exporter/record"
)

// Loading at the speed of COPY. An incremental endpoint whose key is its
// cursor (call_history: id) receives rows in key order above its cursor,
// and a row whose key is above every key of the PBX already in the table
// cannot collide with one: such rows are copied straight into the table,
// skipping the staging table and the merge. Everything else (snapshots,
// backfill windows, rows at or below the highest key present, which a
// backfill or an earlier run may have written) goes through the merge.
// The highest key is read once per batch inside its transaction, under
// the PBX's lock, from the primary key's index: no separate bookkeeping
// can drift from the table. Should a direct COPY meet a key all the same,
// it is rolled back to a savepoint and its rows are merged instead.

// Loads counts rows by the path they took into their table.
type Loads struct {
	Direct    int64 // copied straight into the table
	Merged    int64 // staged and merged
	Fallbacks int64 // direct copies that met an existing key and were merged
}

type loadCounters struct{ direct, merged, fallbacks atomic.Int64 }

func (c *loadCounters) add(l Loads) {
	c.direct.Add(l.Direct)
	c.merged.Add(l.Merged)
	c.fallbacks.Add(l.Fallbacks)
}

// Loads returns the rows committed so far by this sink, by path.
func (p *Postgres) Loads() Loads {
	return Loads{Direct: p.loads.direct.Load(), Merged: p.loads.merged.Load(), Fallbacks: p.loads.fallbacks.Load()}
}

// directKey is the column of a batch's key when its rows may go straight
// into the table: an incremental batch (not a snapshot, not a backfill
// window) of an endpoint keyed by its whole-number cursor alone.
func directKey(b exporter.BatchInfo) (string, bool) {
	e := b.Endpoint
	if b.Snapshot || b.Window != nil || e.Cursor == "" || len(e.Key) != 1 || e.Key[0] != e.Cursor {
		return "", false
	}
	for _, c := range e.Columns {
		if c.Field == e.Cursor && (c.Type == record.BigInt || c.Type == record.Integer) {
			return c.Name, true
		}
	}
	return "", false
}

// prepare sets the batch's path: for a direct batch, the highest key of
// the PBX in the table; otherwise the staging table.
func (b *pgBatch) prepare(ctx context.Context) error {
	col, ok := directKey(b.info)
	if !ok {
		return b.ensureStage(ctx)
	}
	b.direct, b.high = true, math.MinInt64
	if b.sink.forceDirect {
		return nil
	}
	err := b.tx.QueryRow(ctx, fmt.Sprintf("SELECT coalesce(max(%s), $2) FROM %s WHERE pbx = $1",
		pgx.Identifier{col}.Sanitize(), b.sink.ident(b.info.Endpoint.Name)), b.info.PBX, int64(math.MinInt64)).Scan(&b.high)
	if err != nil {
		return fmt.Errorf("read the highest %s of %s (has the schema been migrated?): %w", col, b.info.Endpoint.Name, dbError(err))
	}
	return nil
}

// directDone settles a direct chunk's COPY (err its outcome): kept, or,
// should a row have met an existing key, undone, and the same rows merged,
// as is the rest of the batch.
func (b *pgBatch) directDone(ctx context.Context, c *copyChunk, err error) error {
	var pgErr *pgconn.PgError
	_, bad := refused(err)
	if err != nil && !bad && (!errors.As(err, &pgErr) || pgErr.Code != "23505") {
		return err
	}
	if err != nil {
		if _, err := b.tx.Exec(ctx, "ROLLBACK TO SAVEPOINT direct"); err != nil {
			return err
		}
	}
	if _, err := b.tx.Exec(ctx, "RELEASE SAVEPOINT direct"); err != nil {
		return err
	}
	if err == nil {
		b.loads.Direct += c.rows
		return nil
	}
	b.direct = false
	b.loads.Fallbacks++
	if !bad {
		b.sink.log.Warn("a direct load met an existing key; merging the batch's rows instead",
			"endpoint", b.info.Endpoint.Name, "rows", c.rows, "detail", pgErr.Detail)
	}
	if err := b.ensureStage(ctx); err != nil {
		return err
	}
	// Through the merge, as a refused row may hide a key met twice.
	n, err := b.copyProtected(ctx, pgx.Identifier{b.stage}, c)
	b.loads.Merged += n
	return err
}
