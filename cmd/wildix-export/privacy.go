package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"

	"github.com/wildix-export/wildix-export/config"
	"github.com/wildix-export/wildix-export/exporter"
	"github.com/wildix-export/wildix-export/exporter/paging"
	"github.com/wildix-export/wildix-export/exporter/privacy"
	"github.com/wildix-export/wildix-export/exporter/record"
	"github.com/wildix-export/wildix-export/internal/pseudonym"
	"github.com/wildix-export/wildix-export/sinks"
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
	// PendPrivacyRule stores r with the PBX's next batch commit (its
	// rows and state), nil withdraws it.
	PendPrivacyRule(pbx string, r *exporter.Privacy)
}

// suppressionList is the sink's list of forgotten numbers (sinks).
type suppressionList interface {
	Suppression(ctx context.Context) (*sinks.Suppression, error)
}

// suppressionKeyed is a sink keeping the keys of recordings' ids, in a
// record of their own beside its suppression list (sinks, idkey.go).
type suppressionKeyed interface {
	SuppressionKey(ctx context.Context, o sinks.IDKeyOptions) (*pseudonym.Keyed, error)
}

// recordingsKey is the key the ids and paths of recordings not stored
// under their PBX id are hashed with (exporter.Exporter.RecordingsKey,
// exporter/recordings/key.go): one per PBX of the sink, kept in a record
// of its own, which never changes once recordings are stored with it (else the
// look-back would copy each again under a new name): in clear on a sink
// in clear, sealed with EXPORT_PSEUDONYM_KEY under pseudonymisation, so
// that no one without the key can confirm a number against a stored
// name (sinks/idkey.go). Called once the run's rule and key are
// accepted (privacyRule): a forced change of either carries the key over
// here (sealed again with the new key, which needs the earlier one as
// EXPORT_PSEUDONYM_PREVIOUS_KEY; or stored in clear after a change to
// none), in one atomic write before anything is exported. A key the
// configured ones cannot open is refused, exit 2, naming the setting.
// carryOnly is a run without a recordings store: it makes the PBX's key
// as a run with one does (else a later run with one took a key of
// before keys were kept: review 7, R7-2), and one it cannot open is
// refused as by a run with recordings: warned of only, the run would
// store its new rule, and the next run with recordings, taking the key
// from that rule, would name every recording anew and copy it again
// (R7-1). A key lost while the sink holds recordings named with it is
// refused too (exit 2, naming the record to restore: review 6, R6-4).
func (a *app) recordingsKey(ctx context.Context, s *sink, g *privacy.Guard, carryOnly bool) (*pseudonym.Keyed, error) {
	sk, ok := s.Sink.(suppressionKeyed)
	if !ok {
		if g.Rule.On() || carryOnly {
			return g.Keys, nil
		}
		return nil, fmt.Errorf("the %s keeps no key for recordings' ids", s.name)
	}
	o := sinks.IDKeyOptions{PBX: a.cfg.PBXID, Pseudonymize: g.Rule.On(), Key: secretBytes(a.cfg.PseudonymKey), Previous: secretBytes(a.cfg.PrevPseudonymKey), CarryOnly: carryOnly}
	if store, ok := s.Sink.(privacyStore); ok {
		was, found, lost, err := privacyRuleFrom(ctx, store, a.cfg.PBXID)
		if err != nil {
			return nil, err
		}
		o.Ruled, o.WrittenUnder, o.RuleLost = found, was.KeyID, lost != nil
	}
	k, err := sk.SuppressionKey(ctx, o)
	if errors.Is(err, sinks.ErrSuppressionKey) || errors.Is(err, sinks.ErrRecordingsKey) {
		return nil, fmt.Errorf("%w: %v", errUsage, err)
	}
	return k, err
}

// secretBytes is a secret's bytes, nil when it is not set.
func secretBytes(s config.Secret) []byte {
	if !s.IsSet() {
		return nil
	}
	return []byte(s.Value())
}

// privacyNow is the rule and key id the guard applies.
func privacyNow(g *privacy.Guard) exporter.Privacy {
	now := exporter.Privacy{Rule: g.Rule.String()}
	if g.Rule.On() {
		now.KeyID = g.Keys.KeyID()
	}
	return now
}

