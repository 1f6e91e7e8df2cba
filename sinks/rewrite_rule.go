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
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/wildix-export/wildix-export/exporter"
	"github.com/wildix-export/wildix-export/exporter/record"
	"github.com/wildix-export/wildix-export/internal/pseudonym"
)

// Rewriting a PBX's stored rows under the pseudonymisation rule (attack
// 6, F9; README, Privacy): after a forced change from rule none (or a
// narrower rule) a backfill with --rewrite writes again every call the
// PBX still holds, but not the rows it cannot read again: the recordings'
// rows (the recordings pipe skips a recording already stored, and the
// PBX keeps its copy 7 days), a snapshot's earlier files (CSV) or its
// records the PBX no longer has (PostgreSQL keeps them, deleted_at set),
// and calls older than the PBX's own copy. RewriteUnderRule applies the
// rule to each of those rows where it is stored, the values in clear
// replaced as an export would replace them; a value replaced already (a
// pseudonym, erased) stays as it is. Each row (PostgreSQL) or file (CSV)
// it reads is then recorded as judged under the rule, changed or not
// (its run_id, its manifest's rule), so that a later rewrite under the
// same rule does not read it again against the extensions known that day
// (review 29, R29-5); only PostgreSQL's rows of a run under an earlier
// key keep that run's id (EarlierKeyRows counts them by it), and rows
// whose own rule replaced what the rewrite's does not (review 42,
// R42-1): their run is recorded as judged instead. A pseudonym made under an earlier key cannot be made again
// under the new one (its value in clear is gone): it stays, and the
// caller says so (EarlierKeys).

// RuleApplier applies the rule to rows of an endpoint read back from the
// sink (exporter/privacy Guard.Stored), written by a run under the rule
// was (the run ledger's spelling; "" when the ledger does not know the
// run): it returns them with their values replaced, one for each row
// given, in order. It replaces only what was did not (review 17, R17-1).
type RuleApplier func(ep *record.Endpoint, was string, rows []record.Row) ([]record.Row, error)

// RuleRewrite is what RewriteUnderRule rewrites: PBX's rows, by the run
// Run under the rule Rule (its spelling) and key KeyID, of each of
// Endpoints, with Apply.
type RuleRewrite struct {
	PBX, Run, Rule, KeyID string
	Endpoints             []record.Endpoint
	Apply                 RuleApplier
}

// Rewritten is what RewriteUnderRule changed: per table (PostgreSQL) or
// endpoint folder (CSV), in the order rewritten.
type Rewritten struct {
	Places []ForgetPlace
}

// Rows is the rows changed in every place.
func (r *Rewritten) Rows() int64 {
	var n int64
	for _, p := range r.Places {
		n += p.Rows
	}
	return n
}

// ruleColumns are the indexes of e's columns a rule may replace a value
// of: its text and JSON columns but its key's (a row's identity, which
// a rewrite must keep: the export writes the key under the rule too, so
// a key declared personal would be a new row, not this one).
func ruleColumns(e *record.Endpoint) []int {
	var out []int
	for i, c := range e.Columns {
		if (c.Type == record.Text || c.Type == record.JSON) && !slices.Contains(e.Key, c.Field) {
			out = append(out, i)
		}
	}
	return out
}

// applyOne applies apply to the one row r of e, written under was.
func applyOne(apply RuleApplier, e *record.Endpoint, was string, r record.Row) (record.Row, error) {
	out, err := apply(e, was, []record.Row{r})
	if err != nil {
		return record.Row{}, fmt.Errorf("apply the pseudonymisation rule to a row of %s: %w", e.Name, err)
	}
	if len(out) != 1 {
		return record.Row{}, fmt.Errorf("apply the pseudonymisation rule to a row of %s: %d rows back for 1 (a bug: please report it)", e.Name, len(out))
	}
	return out[0], nil
}

