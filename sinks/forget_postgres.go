package sinks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wildix-export/wildix-export/exporter"
	"github.com/wildix-export/wildix-export/exporter/record"
)

// pgCell is a column forget reads and may rewrite.
type pgCell struct {
	name string
	kind cellKind
	typ  string // text, jsonb, text[]
}

// pgPlace is a table forget rewrites: its cells (searched and written
// back in this order) and name pairs.
type pgPlace struct {
	table string
	cells []pgCell
	shape *rowShape
	// recordings: rows are recordings whose stored file is removed and
	// status set to Erased; key is the cell of their key (-1: none), given
	// a new one when it tells the number (forget_recordings.go).
	recordings bool
	key        int
}

// forgetPlaces are the tables forget rewrites: each endpoint's, the
// quarantine and the ledger's and state's free text. The derived
// reporting tables follow call_history by their triggers; Forget's last
// search proves they did.
func forgetPlaces(endpoints []record.Endpoint) []pgPlace {
	var out []pgPlace
	for i := range endpoints {
		e := &endpoints[i]
		sh := endpointShape(e, true)
		pl := pgPlace{table: e.Name, shape: sh, recordings: e.Files != "", key: -1}
		for j, n := range sh.names {
			if pl.recordings && j < len(e.Columns) && len(e.Key) == 1 && e.Columns[j].Field == e.Key[0] {
				pl.key = j
			}
			typ := "text"
			if sh.kinds[j] == cellJSON {
				typ = "jsonb"
			}
			pl.cells = append(pl.cells, pgCell{name: n, kind: sh.kinds[j], typ: typ})
		}
		out = append(out, pl)
	}
	fixed := func(table string, cells ...pgCell) pgPlace {
		sh := &rowShape{}
		for _, c := range cells {
			sh.add(c.name, c.kind)
		}
		sh.pairUp()
		return pgPlace{table: table, cells: cells, shape: sh}
	}
	return append(out,
		quarantinePlace(endpoints),
		fixed("export_runs", pgCell{"error", cellText, "text"}),
		fixed("export_run_endpoints", pgCell{"error", cellText, "text"}, pgCell{"notes", cellJSON, "text[]"}),
		fixed("export_state", pgCell{"state", cellJSON, "jsonb"}),
		fixed("notify_state", pgCell{"state", cellJSON, "jsonb"}),
	)
}

// quarantinePlace is export_quarantine as forget rewrites it: its error
// as text, and its record, the PBX's, as its endpoint's raw (a number
// field, a caller id, erased whole: rowShape.wholeRecord; the party's
// name fields with them: recordNames), the endpoint read to know which.
func quarantinePlace(endpoints []record.Endpoint) pgPlace {
	cells := []pgCell{{"error", cellText, "text"}, {"record", cellJSON, "text"}, {"endpoint", cellSkip, "text"}}
	sh := &rowShape{wholeRecord: map[string]map[string]bool{}, recordNames: map[string]map[string]bool{}, endpointCell: len(cells) - 1}
	for _, c := range cells {
		sh.add(c.name, c.kind)
	}
	sh.pairUp()
	for i := range endpoints {
		_, fields, _ := numberColumns(&endpoints[i])
		sh.wholeRecord[endpoints[i].Name] = fields
		sh.recordNames[endpoints[i].Name] = unreadNames(&endpoints[i])
	}
	return pgPlace{table: "export_quarantine", cells: cells, shape: sh}
}

func (c pgCell) selectExpr() string {
	q := pgx.Identifier{c.name}.Sanitize()
	if c.typ == "text[]" {
		return "coalesce(array_to_json(t." + q + ")::text, '')"
	}
	return "coalesce(t." + q + "::text, '')"
}

func (c pgCell) assign(arg int) string {
	q := pgx.Identifier{c.name}.Sanitize()
	switch c.typ {
	case "text[]":
		return fmt.Sprintf("%s = ARRAY(SELECT jsonb_array_elements_text($%d::jsonb))", q, arg)
	case "jsonb":
		return fmt.Sprintf("%s = $%d::jsonb", q, arg)
	}
	return fmt.Sprintf("%s = $%d", q, arg)
}

// ForgetFind searches every table of the schema for f, reading only:
// the rows mentioning it per table (the reporting tables derived from
// call_history too), and the recordings stored for calls with it. It
// searches on a connection whose statements' parameters the server does
// not log (quietConn), or refuses.
func (p *Postgres) ForgetFind(ctx context.Context, f *Forgotten, endpoints []record.Endpoint) (*ForgetFound, error) {
	c, err := p.quietConn(ctx, false)
	if err != nil {
		return nil, err
	}
	defer c.Release()
	return p.forgetFind(ctx, c, f, endpoints)
}

