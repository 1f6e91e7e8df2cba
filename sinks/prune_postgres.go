package sinks

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/wildix-export/wildix-export/exporter/record"
	"github.com/wildix-export/wildix-export/sinks/recstore"
)

// deleteWhere deletes the rows of the schema's table for which where
// holds (SQL the caller writes, never taken from input, over args as $1,
// $2…), at most batch rows per transaction (0: pruneBatch), so that no
// transaction holds many rows or runs long. When returning is set (an
// SQL expression over the table's columns, the caller's as where is),
// each batch's values of it (as text, NULL as "") are passed to
// before inside the batch's transaction, before it commits: what must
// go before the rows do (the files they name) goes there, and an error
// rolls the batch back. The table's triggers run as for any deletion
// (the stored reporting tables follow call_history by theirs). It
// returns the rows deleted: on an error, those of the batches committed.
// Its seven parameters are one batched DELETE's parts, each given by its
// one or two callers from what they hold; bundled, they would be a struct
// built for a single call.
func (p *Postgres) deleteWhere(ctx context.Context, table, where string, args []any, batch int, returning string, before func(ctx context.Context, values []string) error) (int64, error) {
	if batch <= 0 {
		batch = pruneBatch
	}
	t := p.ident(table)
	ret := ""
	if returning != "" {
		ret = " RETURNING coalesce((" + returning + ")::text, '')"
	}
	// By ctid: a TID scan deletes the batch found, whatever the key.
	stmt := fmt.Sprintf("DELETE FROM %s WHERE ctid = ANY(ARRAY(SELECT ctid FROM %s WHERE %s LIMIT %d))%s", t, t, where, batch, ret)
	var total int64
	for {
		n, err := p.deleteBatch(ctx, stmt, args, before)
		total += n
		p.log.Debug("rows deleted", "table", table, "rows", n, "total", total)
		if err != nil {
			return total, fmt.Errorf("delete from %s: %w", table, dbError(err))
		}
		if n < int64(batch) {
			return total, nil
		}
	}
}

// deleteBatch runs one batch's statement in its own transaction.
func (p *Postgres) deleteBatch(ctx context.Context, stmt string, args []any, before func(context.Context, []string) error) (int64, error) {
	tx, err := p.pool.Begin(ctx)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	var n int64
	if before == nil {
		tag, err := tx.Exec(ctx, stmt, args...)
		if err != nil {
			return 0, err
		}
		n = tag.RowsAffected()
	} else {
		rows, _ := tx.Query(ctx, stmt, args...)
		values, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return 0, err
		}
		if err := before(ctx, values); err != nil {
			return 0, err
		}
		n = int64(len(values))
	}
	return n, tx.Commit(ctx)
}

// Prune removes the rows of pbx's calls that started before cut: from
// the table of each endpoint holding calls (by its time column: start_time
// for call_history and recordings), the recordings' stored files first,
// and the quarantined records of those endpoints whose call started
// before cut; in batches of o.Batch rows per transaction. The stored
// reporting tables derived from call_history follow by their triggers:
// their rows lost are counted too. States, the run ledger and snapshot
// tables are not touched. Run under the PBX's lock, after the run.
//
// A pending prune (one stopped after removing recordings' files) is
// settled first (settlePending); each batch's files are stored as pending
// just before they are removed.
func (p *Postgres) Prune(ctx context.Context, pbx string, eps []record.Endpoint, cut time.Time, o PruneOptions) (Pruned, error) {
	derived := []string{"group_calls_stored", "group_number_members"}
	before, err := p.countRows(ctx, pbx, derived)
	if err != nil {
		return nil, err
	}
	out, _, err := settlePending(ctx, p, pbx, eps, o)
	if err != nil {
		return out, err
	}
	o = holdRecordings(out, o)
	ends, cols := prunable(eps)
	for i, ep := range ends {
		counts, err := p.pruneEndpoint(ctx, pbx, ep, ep.Columns[cols[i]].Name, cut, o)
		out = append(out, counts...)
		if err != nil {
			return out, err
		}
	}
	after, err := p.countRows(ctx, pbx, derived)
	if err != nil {
		return out, err
	}
	for i, t := range derived {
		if d := before[i] - after[i]; d > 0 {
			out = append(out, PrunedCount{Table: t, Rows: d, Detail: "by call_history's triggers"})
		}
	}
	return out, nil
}

