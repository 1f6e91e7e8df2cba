package main

import (
	"context"
	"fmt"

	"github.com/wildix-export/wildix-export/exporter"
	"github.com/wildix-export/wildix-export/exporter/privacy"
)

// The privacy settings' part of the start-up (README, Privacy): the
// Guard every exported row passes, and the rule the sink's rows are
// written under, checked before anything is written.

// privacyGuard is the privacy settings every exported row passes
// (EXPORT_PSEUDONYMIZE, EXPORT_PSEUDONYM_KEY, EXPORT_RETENTION).
func (a *app) privacyGuard() (*privacy.Guard, error) {
	keys, err := a.cfg.Pseudonyms()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errUsage, err)
	}
	return &privacy.Guard{Rule: a.cfg.Pseudonymize, Keys: keys, Retention: a.cfg.Retention, Display: a.cfg.PseudonymDisplay}, nil
}

// privacyStore is where a sink keeps the pseudonymisation rule its rows
// are written under (sinks.Postgres, sinks.CSV).
type privacyStore interface {
	PrivacyRule(ctx context.Context, pbx string) (exporter.Privacy, bool, error)
	SetPrivacyRule(ctx context.Context, pbx string, r exporter.Privacy) error
}

// privacyRule checks the rule and key about to be applied against those
// the sink's rows of this PBX were written under, and stores them on a
// first export. Another rule or key is refused (exit 2) unless a.force:
// rows of two keys (or in clear and pseudonymised) never join. Forced,
// the change is stored and the run records it in the ledger.
func (a *app) privacyRule(ctx context.Context, s *sink, g *privacy.Guard) (exporter.Privacy, error) {
	now := exporter.Privacy{Rule: g.Rule.String()}
	if g.Rule.On() {
		now.KeyID = g.Keys.KeyID()
	}
	store, ok := s.Sink.(privacyStore)
	if !ok {
		return now, nil
	}
	was, found, err := store.PrivacyRule(ctx, a.cfg.PBXID)
	if err != nil {
		return now, err
	}
	same := was.Rule == now.Rule && (!g.Rule.On() || was.KeyID == now.KeyID)
	switch {
	case found && same:
		if was.KeyID == now.KeyID {
			return now, nil
		}
	case found && !a.force:
		what := "EXPORT_PSEUDONYMIZE"
		if was.Rule == now.Rule {
			what = "EXPORT_PSEUDONYM_KEY"
		}
		return now, fmt.Errorf("%w: %s changed: the %s holds PBX %s's rows written under rule %s and this run would write them under %s; "+
			"mixing them breaks every join, per-caller count and call-back detection (one number would have two forms): "+
			"set the earlier %s again, or export into a new schema or folder, or run `wildix-export run --once --force` to accept the change (the run ledger records it)",
			errUsage, what, s.name, a.cfg.PBXID, was, now, what)
	case found:
		now.Changed = was.String()
		a.log.Warn("pseudonymisation changed (--force): rows written before keep their earlier form", "from", was.String(), "to", now.String())
	}
	if err := store.SetPrivacyRule(ctx, a.cfg.PBXID, now); err != nil {
		return now, err
	}
	return now, nil
}
