package sinks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wildix-export/wildix-export/exporter"
	"github.com/wildix-export/wildix-export/exporter/record"
	"github.com/wildix-export/wildix-export/internal/pglock"
)

// ErrDatabase marks failures to reach or talk to PostgreSQL (as opposed
// to a row or statement it refused).
var ErrDatabase = errors.New("database unavailable")

// Postgres loads rows into a table per endpoint in one schema. A batch's
// rows are streamed with COPY, straight into the table when no key can
// already be there (direct.go), otherwise into a temporary staging table
// merged with one INSERT … ON CONFLICT … DO UPDATE that touches only
// changed rows; in the same transaction as the cursor state and the run's
// progress: after a crash, either the batch and its cursor are there or
// neither is.
//
// Text values cannot hold NUL bytes in PostgreSQL, nor jsonb \u0000: the
// converter makes them U+FFFD (exporter/storable.go); should a row bring
// one all the same, the sink does the same, counts, and logs once per
// batch. A row PostgreSQL still refuses is quarantined (quarantine.go).
type Postgres struct {
	pool   *pgxpool.Pool
	schema string
	log    *slog.Logger
	stage  atomic.Int64
	loads  loadCounters
	// forceDirect (tests) loads every incremental row straight into its
	// table, as if none could exist: the fallback must catch collisions.
	forceDirect bool
	// chunk is the size of the COPYs a batch sends, and buffers keeps
	// chunks' memory from one batch to the next (copy.go).
	chunk   int
	buffers chan []byte
	// deferrable: the schema can defer the call-group upkeep (direct.go).
	deferrable atomic.Bool
	// Strict fails a batch on a record PostgreSQL refuses, instead of
	// quarantining it (quarantine.go; EXPORT_STRICT).
	Strict     bool
	quarantine quarantineCounts
	rules      pendingRules // the pseudonymisation rule a run stores with its first commit (privacy.go)
}

// The pool's size: what a run needs at the least, and what it gets unless
// EXPORT_DATABASE_URL sets pool_max_conns.
const (
	minConns     = 4
	defaultConns = 8
)

// Connect opens a pool on url and pings it, so an unreachable database is
// reported before any API call. The error never shows the password.
func Connect(ctx context.Context, url string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("EXPORT_DATABASE_URL is not a PostgreSQL URL or DSN: %w", err)
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = 10 * time.Second
	}
	// A run holds a connection for the PBX's lock and one for the batch
	// in flight, a token refresh takes one, and the ledger and state reads
	// one more. pgxpool's default (four on a small machine) leaves no
	// room, so without pool_max_conns the pool gets defaultConns; a
	// pool_max_conns the user set is kept, unless a run cannot work in it.
	if !strings.Contains(url, "pool_max_conns") {
		cfg.MaxConns = defaultConns
	} else if cfg.MaxConns < minConns {
		return nil, fmt.Errorf("%w: EXPORT_DATABASE_URL: pool_max_conns=%d is fewer than the %d connections a run needs (the PBX's lock, the batch in flight, a token refresh, the ledger): raise it or leave it out", record.ErrConfig, cfg.MaxConns, minConns)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrDatabase, err)
	}
	pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := pool.Ping(pctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("%w: cannot connect to %s:%d database %s as %s (check that PostgreSQL runs and EXPORT_DATABASE_URL): %v",
			ErrDatabase, cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database, cfg.ConnConfig.User, err)
	}
	return pool, nil
}

// NewPostgres returns a sink on pool; call Migrate before use.
func NewPostgres(pool *pgxpool.Pool, schema string, log *slog.Logger) *Postgres {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Postgres{pool: pool, schema: schema, log: log, chunk: chunkBytes, buffers: make(chan []byte, 3)}
}

// Pool is the sink's connection pool.
func (p *Postgres) Pool() *pgxpool.Pool { return p.pool }

func (p *Postgres) ident(name string) string { return pgx.Identifier{p.schema, name}.Sanitize() }

// dbError marks connection failures with ErrDatabase.
func dbError(err error) error {
	if err == nil {
		return nil
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		if strings.HasPrefix(pgErr.Code, "08") || strings.HasPrefix(pgErr.Code, "57P") || pgErr.Code == "53300" {
			return fmt.Errorf("%w: %w", ErrDatabase, err)
		}
		return err
	}
	var ne net.Error
	if errors.As(err, &ne) || pgconn.SafeToRetry(err) || errors.Is(err, net.ErrClosed) || strings.Contains(err.Error(), "conn closed") ||
		strings.Contains(err.Error(), "unexpected EOF") || strings.Contains(err.Error(), "connection reset") {
		return fmt.Errorf("%w: %w", ErrDatabase, err)
	}
	return err
}

