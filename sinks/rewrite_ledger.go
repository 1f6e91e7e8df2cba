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
	"regexp"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/wildix-export/wildix-export/internal/safefile"
)

// Rewriting the run ledger's texts under the pseudonymisation rule
// (attack 8, F3): a run under rule none (or a narrower rule) quotes in its
// notes and errors what the PBX sent, a value a converter could not
// store (`field "duration": "call +39 333 … Mario …" is not a whole
// number`), a number, the PBX's own error text; a run under the rule
// writes them through the run's redactor (exporter.Exporter.Redact,
// privacy.Redactor.Text). RewriteLedgerUnderRule gives the texts of the
// earlier runs what a run under the current rule would have written: the
// ledger is diagnostics, so a quoted value left out whole (its length
// said) is what the rule's own runs write too. A text already under the
// rule is left as it is (the redactor changes nothing in it), so a second
// rewrite changes nothing.

// LedgerRedactor is the text replacement of the current rule (the run's
// redactor: privacy.Redactor.Text).
type LedgerRedactor func(string) string

// redactNotes is notes with redact applied to each, and whether any
// changed.
func redactNotes(notes []string, redact LedgerRedactor) ([]string, bool) {
	var out []string
	for i, n := range notes {
		if r := redact(n); r != n {
			if out == nil {
				out = slices.Clone(notes)
			}
			out[i] = r
		}
	}
	return out, out != nil
}

// RewriteLedgerUnderRule applies redact to the errors and notes of the
// run ledger's runs of pbx but those recorded under rule and run (the run
// calling it), in one transaction (the rows locked): export_runs.error,
// export_run_endpoints.error and .notes. The caller holds pbx's export
// lock. It returns the rows changed per table.
func (p *Postgres) RewriteLedgerUnderRule(ctx context.Context, pbx, run, rule string, redact LedgerRedactor) ([]ForgetPlace, error) {
	const what = "rewrite the run ledger's notes and errors under the pseudonymisation rule"
	tx, err := p.pool.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, dbError(err))
	}
	defer tx.Rollback(ctx)
	runs, err := p.rewriteRunErrors(ctx, tx, pbx, run, rule, redact)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	eps, err := p.rewriteRunEndpoints(ctx, tx, pbx, run, rule, redact)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("%s: commit: %w", what, dbError(err))
	}
	return []ForgetPlace{{Name: "export_runs", Rows: runs}, {Name: "export_run_endpoints", Rows: eps}}, nil
}

// ledgerRuns is the condition on export_runs r of the runs
// RewriteLedgerUnderRule rewrites: of pbx ($1), not under rule ($2)
// (an unknown rule is not it), not run ($3).
const ledgerRuns = "r.pbx = $1 AND coalesce(r.privacy_rule, '') <> $2 AND r.run_id <> $3"

// rewriteRunErrors is RewriteLedgerUnderRule of export_runs.error. Six
// parameters on purpose: the transaction and RewriteLedgerUnderRule's own
// (pbx, run, rule, redact), passed on as they are.
func (p *Postgres) rewriteRunErrors(ctx context.Context, tx pgx.Tx, pbx, run, rule string, redact LedgerRedactor) (int64, error) {
	rows, err := tx.Query(ctx, "SELECT r.run_id, r.error FROM "+p.ident("export_runs")+" r WHERE "+ledgerRuns+" AND r.error IS NOT NULL FOR UPDATE OF r", pbx, rule, run)
	if err != nil {
		return 0, dbError(err)
	}
	type held struct{ id, msg string }
	var read []held
	var h held
	if _, err := pgx.ForEachRow(rows, []any{&h.id, &h.msg}, func() error { read = append(read, h); return nil }); err != nil {
		return 0, dbError(err)
	}
	var n int64
	for _, h := range read {
		msg := redact(h.msg)
		if msg == h.msg {
			continue
		}
		if _, err := tx.Exec(ctx, "UPDATE "+p.ident("export_runs")+" SET error = $1 WHERE run_id = $2", msg, h.id); err != nil {
			return 0, dbError(err)
		}
		n++
	}
	return n, nil
}