// privacyRule checks the rule and key about to be applied against those
// the sink's rows of this PBX were written under, and returns the rule to
// store with the run's first commit (nil: the stored one stays). It
// writes nothing: start checks early, export again under the PBX's lock,
// and a run that commits nothing leaves the stored rule as it was.
// Another rule or key is refused (exit 2) unless a.force: rows of two
// keys (or in clear and pseudonymised) never join. Forced, the rule to
// store says from what (Changed), which the run's ledger entry records
// with the commit storing it. A key change is refused even forced while
// the sink's suppression list is keyed with the earlier key. The
// suppression list is checked first (suppressionKept).
func (a *app) privacyRule(ctx context.Context, s *sink, g *privacy.Guard) (*exporter.Privacy, error) {
	if err := a.suppressionKept(ctx, s, g); err != nil {
		return nil, err
	}
	now := privacyNow(g)
	store, ok := s.Sink.(privacyStore)
	if !ok {
		return nil, nil
	}
	was, found, lost, err := privacyRuleFrom(ctx, store, a.cfg.PBXID)
	if err != nil {
		return nil, err
	}
	same := was.Rule == now.Rule && (!g.Rule.On() || was.KeyID == now.KeyID)
	if lost != nil {
		return a.lostRule(ctx, s, g, lost, was, now, same && len(lost.Rules) == 1)
	}
	switch {
	case found && same:
		if was.KeyID == now.KeyID {
			return nil, nil
		}
	case found:
		if err := a.listKeyed(ctx, s, g, was); err != nil {
			return nil, err
		}
		if a.force {
			now.Changed = was.String()
			break
		}
		what := "EXPORT_PSEUDONYMIZE"
		if was.Rule == now.Rule {
			what = "EXPORT_PSEUDONYM_KEY"
		}
		return nil, fmt.Errorf("%w: %s changed: the %s holds PBX %s's rows written under rule %s and this run would write them under %s; "+
			"mixing them breaks every join, per-caller count and call-back detection (one number would have two forms): "+
			"set the earlier %s again; or run `wildix-export run --once --force` to accept the change (the run ledger records it): %s; "+
			"or %s",
			errUsage, what, s.name, a.cfg.PBXID, was, now, what, changeAdvice([]string{was.String()}, now), newExport(s))
	}
	return &now, nil
}

// ruleSource is a privacyStore that says when the stored rule is missing
// and the rule it returned is its run ledger's (sinks.LostRule).
type ruleSource interface {
	PrivacyRuleFrom(ctx context.Context, pbx string) (exporter.Privacy, bool, *sinks.LostRule, error)
}

// privacyRuleFrom is store's PrivacyRuleFrom, or its PrivacyRule (never
// lost) for a store without one.
func privacyRuleFrom(ctx context.Context, store privacyStore, pbx string) (exporter.Privacy, bool, *sinks.LostRule, error) {
	if rs, ok := store.(ruleSource); ok {
		return rs.PrivacyRuleFrom(ctx, pbx)
	}
	was, found, err := store.PrivacyRule(ctx, pbx)
	return was, found, nil, err
}