// RewriteUnderRule applies apply to every row of pbx in the table of each
// of endpoints the schema has, and to the records of its rows of
// export_quarantine (rewriteQuarantine), but those whose run the ledger
// records under rule (the current rule's spelling: their values are as
// the rule makes them, and a readable value there is one the rule keeps:
// review 17, R17-1), one transaction per table (its rows locked while it
// is rewritten), writing back only the values it changed, with
// exported_at set to now (a reader copying the rows changed since a time
// takes them again), and every row read, changed or not, given run's
// run_id (judged under run's rule: review 29, R29-5) but a row of a run
// under an earlier key (which key its pseudonyms are under:
// EarlierKeyRows) or one pgRewrite.restamp keeps. The caller holds pbx's export lock. It returns the
// rows changed per table.
func (p *Postgres) RewriteUnderRule(ctx context.Context, w RuleRewrite) (*Rewritten, error) {
	tables, err := p.tables(ctx)
	if err != nil {
		return nil, err
	}
	done := &Rewritten{}
	for i := range w.Endpoints {
		e := &w.Endpoints[i]
		if !slices.Contains(tables, e.Name) {
			continue
		}
		n, err := p.rewriteTable(ctx, w, e)
		if err != nil {
			return done, err
		}
		done.Places = append(done.Places, ForgetPlace{Name: e.Name, Rows: n})
	}
	// Not under a rule replacing names (review 25, R25-2): a quarantined
	// record is read with no column values, so a colleague's name beside
	// an extension would be taken for an external party's and replaced for
	// good (the record may be the call's only copy); README says so.
	if slices.Contains(tables, "export_quarantine") && !replacesNames(w.Rule) {
		n, err := p.rewriteQuarantine(ctx, w)
		if err != nil {
			return done, err
		}
		done.Places = append(done.Places, ForgetPlace{Name: "export_quarantine", Rows: n})
	}
	return done, nil
}

// replacesNames reports whether rule (EXPORT_PSEUDONYMIZE's spelling)
// replaces names: names, numbers,names, all.
func replacesNames(rule string) bool {
	return rule == "all" || slices.Contains(strings.Split(rule, ","), "names")
}

// rewriteQuarantine applies w's rule to the record of each of its PBX's
// rows of export_quarantine (the PBX's record, which the export's guard
// made as it makes a row's raw) whose run the ledger does not record
// under the rule, read as its endpoint's raw, in one transaction; each
// record read gets w.Run's id (judged once). Its error, PostgreSQL's
// text, is left as it is.
func (p *Postgres) rewriteQuarantine(ctx context.Context, w RuleRewrite) (int64, error) {
	const what = "rewrite export_quarantine under the pseudonymisation rule"
	pbx, rule, run, endpoints, apply := w.PBX, w.Rule, w.Run, w.Endpoints, w.Apply
	tx, err := p.pool.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", what, dbError(err))
	}
	defer tx.Rollback(ctx)
	rows, err := tx.Query(ctx, "SELECT q.ctid::text, q.endpoint, q.record, coalesce(r.privacy_rule, '') FROM "+p.ident("export_quarantine")+" q LEFT JOIN "+
		p.ident("export_runs")+" r ON r.run_id = q.run_id WHERE q.pbx = $1 AND coalesce(r.privacy_rule, '') <> $2 FOR UPDATE OF q", pbx, rule)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", what, dbError(err))
	}
	type held struct{ ctid, endpoint, record, was string }
	var read []held
	var h held
	if _, err := pgx.ForEachRow(rows, []any{&h.ctid, &h.endpoint, &h.record, &h.was}, func() error { read = append(read, h); return nil }); err != nil {
		return 0, fmt.Errorf("%s: %w", what, dbError(err))
	}
	var n int64
	for _, h := range read {
		i := slices.IndexFunc(endpoints, func(e record.Endpoint) bool { return e.Name == h.endpoint })
		if i < 0 {
			continue // an endpoint the catalog no longer has: its rule is not known
		}
		e := &endpoints[i]
		in := record.Row{Values: make([]any, len(e.Columns)), Raw: json.RawMessage(h.record)}
		out, err := applyOne(apply, e, h.was, in)
		if err != nil {
			return 0, err
		}
		// Changed or not, the record gets run's id (review 29, R29-5):
		// judged once, never read again by a rewrite under rule.
		v, ok := changedText(in.Raw, out.Raw)
		if !ok {
			v = h.record
		}
		if _, err := tx.Exec(ctx, "UPDATE "+p.ident("export_quarantine")+" SET record = $1, run_id = $2 WHERE ctid = $3::tid", v, run, h.ctid); err != nil {
			return 0, fmt.Errorf("%s: %w", what, dbError(err))
		}
		if ok {
			n++
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("%s: commit: %w", what, dbError(err))
	}
	return n, nil
}

// rewriteChunk is how many rows rewriteTable reads at a time.
const rewriteChunk = 500