// rewriteRunEndpoints is RewriteLedgerUnderRule of export_run_endpoints'
// error and notes. Six parameters on purpose, as rewriteRunErrors.
func (p *Postgres) rewriteRunEndpoints(ctx context.Context, tx pgx.Tx, pbx, run, rule string, redact LedgerRedactor) (int64, error) {
	rows, err := tx.Query(ctx, "SELECT e.run_id, e.endpoint, e.error, e.notes FROM "+p.ident("export_run_endpoints")+" e JOIN "+p.ident("export_runs")+
		" r ON r.run_id = e.run_id WHERE "+ledgerRuns+" AND (e.error IS NOT NULL OR e.notes IS NOT NULL) FOR UPDATE OF e", pbx, rule, run)
	if err != nil {
		return 0, dbError(err)
	}
	type held struct {
		id, endpoint string
		msg          *string
		notes        []string
	}
	var read []held
	var h held
	if _, err := pgx.ForEachRow(rows, []any{&h.id, &h.endpoint, &h.msg, &h.notes}, func() error { read = append(read, h); return nil }); err != nil {
		return 0, dbError(err)
	}
	var n int64
	for _, h := range read {
		msg, notes := h.msg, h.notes
		changed := false
		if msg != nil {
			if r := redact(*msg); r != *msg {
				msg, changed = &r, true
			}
		}
		if out, ok := redactNotes(h.notes, redact); ok {
			notes, changed = out, true
		}
		if !changed {
			continue
		}
		if _, err := tx.Exec(ctx, "UPDATE "+p.ident("export_run_endpoints")+" SET error = $1, notes = $2 WHERE run_id = $3 AND endpoint = $4",
			msg, notes, h.id, h.endpoint); err != nil {
			return 0, dbError(err)
		}
		n++
	}
	return n, nil
}

// RewriteLedgerUnderRule is Postgres.RewriteLedgerUnderRule for the
// folder: the lines of pbx's runs.jsonl whose run is not recorded under
// rule (the run calling it is not written yet) get redact applied to
// their endpoints' errors and notes; the file is rewritten atomically
// when a line changed, a changed line written again from its fields
// (the others byte for byte). It returns the lines changed.
func (s *CSV) RewriteLedgerUnderRule(_ context.Context, pbx, _, rule string, redact LedgerRedactor) ([]ForgetPlace, error) {
	const what = "rewrite the run ledger's notes and errors under the pseudonymisation rule"
	path := filepath.Join(s.stateDir(pbx), "runs.jsonl")
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, s.advise(err))
	}
	lines := bytes.Split(b, []byte{'\n'})
	var n int64
	for i, l := range lines {
		out, changed, err := redactLedgerLine(l, rule, redact)
		if err != nil {
			return nil, fmt.Errorf("%s: %s line %d: %w", what, path, i+1, err)
		}
		if changed {
			lines[i] = out
			n++
		}
	}
	if n == 0 {
		return []ForgetPlace{{Name: "runs.jsonl", Rows: 0}}, nil
	}
	out := bytes.Join(lines, []byte{'\n'})
	if len(out) > 0 && out[len(out)-1] != '\n' {
		// A torn last line replaced: the next record starts a line of
		// its own (review 33, R33-1).
		out = append(out, '\n')
	}
	if err := safefile.Write(path, out, fileMode); err != nil {
		return nil, fmt.Errorf("%s: %w", what, s.advise(err))
	}
	return []ForgetPlace{{Name: "runs.jsonl", Rows: n}}, nil
}

// redactLedgerLine is the ledger line l with redact applied to its
// endpoints' errors and notes, unless its run is recorded under rule,
// and whether it changed. An empty line is left. A line that is not a
// JSON object (a write cut short, the next run's record appended to it),
// which every reader of the ledger passes over, is replaced (tornLine):
// it may quote what a run in clear wrote, and failing on it failed every
// backfill under a rule for good (review 26, R26-1).
func redactLedgerLine(l []byte, rule string, redact LedgerRedactor) ([]byte, bool, error) {
	if len(bytes.TrimSpace(l)) == 0 || bytes.HasPrefix(l, []byte(tornRedacted)) {
		return l, false, nil
	}
	var line map[string]json.RawMessage
	if err := json.Unmarshal(l, &line); err != nil {
		return tornLine(l, rule, redact)
	}
	var priv struct {
		Rule string `json:"rule"`
	}
	if raw, ok := line["privacy"]; ok && json.Unmarshal(raw, &priv) == nil && priv.Rule == rule {
		return l, false, nil
	}
	var eps []map[string]json.RawMessage
	if raw, ok := line["endpoints"]; !ok || json.Unmarshal(raw, &eps) != nil {
		return l, false, nil // no endpoints (a line of no run's results): nothing quoted
	}
	changed := false
	for _, e := range eps {
		for _, f := range []string{"error", "notes"} {
			raw, ok := e[f]
			if !ok {
				continue
			}
			out, c, err := redactJSONText(raw, redact)
			if err != nil {
				return nil, false, fmt.Errorf("endpoint's %s: %w", f, err)
			}
			if c {
				e[f], changed = out, true
			}
		}
	}
	if !changed {
		return l, false, nil
	}
	var err error
	if line["endpoints"], err = json.Marshal(eps); err != nil {
		return nil, false, err
	}
	out, err := json.Marshal(line)
	return out, err == nil, err
}

