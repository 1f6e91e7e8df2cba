package sinks

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/wildix-export/wildix-export/exporter/record"
	"github.com/wildix-export/wildix-export/internal/pglock"
)

// migration is one versioned, additive change. They are applied in order,
// once each, recorded in export_schema_migrations. Never edit or remove
// one that has shipped; add the next, with its pin in migrate_test.go
// (TestShippedMigrationsUnchanged). No table or column is ever dropped
// (an index may be), and views are replaced with CREATE OR REPLACE, which
// keeps what depends on them.
type migration struct {
	version     int
	description string
	sql         string // {schema} is replaced by the quoted schema
}

var migrations = []migration{
	{1, "run ledger and export state", `
CREATE TABLE IF NOT EXISTS {schema}.export_runs (
  run_id     text PRIMARY KEY,
  mode       text NOT NULL,
  pbx        text NOT NULL,
  started_at timestamptz NOT NULL,
  ended_at   timestamptz,
  status     text NOT NULL,
  rows       bigint,
  error      text,
  -- Added by migration 15, here too so that a schema made at an earlier
  -- version (tests) has them for StartRun.
  privacy_rule    text,
  privacy_key_id  text,
  privacy_changed text
);
CREATE INDEX IF NOT EXISTS export_runs_pbx_started_idx ON {schema}.export_runs (pbx, started_at DESC);
CREATE TABLE IF NOT EXISTS {schema}.export_run_endpoints (
  run_id     text NOT NULL REFERENCES {schema}.export_runs (run_id),
  endpoint   text NOT NULL,
  rows       bigint NOT NULL DEFAULT 0,
  pages      bigint NOT NULL DEFAULT 0,
  retries    bigint NOT NULL DEFAULT 0,
  error      text,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (run_id, endpoint)
);
CREATE TABLE IF NOT EXISTS {schema}.export_state (
  pbx        text NOT NULL,
  key        text NOT NULL,
  state      jsonb NOT NULL,
  run_id     text,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (pbx, key)
);`},
	{2, "reporting views", `
CREATE OR REPLACE VIEW {schema}.calls_daily AS
SELECT pbx,
       substr(raw->>'start', 1, 10)::date AS day,
       disposition,
       type,
       count(*) AS calls,
       count(*) FILTER (WHERE disposition = 'ANSWERED') AS answered,
       coalesce(sum(billsec), 0) AS talk_seconds,
       round(avg(billsec) FILTER (WHERE disposition = 'ANSWERED'), 1) AS avg_talk_seconds,
       coalesce(sum(duration), 0) AS total_seconds
FROM {schema}.call_history
GROUP BY 1, 2, 3, 4;

CREATE OR REPLACE VIEW {schema}.calls_by_extension AS
WITH legs AS (
  SELECT pbx, src AS extension, 'outbound' AS direction, disposition, billsec FROM {schema}.call_history
  UNION ALL
  SELECT pbx, dst, 'inbound', disposition, billsec FROM {schema}.call_history
)
SELECT l.pbx,
       l.extension,
       c.name AS colleague,
       count(*) FILTER (WHERE l.direction = 'outbound') AS calls_made,
       count(*) FILTER (WHERE l.direction = 'inbound') AS calls_received,
       count(*) FILTER (WHERE l.direction = 'inbound' AND l.disposition = 'ANSWERED') AS received_answered,
       count(*) FILTER (WHERE l.direction = 'inbound' AND l.disposition <> 'ANSWERED') AS received_missed,
       coalesce(sum(l.billsec), 0) AS talk_seconds
FROM legs l
JOIN {schema}.colleagues c ON c.pbx = l.pbx AND c.extension = l.extension AND c.deleted_at IS NULL
GROUP BY 1, 2, 3;

CREATE OR REPLACE VIEW {schema}.missed_calls AS
SELECT h.pbx,
       h.id,
       h.start_time,
       (h.raw->>'start')::timestamp AS local_start,
       h.from_number,
       h.from_name,
       h.to_number,
       h.to_name,
       h.disposition,
       h.duration AS ring_seconds,
       c.name AS colleague
FROM {schema}.call_history h
LEFT JOIN {schema}.colleagues c ON c.pbx = h.pbx AND c.extension = h.dst AND c.deleted_at IS NULL
WHERE h.type = 'call' AND h.disposition <> 'ANSWERED';`},
	// Owned by auth (PostgresStore): one row per PBX, data as auth seals it
	// (JSON, or AES-GCM when WILDIX_TOKEN_KEY is set). oauth_tokens used to
	// be created by auth itself, hence IF NOT EXISTS.
	{3, "OAuth tokens and authorizations in progress", `
CREATE TABLE IF NOT EXISTS {schema}.oauth_tokens (
  pbx        text PRIMARY KEY,
  data       text NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS {schema}.oauth_pending (
  pbx        text PRIMARY KEY,
  data       text NOT NULL,
  expires_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);`},
	{4, "reporting: calls, not legs", reportingV4},
	{5, "run ledger: how each endpoint was read and loaded; unused call_history indexes dropped", `
ALTER TABLE {schema}.export_run_endpoints
  ADD COLUMN IF NOT EXISTS paging   text,
  ADD COLUMN IF NOT EXISTS notes    text[],
  ADD COLUMN IF NOT EXISTS filtered bigint NOT NULL DEFAULT 0,
  ADD COLUMN IF NOT EXISTS vanished bigint NOT NULL DEFAULT 0,
  ADD COLUMN IF NOT EXISTS rows_direct      bigint NOT NULL DEFAULT 0,
  ADD COLUMN IF NOT EXISTS rows_merged      bigint NOT NULL DEFAULT 0,
  ADD COLUMN IF NOT EXISTS direct_fallbacks bigint NOT NULL DEFAULT 0;
-- No shipped view or documented query filters call_history on these
-- columns, and maintaining them cost a load 2.7 times its time
-- (bench/README.md). Create one yourself to search calls by number.
DROP INDEX IF EXISTS {schema}.call_history_src_idx, {schema}.call_history_dst_idx,
  {schema}.call_history_from_number_idx, {schema}.call_history_to_number_idx;`},
	{6, "reporting: call groups and queues", reportingGroups},
	{7, "reporting: group_calls keeps an unknown wait unknown", reportingGroupsWait},
	// Owned by internal/notify (PostgresState): what was sent about a PBX's
	// runs, beside its token, so that a failure repeated by each run of an
	// outside scheduler is sent once a day.
	{8, "notification state", `
CREATE TABLE IF NOT EXISTS {schema}.notify_state (
  pbx        text PRIMARY KEY,
  state      jsonb NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);`},
	{9, "reporting: group_calls counts only a member's answer", reportingGroupsMemberAnswer},
	{10, "reporting: group_calls overflows at the dialplan's timeout, not the strategy's", reportingGroupsTimeout},
	{11, "records PostgreSQL refused, kept out of their tables", `
CREATE TABLE IF NOT EXISTS {schema}.export_quarantine (
  pbx            text NOT NULL,
  endpoint       text NOT NULL,
  key            text NOT NULL,
  run_id         text NOT NULL,
  field          text NOT NULL,
  error          text NOT NULL,
  record         text NOT NULL,
  quarantined_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (pbx, endpoint, key)
);`},
	{12, "reporting: group_calls stored, kept up to date by triggers on call_history, colleagues and call_groups", reportingGroupsStored},
	{13, "reporting: group_calls_stored's local times follow a TRUNCATE of pbx_settings", reportingGroupsZoneTruncated},
	{14, "reporting: a batch of new legs keeps the stored group tables once, before its commit; their lock in internal/pglock", reportingGroupsDeferred},
	{15, "run ledger: the pseudonymisation rule and key id each run applied, and a forced change", `
ALTER TABLE {schema}.export_runs ADD COLUMN IF NOT EXISTS privacy_rule text;
ALTER TABLE {schema}.export_runs ADD COLUMN IF NOT EXISTS privacy_key_id text;
ALTER TABLE {schema}.export_runs ADD COLUMN IF NOT EXISTS privacy_changed text;`},
	{16, "reporting: missed_calls finds a call back by the number in any form (+, 00, spaces), as a pseudonym does", reportingNumbers},
	{17, "reporting: number_key is NULL for what is not a number (erased, anonymous), so missed_calls links no call back to it", reportingNumbersErased},
	{18, "reporting: number_key is NULL only for a party without a number (erased, a hidden caller, n:, p:-redacted-); a caller id or SIP URI keys as its number, else as its user@host", reportingNumbersParties},
	// No table changes: the version is the change. Every release refuses
	// a schema at a version it does not know (Migrate's check, there since
	// the first), and none before this one may run against a schema this
	// one has exported into: each would hand a PBX a new key of
	// recordings' ids (not reading the record, or the marks in the PBX's
	// rows) and copy every k- recording again (review 9, R9-3), or not
	// read the suppression list's tags and write forgotten numbers again
	// (review 6, R6-5). A process of an earlier release already running
	// (a worker started before) migrated at its start, and is not stopped
	// by this: README, Erasure.
	{19, "releases before this one refuse the schema: they read neither the keys of recordings' ids by PBX (marked in each PBX's rows) nor the suppression list's tags", `
COMMENT ON TABLE {schema}.export_state IS 'wildix-export state; a release before schema version 19 must not run against this schema: it would copy recordings again and write forgotten numbers again';`},
}