// forgetFind is ForgetFind on c.
func (p *Postgres) forgetFind(ctx context.Context, c *pgxpool.Conn, f *Forgotten, endpoints []record.Endpoint) (*ForgetFound, error) {
	found := &ForgetFound{}
	tables, err := p.tablesOn(ctx, c)
	if err != nil {
		return nil, err
	}
	places := map[string]*pgPlace{}
	for _, pl := range forgetPlaces(endpoints) {
		places[pl.table] = &pl
	}
	for _, t := range tables {
		n, err := p.countMentions(ctx, c, t, places[t], f)
		if err != nil {
			return nil, err
		}
		found.add(t, n)
		if n == 0 {
			continue
		}
		cols, err := p.numericMentions(ctx, c, t, f)
		if err != nil {
			return nil, err
		}
		for _, c := range cols {
			found.Numeric = append(found.Numeric, t+"."+c)
		}
	}
	found.numericHow = p.numericHow()
	found.Recordings, err = p.forgetRecordings(ctx, c, f, endpoints, tables)
	return found, err
}

// numericHow is how to set a numeric column's value to NULL, for the
// error naming it.
func (p *Postgres) numericHow() string {
	return fmt.Sprintf("UPDATE %s.<table> SET <column> = NULL WHERE <column> = <the number's digits>", pgx.Identifier{p.schema}.Sanitize())
}

// tables lists the schema's tables, sorted.
func (p *Postgres) tables(ctx context.Context) ([]string, error) { return p.tablesOn(ctx, p.pool) }

// tablesOn is tables read on q.
func (p *Postgres) tablesOn(ctx context.Context, q queryer) ([]string, error) {
	rows, err := q.Query(ctx, `SELECT table_name FROM information_schema.tables
WHERE table_schema = $1 AND table_type = 'BASE TABLE' ORDER BY table_name`, p.schema)
	if err != nil {
		return nil, fmt.Errorf("list the tables of schema %s: %w", p.schema, dbError(err))
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("list the tables of schema %s: %w", p.schema, dbError(err))
	}
	return names, nil
}