// lostRule is privacyRule when the PBX's stored rule is missing and its
// run ledger records runs under a rule (attack 6, F4): the rows were
// written under the ledger's rule, not none (CSV: its newest data file's,
// sinks.LostRule). A run under that rule (the only one of the runs that
// committed rows since the ledger's last change) stores the record again
// with its first commit; a run under another rule, or any run when those
// runs disagree, or the rule is unknown, is refused (exit 2) as a change, unless
// forced, saying the record is lost, what the ledger says and how to
// restore it.
// Its seven parameters are privacyRule's own state at that point (the
// sink, the guard, what the ledger says, the rule stored and asked for,
// whether they are the same), passed on whole so that the one decision
// reads in one place.
func (a *app) lostRule(ctx context.Context, s *sink, g *privacy.Guard, lost *sinks.LostRule, was, now exporter.Privacy, same bool) (*exporter.Privacy, error) {
	if lost.Unmanifested {
		return nil, a.unmanifested(s, lost, now)
	}
	if same {
		from, at, missing := "the run ledger", lost.Run, "missing"
		if lost.Run == "" {
			from, at = "the manifest of the newest data file", lost.File
		}
		if lost.Stale != "" {
			missing = "older than the data files (it says " + lost.Stale + ": restored from an older copy of the state?)"
		}
		a.log.Warn("the record of the pseudonymisation rule the PBX's rows are written under is "+missing+": taken from "+from+", and stored again with this run's first commit",
			"record", lost.Record, "rule", was.String(), "from", at)
		return &now, nil
	}
	if err := a.listKeyed(ctx, s, g, was); err != nil {
		return nil, err
	}
	if a.force {
		now.Changed = strings.Join(lost.Rules, " or ")
		if lost.Unknown {
			now.Changed = "unknown"
		}
		return &now, nil
	}
	if lost.Unknown {
		return nil, a.unknownRule(s, lost, now)
	}
	what := "EXPORT_PSEUDONYMIZE"
	if was.Rule == now.Rule {
		what = "EXPORT_PSEUDONYM_KEY"
	}
	missing, restore := "is missing ("+lost.Record+")", "restore that record (with the whole state folder, if it is lost too) from a backup taken with the data"
	told, had := fmt.Sprintf("its run ledger says they are written under rule %s (run %s: the last to mark a change of rule, else the first to commit rows; runs that committed none do not count)", was, lost.Run), "that run had them"
	switch {
	case lost.Run == "":
		told = fmt.Sprintf("the manifest of its newest data file, %s, says its rows are written under rule %s", lost.File, was)
		had = "that file's rows were written"
	case len(lost.Rules) > 1:
		told = fmt.Sprintf("its run ledger records runs that committed rows under rules %s since the last change it marks (run %s under %s), so which one the rows have is not known", strings.Join(lost.Rules, ", "), lost.Run, was)
	}
	if lost.Stale != "" {
		// Review 27, R27-2: the record is there, older than the rows.
		missing = fmt.Sprintf("(%s) says rule %s, but is older than the rows: restored from an older copy of the state?", lost.Record, lost.Stale)
		told = fmt.Sprintf("the manifest of data file %s, written after that record, says its rows are written under rule %s", lost.File, was)
		restore = "restore the whole state folder from the backup taken with the data files (an older copy misses the runs since)"
	}
	return nil, fmt.Errorf("%w: %s changed, or the rule not known: the record of the pseudonymisation rule PBX %s's rows in the %s are written under %s, and %s; this run would write them under %s: "+
		"%s; or set EXPORT_PSEUDONYMIZE and EXPORT_PSEUDONYM_KEY as %s (its first commit then stores the record again); "+
		"or run `wildix-export run --once --force` to accept the change (the run ledger records it): %s; "+
		"or %s",
		errUsage, what, a.cfg.PBXID, s.name, missing, told, now, restore, had, changeAdvice(lost.Rules, now), newExport(s))
}

// unknownRule is lostRule's refusal when nothing tells the rule of the
// rows (sinks.LostRule.Unknown: a CSV folder's data files, written by a
// release before manifests carried the rule, and its state folder lost):
// nothing is guessed, not even a first export's any rule fits (attack 7,
// F9).
func (a *app) unknownRule(s *sink, lost *sinks.LostRule, now exporter.Privacy) error {
	if lost.NoManifest {
		return a.noManifest(s, lost, now)
	}
	return fmt.Errorf("%w: the pseudonymisation rule PBX %s's rows in the %s are written under is not known: its state (%s, the record of the rule, and its run ledger) is missing, "+
		"and its %d data file(s) were written by a release whose manifests do not say the rule (%s, for one); this run would write them under %s: "+
		"restore the state folder from a backup taken with the data (without it the export also starts again from the beginning); "+
		"or look at the rows (a pseudonymised number reads p:…), set EXPORT_PSEUDONYMIZE and EXPORT_PSEUDONYM_KEY as they were written and run `wildix-export run --once --force` to record that rule (the run ledger records it); "+
		"or %s",
		errUsage, a.cfg.PBXID, s.name, filepath.Dir(lost.Record), lost.Files, lost.File, now, newExport(s))
}