// rewriteTable is RewriteUnderRule of one table, in one transaction: the
// rows of pbx not written under rule are locked and listed by ctid
// first, then read, rewritten and written back a chunk at a time (a row
// updated gets a new ctid, never one of the list: the listed rows stay
// live until the commit).
func (p *Postgres) rewriteTable(ctx context.Context, w RuleRewrite, e *record.Endpoint) (int64, error) {
	tx, err := p.pool.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("rewrite %s under the pseudonymisation rule: %w", e.Name, dbError(err))
	}
	defer tx.Rollback(ctx)
	judged, err := p.judgedRuns(ctx, tx, w.PBX, e.Name)
	if err != nil {
		return 0, err
	}
	rows, err := tx.Query(ctx, "SELECT t.ctid::text FROM "+p.ident(e.Name)+" t WHERE t.pbx = $1 AND NOT EXISTS (SELECT 1 FROM "+p.ident("export_runs")+
		" r WHERE r.run_id = t.run_id AND r.privacy_rule = $2) AND coalesce(t.run_id, '') <> ALL(coalesce($3::text[], '{}')) FOR UPDATE OF t", w.PBX, w.Rule, judged.Rules[w.Rule])
	if err != nil {
		return 0, fmt.Errorf("rewrite %s under the pseudonymisation rule: %w", e.Name, dbError(err))
	}
	ctids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return 0, fmt.Errorf("rewrite %s under the pseudonymisation rule: %w", e.Name, dbError(err))
	}
	rw := pgRewrite{p: p, tx: tx, e: e, cols: ruleColumns(e), run: w.Run, key: w.KeyID, rule: w.Rule, apply: w.Apply, kept: map[string]bool{}, judged: judged}
	var n int64
	for len(ctids) > 0 {
		chunk := ctids[:min(rewriteChunk, len(ctids))]
		ctids = ctids[len(chunk):]
		m, err := rw.chunk(ctx, chunk)
		if err != nil {
			return 0, err
		}
		n += m
	}
	if err := p.markJudged(ctx, tx, w, e.Name, judged, rw.kept); err != nil {
		return 0, err
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("rewrite %s under the pseudonymisation rule: commit: %w", e.Name, dbError(err))
	}
	return n, nil
}

// judgedKeyPrefix, then a table's name, is PostgreSQL's export_state key
// of the runs under an earlier key whose rows of that table a rewrite
// judged, by rule (review 35, R35-1): such rows keep their run_id, which
// EarlierKeyRows counts by, so the run_id cannot say they were judged. A
// space keeps the key apart from every endpoint's and window's key.
const judgedKeyPrefix = "pseudonymisation rewrite judged "

// judgedRuns is the record of table's runs whose rows a rewrite judged
// and left their run_id (under an earlier key, or under the same key
// when the rewrite's rule alone does not tell their values: keptRow), by
// rule: for each rule, the runs whose rows a rewrite under it read
// whole. A run's rows never gain members later (a later write gives its
// own run_id), so a run judged is judged for good. It is read FOR UPDATE
// in tx, which writes it back (markJudged).
type judgedRuns struct {
	Rules map[string][]string `json:"rules"`
}

// under is the rule run's rows are under: the union of was (the rule of
// their run in the ledger) and every rule a rewrite judged them under. A
// rewrite keeps what the row's own rule replaced (a pseudonym stays) and
// adds what its rule covers, so the values are under both, not under the
// last rewrite's rule alone (review 42, R42-1; a record of an earlier
// release's "last" is a rule Rules lists too).
func (j judgedRuns) under(run, was string) string {
	rules := []string{was}
	for rule, runs := range j.Rules {
		if slices.Contains(runs, run) {
			rules = append(rules, rule)
		}
	}
	return ruleUnion(rules...)
}

// ruleUnion is the rule replacing what any of rules (the ledger's
// spelling) replaces, in its one spelling; a rule not known ("", or not
// a rule) adds nothing, and "" is the union of none known.
func ruleUnion(rules ...string) string {
	var u pseudonym.Rule
	known := false
	for _, s := range rules {
		r, err := pseudonym.ParseRule(s)
		if s == "" || err != nil {
			continue
		}
		known = true
		u.Numbers, u.Names, u.Staff = u.Numbers || r.Numbers, u.Names || r.Names, u.Staff || r.Staff
	}
	if !known {
		return ""
	}
	return u.String()
}