// countMentions counts the rows of table whose text holds f: PostgreSQL
// filters by pattern, the rule decides on what passes: on the row's text,
// and for a table forget rewrites (pl, nil for another) on its cells as
// erasure reads them too (a JSON text column's escapes decoded, as in a
// quarantined record: "+39\u00a0352…"), so that what forget erases is
// what it finds.
func (p *Postgres) countMentions(ctx context.Context, q queryer, table string, pl *pgPlace, f *Forgotten) (int64, error) {
	rows, err := q.Query(ctx, "SELECT t.ctid::text, t::text FROM "+p.ident(table)+" t WHERE t::text ~ $1"+notTheList(table), extended, f.pattern())
	if err != nil {
		return 0, fmt.Errorf("search table %s: %w", table, dbError(err))
	}
	found := map[string]bool{}
	var ctid, text string
	_, err = pgx.ForEachRow(rows, []any{&ctid, &text}, func() error {
		if _, c := eraseText(text, f.match); c > 0 {
			found[ctid] = true
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("search table %s: %w", table, dbError(err))
	}
	if pl != nil {
		err := p.eachMention(ctx, q, *pl, f, false, func(h pgHit) error {
			found[h.ctid] = true
			return nil
		})
		if err != nil {
			return 0, err
		}
	}
	return int64(len(found)), nil
}

// forgetRecordings returns the stored names of the recordings whose rows
// mention f and whose file is stored.
func (p *Postgres) forgetRecordings(ctx context.Context, q queryer, f *Forgotten, endpoints []record.Endpoint, tables []string) ([]string, error) {
	var out []string
	for _, pl := range forgetPlaces(endpoints) {
		if !pl.recordings || !slices.Contains(tables, pl.table) {
			continue
		}
		err := p.eachMention(ctx, q, pl, f, false, func(h pgHit) error {
			if h.object != "" {
				out = append(out, h.object)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// notTheList leaves the suppression list out of a search of table: it
// holds the number's keyed hash, which under the pseudonym key is its
// pseudonym, on purpose.
func notTheList(table string) string {
	if table != "export_state" {
		return ""
	}
	return fmt.Sprintf(" AND NOT (t.pbx = '%s' AND t.key = '%s')", suppressionPBX, suppressionKey)
}

// queryer is a pool or a transaction.
type queryer interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// pgHit is a row eachMention found: its ctid, its cells (erased in place
// when the rule found the number in them; changed[i] says whether
// cells[i] was) and, for recordings, its stored object and, when its key
// tells the number, the key it is given (recordingKeyFor).
type pgHit struct {
	ctid, object, rekey, pbx string
	cells                    []string
	changed                  []bool
}

// eachMention calls fn with each row of pl mentioning f (pgHit). Rows the
// pattern lets through but the rule does not match are not given. lock
// takes the rows FOR UPDATE.
// Its six parameters are one search's: where (q, pl), what (f), whether
// to lock, and the callback; search and erasure share it, each with its own.
func (p *Postgres) eachMention(ctx context.Context, q queryer, pl pgPlace, f *Forgotten, lock bool, fn func(pgHit) error) error {
	sel := []string{"t.ctid::text"}
	for _, c := range pl.cells {
		sel = append(sel, c.selectExpr())
	}
	if pl.recordings {
		// Only a file stored: a vanished or refused recording's row keeps
		// the name its file would have had (attack 1, B3).
		sel = append(sel, "coalesce(("+storedObjectSQL+"), '')", "t.pbx")
	}
	sql := "SELECT " + strings.Join(sel, ", ") + " FROM " + p.ident(pl.table) + " t WHERE t::text ~ $1" + notTheList(pl.table)
	if lock {
		sql += " FOR UPDATE"
	}
	rows, err := q.Query(ctx, sql, extended, f.pattern())
	if err != nil {
		return fmt.Errorf("search table %s: %w", pl.table, dbError(err))
	}
	defer rows.Close()
	var hits []pgHit
	for rows.Next() {
		var h pgHit
		h.cells = make([]string, len(pl.cells))
		dest := []any{&h.ctid}
		for i := range h.cells {
			dest = append(dest, &h.cells[i])
		}
		if pl.recordings {
			dest = append(dest, &h.object, &h.pbx)
		}
		if err := rows.Scan(dest...); err != nil {
			return fmt.Errorf("search table %s: %w", pl.table, dbError(err))
		}
		orig := slices.Clone(h.cells)
		keyTells := pl.recordings && pl.key >= 0 && recordingKeyMentions(h.cells[pl.key], f)
		if f.eraseRow(pl.shape, h.cells) > 0 || keyTells {
			h.changed = make([]bool, len(h.cells))
			for i := range h.cells {
				h.changed[i] = h.cells[i] != orig[i]
			}
			if pl.recordings && pl.key >= 0 && recordingKeyTells(orig[pl.key]) {
				h.rekey = f.recordingKeyFor(h.pbx, orig[pl.key], pl.cellValue(orig, "id"), pl.cellValue(orig, "path"))
			}
			hits = append(hits, h)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("search table %s: %w", pl.table, dbError(err))
	}
	for _, h := range hits {
		if err := fn(h); err != nil {
			return err
		}
	}
	return nil
}

// ForgetErase rewrites every row mentioning f in the tables forget knows
// (forgetPlaces), one transaction per table, and marks the recordings'
// rows Erased; then searches the whole schema again and fails, naming the
// tables, when the number is still anywhere. The recordings' files must
// be removed from the store before (ForgetFind lists them): a row no
// longer names its file's caller once erased. It returns the rows changed
// per table, the reporting tables' included (their rows that mentioned f
// before and no longer do). Every PBX's rows are erased, not only pbx's (the caller
// holds pbx's export lock). Like ForgetFind, it works on a connection
// whose statements' parameters the server does not log, or refuses.
func (p *Postgres) ForgetErase(ctx context.Context, pbx string, f *Forgotten, endpoints []record.Endpoint) (*ForgetFound, error) {
	c, err := p.quietConn(ctx, true)
	if err != nil {
		return nil, err
	}
	defer c.Release()
	tables, err := p.tablesOn(ctx, c)
	if err != nil {
		return nil, err
	}
	places := forgetPlaces(endpoints)
	// The tables forget does not rewrite (the reporting tables, which
	// call_history's triggers rewrite) are counted before and after: what
	// left them is reported erased with the rest.
	derived := map[string]int64{}
	for _, t := range tables {
		if slices.ContainsFunc(places, func(pl pgPlace) bool { return pl.table == t }) {
			continue
		}
		n, err := p.countMentions(ctx, c, t, nil, f)
		if err != nil {
			return nil, err
		}
		if n > 0 {
			derived[t] = n
		}
	}
	done := &ForgetFound{}
	for _, pl := range places {
		if !slices.Contains(tables, pl.table) {
			continue
		}
		n, err := p.erasePlace(ctx, c, pl, f)
		if err != nil {
			return done, err
		}
		done.add(pl.table, n)
	}
	left, err := p.forgetFind(ctx, c, f, endpoints)
	if err != nil {
		return done, err
	}
	for _, t := range tables {
		if n := derived[t]; n > 0 {
			done.add(t, n-left.rowsIn(t))
		}
	}
	return done, leftError(left)
}

// leftError is the error of an erasure whose last search, left, still
// found the number (nil when it found none). A numeric column holding the
// number (a cost, a custom endpoint's numeric column) cannot hold Erased:
// the message names it and what to do; anything else is a table forget
// does not know. Numeric values are kept as they are by pseudonymisation
// too (README, Privacy).
func leftError(left *ForgetFound) error {
	if len(left.Places) == 0 {
		return nil
	}
	if len(left.Numeric) == 0 {
		return left.stillThere("a table forget does not know; report it")
	}
	return left.numericThere(left.Numeric, left.numericHow)
}

// numericMentions names the columns of table of a numeric type whose
// value is f's number (its digits, a national form).
func (p *Postgres) numericMentions(ctx context.Context, q queryer, table string, f *Forgotten) ([]string, error) {
	rows, err := q.Query(ctx, `SELECT column_name FROM information_schema.columns
WHERE table_schema = $1 AND table_name = $2 AND data_type IN ('numeric', 'bigint', 'integer', 'smallint', 'double precision', 'real')
ORDER BY ordinal_position`, p.schema, table)
	if err != nil {
		return nil, fmt.Errorf("list the numeric columns of table %s: %w", table, dbError(err))
	}
	cols, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("list the numeric columns of table %s: %w", table, dbError(err))
	}
	var found []string
	for _, c := range cols {
		col := pgx.Identifier{c}.Sanitize()
		rows, err := q.Query(ctx, "SELECT DISTINCT "+col+"::text FROM "+p.ident(table)+" WHERE "+col+"::text ~ $1", extended, f.pattern())
		if err != nil {
			return nil, fmt.Errorf("search column %s of table %s: %w", c, table, dbError(err))
		}
		vals, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return nil, fmt.Errorf("search column %s of table %s: %w", c, table, dbError(err))
		}
		if slices.ContainsFunc(vals, func(v string) bool { _, n := eraseText(v, f.match); return n > 0 }) {
			found = append(found, c)
		}
	}
	return found, nil
}

// recordingSetBelow are the columns erasePlace sets on every erased
// recording's row: a mention of the number in one of them (a hostile file
// name quoted in reason) is not assigned twice, which PostgreSQL refuses
// ("multiple assignments to same column") after the files were removed.
var recordingSetBelow = map[string]bool{"status": true, "reason": true, "object": true, "stored_size": true, "sha256": true}

// freeKey is h.rekey, the new key of a recording's row, unless another
// row of its PBX has it already (a run that did not know the row's old
// key wrote one under it): then a key tied to nothing (erasedKey), as
// the table's key allows one row per key and PBX.
func (p *Postgres) freeKey(ctx context.Context, tx pgx.Tx, pl pgPlace, h pgHit) (string, error) {
	var taken bool
	col := pgx.Identifier{pl.cells[pl.key].name}.Sanitize()
	if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM "+p.ident(pl.table)+" WHERE pbx = $1 AND "+col+" = $2)", extended, h.pbx, h.rekey).Scan(&taken); err != nil {
		return "", fmt.Errorf("erase a row of %s: %w", pl.table, dbError(err))
	}
	if taken {
		return erasedKey(), nil
	}
	return h.rekey, nil
}

// erasePlace rewrites one table's rows mentioning f in one transaction
// on c (quietConn).
func (p *Postgres) erasePlace(ctx context.Context, c *pgxpool.Conn, pl pgPlace, f *Forgotten) (int64, error) {
	tx, err := c.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("erase in %s: %w", pl.table, dbError(err))
	}
	defer tx.Rollback(ctx)
	var n int64
	var oldKeys []string // re-keyed: removed from the states' recent keys below
	err = p.eachMention(ctx, tx, pl, f, true, func(h pgHit) error {
		ctid, cells, changed := h.ctid, h.cells, h.changed
		var set []string
		var args []any
		for i, c := range pl.cells {
			if !changed[i] || pl.recordings && recordingSetBelow[c.name] {
				continue // a recording's status, reason, object… are set below
			}
			args = append(args, cells[i])
			set = append(set, c.assign(len(args)))
		}
		if pl.recordings {
			args = append(args, Erased, exporter.RecordingErasedReason)
			set = append(set, fmt.Sprintf("status = $%d, reason = $%d, object = NULL, stored_size = NULL, sha256 = NULL", len(args)-1, len(args)))
			if h.rekey != "" {
				key, err := p.freeKey(ctx, tx, pl, h)
				if err != nil {
					return err
				}
				args = append(args, key)
				set = append(set, fmt.Sprintf("%s = $%d", pl.cells[pl.key].name, len(args)))
				oldKeys = append(oldKeys, cells[pl.key])
			}
		}
		args = append(args, ctid)
		_, err := tx.Exec(ctx, "UPDATE "+p.ident(pl.table)+" SET "+strings.Join(set, ", ")+fmt.Sprintf(" WHERE ctid = $%d::tid", len(args)), append([]any{extended}, args...)...)
		if err != nil {
			return fmt.Errorf("erase a row of %s: %w", pl.table, dbError(err))
		}
		n++
		return nil
	})
	if err != nil {
		return 0, err
	}
	if len(oldKeys) > 0 {
		// The recordings state's recent keys (any PBX's, any state key)
		// lose the old keys with the rows (forget_recordings.go).
		_, err := tx.Exec(ctx, "UPDATE "+p.ident("export_state")+` SET state = jsonb_set(state, '{recent}', (state->'recent') - $1::text[])
WHERE jsonb_typeof(state->'recent') = 'object' AND (state->'recent') ?| $1::text[]`, extended, oldKeys)
		if err != nil {
			return 0, fmt.Errorf("erase in %s: remove the old keys from the recordings state: %w", pl.table, dbError(err))
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("erase in %s: commit: %w", pl.table, dbError(err))
	}
	return n, nil
}

// forgetJournalKey is where PostgreSQL keeps the forget journal
// (ForgetBegun): a row of export_state belonging to no PBX, as the
// suppression list's.
const forgetJournalKey = "forget journal"

// ForgetJournal reads the schema's forget journal: the forgets begun and
// not recorded (killed midway). A schema never migrated (no export_state,
// or no schema yet) has none: nothing is open (review 10, R10-7: check
// warned that the journal could not be read).
func (p *Postgres) ForgetJournal(ctx context.Context) ([]ForgetBegun, error) {
	j, err := p.forgetJournal(ctx, p.pool, "")
	if pgErr := (*pgconn.PgError)(nil); errors.As(err, &pgErr) && (pgErr.Code == "42P01" || pgErr.Code == "3F000") {
		return nil, nil // undefined_table, invalid_schema_name
	}
	return j, err
}

// rowQueryer is a pool or a transaction, for one row.
type rowQueryer interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func (p *Postgres) forgetJournal(ctx context.Context, q rowQueryer, lock string) ([]ForgetBegun, error) {
	var b []byte
	err := q.QueryRow(ctx, "SELECT state FROM "+p.ident("export_state")+" WHERE pbx = $1 AND key = $2"+lock, suppressionPBX, forgetJournalKey).Scan(&b)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the forget journal: %w", dbError(err))
	}
	var out []ForgetBegun
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("read the forget journal (export_state, key %q): %w", forgetJournalKey, err)
	}
	return out, nil
}

// BeginForget adds b to the schema's forget journal, before forget
// changes anything, unless it holds an entry b completes already.
func (p *Postgres) BeginForget(ctx context.Context, b ForgetBegun) error {
	return p.changeForgetJournal(ctx, "write the forget journal", func(_ pgx.Tx, journal []ForgetBegun) ([]ForgetBegun, error) {
		return beginForget(journal, b), nil
	})
}

// ForgetRemoving writes in the schema's forget journal, in the entry id,
// that the erasure is removing the recording file whose tag is file
// (ForgetFileTag) from the store whose identity is store: written just
// before the file is removed.
func (p *Postgres) ForgetRemoving(ctx context.Context, id, store, file string) error {
	return p.changeForgetJournal(ctx, "write the forget journal", func(_ pgx.Tx, journal []ForgetBegun) ([]ForgetBegun, error) {
		journal = slices.Clone(journal)
		if !markRemoving(journal, id, store, file) {
			return nil, fmt.Errorf("write the forget journal: it has no entry %s, written at this forget's start: run forget again", id)
		}
		return journal, nil
	})
}

// changeForgetJournal is one change of the schema's forget journal, in
// one transaction: the journal read FOR UPDATE, change given it (and the
// transaction, for what must commit with it), the journal it returns
// written when it differs, the transaction committed. what names the
// change in the errors of the transaction itself.
func (p *Postgres) changeForgetJournal(ctx context.Context, what string, change func(pgx.Tx, []ForgetBegun) ([]ForgetBegun, error)) error {
	// The journal holds the number's tag: on a connection whose parameters
	// the server does not log (R46-3).
	c, err := p.quietConn(ctx, true)
	if err != nil {
		return err
	}
	defer c.Release()
	tx, err := c.Begin(ctx)
	if err != nil {
		return fmt.Errorf("%s: %w", what, dbError(err))
	}
	defer tx.Rollback(ctx)
	journal, err := p.forgetJournal(ctx, tx, " FOR UPDATE")
	if err != nil {
		return err
	}
	changed, err := change(tx, journal)
	if err != nil {
		return err
	}
	if !slices.EqualFunc(changed, journal, ForgetBegun.same) {
		if err := p.writeForgetJournal(ctx, tx, changed); err != nil {
			return err
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("%s: %w", what, dbError(err))
	}
	return nil
}

// writeForgetJournal replaces the journal by journal (none: its row
// deleted).
func (p *Postgres) writeForgetJournal(ctx context.Context, tx pgx.Tx, journal []ForgetBegun) error {
	var err error
	if len(journal) == 0 {
		_, err = tx.Exec(ctx, "DELETE FROM "+p.ident("export_state")+" WHERE pbx = $1 AND key = $2", suppressionPBX, forgetJournalKey)
	} else {
		b, _ := json.Marshal(journal)
		_, err = tx.Exec(ctx, "INSERT INTO "+p.ident("export_state")+` (pbx, key, state) VALUES ($1, $2, $3::jsonb)
ON CONFLICT (pbx, key) DO UPDATE SET state = EXCLUDED.state, updated_at = now()`, extended, suppressionPBX, forgetJournalKey, b)
	}
	if err != nil {
		return fmt.Errorf("write the forget journal: %w", dbError(err))
	}
	return nil
}

// RecordForget writes an erasure in the run ledger (export_runs, mode
// forget, and its counts as the endpoint "forget"), drops the forget
// journal's entries the forget b completes (SameErasure) and, when next
// is not nil (a failed erasure), keeps next for what it left, in one
// transaction. Unlike StartRun it touches nothing else: an erasure
// changes no row but the number's.
func (p *Postgres) RecordForget(ctx context.Context, r *exporter.RunResult, b ForgetBegun, next *ForgetBegun) error {
	return p.changeForgetJournal(ctx, "record the erasure", func(tx pgx.Tx, journal []ForgetBegun) ([]ForgetBegun, error) {
		if err := p.recordForgetRun(ctx, tx, r); err != nil {
			return nil, err
		}
		return endForget(journal, b, next), nil
	})
}

// recordForgetRun writes r, an erasure, in the run ledger in tx.
func (p *Postgres) recordForgetRun(ctx context.Context, tx pgx.Tx, r *exporter.RunResult) error {
	var total int64
	for _, e := range r.Endpoints {
		total += e.Rows
	}
	var msg *string
	if err := r.Err(); err != nil {
		s := err.Error()
		msg = &s
	}
	if _, err := tx.Exec(ctx, "INSERT INTO "+p.ident("export_runs")+` (run_id, mode, pbx, started_at, ended_at, status, rows, error)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, r.ID, r.Mode, r.PBX, r.Started, r.Ended, r.Status, total, msg); err != nil {
		return fmt.Errorf("record the erasure: %w", dbError(err))
	}
	for _, e := range r.Endpoints {
		var emsg *string
		if e.Err != nil {
			s := e.Err.Error()
			emsg = &s
		}
		if _, err := tx.Exec(ctx, "INSERT INTO "+p.ident("export_run_endpoints")+` (run_id, endpoint, rows, error, notes)
VALUES ($1, $2, $3, $4, $5)`, r.ID, e.Endpoint, e.Rows, emsg, e.Notes); err != nil {
			return fmt.Errorf("record the erasure: %w", dbError(err))
		}
	}
	return nil
}