// noManifest is unknownRule's refusal when a data file of the PBX has no
// manifest and was written after what the rule was taken from (the
// record of the rule, the newest manifest left, the run ledger:
// sinks.LostRule.NoManifest and Witness; review 37, R37-1, review 43,
// R43-1, R43-2: an older copy of the state restored, with or without its
// record, the newer files' manifests lost, and a run in clear was
// accepted beside pseudonymised rows).
func (a *app) noManifest(s *sink, lost *sinks.LostRule, now exporter.Privacy) error {
	return fmt.Errorf("%w: the pseudonymisation rule PBX %s's rows in the %s are written under is not known: the data file %s has no manifest (%s) and %s: "+
		"the state may be an older copy restored, and the file's rows written under another rule; this run would write them under %s: "+
		"restore the whole state folder and the manifests from the backup taken with the data files; "+
		"or look at the rows of that file (a pseudonymised number reads p:…), set EXPORT_PSEUDONYMIZE and EXPORT_PSEUDONYM_KEY as they were written and run `wildix-export run --once --force` to record that rule (the run ledger records it); "+
		"or %s. Nothing was changed",
		errUsage, a.cfg.PBXID, s.name, lost.File, strings.TrimSuffix(strings.TrimSuffix(filepath.Base(lost.File), ".gz"), ".csv")+".manifest.json", lost.Witness, now, newExport(s))
}

// unmanifested is lostRule's refusal, --force or not, of a CSV folder
// holding data files without their manifests and no cursor state of the
// PBX (sinks.LostRule.Unmanifested; review 26; review 38, R38-2: with
// the run ledger left, whatever it says): the run would be taken for a
// first export and write every call again beside the files (in clear
// beside pseudonymised copies, or doubled), as a run tells its own rows
// by their files' manifests. Forget refuses such a folder too, the run
// ledger left or not (sinks.CSVStateLost judges a PBX with a data file
// whose manifest is missing by its cursor state: review 43, R43-5), but
// not one endpoint's loss, as it judges each PBX whole. With lost.Endpoint,
// that endpoint's cursor state is missing while others' are there
// (review 43, R43-3): the same for its calls.
func (a *app) unmanifested(s *sink, lost *sinks.LostRule, now exporter.Privacy) error {
	if lost.Endpoint != "" {
		return fmt.Errorf("%w: EXPORT_CSV_DIR=%s holds data files of endpoint %s (%s, for one) but neither its cursor state (%s) nor the files' manifests (<file>.manifest.json): both were lost, and nothing tells which calls the files hold nor which rule their rows are written under; "+
			"this run would take %s for a first export and write every call again beside them, under %s (doubled, or in clear beside pseudonymised rows), --force or not: "+
			"restore the state folder and the manifests from a backup taken with the data; or move that endpoint's data files out of its folder (keep them as they are) and export it into the folder again; "+
			"or %s. Nothing was changed",
			errUsage, a.cfg.CSVDir, lost.Endpoint, lost.File, filepath.Join(filepath.Dir(lost.Record), lost.Endpoint+".json"), lost.Endpoint, now, newExport(s))
	}
	return fmt.Errorf("%w: EXPORT_CSV_DIR=%s holds data files (%s, for one) but neither PBX %s's state (%s: no cursor state; a run ledger alone does not count) nor the files' manifests (<file>.manifest.json): both were lost, and nothing tells which rule the rows are written under nor which calls they hold; "+
		"this run would take the folder for a first export and write every call again beside them, under %s (in clear beside pseudonymised rows, or doubled), --force or not: "+
		"restore the state folder and the manifests from a backup taken with the data; or move the data files out of the folder (keep them as they are: rows in clear, or pseudonymised, cannot be told apart by name) and export into it again from the PBX's own copy, after `wildix-export forget --allow-empty` there for each number forgotten before (the suppression list was lost with the state); "+
		"or %s. Nothing was changed",
		errUsage, a.cfg.CSVDir, lost.File, a.cfg.PBXID, filepath.Dir(lost.Record), now, newExport(s))
}

// suppressionChecked is a sink whose suppression list is kept as tags
// and checked against its run ledger (sinks/suppress.go).
type suppressionChecked interface {
	TagSuppression(ctx context.Context, pk *pseudonym.Keyed) (bool, error)
	CheckSuppression(ctx context.Context) error
}

// suppressionKept makes the sink's suppression list, written before
// tags, keep each number's tag instead of its pseudonym (attack 4, F7: a
// pseudonym the rows carried, left in the list after forget, singled
// the erased person out in any earlier extract), in one atomic write;
// and refuses (exit 2) a list holding fewer numbers than the run ledger
// says forget added (F4: state deleted, or restored from an older
// backup, silently undid every erasure). Called with privacyRule: at a
// run's start and again under the PBX's lock, before anything is read
// from the PBX or written.
func (a *app) suppressionKept(ctx context.Context, s *sink, g *privacy.Guard) error {
	sc, ok := s.Sink.(suppressionChecked)
	if !ok {
		return nil
	}
	if tagged, err := sc.TagSuppression(ctx, g.Keys); err != nil {
		return err
	} else if tagged {
		a.log.Info("suppression list: each forgotten number is now kept as a tag, no longer as its pseudonym (README, Erasure)")
	}
	if err := sc.CheckSuppression(ctx); errors.Is(err, sinks.ErrSuppressionLost) {
		return fmt.Errorf("%w: %s: %v", errUsage, s.name, err)
	} else if err != nil {
		return err
	}
	return nil
}