// judgedRuns reads table's record (empty when none) in tx, locking it.
func (p *Postgres) judgedRuns(ctx context.Context, tx pgx.Tx, pbx, table string) (judgedRuns, error) {
	j := judgedRuns{Rules: map[string][]string{}}
	var b []byte
	err := tx.QueryRow(ctx, "SELECT state FROM "+p.ident("export_state")+" WHERE pbx = $1 AND key = $2 FOR UPDATE", pbx, judgedKeyPrefix+table).Scan(&b)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return j, nil
	case err != nil:
		return j, fmt.Errorf("read the runs of %s judged under the pseudonymisation rule: %w", table, dbError(err))
	}
	if err := json.Unmarshal(b, &j); err != nil || j.Rules == nil {
		// Damaged: judging again is what a rewrite did before the record
		// existed; the record written back replaces it.
		p.log.Warn("the record of the runs judged under the pseudonymisation rule is damaged: their rows are read again", "table", table, "key", judgedKeyPrefix+table)
		return judgedRuns{Rules: map[string][]string{}}, nil
	}
	return j, nil
}

// markJudged adds the runs whose rows of table this rewrite read and
// left their run_id (kept) to j under w's rule and writes j back in tx,
// the transaction that rewrote them. Six parameters: the mark must be
// written in that transaction (tx), for that table and rule (w, table),
// from the record read under its lock (j) and the runs the rewrite read
// (kept); none of them has another home.
func (p *Postgres) markJudged(ctx context.Context, tx pgx.Tx, w RuleRewrite, table string, j judgedRuns, kept map[string]bool) error {
	if len(kept) == 0 {
		return nil
	}
	runs := j.Rules[w.Rule]
	for run := range kept {
		if !slices.Contains(runs, run) {
			runs = append(runs, run)
		}
	}
	slices.Sort(runs)
	j.Rules[w.Rule] = runs
	b, _ := json.Marshal(j)
	if _, err := tx.Exec(ctx, p.upsertState(), w.PBX, judgedKeyPrefix+table, b, w.Run); err != nil {
		return fmt.Errorf("record the runs of %s judged under the pseudonymisation rule: %w", table, dbError(err))
	}
	return nil
}

// pgRuleRow is a row rewriteChunk read: its ctid, and its values as the
// rule reads them (pgRuleRow.row), text for text and JSON alike.
type pgRuleRow struct {
	ctid, was  string    // was: the rule of the row's run in the ledger ("": unknown)
	runID      string    // the row's run_id ("": none)
	wasKey     string    // the key id of the row's run ("": none, or unknown)
	vals       []*string // the values of the rule's columns (ruleColumns), in order
	extra, raw *string
}

// row is r as the rule reads it: cols' values typed as the export gives
// them (text a string, JSON a json.RawMessage; NULL nil), extra and raw.
func (r *pgRuleRow) row(e *record.Endpoint, cols []int) record.Row {
	row := record.Row{Values: make([]any, len(e.Columns))}
	for k, i := range cols {
		if v := r.vals[k]; v != nil {
			if e.Columns[i].Type == record.JSON {
				row.Values[i] = json.RawMessage(*v)
			} else {
				row.Values[i] = *v
			}
		}
	}
	if r.extra != nil {
		row.Extra = json.RawMessage(*r.extra)
	}
	if r.raw != nil {
		row.Raw = json.RawMessage(*r.raw)
	}
	return row
}

// pgRewrite is rewriteTable's rewrite of one table: in the transaction
// tx, the rows of e, their columns the rule reads (ruleColumns), the run
// setting their run_id, and the rule.
type pgRewrite struct {
	p     *Postgres
	tx    pgx.Tx
	e     *record.Endpoint
	cols  []int
	run   string
	key   string // the current key's id
	apply RuleApplier
	rule  string // the rewrite's rule
	// kept: the runs whose rows were read and keep their run_id (judged:
	// markJudged records them).
	kept map[string]bool
	// judged: the table's record of such runs, read under its lock; a
	// row of one is read as written under the union of its run's rule
	// and every rule it was judged under (judgedRuns.under).
	judged judgedRuns
}

// restamp reports whether the row r, under the rule was (judgedRuns.under),
// gets w.run once judged, its values then read as under w's rule alone.
// Not a row of a run under another key: it may still hold that key's
// pseudonyms, which EarlierKeyRows counts by its run_id (review 17,
// R17-2). Nor a row whose was replaces what w's rule does not (a row
// under numbers judged under names): after the rewrite it is under both,
// which w.run's rule in the ledger would not say (review 42, R42-1).
// Such rows keep their run_id and markJudged records the run as judged.
func (w *pgRewrite) restamp(r pgRuleRow, was string) bool {
	return (r.wasKey == "" || r.wasKey == w.key) && ruleUnion(was, w.rule) == ruleUnion(w.rule)
}

