package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/wildix-export/wildix-export/exporter"
	"github.com/wildix-export/wildix-export/exporter/record"
	"github.com/wildix-export/wildix-export/internal/pseudonym"
	"github.com/wildix-export/wildix-export/sinks"
)

// ruleRewriter is a sink that rewrites its stored rows under the
// pseudonymisation rule (sinks.Postgres, sinks.CSV: rewrite_rule.go).
type ruleRewriter interface {
	RewriteUnderRule(ctx context.Context, w sinks.RuleRewrite) (*sinks.Rewritten, error)
	StoredExtensions(ctx context.Context, pbx string, endpoints []record.Endpoint) ([]string, error)
	EarlierKeyRows(ctx context.Context, pbx, keyID, run string, endpoints []record.Endpoint) (*sinks.EarlierKeys, error)
}

// The notes of the backfill's "pseudonymisation" result (the run ledger).
const (
	noteRuleRewritten = "rows rewritten in place under the pseudonymisation rule (written before it, and not written again from the PBX's copy)"
	noteEarlierKey    = "rows still under an earlier pseudonym key, whose values in clear are gone: not rewritten (README, Privacy)"
	// noteRewriteDue: a backfill without --rewrite while a rewrite is
	// due (review 28, R28-2); the asking run and what became of it follow.
	noteRewriteDue = "a rewrite in place under the pseudonymisation rule asked for by the backfill with --rewrite"
	// noteRewriteUnread: the rewrite skipped (review 17, R17-1).
	noteRewriteUnread = "stored rows NOT rewritten in place under the pseudonymisation rule: the PBX's colleagues could not be read at the run's start, and the rewrite, which cannot be undone, would replace the colleagues' extensions of more than 6 digits an export keeps readable; give the token or API key read access to the colleagues (/api/v1/PBX/Colleagues), then run `wildix-export backfill --rewrite` again (any --from and --to: the rewrite covers the whole history) (README, Privacy)"
)

// rewriteDueStore is a sink keeping the record of a rewrite under the
// rule asked for and not completed (sinks.Postgres, sinks.CSV).
type rewriteDueStore interface {
	RewriteDue(ctx context.Context, pbx string) (*sinks.RewriteDue, error)
	SetRewriteDue(ctx context.Context, pbx string, d *sinks.RewriteDue) error
}

// rewritePlan is what a backfill's start (planRewrite) decided of the
// rewrite in place.
type rewritePlan struct {
	asked bool              // --rewrite given
	due   *sinks.RewriteDue // asked for by an earlier backfill and not completed (read before this one's record)
	err   error             // reading or storing the record failed: the rewrite's result fails with it
}

// run reports whether the backfill ends with the rewrite: asked for, due
// from an earlier one, or its record unreadable (said in its result).
func (p rewritePlan) run() bool { return p.asked || p.due != nil || p.err != nil }

// planRewrite is, under the PBX's lock at a backfill's start, the
// record of the rewrite due (review 28, R28-2): read, and with --rewrite
// (asked) stored for run before its windows, so that a backfill stopped
// before its rewrite completed and resumed without --rewrite completes it
// (rewriteUnderRule) rather than leaving rows in clear and reporting ok.
// Not stored for a PBX the sink holds nothing of (a first export: the
// record would count as its state).
func (a *app) planRewrite(ctx context.Context, st *started, run string, asked bool) rewritePlan {
	p := rewritePlan{asked: asked}
	ds, ok := st.sink.Sink.(rewriteDueStore)
	if !ok {
		return p
	}
	pbx := a.cfg.PBXID
	p.due, p.err = ds.RewriteDue(ctx, pbx)
	damaged := errors.Is(p.err, sinks.ErrRewriteDueDamaged)
	if damaged && asked {
		// The advice of a damaged record (review 35, R35-3): this
		// backfill's record replaces it, and its rewrite covers whatever
		// the damaged one asked for (the whole history, under the rule).
		a.log.Warn("the record of a rewrite in place under the pseudonymisation rule due is damaged: this backfill with --rewrite replaces it", "error", p.err)
		p.err = nil
	}
	if p.err != nil || !asked {
		return p
	}
	if ps, ok := st.sink.Sink.(privacyStore); ok {
		_, found, err := ps.PrivacyRule(ctx, pbx)
		if err == nil && !found && damaged {
			err = ds.SetRewriteDue(ctx, pbx, nil) // nothing of the PBX to rewrite
		}
		if err != nil || !found {
			p.err = err
			return p
		}
	}
	rule := privacyNow(st.guard)
	p.err = ds.SetRewriteDue(ctx, pbx, &sinks.RewriteDue{Run: run, Rule: rule.Rule, KeyID: rule.KeyID, Asked: time.Now().UTC()})
	return p
}