// schemaBeforeKeysByPBX is the last schema version the releases knew
// that read neither the keys of recordings' ids by PBX with their marks
// in each PBX's rows, nor the suppression list's tags: migration 19
// makes each of them refuse the schema.
const schemaBeforeKeysByPBX = 18

// SchemaVersion is the newest migration this binary knows.
func SchemaVersion() int { return migrations[len(migrations)-1].version }

// PendingMigrations counts the migrations not yet applied to the schema
// (all of them when the schema or its migration table is missing),
// reading only: `check` reports them, Migrate applies them.
func (p *Postgres) PendingMigrations(ctx context.Context) (int, error) {
	table := pgx.Identifier{p.schema, "export_schema_migrations"}.Sanitize()
	var exists bool
	if err := p.pool.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", table).Scan(&exists); err != nil {
		return 0, fmt.Errorf("look for the migrations of schema %s: %w", p.schema, dbError(err))
	}
	applied := 0
	if exists {
		if err := p.pool.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM "+table).Scan(&applied); err != nil {
			return 0, fmt.Errorf("read the schema version of %s: %w", p.schema, dbError(err))
		}
	}
	n := 0
	for _, m := range migrations {
		if m.version > applied {
			n++
		}
	}
	return n, nil
}

// Migrate creates the schema when missing, a table per endpoint (adding
// columns the catalog gained), and applies the versioned migrations, all
// in one transaction under an advisory lock, so concurrent starts are safe.
// It fails, changing nothing, when the database is newer than this binary
// or a column's type differs from the catalog's.
func (p *Postgres) Migrate(ctx context.Context, endpoints []record.Endpoint) error {
	return p.migrate(ctx, endpoints, SchemaVersion())
}