// chunk reads the rows of ctids, applies the rule and updates those it
// changed, and gives w.run to those it left as they were (judged), but
// rows of a run under an earlier key; it returns how many it changed.
func (w *pgRewrite) chunk(ctx context.Context, ctids []string) (int64, error) {
	p, tx, e, cols := w.p, w.tx, w.e, w.cols
	read, err := w.read(ctx, ctids)
	if err != nil {
		return 0, err
	}
	var n int64
	var judged []string // rows left as they were, given w.run (restamp)
	for _, r := range read {
		was := w.judged.under(r.runID, r.was)
		restamp := w.restamp(r, was)
		in := r.row(e, cols)
		out, err := applyOne(w.apply, e, was, in)
		if err != nil {
			return 0, err
		}
		if !restamp {
			w.kept[r.runID] = true
		}
		set, args := ruleSet(e, cols, in, out)
		if len(set) == 0 {
			if restamp {
				judged = append(judged, r.ctid)
			}
			continue
		}
		if restamp {
			args = append(args, w.run)
			set = append(set, fmt.Sprintf("run_id = $%d", len(args)))
		}
		args = append(args, r.ctid)
		set = append(set, "exported_at = now()")
		if _, err := tx.Exec(ctx, "UPDATE "+p.ident(e.Name)+" SET "+strings.Join(set, ", ")+fmt.Sprintf(" WHERE ctid = $%d::tid", len(args)), args...); err != nil {
			return 0, fmt.Errorf("rewrite a row of %s under the pseudonymisation rule: %w", e.Name, dbError(err))
		}
		n++
	}
	if len(judged) > 0 {
		// Judged once (review 29, R29-5): a row the rule left as it was
		// gets w.run too, in this transaction, so that no later rewrite
		// reads it again against the extensions known that day (a long
		// extension judged internal here, of a colleague removed since,
		// would be replaced for good). Its values and exported_at stay.
		if _, err := tx.Exec(ctx, "UPDATE "+p.ident(e.Name)+" SET run_id = $1 WHERE ctid = ANY($2::tid[])", w.run, judged); err != nil {
			return 0, fmt.Errorf("record the rows of %s judged under the pseudonymisation rule: %w", e.Name, dbError(err))
		}
	}
	return n, nil
}

// ruleSet is the SET list and its arguments of the values out changed
// from in.
func ruleSet(e *record.Endpoint, cols []int, in, out record.Row) ([]string, []any) {
	var set []string
	var args []any
	assign := func(col string, jsonb bool, v string) {
		args = append(args, v)
		cast := ""
		if jsonb {
			cast = "::jsonb"
		}
		set = append(set, fmt.Sprintf("%s = $%d%s", pgx.Identifier{col}.Sanitize(), len(args), cast))
	}
	for _, i := range cols {
		if v, ok := changedText(in.Values[i], out.Values[i]); ok {
			assign(e.Columns[i].Name, e.Columns[i].Type == record.JSON, v)
		}
	}
	if v, ok := changedText(in.Extra, out.Extra); ok {
		assign("extra", true, v)
	}
	if v, ok := changedText(in.Raw, out.Raw); ok {
		assign("raw", true, v)
	}
	return set, args
}