// State implements exporter.Sink.
func (p *Postgres) State(ctx context.Context, pbx, key string) ([]byte, error) {
	var st []byte
	err := p.pool.QueryRow(ctx, "SELECT state FROM "+p.ident("export_state")+" WHERE pbx = $1 AND key = $2", pbx, key).Scan(&st)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read state %s: %w", key, dbError(err))
	}
	return st, nil
}

// Begin implements exporter.Sink: a transaction, in which rows go
// straight into the table when no key can already be there (direct.go)
// and through a staging table and a merge otherwise.
func (p *Postgres) Begin(ctx context.Context, b exporter.BatchInfo) (exporter.Batch, error) {
	tx, err := p.pool.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("begin batch: %w", dbError(err))
	}
	bt := &pgBatch{sink: p, info: b, tx: tx, cols: dataColumns(b.Endpoint)}
	if err := bt.describe(ctx); err != nil {
		tx.Rollback(ctx)
		return nil, err
	}
	if err := bt.prepare(ctx); err != nil {
		tx.Rollback(ctx)
		return nil, err
	}
	return bt, nil
}

// ensureStage creates the batch's staging table, dropped at commit, unless
// it exists.
func (b *pgBatch) ensureStage(ctx context.Context) error {
	if b.stage != "" {
		return nil
	}
	p := b.sink
	stage := fmt.Sprintf("stage_%s_%d", b.info.Endpoint.Name, p.stage.Add(1))
	if len(stage) > 63 {
		stage = fmt.Sprintf("stage_%d", p.stage.Load())
	}
	_, err := b.tx.Exec(ctx, fmt.Sprintf("CREATE TEMP TABLE %s ON COMMIT DROP AS SELECT %s FROM %s WITH NO DATA",
		pgx.Identifier{stage}.Sanitize(), strings.Join(quoted(b.cols), ", "), p.ident(b.info.Endpoint.Name)))
	if err != nil {
		return fmt.Errorf("create staging table for %s (has the schema been migrated?): %w", b.info.Endpoint.Name, dbError(err))
	}
	b.stage = stage
	return nil
}

// dataColumns are the columns a batch writes, in COPY order.
func dataColumns(e *record.Endpoint) []string {
	cols := []string{"pbx"}
	for _, c := range e.Columns {
		cols = append(cols, c.Name)
	}
	return append(cols, "extra", "raw", "run_id")
}

func quoted(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = pgx.Identifier{n}.Sanitize()
	}
	return out
}

type pgBatch struct {
	sink  *Postgres
	info  exporter.BatchInfo
	tx    pgx.Tx
	stage string // the staging table, "" until a row needs it
	cols  []string
	oids  []uint32 // the columns' types, for COPY's binary format
	nuls  int64
	done  bool
	// quarantined: rows refused, saved at commit (quarantine.go).
	quarantined []quarantined
	// direct: rows whose key is above high go straight into the table.
	direct bool
	high   int64
	// deferrable: the rows copied straight into the table may defer their
	// call-group upkeep to the commit; deferred: they do (direct.go).
	deferrable, deferred bool
	loads                Loads // this batch's rows by path
	// Rows encoded and not yet sent, by path, and the chunk being sent
	// (copy.go).
	directRows, mergeRows copyChunk
	sending               *sending
	spare                 []byte
}

// Write implements exporter.Batch: the rows are encoded for their path
// and sent a chunk at a time (copy.go).
func (b *pgBatch) Write(ctx context.Context, rows []record.Row) error {
	for _, r := range rows {
		to := &b.mergeRows
		if b.direct && r.Cursor > b.high {
			to = &b.directRows
		}
		if err := b.encode(to, r); err != nil {
			var ee *encodeError
			if errors.As(err, &ee) {
				err = b.quarantine(quarantined{key: b.keyOf(r), field: b.fieldOf(ee.column), record: string(r.Raw)}, err)
			}
			if err != nil {
				return fmt.Errorf("encode a row of %s: %w", b.info.Endpoint.Name, err)
			}
		}
	}
	return b.flush(ctx, b.sink.chunk)
}

func (b *pgBatch) value(v any) any {
	switch v := v.(type) {
	case string:
		if strings.IndexByte(v, 0) >= 0 {
			b.nuls++
			return strings.ReplaceAll(v, "\x00", "\uFFFD")
		}
		return v
	case record.Decimal:
		var n pgtype.Numeric
		if err := n.Scan(string(v)); err != nil {
			return nil
		}
		return n
	case json.RawMessage:
		return b.jsonValue(v)
	}
	return v
}