// tornRedacted starts the line that replaces a torn line of the run
// ledger (tornLine): not a JSON object, so that every reader of the
// ledger passes over it as it passed over the torn line, and a later
// rewrite leaves it.
const tornRedacted = "torn run ledger line, its text replaced whole under the pseudonymisation rule"

// tornRunID is a run id read exactly at the start of a torn line (the
// ledger writes run_id first): a closing quote, no escape; newRunID is
// the form exporter.NewRunID gives it.
var (
	tornRunID = regexp.MustCompile(`^\{"run_id":"([A-Za-z0-9_-]{1,40})"[,}]`)
	newRunID  = regexp.MustCompile(`^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{6}$`)
)

// tornLine is the ledger line l (not a JSON object) split at every
// record's start (`{"run_id":`, which cannot occur unescaped inside a
// JSON string): a piece that is a whole record (one whose newline alone
// was lost, review 33 R33-2, or the next run's record appended to a torn
// one) is kept as its own line, redacted as a line is; a piece that is
// not (the torn part) is replaced whole by a fixed record, tornRedacted
// and the run id when it can be read exactly (tornRunID: of NewRunID's
// form, or another that redact leaves as it is), never any other of its
// text: its values are in JSON's quoting, which the redactor does not
// read as the values they are, and the redactor would mangle the run
// id's digits (review 28, R28-3 and R28-6).
func tornLine(l []byte, rule string, redact LedgerRedactor) ([]byte, bool, error) {
	var out [][]byte
	for _, piece := range ledgerPieces(l) {
		// A piece kept must be an object: JSON that is none (a string, a
		// number, a list) fails redactLedgerLine's reading as this line
		// did and came back here without end (review 39, R39-2).
		var obj map[string]json.RawMessage
		if json.Unmarshal(piece, &obj) != nil {
			out = append(out, tornMarker(piece, redact))
			continue
		}
		r, _, err := redactLedgerLine(piece, rule, redact)
		if err != nil {
			return nil, false, err
		}
		out = append(out, r)
	}
	return bytes.Join(out, []byte{'\n'}), true, nil
}

// ledgerPieces is l cut before every `{"run_id":` but at its start.
func ledgerPieces(l []byte) [][]byte {
	var pieces [][]byte
	start := 0
	for i := 1; i < len(l); i++ {
		j := bytes.Index(l[i:], []byte(`{"run_id":`))
		if j < 0 {
			break
		}
		i += j
		pieces = append(pieces, l[start:i])
		start = i
	}
	return append(pieces, l[start:])
}

// tornMarker is the fixed line replacing the torn piece torn.
func tornMarker(torn []byte, redact LedgerRedactor) []byte {
	out := tornRedacted
	if m := tornRunID.FindSubmatch(torn); m != nil && (newRunID.Match(m[1]) || redact(string(m[1])) == string(m[1])) {
		out += fmt.Sprintf(" (run_id %s)", m[1])
	} else {
		out += " (its run_id unreadable)"
	}
	return []byte(out)
}

// redactJSONText is raw, a JSON string or list of strings (or null), with
// redact applied to each string, and whether it changed.
func redactJSONText(raw json.RawMessage, redact LedgerRedactor) (json.RawMessage, bool, error) {
	var one string
	if json.Unmarshal(raw, &one) == nil {
		r := redact(one)
		if r == one {
			return raw, false, nil
		}
		out, err := json.Marshal(r)
		return out, err == nil, err
	}
	var list []string
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, false, fmt.Errorf("neither a text nor a list of texts: %w", err)
	}
	out, ok := redactNotes(list, redact)
	if !ok {
		return raw, false, nil
	}
	b, err := json.Marshal(out)
	return b, err == nil, err
}