// read reads the rows of ctids.
func (w *pgRewrite) read(ctx context.Context, ctids []string) ([]pgRuleRow, error) {
	p, tx, e, cols := w.p, w.tx, w.e, w.cols
	sel := []string{"t.ctid::text", "coalesce(t.run_id, '')", "coalesce(r.privacy_rule, '')", "coalesce(r.privacy_key_id, '')"}
	for _, i := range cols {
		sel = append(sel, "t."+pgx.Identifier{e.Columns[i].Name}.Sanitize()+"::text")
	}
	sel = append(sel, "t.extra::text", "t.raw::text")
	rows, err := tx.Query(ctx, "SELECT "+strings.Join(sel, ", ")+" FROM "+p.ident(e.Name)+" t LEFT JOIN "+p.ident("export_runs")+" r ON r.run_id = t.run_id WHERE t.ctid = ANY($1::tid[])", ctids)
	if err != nil {
		return nil, fmt.Errorf("rewrite %s under the pseudonymisation rule: %w", e.Name, dbError(err))
	}
	var read []pgRuleRow
	for rows.Next() {
		r := pgRuleRow{vals: make([]*string, len(cols))}
		dest := []any{&r.ctid, &r.runID, &r.was, &r.wasKey}
		for k := range r.vals {
			dest = append(dest, &r.vals[k])
		}
		if err := rows.Scan(append(dest, &r.extra, &r.raw)...); err != nil {
			rows.Close()
			return nil, fmt.Errorf("rewrite %s under the pseudonymisation rule: %w", e.Name, dbError(err))
		}
		read = append(read, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("rewrite %s under the pseudonymisation rule: %w", e.Name, dbError(err))
	}
	return read, nil
}

// changedText is after as text and whether it differs from before: a
// string, or a JSON text (compared compacted: PostgreSQL's jsonb text has
// spaces the rule's output may not). A value the rule left nil, or of
// another type, is unchanged.
func changedText(before, after any) (string, bool) {
	switch a := after.(type) {
	case string:
		b, _ := before.(string)
		return a, a != b
	case json.RawMessage:
		if a == nil {
			return "", false
		}
		b, _ := before.(json.RawMessage)
		return string(a), compactJSON(a) != compactJSON(b)
	}
	return "", false
}

// compactJSON is b without insignificant spaces (b itself when not JSON).
func compactJSON(b []byte) string {
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return string(b)
	}
	return buf.String()
}

// RewriteUnderRule is Postgres.RewriteUnderRule for the folder: every
// data file of pbx of each of endpoints (every run's snapshot files,
// incremental batches and backfill windows alike) but those written by a
// run under rule (fileRule) is read, and each file
// the rule changes is rewritten atomically with its manifest (EditRows,
// reason "pseudonymise"), which keeps the run that wrote the file; the
// run under rule calling it (w.Run, whose ledger line is not written yet)
// is stamped as the rule's (csv_rule.go, R20-1). It returns the rows
// changed per endpoint.
func (s *CSV) RewriteUnderRule(ctx context.Context, w RuleRewrite) (*Rewritten, error) {
	pbx, rule, apply := w.PBX, w.Rule, w.Apply
	runs, err := s.runRules(pbx)
	if err != nil {
		return nil, err
	}
	runs[w.Run] = rule
	done := &Rewritten{}
	for i := range w.Endpoints {
		e := &w.Endpoints[i]
		dir := filepath.Join(s.opt.Dir, e.Name)
		var was string // the rule of the file being edited
		under := s.ruleStamp(w.Run)
		pick := func(f ownFile) bool {
			var updated int64
			var whole bool
			was, updated, whole = fileRule(filepath.Join(dir, f.Name), runs)
			if was == rule {
				return false
			}
			if under != nil {
				// editFiles edits the file picked before it picks the
				// next: its manifest gets the union of was and rule, but
				// only while every row is provably under was (whole);
				// rows a run updated in place since are under that
				// run's rule, not was (review 47, R47-1), so the file
				// is then under rule alone: read narrower, a later
				// rewrite replaces more, never less.
				u := rule
				if whole {
					u = ruleUnion(was, rule)
				}
				under[writtenUnderField] = writtenUnder{Rule: u, RowsUpdated: updated}
			}
			return true
		}
		res, err := s.editFiles(ctx, csvEdit{pbx: pbx, ep: e, reason: "pseudonymise", pick: pick, edit: s.ruleEdit(e, &was, apply), under: under})
		if err != nil {
			return done, fmt.Errorf("rewrite %s under the pseudonymisation rule: %w", e.Name, err)
		}
		if res.Files > 0 {
			done.Places = append(done.Places, ForgetPlace{Name: e.Name, Rows: res.Replaced})
		}
	}
	return done, nil
}

// writtenUnderField is the manifest field of the rule a rewrite left a
// data file's rows under (review 42, R42-1): the union of the rule the
// rewrite read the file as written under and the rewrite's own, which
// "privacy" (the rewrite run's rule and key, csv_rule.go ruleStamp)
// does not say. A rewrite keeps what a row's own rule replaced, so a
// file of a run under numbers rewritten under names holds numbers,names'
// values; read as names alone, its numbers in clear (extensions then)
// would be judged again against the extensions known that day.
const writtenUnderField = "privacy_written_under"

// writtenUnder is writtenUnderField's value: the rule, and the file's
// rows_updated then. A run updating rows in place (csv_keys.go) adds to
// rows_updated, its rows under its own rule only: the field holds only
// while rows_updated is 0 (review 47, R47-1), else fileRule reads the
// file's rule alone.
type writtenUnder struct {
	Rule        string `json:"rule"`
	RowsUpdated int64  `json:"rows_updated"`
}