// FinishPrune settles pbx's pending prune, if one is (a prune stopped
// after removing recordings' files), whatever EXPORT_RETENTION says now:
// only the rows naming the files it removed go (settlePending). It
// returns the pending prune's cut, zero when none was pending.
func (p *Postgres) FinishPrune(ctx context.Context, pbx string, eps []record.Endpoint, o PruneOptions) (Pruned, time.Time, error) {
	return settlePending(ctx, p, pbx, eps, o)
}

// pendingObjects is pendingStore's, read from ep's table.
func (p *Postgres) pendingObjects(ctx context.Context, pbx string, ep *record.Endpoint, col string, pp *pendingPrune) ([]string, error) {
	// pp.Names nil (a record of 8c65ea7) is NULL: every stored file.
	rows, _ := p.pool.Query(ctx, "SELECT o FROM (SELECT "+storedObjectSQL+" AS o FROM "+p.ident(ep.Name)+" WHERE pbx = $1 AND "+
		pgx.Identifier{col}.Sanitize()+" < $2) s WHERE o IS NOT NULL AND ($3::text[] IS NULL OR o = ANY($3::text[]))", pbx, pp.Cut, pp.Names)
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", ep.Name, dbError(err))
	}
	return names, nil
}

// dropObjects is pendingStore's, batched deletions from ep's table. Its
// six parameters are the interface's: the rows of one endpoint, below a
// cut, whose files are gone.
func (p *Postgres) dropObjects(ctx context.Context, pbx string, ep *record.Endpoint, col string, cut time.Time, gone []string) (int64, error) {
	where := "pbx = $1 AND " + pgx.Identifier{col}.Sanitize() + " < $2 AND (" + storedObjectSQL + ") = ANY($3::text[])"
	return p.deleteWhere(ctx, ep.Name, where, []any{pbx, cut, gone}, 0, "", nil)
}

// pruneEndpoint is Prune of one endpoint, whose time column is col: its
// rows (a recording's stored file first), then its quarantined records.
// The counts it returns are kept even with an error.
// Its six parameters are Prune's own for one endpoint (pbx, ep, its time
// column, the cut, the options): no state to gather in a struct.
func (p *Postgres) pruneEndpoint(ctx context.Context, pbx string, ep *record.Endpoint, col string, cut time.Time, o PruneOptions) (Pruned, error) {
	var out Pruned
	// record.Retention.Expired in SQL: strictly before the cut; a NULL
	// start (unknown) is kept.
	where := "pbx = $1 AND " + pgx.Identifier{col}.Sanitize() + " < $2"
	var n, kept int64
	var err error
	if ep.Files == "recordings" {
		if o.Recordings == nil {
			var old int64
			if err := p.pool.QueryRow(ctx, "SELECT count(*) FROM "+p.ident(ep.Name)+" WHERE "+where, pbx, cut).Scan(&old); err != nil {
				return out, fmt.Errorf("prune: count %s: %w", ep.Name, dbError(err))
			}
			if old > 0 {
				out = append(out, PrunedCount{Table: ep.Name, Kept: old, Detail: fmt.Sprintf("%d rows kept: %s", old, keptWhy(o))})
			}
			return out, nil
		}
		var files int64
		n, files, kept, err = p.deleteRecordings(ctx, pbx, ep.Name, where, cut, o)
		if files > 0 {
			out = append(out, PrunedCount{Table: RecordingsStore, Rows: files})
		}
	} else {
		n, err = p.deleteWhere(ctx, ep.Name, where, []any{pbx, cut}, o.Batch, "", nil)
	}
	if n > 0 || kept > 0 {
		c := PrunedCount{Table: ep.Name, Rows: n, Kept: kept}
		if kept > 0 {
			c.Detail = keptMissing(p, pbx, cut, o, kept)
		}
		out = append(out, c)
	}
	if err != nil {
		return out, fmt.Errorf("prune: %w", err)
	}
	q, files, err := p.pruneQuarantine(ctx, pbx, ep, cut, o)
	if files > 0 {
		out = append(out, PrunedCount{Table: RecordingsStore, Rows: files, Detail: "of quarantined records"})
	}
	if q > 0 || err != nil {
		out = append(out, PrunedCount{Table: "export_quarantine", Rows: q, Detail: ep.Name + "'s records"})
		if err != nil {
			return out, fmt.Errorf("prune: %w", err)
		}
	}
	return out, nil
}