// rewriteDue is the rewrite in place under the rule due for the PBX of
// st (review 35, R35-4: for `run`, which does not complete it, to say
// so), nil when none is: a backfill with --rewrite asked for it and none
// has completed it since. A damaged record counts as due (a rewrite was
// asked for), damaged set. A sink keeping no such record has none due.
func (a *app) rewriteDue(ctx context.Context, st *started) (due *sinks.RewriteDue, damaged bool, err error) {
	ds, ok := st.sink.Sink.(rewriteDueStore)
	if !ok {
		return nil, false, nil
	}
	d, err := ds.RewriteDue(ctx, a.cfg.PBXID)
	if errors.Is(err, sinks.ErrRewriteDueDamaged) {
		return &sinks.RewriteDue{}, true, nil
	}
	return d, false, err
}

// dueAdvice is what completes a rewrite due that a run did not (review
// 41, R41-2), true for each case: a backfill under rule none rewrites
// nothing, and a damaged record fails a backfill without --rewrite (only
// one with it replaces the record); else any backfill completes it.
func dueAdvice(d *sinks.RewriteDue, damaged, ruleOn bool) string {
	const withdraw = "or delete its record to withdraw it (README, Privacy)"
	switch {
	// Under none the stored rule is none (a changed rule is refused
	// without --force), so a backfill under the rows' rule is refused as
	// a change: the change is accepted by a forced run first (review 42,
	// R42-2).
	case !ruleOn && damaged:
		return "EXPORT_PSEUDONYMIZE is none here, under which no backfill rewrites anything, and its record is damaged: set EXPORT_PSEUDONYMIZE (and EXPORT_PSEUDONYM_KEY) to the rows' rule, run `wildix-export run --once --force` to accept the change, then `wildix-export backfill --rewrite` (any --from and --to), " + withdraw
	case !ruleOn:
		return "EXPORT_PSEUDONYMIZE is none here, under which no backfill rewrites anything: set it (and EXPORT_PSEUDONYM_KEY) to the rows' rule (" + d.Rule + " when it was asked for), run `wildix-export run --once --force` to accept the change, then a backfill (any --from and --to), " + withdraw
	case damaged:
		return "its record is damaged, which fails a backfill without --rewrite: run `wildix-export backfill --rewrite` (any --from and --to), which replaces the record and completes the rewrite, " + withdraw
	}
	return "the next backfill (any --from and --to) completes it (README, Privacy)"
}

// rewriteDueNotice wraps a run's after so that a run ending well while a
// rewrite in place under the rule is due says so, in a warning, the run's
// notes and its summary (review 35, R35-4; review 41, R41-1), with what
// completes it (dueAdvice): a run does not (README, Privacy), and it must
// not report ok in silence while stored rows stay in clear. A sink that
// cannot tell is warned of, the run not failed.
func (a *app) rewriteDueNotice(st *started, after func(context.Context, *exporter.RunResult) []exporter.EndpointResult) func(context.Context, *exporter.RunResult) []exporter.EndpointResult {
	return func(ctx context.Context, r *exporter.RunResult) []exporter.EndpointResult {
		var res []exporter.EndpointResult
		if after != nil {
			res = after(ctx, r)
		}
		due, damaged, err := a.rewriteDue(ctx, st)
		switch {
		case err != nil:
			a.log.Warn("could not read whether a rewrite in place under the pseudonymisation rule is due; a backfill tells", "err", err)
		case due != nil:
			advice := dueAdvice(due, damaged, st.guard.Rule.On())
			a.log.Warn("a rewrite in place under the pseudonymisation rule asked for by a backfill with --rewrite is due: a run does not complete it; " + advice)
			res = append(res, exporter.EndpointResult{Endpoint: "pseudonymisation", Paging: pagingRewriteDue,
				Notes: []string{noteRewriteDue + " is due: this run did not complete it; " + advice}})
		}
		return res
	}
}