// migrate is Migrate up to version upTo, as a release knowing no later
// one (tests: a schema as an earlier version left it; a release before
// refusing it).
func (p *Postgres) migrate(ctx context.Context, endpoints []record.Endpoint, upTo int) error {
	if err := CheckEndpointNames(endpoints); err != nil {
		return err
	}
	tx, err := p.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", dbError(err))
	}
	defer tx.Rollback(ctx)
	schema := pgx.Identifier{p.schema}.Sanitize()
	stmts := []string{
		fmt.Sprintf("SELECT pg_advisory_xact_lock(%d, hashtext('%s'))", pglock.Migrate, strings.ReplaceAll(p.schema, "'", "''")),
		"CREATE SCHEMA IF NOT EXISTS " + schema,
		"CREATE TABLE IF NOT EXISTS " + schema + `.export_schema_migrations (
  version     integer PRIMARY KEY,
  description text NOT NULL,
  applied_at  timestamptz NOT NULL DEFAULT now())`,
	}
	for _, s := range stmts {
		if _, err := tx.Exec(ctx, s); err != nil {
			return fmt.Errorf("migrate schema %s: %w", p.schema, dbError(err))
		}
	}
	var applied int
	if err := tx.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM "+schema+".export_schema_migrations").Scan(&applied); err != nil {
		return fmt.Errorf("migrate: %w", dbError(err))
	}
	if applied > upTo {
		return fmt.Errorf("schema %s is at version %d, newer than this wildix-export knows (%d): upgrade wildix-export", p.schema, applied, upTo)
	}
	for i := range endpoints {
		if err := p.ensureTable(ctx, tx, &endpoints[i]); err != nil {
			return err
		}
	}
	for _, m := range migrations {
		if m.version <= applied || m.version > upTo {
			continue
		}
		if _, err := tx.Exec(ctx, strings.ReplaceAll(m.sql, "{schema}", schema)); err != nil {
			return fmt.Errorf("migration %d (%s): %w", m.version, m.description, dbError(err))
		}
		if _, err := tx.Exec(ctx, "INSERT INTO "+schema+".export_schema_migrations (version, description) VALUES ($1, $2)", m.version, m.description); err != nil {
			return fmt.Errorf("record migration %d: %w", m.version, dbError(err))
		}
		p.log.Info("migration applied", "version", m.version, "description", m.description)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("migrate: %w", dbError(err))
	}
	return nil
}