// listKeyed refuses a change of rule or key that the sink's suppression
// list cannot follow: the list keeps only each number's hash under each
// key the sink's PBXes write under (its sections), and a hash cannot be
// made again under another key (nor without one) as the numbers are not
// kept. --force cannot help. A change the list can follow is let through
// (review 44, R44-1: only the first section's key was looked at, so
// another PBX could not even change its rule): one keeping the PBX's
// key (was, the rule its rows are written under), or one to a key, or to
// none, the list holds every number under (Suppression.Serves: that
// key's section, or the list's own random key's).
func (a *app) listKeyed(ctx context.Context, s *sink, g *privacy.Guard, was exporter.Privacy) error {
	sl, ok := s.Sink.(suppressionList)
	if !ok {
		return nil
	}
	l, err := sl.Suppression(ctx)
	if err != nil || l.Serves(g.Keys) {
		return err
	}
	have := "not set"
	if g.Keys != nil {
		if g.Keys.KeyID() == was.KeyID {
			return nil // the rule alone changes: the run applies its key's section as before
		}
		have = "key " + g.Keys.KeyID()
	}
	this := "this PBX's rows are written in clear (EXPORT_PSEUDONYMIZE=none) and its key is not known"
	if was.KeyID != "" {
		this = "this PBX's rows are written under EXPORT_PSEUDONYM_KEY " + was.KeyID
	}
	n := 0 // numbers, not forms: a national form is the same number's (attack 6, F5)
	for _, x := range l.Numbers {
		if !x.National {
			n++
		}
	}
	return fmt.Errorf("%w: the %s's suppression list of %d forgotten number(s) keeps them under the key(s) the sink's PBXes write under (%s); %s, and this run's EXPORT_PSEUDONYM_KEY is %s, under which the list does not hold them all: "+
		"the key cannot change while the list exists, with --force neither, unless the list holds them under the new key too, as it keeps only each number's hash under each key and a hash cannot be made again under another one; "+
		"set the earlier key again (under EXPORT_PSEUDONYMIZE=none too); "+
		"or first run `wildix-export forget` again for each forgotten number (from your own records of the erasure requests: the list keeps no number) with EXPORT_PSEUDONYM_KEY set to the new key and each key of the list given with --previous-key-file, which adds them under the new key, then this change; "+
		"or export under the new key into a new schema or folder and a new recordings store (another EXPORT_RECORDINGS_DIR, or S3 bucket or prefix: this one's files are named by this sink's rows), "+
		"and there, before its first run, run `wildix-export forget --allow-empty` for each number of the list (README, Privacy)",
		errUsage, s.name, n, strings.Join(l.KeyIDs(), ", "), this, have)
}

// newExport is the sink's way out into a new schema or folder
// (sinks.Postgres.NewExportAdvice): a new recordings store, and the
// suppression list carried over.
func newExport(s *sink) string {
	if n, ok := s.Sink.(interface{ NewExportAdvice() string }); ok {
		return n.NewExportAdvice()
	}
	return "export into a new schema or folder"
}