// pagingRewriteDue is the Paging of the "pseudonymisation" result of a
// run that ended well while a rewrite in place is due (rewriteDueNotice):
// the summary shows it as DUE, not ok, and the notification counts it
// apart (review 41, R41-1); the run ledger records it so.
const pagingRewriteDue = "rewrite-due"

// warned reports whether e ended well with a warning the run ledger's
// notes say: a rewrite in place due (pagingRewriteDue).
func warned(e exporter.EndpointResult) bool { return e.Err == nil && e.Paging == pagingRewriteDue }

// rewriteUnderRule makes a backfill given --rewrite, or one started
// while a rewrite is due (planRewrite: one given --rewrite was stopped
// before its end, review 28 R28-2), end, once every window and the
// retention's prune succeeded, the PBX's lock still held, by rewriting
// in place, under the rule the backfill wrote with, every row of the PBX
// the sink holds (attack 6, F9): the backfill writes again only the calls
// the PBX still holds, and a forced change of rule left the rest as it
// was, in clear: the recordings' rows (never backfilled; the PBX keeps a
// recording 7 days), a snapshot's earlier files (CSV) or its records the
// PBX no longer has (PostgreSQL), calls older than the PBX's copy. Only
// then (review 25 R25-1, review 28 R28-1), not at every backfill. Each
// table (PostgreSQL) or file (CSV) is rewritten atomically, and every row
// or file it reads is recorded as judged under the rule (its run_id, its
// manifest), so a later rewrite does not judge it again against the
// extensions known that day (review 29, R29-5), and one completing a
// rewrite a failure stopped reads only what was not judged. It cannot be
// undone, so it replaces only on proof (review 17, R17-1): rows a run
// under the current rule wrote are not read, a row under a narrower rule
// gets only what that rule did not replace (privacy.Guard.Stored), long
// extensions stay readable (those read at the run's start and those the
// sink's colleagues rows hold), and nothing is rewritten when the
// colleagues could not be read. It covers the whole history, whatever
// the backfill's range (said in its log line). Under rule none --rewrite
// is refused (cmdBackfill); a rewrite due is then said, not done (no
// pseudonym can be turned back). Called inside export, which has set the
// exporter's AfterRun (retention) for this run.
func (a *app) rewriteUnderRule(st *started, plan rewritePlan) {
	rw, ok := st.sink.Sink.(ruleRewriter)
	if !ok {
		return
	}
	prev := st.x.AfterRun
	st.x.AfterRun = func(ctx context.Context, r *exporter.RunResult) []exporter.EndpointResult {
		var out []exporter.EndpointResult
		if prev != nil {
			out = prev(ctx, r)
		}
		for _, o := range out {
			if o.Err != nil {
				return out // the prune failed: the run failed, rewrite nothing
			}
		}
		if !st.guard.Rule.On() {
			return append(out, a.rewriteDueUnderNone(plan))
		}
		return append(out, a.ruleRewrite(ctx, st, rw, r, plan))
	}
}

// rewriteDueUnderNone is the result of a backfill under rule none while
// a rewrite is due: nothing rewritten (no rule to rewrite under), the
// record kept, said in a warning and the ledger; a damaged record fails
// it saying what completes it under none (dueAdvice: review 41, R41-2).
func (a *app) rewriteDueUnderNone(plan rewritePlan) exporter.EndpointResult {
	res := exporter.EndpointResult{Endpoint: "pseudonymisation", Paging: "rewrite", Err: plan.err}
	if errors.Is(plan.err, sinks.ErrRewriteDueDamaged) {
		res.Err = fmt.Errorf("%w: %s", plan.err, dueAdvice(nil, true, false))
	}
	if plan.due != nil {
		res.Notes = append(res.Notes, fmt.Sprintf("%s %s (%s): EXPORT_PSEUDONYMIZE is none here, nothing rewritten", noteRewriteDue, plan.due.Run, plan.due.Rule))
		a.log.Warn("a rewrite in place under the pseudonymisation rule asked for by an earlier backfill with --rewrite is due, not done: EXPORT_PSEUDONYMIZE is none here; set the rule, run `wildix-export run --once --force` to accept it, then a backfill completes it (README, Privacy)",
			"asked_by", plan.due.Run, "rule_then", plan.due.Rule)
	}
	return res
}