var jsonNUL = []byte(`\u0000`)

// jsonValue returns JSON for a jsonb column, which refuses \u0000.
func (b *pgBatch) jsonValue(raw json.RawMessage) any {
	if raw == nil {
		return nil
	}
	if bytes.Contains(raw, jsonNUL) {
		b.nuls++
		var v any
		if json.Unmarshal(raw, &v) == nil {
			if out, err := json.Marshal(stripNUL(v)); err == nil {
				return json.RawMessage(out)
			}
		}
		return json.RawMessage(bytes.ReplaceAll(raw, jsonNUL, []byte(`\ufffd`)))
	}
	return raw
}

func stripNUL(v any) any {
	switch v := v.(type) {
	case string:
		return strings.ReplaceAll(v, "\x00", "\uFFFD")
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			out[strings.ReplaceAll(k, "\x00", "\uFFFD")] = stripNUL(x)
		}
		return out
	case []any:
		for i := range v {
			v[i] = stripNUL(v[i])
		}
	}
	return v
}

// Commit implements exporter.Batch.
func (b *pgBatch) Commit(ctx context.Context, state []byte, pr exporter.Progress) error {
	if b.done {
		return errors.New("batch already finished")
	}
	b.done = true
	defer b.release()
	err := b.commit(ctx, state, pr)
	if err != nil {
		b.drain()
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		b.tx.Rollback(rctx)
		return dbError(err)
	}
	if b.nuls > 0 {
		b.sink.log.Warn("NUL bytes replaced by U+FFFD in values PostgreSQL cannot store", "endpoint", b.info.Endpoint.Name, "values", b.nuls)
	}
	return nil
}

// commit merges the batch's rows, marks what a snapshot no longer has as
// deleted, and saves the state and the progress, in the batch's
// transaction.
func (b *pgBatch) commit(ctx context.Context, state []byte, pr exporter.Progress) error {
	if err := b.flush(ctx, 0); err != nil {
		return err
	}
	if err := b.sent(ctx); err != nil {
		return err
	}
	if err := b.flushDeferred(ctx); err != nil {
		return err
	}
	if b.loads.Merged > 0 {
		if err := b.merge(ctx); err != nil {
			return fmt.Errorf("merge %s: %w", b.info.Endpoint.Name, err)
		}
	}
	if b.info.Snapshot {
		if err := b.markDeleted(ctx); err != nil {
			return fmt.Errorf("mark deleted %s: %w", b.info.Endpoint.Name, err)
		}
	}
	if err := b.saveQuarantine(ctx); err != nil {
		return err
	}
	if err := b.saveState(ctx, state, pr); err != nil {
		return err
	}
	ruleSaved, err := b.sink.saveRule(ctx, b.tx, b.info)
	if err != nil {
		return err
	}
	if err := b.tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	ruleSaved()
	b.sink.loads.add(b.loads)
	b.sink.quarantine.add(b.info.RunID, b.info.Endpoint.Name, b.quarantined)
	return nil
}

// keyColumns are the table's primary key: pbx, then the endpoint's key.
func keyColumns(e *record.Endpoint) []string {
	keys := []string{"pbx"}
	for _, k := range e.Key {
		for _, c := range e.Columns {
			if c.Field == k {
				keys = append(keys, c.Name)
			}
		}
	}
	return keys
}

// merge upserts the staged rows, touching only rows that changed.
func (b *pgBatch) merge(ctx context.Context) error {
	qk := strings.Join(quoted(keyColumns(b.info.Endpoint)), ", ")
	qc := quoted(b.cols)
	var set, cmp, excl []string
	for _, c := range qc[1:] {
		set = append(set, fmt.Sprintf("%s = EXCLUDED.%s", c, c))
		if c != `"run_id"` {
			cmp = append(cmp, "t."+c)
			excl = append(excl, "EXCLUDED."+c)
		}
	}
	stmt := func(distinct string) string {
		return fmt.Sprintf(`INSERT INTO %s AS t (%s) SELECT %s %s FROM %s
ON CONFLICT (%s) DO UPDATE SET %s, exported_at = now(), deleted_at = NULL
WHERE (%s) IS DISTINCT FROM (%s) OR t.deleted_at IS NOT NULL`,
			b.sink.ident(b.info.Endpoint.Name), strings.Join(qc, ", "), distinct, strings.Join(qc, ", "),
			pgx.Identifier{b.stage}.Sanitize(), qk, strings.Join(set, ", "), strings.Join(cmp, ", "), strings.Join(excl, ", "))
	}
	// The exporter hands over each key once per batch, so the plain merge
	// needs no sort; should a key come twice after all, PostgreSQL says so
	// (21000) and the merge is redone keeping one of each.
	if _, err := b.tx.Exec(ctx, "SAVEPOINT merge"); err != nil {
		return err
	}
	_, err := b.tx.Exec(ctx, stmt(""))
	var pgErr *pgconn.PgError
	if err == nil || !errors.As(err, &pgErr) || pgErr.Code != "21000" {
		return err
	}
	if _, err := b.tx.Exec(ctx, "ROLLBACK TO SAVEPOINT merge"); err != nil {
		return err
	}
	_, err = b.tx.Exec(ctx, stmt("DISTINCT ON ("+qk+")"))
	return err
}

