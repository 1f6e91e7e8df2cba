package main

import (
	"context"

	"github.com/wildix-export/wildix-export/sinks"
)

// ledgerRewriter is a sink that rewrites its run ledger's notes and
// errors under the pseudonymisation rule (sinks.Postgres, sinks.CSV:
// rewrite_ledger.go).
type ledgerRewriter interface {
	RewriteLedgerUnderRule(ctx context.Context, pbx, run, rule string, redact sinks.LedgerRedactor) ([]sinks.ForgetPlace, error)
}

// rewriteLedger is ruleRewrite's rewrite of the run ledger (attack 8,
// F3): the notes and errors of the runs of pbx not under rule get what
// the run's redactor (the current rule's, as it redacts this run's notes)
// makes of them; the rows changed are added to done, whose places the
// backfill's note counts. Six parameters on purpose: pbx, run and rule
// are the three strings every ledger rewrite is keyed by (as
// sinks.RewriteLedgerUnderRule takes them).
func (a *app) rewriteLedger(ctx context.Context, rw ruleRewriter, pbx, run, rule string, done *sinks.Rewritten) error {
	lr, ok := rw.(ledgerRewriter)
	if !ok || a.redact == nil {
		return nil
	}
	places, err := lr.RewriteLedgerUnderRule(ctx, pbx, run, rule, a.redact.Text)
	done.Places = append(done.Places, places...)
	return err
}