// ruleRewrite is rewriteUnderRule's result: the rows rewritten per table
// or endpoint in its notes; and, when rows written under an earlier
// pseudonym key remain (a key change: their pseudonyms cannot be made
// again without their values in clear), a warning and a note saying how
// many and where. Its Rows stay 0: a run's rows count rows exported.
// It stays one function (about 70 lines, five parameters: the run's
// state, the sink's rewriter, the run's result and the plan it follows):
// the extensions read, the rewrite and the earlier-key count must see the
// same rule and plan, which one body keeps in sight.
func (a *app) ruleRewrite(ctx context.Context, st *started, rw ruleRewriter, r *exporter.RunResult, plan rewritePlan) (res exporter.EndpointResult) {
	pbx := r.PBX
	began := time.Now()
	res = exporter.EndpointResult{Endpoint: "pseudonymisation", Paging: "rewrite"}
	defer func() { res.Duration = time.Since(began) }()
	rule := privacyNow(st.guard)
	eps := st.cat.All()
	if !a.rewritePlanned(&res, plan, rule) {
		return res
	}
	completing := !plan.asked && plan.due != nil
	defer func() {
		if completing {
			a.rewriteDueOutcome(&res, plan, rule)
		}
	}()
	if !st.guard.ExtensionsRead() {
		res.Notes = append(res.Notes, noteRewriteUnread)
		a.log.Warn("stored rows not rewritten in place under the pseudonymisation rule: the PBX's colleagues could not be read at the run's start, and the rewrite cannot be undone; give the token or API key read access to /api/v1/PBX/Colleagues, then run `wildix-export backfill --rewrite` again (any range: the rewrite covers the whole history) (README, Privacy)", "rule", rule.String())
		if completing {
			// A rewrite due not completed fails the backfill (review 35,
			// R35-2): the routine backfill meant to complete it must not
			// report ok with rows in clear.
			res.Err = errors.New("the PBX's colleagues could not be read at the run's start, so nothing was rewritten (the rewrite cannot be undone and would replace the colleagues' extensions of more than 6 digits an export keeps readable): give the token or API key read access to /api/v1/PBX/Colleagues, then run a backfill (any --from and --to) to complete it (README, Privacy)")
		}
		return res
	}
	stored, err := rw.StoredExtensions(ctx, pbx, eps)
	if err != nil {
		res.Err = err
		return res
	}
	done, err := rw.RewriteUnderRule(ctx, sinks.RuleRewrite{PBX: pbx, Run: r.ID, Rule: rule.Rule, KeyID: rule.KeyID, Endpoints: eps,
		Apply: sinks.RuleApplier(st.guard.Stored(longExtensions(stored)))})
	if err == nil {
		err = a.rewriteLedger(ctx, rw, pbx, r.ID, rule.Rule, done) // attack 8, F3
	}
	if done != nil {
		for _, pl := range done.Places {
			if pl.Rows > 0 {
				res.Notes = append(res.Notes, fmt.Sprintf("%s %s: %d in %s", noteRuleRewritten, rule, pl.Rows, pl.Name))
			}
		}
	}
	if err == nil {
		err = a.rewriteDone(ctx, st, pbx)
	}
	if err == nil && completing {
		completing = false // completed: what follows cannot undo that
		a.rewriteDueOutcome(&res, plan, rule)
	}
	if err != nil {
		res.Err = fmt.Errorf("%w (the backfill's windows are done, and the tables or files rewritten before this stay rewritten, counted in this run's notes: run `wildix-export backfill --rewrite` again, any --from and --to, to complete the rewrite; README, Privacy)", err)
		return res
	}
	a.log.Info("stored rows rewritten in place under the pseudonymisation rule", "rule", rule.String(), "rows", done.Rows(),
		"scope", "every row of the PBX the sink holds not written under this rule, the whole history whatever --from and --to")
	left, err := rw.EarlierKeyRows(ctx, pbx, rule.KeyID, r.ID, eps)
	if err != nil {
		res.Err = err
		return res
	}
	if n := left.Left.Rows(); n > 0 {
		var where []string
		for _, pl := range left.Left.Places {
			where = append(where, fmt.Sprintf("%d in %s", pl.Rows, pl.Name))
			res.Notes = append(res.Notes, fmt.Sprintf("%s %s: %d in %s", noteEarlierKey, strings.Join(left.Keys, ", "), pl.Rows, pl.Name))
		}
		a.log.Warn("rows written under an earlier pseudonym key keep its pseudonyms: their values in clear are no longer in the sink, nor on the PBX (the backfill did not read them again), so they cannot be pseudonymised under the current key and do not join the rows written under it; do not delete them (rows that may hold the earlier key's pseudonyms, not rows known to; and retention and forget reach a stored recording's file only through its row); to have none, export into a new schema or folder (README, Privacy)",
			"earlier_keys", strings.Join(left.Keys, ", "), "rows", n, "where", strings.Join(where, ", "))
	}
	return res
}