// markDeleted marks the PBX's rows missing from a complete snapshot.
func (b *pgBatch) markDeleted(ctx context.Context) error {
	var match, texts []string
	for _, k := range keyColumns(b.info.Endpoint)[1:] {
		kk := pgx.Identifier{k}.Sanitize()
		match = append(match, fmt.Sprintf("s.%s = t.%s", kk, kk))
		texts = append(texts, "t."+kk+"::text")
	}
	// A quarantined record is on the PBX all the same: its row stays.
	quarantined := make([]string, len(b.quarantined))
	for i, q := range b.quarantined {
		quarantined[i] = q.key
	}
	_, err := b.tx.Exec(ctx, fmt.Sprintf(`UPDATE %s AS t SET deleted_at = now() WHERE t.pbx = $1 AND t.deleted_at IS NULL
AND NOT EXISTS (SELECT 1 FROM %s s WHERE %s) AND concat_ws(',', %s) <> ALL($2::text[])`, b.sink.ident(b.info.Endpoint.Name),
		pgx.Identifier{b.stage}.Sanitize(), strings.Join(match, " AND "), strings.Join(texts, ", ")), b.info.PBX, quarantined)
	return err
}

// saveState stores the state and, when the run is in the ledger (StartRun
// recorded it), the endpoint's progress so far.
func (b *pgBatch) saveState(ctx context.Context, state []byte, pr exporter.Progress) error {
	p := b.sink
	if _, err := b.tx.Exec(ctx, "INSERT INTO "+p.ident("export_state")+` (pbx, key, state, run_id, updated_at)
VALUES ($1, $2, $3, $4, now())
ON CONFLICT (pbx, key) DO UPDATE SET state = EXCLUDED.state, run_id = EXCLUDED.run_id, updated_at = now()`,
		b.info.PBX, b.info.StateKey, json.RawMessage(state), b.info.RunID); err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	if _, err := b.tx.Exec(ctx, "INSERT INTO "+p.ident("export_run_endpoints")+` AS e (run_id, endpoint, rows, pages, retries,
rows_direct, rows_merged, direct_fallbacks, updated_at)
SELECT $1, $2, $3, $4, $5, $6, $7, $8, now() WHERE EXISTS (SELECT 1 FROM `+p.ident("export_runs")+` WHERE run_id = $1)
ON CONFLICT (run_id, endpoint) DO UPDATE SET rows = EXCLUDED.rows, pages = EXCLUDED.pages, retries = EXCLUDED.retries,
rows_direct = e.rows_direct + EXCLUDED.rows_direct, rows_merged = e.rows_merged + EXCLUDED.rows_merged,
direct_fallbacks = e.direct_fallbacks + EXCLUDED.direct_fallbacks, updated_at = now()`,
		b.info.RunID, b.info.Endpoint.Name, pr.Rows, pr.Pages, pr.Retries, b.loads.Direct, b.loads.Merged, b.loads.Fallbacks); err != nil {
		return fmt.Errorf("record progress: %w", err)
	}
	return nil
}

// Abort implements exporter.Batch.
func (b *pgBatch) Abort(ctx context.Context) error {
	if b.done {
		return nil
	}
	b.done = true
	b.drain()
	b.release()
	return b.tx.Rollback(ctx)
}