// changeAdvice says what becomes of the rows written before a change of
// rule or key, from (the earlier rules, as Privacy.String spells them;
// "unknown", or none, when not known) to now, and what a backfill does
// about it, true for each change (review 29, R29-1; R25-3): a backfill
// writes again under now the calls the PBX still holds; its rewrite in
// place (--rewrite, rewrite_rule.go) replaces in the rest only what the
// earlier rule left in clear, never under rule none; a pseudonym cannot
// be turned back (a change to none, or to a rule replacing less), nor
// made again under another key (a key change).
func changeAdvice(from []string, now exporter.Privacy) string {
	to, _ := pseudonym.ParseRule(now.Rule)
	var back, rekeyed, widened, known bool
	for _, f := range from {
		rule, key, _ := strings.Cut(f, " ")
		was, err := pseudonym.ParseRule(rule)
		if err != nil || rule == "" {
			continue // unknown
		}
		known = true
		back = back || was.Numbers && !to.Numbers || was.Names && !to.Names || was.Staff && !to.Staff
		rekeyed = rekeyed || was.On() && to.On() && key != now.KeyID
		widened = widened || to.Numbers && !was.Numbers || to.Names && !was.Names || to.Staff && !was.Staff
	}
	const backfill = "`wildix-export backfill --from <first day> --to <tomorrow> --force"
	const rest = "recordings' rows, earlier snapshots, calls the PBX no longer has"
	switch {
	case !known:
		return "rows written before keep the form they have; " + backfill + " --rewrite` over the whole history writes again under the new rule the calls the PBX still holds and, under a rule replacing something, replaces in place in the rest (" + rest + ") what is still in clear, " +
			"but a pseudonym cannot be turned back nor made again under another key (README, Privacy)"
	case !to.On():
		return "rows written before keep their pseudonyms, which cannot be turned back: " + backfill + "` over the whole history writes again in clear the calls the PBX still holds; the rest (" + rest + ") keeps them for good (README, Privacy)"
	case rekeyed:
		inPlace := ""
		if widened {
			inPlace = " and replaces in place in the rest what the earlier rule left in clear"
		}
		return "rows written before keep the earlier key's pseudonyms, which cannot be made again under the new key (their values in clear are gone): " + backfill + " --rewrite` over the whole history writes again under the new key the calls the PBX still holds" + inPlace + "; the rest (" + rest + ") keeps the earlier key's pseudonyms, which do not join the new ones (the backfill counts them; to have none, export into a new schema or folder) (README, Privacy)"
	case back:
		inPlace := ""
		if widened {
			inPlace = "; with --rewrite it also replaces in place in the rest what the new rule replaces and the earlier left in clear"
		}
		return "what rows written before hold as pseudonyms and the new rule leaves in clear stays pseudonymised, as a pseudonym cannot be turned back: " + backfill + "` over the whole history writes again under the new rule the calls the PBX still holds; the rest (" + rest + ") keeps those pseudonyms for good" + inPlace + " (README, Privacy)"
	}
	return "rows written before keep their earlier form until " + backfill + " --rewrite` over the whole history writes again under the new rule the calls the PBX still holds and rewrites in place the rest (" + rest + "), each value the earlier rule left in clear replaced (README, Privacy, says what stays)"
}

// pendPrivacy makes rule, checked under the PBX's lock, the one the
// run's first commit stores (nil: none to store).
func (a *app) pendPrivacy(s *sink, rule *exporter.Privacy) {
	store, ok := s.Sink.(privacyStore)
	if !ok {
		return
	}
	if rule != nil && rule.Changed != "" {
		a.log.Warn("pseudonymisation changed (--force): stored with the run's first commit, or at its end when it commits nothing; "+changeAdvice(strings.Split(rule.Changed, " or "), *rule), "from", rule.Changed, "to", rule.String())
	}
	store.PendPrivacyRule(a.cfg.PBXID, rule)
}

// ruleChangeRecorder is a sink storing, at the end of a run that ended
// well, a forced change of rule no commit of the run stored (sinks).
type ruleChangeRecorder interface {
	RecordRuleChange(ctx context.Context, pbx, run string) (bool, error)
}

// recordRuleChange is the run's AfterRun (called once every endpoint
// ended well): the forced change of rule the run accepted, when no
// commit stored it (nothing to write: pseudonymisation turned on with no
// new call), is stored and marked in the ledger (attack 8, F1; review
// 20, R20-7: `backfill --force --rewrite` then refused the change, and
// `run --once --force` stored nothing again); then after, the AfterRun
// it wraps (retention's). A failure to store it is the run's failure.
func (a *app) recordRuleChange(st *started, after func(context.Context, *exporter.RunResult) []exporter.EndpointResult) func(context.Context, *exporter.RunResult) []exporter.EndpointResult {
	rc, ok := st.sink.Sink.(ruleChangeRecorder)
	if !ok {
		return after
	}
	return func(ctx context.Context, r *exporter.RunResult) []exporter.EndpointResult {
		var res []exporter.EndpointResult
		if stored, err := rc.RecordRuleChange(ctx, r.PBX, r.ID); err != nil {
			res = append(res, exporter.EndpointResult{Endpoint: "privacy", Err: fmt.Errorf("recording the accepted change of pseudonymisation rule (the run committed no rows): %w; run `wildix-export run --once --force` again", err)})
		} else if stored {
			a.log.Info("pseudonymisation change stored and marked in the run ledger, the run having committed no rows", "to", r.Privacy.String())
		}
		if after != nil {
			res = append(res, after(ctx, r)...)
		}
		return res
	}
}

