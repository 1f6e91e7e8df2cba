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
//
// A direct batch of call records also defers the upkeep of the stored
// call-group tables (reporting_deferred.go): the statement triggers pass
// over its new rows, and one set-based step before the commit brings the
// tables up to date with them, in the same transaction.

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
	if b.info.Endpoint.Name == groupLegsEndpoint {
		ok, err := b.sink.canDefer(ctx, b.tx)
		if err != nil {
			return err
		}
		b.deferrable = ok
	}
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

// groupLegsEndpoint is the endpoint whose table the call-group triggers read
// (reporting_stored.go): a direct batch of its legs defers their upkeep to
// one step before its commit (reporting_deferred.go).
const groupLegsEndpoint = "call_history"

// canDefer tells whether the schema can defer the call-group upkeep
// (schema migration 14); a schema migrated only to an earlier version
// keeps it in its triggers. Only a yes is kept: migrations only add.
func (p *Postgres) canDefer(ctx context.Context, tx pgx.Tx) (bool, error) {
	if p.deferrable.Load() {
		return true, nil
	}
	var ok bool
	if err := tx.QueryRow(ctx, "SELECT to_regprocedure($1) IS NOT NULL", p.ident("group_calls_defer")+"(text)").Scan(&ok); err != nil {
		return false, fmt.Errorf("look for group_calls_defer: %w", dbError(err))
	}
	p.deferrable.Store(ok)
	return ok, nil
}

// deferUpkeep defers the call-group upkeep of the rows the batch copies
// straight into the table, before the first of them: not at the batch's
// start, for the deferral takes the PBX's group lock until the commit,
// and a batch waits for the PBX's pages while another endpoint's batch may
// need that lock to commit (a change of colleagues or call groups).
func (b *pgBatch) deferUpkeep(ctx context.Context) error {
	if !b.deferrable || b.deferred {
		return nil
	}
	if _, err := b.tx.Exec(ctx, "SELECT "+b.sink.ident("group_calls_defer")+"($1)", b.info.PBX); err != nil {
		return fmt.Errorf("defer the call-group upkeep of %s: %w", b.info.Endpoint.Name, err)
	}
	b.deferred = true
	return nil
}

// flushDeferred applies the call-group upkeep the batch deferred, in its
// transaction: the legs it wrote above its high, as written at once.
func (b *pgBatch) flushDeferred(ctx context.Context) error {
	if !b.deferred {
		return nil
	}
	if _, err := b.tx.Exec(ctx, "SELECT "+b.sink.ident("group_calls_flush")+"($1)", b.info.PBX); err != nil {
		return fmt.Errorf("bring the call-group tables up to date with the batch's legs: %w", err)
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