// rewritePlanned adds to res what plan says before the rewrite: a
// rewrite due completed by a backfill without --rewrite (a warning and a
// note), or the record unreadable or not stored (res fails, and false:
// nothing is rewritten).
func (a *app) rewritePlanned(res *exporter.EndpointResult, plan rewritePlan, rule exporter.Privacy) bool {
	if plan.err != nil {
		res.Err = fmt.Errorf("%w (nothing rewritten in place under the pseudonymisation rule; the backfill's windows are done: run `wildix-export backfill --rewrite` again, any --from and --to; README, Privacy)", plan.err)
		return false
	}
	if !plan.asked && plan.due != nil {
		a.log.Warn("attempting the rewrite in place under the pseudonymisation rule an earlier backfill with --rewrite asked for and did not complete (stopped or failed before its end)",
			"asked_by", plan.due.Run, "rule_then", plan.due.Rule, "rule", rule.String())
	}
	return true
}

// rewriteDueOutcome adds to res, once the rewrite a backfill without
// --rewrite attempted because it was due has ended, the note of what
// happened (review 35, R35-2): completed, or not and still due (res then
// failed: the backfill does not exit 0).
func (a *app) rewriteDueOutcome(res *exporter.EndpointResult, plan rewritePlan, rule exporter.Privacy) {
	if res.Err == nil {
		res.Notes = append(res.Notes, fmt.Sprintf("%s %s (%s): completed by this backfill under %s", noteRewriteDue, plan.due.Run, plan.due.Rule, rule))
		a.log.Info("the rewrite in place under the pseudonymisation rule an earlier backfill with --rewrite asked for is completed", "asked_by", plan.due.Run)
		return
	}
	res.Notes = append(res.Notes, fmt.Sprintf("%s %s (%s): still due, this backfill under %s did not complete it (the next backfill attempts it again)", noteRewriteDue, plan.due.Run, plan.due.Rule, rule))
	res.Err = fmt.Errorf("a rewrite in place under the pseudonymisation rule asked for by the backfill with --rewrite %s is due and was not completed: %w", plan.due.Run, res.Err)
}

// rewriteDone clears the PBX's record of a rewrite due: the rewrite
// completed.
func (a *app) rewriteDone(ctx context.Context, st *started, pbx string) error {
	if ds, ok := st.sink.Sink.(rewriteDueStore); ok {
		return ds.SetRewriteDue(ctx, pbx, nil)
	}
	return nil
}

// longExtensions is the canonical digits (pseudonym.Canonical) of the
// extensions of more than 6 digits among vals, those not written
// internationally: an extension a rewrite keeps readable, as the run's
// start does with those it read from the PBX (pbxExtensions).
func longExtensions(vals []string) map[string]bool {
	long := map[string]bool{}
	for _, v := range vals {
		c, ok := pseudonym.Canonical(v)
		if t := strings.TrimSpace(v); ok && len(c) > 6 && !strings.HasPrefix(t, "+") && !strings.HasPrefix(t, "00") {
			long[c] = true
		}
	}
	return long
}