// The run notes of guardExtensions (README, Privacy: Extensions stay
// readable).
const (
	noteExtensionsKept   = "colleagues' extensions of more than 6 digits kept readable, read from the PBX's colleagues at the run's start (a 7-digit number that is not one is still replaced)"
	noteExtensionsUnread = "the PBX's colleagues could not be read at the run's start: extensions of more than 6 digits are taken for external numbers and replaced by pseudonyms this run (the safe direction); give the token or API key read access to the colleagues (/api/v1/PBX/Colleagues), then `wildix-export backfill --force` over the days concerned rewrites them readable"
)

// guardExtensions gives st's guard, at a run's start and before any row
// is pseudonymised, the PBX's own extensions of more than 6 digits
// (privacy.Guard.SetExtensions), read from its colleagues, when the rule
// replaces numbers (else nothing is read and the shape rule stays). A
// read that fails does not fail the run: extensions are then told by
// their shape alone, as before (a long one is pseudonymised: the safe
// direction), said in a warning and in the run's notes.
func (a *app) guardExtensions(ctx context.Context, st *started) {
	if !st.guard.Rule.Numbers {
		st.guard.SetExtensions(nil, nil)
		return
	}
	long, first, err := a.pbxExtensions(ctx, st)
	if err != nil {
		a.log.Warn("the PBX's colleagues could not be read: extensions of more than 6 digits are pseudonymised this run; give the token or API key read access to /api/v1/PBX/Colleagues (README, Privacy)", "err", err)
		st.guard.SetExtensions(nil, []privacy.RunNote{{Kind: noteExtensionsUnread, Example: err.Error(), Count: 1}})
		return
	}
	var notes []privacy.RunNote
	if len(long) > 0 {
		notes = []privacy.RunNote{{Kind: noteExtensionsKept, Example: "the colleague of key " + first, Count: len(long)}}
		a.log.Info("colleagues' extensions of more than 6 digits kept readable", "extensions", len(long))
	}
	st.guard.SetExtensions(long, notes)
}

// pbxExtensions reads every record of the catalog's staff endpoints
// with an extension (colleagues), paged and retried as a snapshot is
// (paging.Offset, the exporter's client), whether or not EXPORT_ENDPOINTS
// exports them, and returns the canonical digits of the extensions of
// more than 6 digits that are not written internationally, and the key
// of the first such record (keys are never personal).
func (a *app) pbxExtensions(ctx context.Context, st *started) (map[string]bool, string, error) {
	long, first := map[string]bool{}, ""
	for _, ep := range st.cat.All() {
		col := ep.Column("extension")
		if !ep.Staff || col < 0 {
			continue
		}
		conv := &record.Converter{Endpoint: &ep, Zone: a.cfg.Timezone, Warnings: &record.Warnings{}}
		q := url.Values{}
		if ep.Sort != "" {
			q = url.Values{"sort": {ep.Sort}, "dir": {"ASC"}}
		}
		o := &paging.Offset{Reader: &paging.Reader{Lister: st.pbx.client, Endpoint: &ep, Query: q, Concurrency: 1,
			MaxPages: a.cfg.MaxPages, Counters: &paging.Counters{}, Log: a.log, Rows: conv.Rows}, PageSize: a.cfg.PageSize, Zone: a.cfg.Timezone}
		_, err := o.Whole(ctx, func(rows []record.Row) error {
			for _, r := range rows {
				v := fmt.Sprint(r.Values[col])
				c, ok := pseudonym.Canonical(v)
				if t := strings.TrimSpace(v); !ok || len(c) <= 6 || strings.HasPrefix(t, "+") || strings.HasPrefix(t, "00") {
					continue
				}
				if len(long) == 0 {
					first = strings.ReplaceAll(r.Key, "\t", ",")
				}
				long[c] = true
			}
			return nil
		})
		if err != nil {
			return nil, "", fmt.Errorf("reading %s (%s) for its extensions: %w", ep.Name, ep.Path, err)
		}
	}
	return long, first, nil
}