// StartRun implements exporter.Sink. Runs of this PBX still marked as
// running are ones that died: the caller holds the PBX's lock.
func (p *Postgres) StartRun(ctx context.Context, r *exporter.RunResult) error {
	_, err := p.pool.Exec(ctx, "UPDATE "+p.ident("export_runs")+` SET status = 'abandoned', ended_at = now(),
error = 'the process ended without finishing the run' WHERE pbx = $1 AND status = 'running'`, r.PBX)
	if err != nil {
		return dbError(err)
	}
	_, err = p.pool.Exec(ctx, "INSERT INTO "+p.ident("export_runs")+` (run_id, mode, pbx, started_at, status, privacy_rule, privacy_key_id, privacy_changed)
VALUES ($1, $2, $3, $4, 'running', $5, $6, $7)`, r.ID, r.Mode, r.PBX, r.Started, nullIfEmpty(r.Privacy.Rule), nullIfEmpty(r.Privacy.KeyID), nullIfEmpty(r.Privacy.Changed))
	if err != nil {
		return dbError(err)
	}
	return p.recordTimeZone(ctx, r.PBX, r.TimeZone)
}

// recordTimeZone keeps the PBX's zone for the reporting views; a zone
// PostgreSQL does not know is recorded as unknown (the views then use each
// record's offset), with a warning.
func (p *Postgres) recordTimeZone(ctx context.Context, pbx, zone string) error {
	var known bool
	err := p.pool.QueryRow(ctx, "INSERT INTO "+p.ident("pbx_settings")+` (pbx, time_zone, updated_at)
VALUES ($1, CASE WHEN `+p.ident("known_time_zone")+`($2) THEN $2 END, now())
ON CONFLICT (pbx) DO UPDATE SET time_zone = EXCLUDED.time_zone, updated_at = now()
RETURNING time_zone IS NOT NULL`, pbx, nullIfEmpty(zone)).Scan(&known)
	if err != nil {
		return fmt.Errorf("record time zone: %w", dbError(err))
	}
	if zone != "" && !known {
		p.log.Warn("PostgreSQL does not know the PBX's time zone: reports use each record's offset", "time_zone", zone)
	}
	return nil
}

func nullIfEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// nullable is s, or NULL when empty.
func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// FinishRun implements exporter.Sink: the run's end, and each endpoint's
// result with how it was read (paging, notes, filtered, vanished).
func (p *Postgres) FinishRun(ctx context.Context, r *exporter.RunResult) error {
	p.quarantine.notes(r)
	tx, err := p.pool.Begin(ctx)
	if err != nil {
		return dbError(err)
	}
	defer tx.Rollback(ctx)
	var total int64
	for _, e := range r.Endpoints {
		total += e.Rows
		var msg *string
		if e.Err != nil {
			s := e.Err.Error()
			msg = &s
		}
		if _, err := tx.Exec(ctx, "INSERT INTO "+p.ident("export_run_endpoints")+` (run_id, endpoint, rows, pages, retries, error,
paging, notes, filtered, vanished, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, now())
ON CONFLICT (run_id, endpoint) DO UPDATE SET rows = EXCLUDED.rows, pages = EXCLUDED.pages, retries = EXCLUDED.retries,
error = EXCLUDED.error, paging = EXCLUDED.paging, notes = EXCLUDED.notes, filtered = EXCLUDED.filtered,
vanished = EXCLUDED.vanished, updated_at = now()`,
			r.ID, e.Endpoint, e.Rows, e.Pages, e.Retries, msg, nullable(e.Paging), e.Notes, e.Filtered, e.Vanished); err != nil {
			return dbError(err)
		}
	}
	var msg *string
	if err := r.Err(); err != nil {
		s := err.Error()
		msg = &s
	}
	if _, err := tx.Exec(ctx, "UPDATE "+p.ident("export_runs")+` SET ended_at = $2, status = $3, rows = $4, error = $5 WHERE run_id = $1`,
		r.ID, r.Ended, r.Status, total, msg); err != nil {
		return dbError(err)
	}
	return dbError(tx.Commit(ctx))
}

// LockPBX takes the PBX's export lock without waiting: a session advisory
// lock held on a dedicated connection until unlock, or until the process's
// connection ends (however the process ends). ErrLocked when held.
func (p *Postgres) LockPBX(ctx context.Context, pbx string) (func(), error) {
	conn, err := p.pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("lock PBX: %w", dbError(err))
	}
	var ok bool
	if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1, hashtext($2 || '/' || $3))", pglock.Export, p.schema, pbx).Scan(&ok); err != nil {
		conn.Release()
		return nil, fmt.Errorf("lock PBX: %w", dbError(err))
	}
	if !ok {
		conn.Release()
		return nil, fmt.Errorf("%w (PostgreSQL advisory lock in schema %s)", ErrLocked, p.schema)
	}
	return func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if _, err := conn.Exec(uctx, "SELECT pg_advisory_unlock($1, hashtext($2 || '/' || $3))", pglock.Export, p.schema, pbx); err != nil {
			conn.Conn().Close(uctx)
		}
		conn.Release()
	}, nil
}