var pgTypeNames = map[record.Type]string{
	record.BigInt: "bigint", record.Integer: "integer", record.Numeric: "numeric",
	record.Timestamp: "timestamp with time zone", record.Text: "text", record.Boolean: "boolean", record.JSON: "jsonb",
}

// ensureTable creates an endpoint's table, or adds the columns it lacks.
func (p *Postgres) ensureTable(ctx context.Context, tx pgx.Tx, e *record.Endpoint) error {
	table := p.ident(e.Name)
	var defs, keys []string
	defs = append(defs, "pbx text NOT NULL")
	keys = append(keys, "pbx")
	for _, c := range e.Columns {
		def := pgx.Identifier{c.Name}.Sanitize() + " " + string(c.Type)
		for _, k := range e.Key {
			if c.Field == k {
				def += " NOT NULL"
				keys = append(keys, pgx.Identifier{c.Name}.Sanitize())
			}
		}
		defs = append(defs, def)
	}
	defs = append(defs, "extra jsonb", "raw jsonb NOT NULL", "run_id text NOT NULL",
		"exported_at timestamptz NOT NULL DEFAULT now()", "deleted_at timestamptz",
		"PRIMARY KEY ("+strings.Join(keys, ", ")+")")
	if _, err := tx.Exec(ctx, fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s (\n  %s\n)", table, strings.Join(defs, ",\n  "))); err != nil {
		return fmt.Errorf("create table %s: %w", table, dbError(err))
	}
	rows, err := tx.Query(ctx, `SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2`, p.schema, e.Name)
	if err != nil {
		return fmt.Errorf("read columns of %s: %w", table, dbError(err))
	}
	have := map[string]string{}
	for rows.Next() {
		var n, t string
		if err := rows.Scan(&n, &t); err != nil {
			return err
		}
		have[n] = t
	}
	if err := rows.Err(); err != nil {
		return dbError(err)
	}
	for _, c := range e.Columns {
		t, ok := have[c.Name]
		if !ok {
			if _, err := tx.Exec(ctx, fmt.Sprintf("ALTER TABLE %s ADD COLUMN IF NOT EXISTS %s %s", table, pgx.Identifier{c.Name}.Sanitize(), c.Type)); err != nil {
				return fmt.Errorf("add column %s.%s: %w", e.Name, c.Name, dbError(err))
			}
			p.log.Info("column added", "table", e.Name, "column", c.Name, "type", c.Type)
			continue
		}
		if t != pgTypeNames[c.Type] {
			return fmt.Errorf("column %s.%s is %s in the database but %s in the catalog: wildix-export never changes a column's type; rename the column in the catalog, or migrate it by hand", e.Name, c.Name, t, c.Type)
		}
	}
	for _, col := range e.Index {
		name := pgx.Identifier{indexName(e.Name, col)}.Sanitize()
		if _, err := tx.Exec(ctx, fmt.Sprintf("CREATE INDEX IF NOT EXISTS %s ON %s (pbx, %s)", name, table, pgx.Identifier{col}.Sanitize())); err != nil {
			return fmt.Errorf("create index on %s.%s: %w", e.Name, col, dbError(err))
		}
	}
	return nil
}