// deleteRecordings deletes the rows of table where says (with pbx and
// cut as $1 and $2): those naming no stored file, then, batch by batch,
// those whose file o.Recordings holds, each batch's files removed before
// its rows go, their names stored as pbx's pending prune just before,
// cleared once every batch is done. A row whose file the store does not
// hold is kept (keptMissing): the rows deleted, files removed and rows
// kept.
// Its six parameters are the prune's own (table, where, pbx, cut as the
// query's $1 and $2; the options holding the store): grouping them would
// hide which of them the SQL binds.
func (p *Postgres) deleteRecordings(ctx context.Context, pbx, table, where string, cut time.Time, o PruneOptions) (n, files, kept int64, err error) {
	// Smaller batches: each holds its transaction open while the store
	// removes its files, one request each on S3.
	batch := o.Batch
	if batch <= 0 {
		batch = pruneFilesBatch
	}
	stored := "coalesce((" + storedObjectSQL + "), '')"
	n, err = p.deleteWhere(ctx, table, where+" AND "+stored+" = ''", []any{pbx, cut}, o.Batch, "", nil)
	if err != nil {
		return n, 0, 0, err
	}
	rows, _ := p.pool.Query(ctx, "SELECT "+stored+" FROM "+p.ident(table)+" WHERE "+where+" AND "+stored+" <> ''", pbx, cut)
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return n, 0, 0, fmt.Errorf("read %s: %w", table, dbError(err))
	}
	names, gone, err := inStore(ctx, o.Recordings, names)
	if err != nil {
		return n, 0, 0, fmt.Errorf("prune %s: %w", table, err)
	}
	rm := &fileRemover{p: p, pbx: pbx, cut: cut, o: o}
	for len(names) > 0 {
		chunk := names[:min(batch, len(names))]
		names = names[len(chunk):]
		d, err := p.deleteWhere(ctx, table, where+" AND "+stored+" = ANY($3::text[])", []any{pbx, cut, chunk}, batch, storedObjectSQL, rm.remove)
		n += d
		if err != nil {
			return n, rm.files, int64(len(gone)), err
		}
	}
	if rm.pending {
		err = p.setPending(ctx, pbx, nil)
	}
	return n, rm.files, int64(len(gone)), err
}

// fileRemover removes the stored files of a recordings prune's batches
// (deleteWhere's before), each batch's names stored as pbx's pending
// prune first.
type fileRemover struct {
	p       *Postgres
	pbx     string
	cut     time.Time
	o       PruneOptions
	pending bool  // a pending prune is stored
	files   int64 // files removed
}

func (r *fileRemover) remove(ctx context.Context, values []string) error {
	var names []string
	for _, v := range values {
		if v != "" {
			names = append(names, v)
		}
	}
	if len(names) == 0 {
		return nil
	}
	// Written outside the batch's transaction: it must hold whether or
	// not the batch commits. The previous batch's names are done with:
	// their rows are gone.
	if err := r.p.setPending(ctx, r.pbx, &pendingPrune{Cut: r.cut, Names: names, Store: r.o.Store}); err != nil {
		return err
	}
	r.pending = true
	for _, name := range names {
		if err := r.o.Recordings.Remove(ctx, name); err != nil {
			return err
		}
		r.files++
	}
	return nil
}