// fileRule is the rule the rows of the data file data are under: the
// rule of the run that wrote it as its manifest says (its "privacy",
// kept by edits), or for a manifest of an earlier release without it,
// as the ledger (runs) records its run, joined by the rule a rewrite
// left them under (writtenUnderField) while no row was ever updated in
// place; "" when none tells. It returns the manifest's rows_updated too,
// and whole: no row was ever updated in place, so every row is provably
// under the rule. A file some run updated in place holds rows under that
// run's rule, which the manifest does not say (review 47, R47-1): its
// rule is no ground for a union, and a union stamped while rows had been
// updated (by a release before this check, with numbers in clear under
// it) is not read. One update thus cancels the union for the whole file
// (R47-2): read narrower, a rewrite replaces more, never less.
func fileRule(data string, runs map[string]string) (string, int64, bool) {
	var m struct {
		Run     string            `json:"run_id"`
		Privacy *exporter.Privacy `json:"privacy"`
		Under   *writtenUnder     `json:"privacy_written_under"` // writtenUnderField
		Updated int64             `json:"rows_updated"`
	}
	b, err := os.ReadFile(manifestPath(data))
	if err != nil || json.Unmarshal(b, &m) != nil {
		return "", 0, false
	}
	rule := runs[m.Run]
	if m.Privacy != nil && m.Privacy.Rule != "" {
		rule = m.Privacy.Rule
	}
	whole := m.Updated == 0
	if whole && m.Under != nil && m.Under.RowsUpdated == 0 {
		rule = ruleUnion(rule, m.Under.Rule)
	}
	return rule, m.Updated, whole
}

// runRules is the rule of each run of pbx the ledger (runs.jsonl)
// records one of.
func (s *CSV) runRules(pbx string) (map[string]string, error) {
	out := map[string]string{}
	b, err := os.ReadFile(filepath.Join(s.stateDir(pbx), "runs.jsonl"))
	if errors.Is(err, fs.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the run ledger's pseudonymisation rules: %w", err)
	}
	for _, l := range bytes.Split(b, []byte{'\n'}) {
		var run struct {
			ID      string            `json:"run_id"`
			Privacy *exporter.Privacy `json:"privacy"`
		}
		if json.Unmarshal(l, &run) == nil && run.Privacy != nil {
			out[run.ID] = run.Privacy.Rule
		}
	}
	return out, nil
}

// ruleEdit is RewriteUnderRule's edit of e's rows, of a file written
// under the rule *was: a row's text and JSON
// cells and its extra read as the export gave them (a text cell without
// the quote EXPORT_CSV_SAFE_FORMULAS adds), the rule applied, and the
// cells it changed written back as the sink writes them.
func (s *CSV) ruleEdit(e *record.Endpoint, was *string, apply RuleApplier) EditFunc {
	var header []string
	var at map[int]int // a column of the rule (ruleColumns) → its cell
	extra := -1
	return func(h, cells []string) (RowEdit, error) {
		if at == nil || !slices.Equal(h, header) {
			header, at, extra = slices.Clone(h), map[int]int{}, slices.Index(h, "extra")
			for _, i := range ruleColumns(e) {
				if j := slices.Index(h, e.Columns[i].Name); j >= 0 {
					at[i] = j
				}
			}
		}
		in := record.Row{Values: make([]any, len(e.Columns))}
		for i, j := range at {
			switch c := cells[j]; {
			case c == "":
			case e.Columns[i].Type == record.JSON:
				in.Values[i] = json.RawMessage(c)
			default:
				in.Values[i] = s.unquoteCell(c)
			}
		}
		if extra >= 0 && cells[extra] != "" {
			in.Extra = json.RawMessage(cells[extra])
		}
		out, err := applyOne(apply, e, *was, in)
		if err != nil {
			return RowEdit{}, err
		}
		var edit RowEdit
		change := func(j int, t record.Type, v any) {
			if c := s.cell(t, v); c != cells[j] {
				if edit.Cells == nil {
					edit.Cells = slices.Clone(cells)
				}
				edit.Cells[j] = c
			}
		}
		for i, j := range at {
			if _, ok := changedText(in.Values[i], out.Values[i]); ok {
				change(j, e.Columns[i].Type, out.Values[i])
			}
		}
		if _, ok := changedText(in.Extra, out.Extra); ok && extra >= 0 {
			change(extra, record.JSON, out.Extra)
		}
		return edit, nil
	}
}