// countRows counts pbx's rows in each table that exists (-1 otherwise).
func (p *Postgres) countRows(ctx context.Context, pbx string, tables []string) ([]int64, error) {
	out := make([]int64, len(tables))
	for i, t := range tables {
		var exists bool
		if err := p.pool.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", p.ident(t)).Scan(&exists); err != nil {
			return nil, fmt.Errorf("prune: count %s: %w", t, dbError(err))
		}
		out[i] = -1
		if exists {
			if err := p.pool.QueryRow(ctx, "SELECT count(*) FROM "+p.ident(t)+" WHERE pbx = $1", pbx).Scan(&out[i]); err != nil {
				return nil, fmt.Errorf("prune: count %s: %w", t, dbError(err))
			}
		}
	}
	return out, nil
}

// pruneQuarantine removes the quarantined records of ep whose call
// started before cut, read from the record as the export read it (a
// record whose start cannot be read is kept). A quarantined recording's
// file may have been stored before PostgreSQL refused its row: for the
// recordings endpoint, the file its record would be stored under
// (recstore.Name of the PBX, its start in UTC and its key, as the copier
// names it) is removed first, so that no file stays that nothing names
// (o.Recordings is set: Prune keeps the recordings' records otherwise).
// It returns the records removed and the files removed.
func (p *Postgres) pruneQuarantine(ctx context.Context, pbx string, ep *record.Endpoint, cut time.Time, o PruneOptions) (n, files int64, err error) {
	rows, _ := p.pool.Query(ctx, "SELECT key, record FROM "+p.ident("export_quarantine")+" WHERE pbx = $1 AND endpoint = $2", pbx, ep.Name)
	var keys, objects []string
	var key, rec string
	_, err = pgx.ForEachRow(rows, []any{&key, &rec}, func() error {
		t, ok := recordStart(ep, []byte(rec), o.Zone)
		if !(record.Retention{Cut: cut}).Expired(t, ok) {
			return nil
		}
		keys = append(keys, key)
		if ep.Files == "recordings" {
			name, err := recstore.Name(pbx, t.UTC(), key)
			if err != nil {
				name = "" // a key no file can be stored under
			}
			objects = append(objects, name)
		}
		return nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("read export_quarantine: %w", dbError(err))
	}
	batch := o.Batch
	if batch <= 0 {
		batch = pruneBatch
	}
	for len(keys) > 0 {
		k := keys[:min(batch, len(keys))]
		keys = keys[len(k):]
		if ep.Files == "recordings" {
			for _, name := range objects[:len(k)] {
				if name == "" {
					continue
				}
				if err := o.Recordings.Remove(ctx, name); err != nil {
					return n, files, fmt.Errorf("%s's quarantined records: %w", ep.Name, err)
				}
				files++
			}
			objects = objects[len(k):]
		}
		tag, err := p.pool.Exec(ctx, "DELETE FROM "+p.ident("export_quarantine")+" WHERE pbx = $1 AND endpoint = $2 AND key = ANY($3)", pbx, ep.Name, k)
		if err != nil {
			return n, files, fmt.Errorf("delete from export_quarantine: %w", dbError(err))
		}
		n += tag.RowsAffected()
	}
	return n, files, nil
}

// otherObjects is pendingStore's, read from ep's table, newest first.
// Its six parameters are the interface's, pendingObjects' and a count.
func (p *Postgres) otherObjects(ctx context.Context, pbx string, ep *record.Endpoint, col string, pp *pendingPrune, n int) ([]string, error) {
	c := pgx.Identifier{col}.Sanitize()
	// pp.Names nil (a record of 8c65ea7) covers every stored file
	// before its cut. A row of unknown start is left out.
	rows, _ := p.pool.Query(ctx, "SELECT o FROM (SELECT "+storedObjectSQL+" AS o, "+c+" AS t FROM "+p.ident(ep.Name)+" WHERE pbx = $1) s "+
		"WHERE coalesce(o, '') <> '' AND NOT (t < $2 AND ($3::text[] IS NULL OR o = ANY($3::text[]))) ORDER BY t DESC LIMIT $4", pbx, pp.Cut, pp.Names, n)
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", ep.Name, dbError(err))
	}
	return names, nil
}