// RewriteDue is a rewrite under the rule a backfill given --rewrite
// asked for and has not completed (review 28, R28-2): set when that
// backfill starts, before its windows, and cleared only once a rewrite
// completes, so that a backfill resumed without --rewrite completes it
// instead of leaving rows in clear and reporting ok.
type RewriteDue struct {
	Run   string    `json:"run_id"`           // the backfill that asked for it
	Rule  string    `json:"rule"`             // the rule then (its spelling)
	KeyID string    `json:"key_id,omitempty"` // the key's id then
	Asked time.Time `json:"asked"`
}

// rewriteDueKey is PostgreSQL's export_state key of the record: a space
// keeps it apart from every endpoint's and backfill window's key.
const rewriteDueKey = "pseudonymisation rewrite due"

// rewriteDueFile is the CSV sink's file of the record, in the PBX's
// state folder, named as rewrite_state.go says (attack 9, F5);
// rewriteDueDotFile is its name before: read, and removed with it.
const (
	rewriteDueFile    = "rewrite~due.json"
	rewriteDueDotFile = ".rewrite-due.json"
)

// ErrRewriteDueDamaged is RewriteDue's error for a record it cannot
// read: a rewrite was asked for, but which is not known. A backfill with
// --rewrite stores its own record over it (review 35, R35-3).
var ErrRewriteDueDamaged = errors.New("the record of a rewrite in place under the pseudonymisation rule due is damaged")

// decodeDue reads the record stored at where. Its error never quotes the
// record (a torn file could hold anything) and gives no advice: the
// caller says what to do, once.
func decodeDue(b []byte, where string) (*RewriteDue, error) {
	var d RewriteDue
	if err := json.Unmarshal(b, &d); err != nil || d.Run == "" {
		return nil, fmt.Errorf("%w (%s, %d bytes, not shown)", ErrRewriteDueDamaged, where, len(b))
	}
	return &d, nil
}

// RewriteDue returns pbx's rewrite due, nil when none is.
func (p *Postgres) RewriteDue(ctx context.Context, pbx string) (*RewriteDue, error) {
	b, err := p.State(ctx, pbx, rewriteDueKey)
	if err != nil {
		return nil, fmt.Errorf("read the rewrite under the pseudonymisation rule due: %w", err)
	}
	if b == nil {
		return nil, nil
	}
	return decodeDue(b, fmt.Sprintf("export_state (pbx %q, key %q)", pbx, rewriteDueKey))
}

// SetRewriteDue stores d as pbx's rewrite due (nil: clears it).
func (p *Postgres) SetRewriteDue(ctx context.Context, pbx string, d *RewriteDue) error {
	if d == nil {
		if err := p.setStateValue(ctx, pbx, rewriteDueKey, nil, ""); err != nil {
			return fmt.Errorf("clear the rewrite under the pseudonymisation rule due: %w", err)
		}
		return nil
	}
	b, _ := json.Marshal(d)
	if err := p.setStateValue(ctx, pbx, rewriteDueKey, b, d.Run); err != nil {
		return fmt.Errorf("store the rewrite under the pseudonymisation rule due: %w", err)
	}
	return nil
}

// RewriteDue returns pbx's rewrite due, nil when none is: its record,
// else the record an earlier release stored under the dot name.
func (s *CSV) RewriteDue(_ context.Context, pbx string) (*RewriteDue, error) {
	b, path, err := readRecord(s.stateDir(pbx), rewriteDueFile, rewriteDueDotFile)
	switch {
	case err != nil:
		return nil, fmt.Errorf("read the rewrite under the pseudonymisation rule due: %w", s.advise(err))
	case b == nil:
		return nil, nil
	}
	return decodeDue(b, path)
}

// SetRewriteDue stores d as pbx's rewrite due (nil: clears it), durably
// (safefile); the record under the earlier dot name goes either way,
// after the new one is stored.
func (s *CSV) SetRewriteDue(_ context.Context, pbx string, d *RewriteDue) error {
	what := "clear the rewrite under the pseudonymisation rule due"
	var b []byte
	if d != nil {
		what = "store the rewrite under the pseudonymisation rule due"
		if _, err := s.mkStateDir(pbx); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		b, _ = json.Marshal(d)
	}
	if err := writeRecord(s.stateDir(pbx), b, rewriteDueFile, rewriteDueDotFile); err != nil {
		return fmt.Errorf("%s: %w", what, s.advise(err))
	}
	return nil
}
