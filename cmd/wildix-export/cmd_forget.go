package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/wildix-export/wildix-export/config"
	"github.com/wildix-export/wildix-export/exporter"
	"github.com/wildix-export/wildix-export/exporter/record"
	"github.com/wildix-export/wildix-export/internal/pseudonym"
	"github.com/wildix-export/wildix-export/sinks"
	"github.com/wildix-export/wildix-export/sinks/recstore"
)

// Erasure on request (issue 30; README, Erasure): find every trace of one
// phone number in the sink, erase it, and keep the number in the sink's
// suppression list so that no later export writes it again. The number is
// never printed or logged: output says "the number".

// forgetter is what forget needs of a sink; sinks.Postgres and sinks.CSV
// have it.
type forgetter interface {
	Suppression(ctx context.Context) (*sinks.Suppression, error)
	Suppress(ctx context.Context, f *sinks.Forgotten, pk *pseudonym.Keyed) (string, bool, error)
	CheckSuppressionReadOnly(ctx context.Context) error
	UnrecordedAdds(ctx context.Context) (int, error)
	ForgetFind(ctx context.Context, f *sinks.Forgotten, endpoints []record.Endpoint) (*sinks.ForgetFound, error)
	ForgetErase(ctx context.Context, pbx string, f *sinks.Forgotten, endpoints []record.Endpoint) (*sinks.ForgetFound, error)
	RecordForget(ctx context.Context, r *exporter.RunResult, b sinks.ForgetBegun, next *sinks.ForgetBegun) error
	ForgetJournal(ctx context.Context) ([]sinks.ForgetBegun, error)
	BeginForget(ctx context.Context, b sinks.ForgetBegun) error
	ForgetRemoving(ctx context.Context, id, store, file string) error
	ForgetScope(ctx context.Context) (*sinks.ForgetScope, error)
	ForgetExtensions(ctx context.Context, f *sinks.Forgotten) ([]sinks.ForgetExtension, error)
	LockPBXes(ctx context.Context, pbxes []string) (unlock func(), err error)
}

// forgetLockTimeout bounds forget's taking of the PBXes' locks (a
// connection from the pool, then the try-locks): a database that does not
// answer fails forget rather than hang a cron.
const forgetLockTimeout = time.Minute

// recordingRemover finds and removes a stored recording (recstore.Dir
// and S3).
type recordingRemover interface {
	Stat(ctx context.Context, name string) (recstore.Object, error)
	Remove(ctx context.Context, name string) error
}

const pbxStillHolds = `The PBX keeps its own copy: its call history, and any recording it still holds, name the
number, and the export reads them again (and writes them erased) for as long as they are
there. To erase them at the source, delete them on the PBX, or ask the PBX's administrator,
your Wildix partner or Wildix support to.`

// forgetHelp is what `wildix-export forget --help` says above the flags.
const forgetHelp = `Erase one phone number everywhere the sink holds it, on a person's request (GDPR
erasure): every table (typed columns, raw, extra, the quarantine, the ledger's
errors, the states) or every CSV file, and the recordings stored of calls with it.
Rows stay, so counts of calls stay right: the number, and the name beside it,
become "erased"; a recording's file is removed and its row marked erased. The
number is kept only as a keyed hash in the sink's suppression list, which every
later export, look-back and backfill applies, so records still on the PBX never
bring it back. Nothing prints the number. --dry-run reports what would be
erased and changes nothing; it fails (exit 1) as the erasure would when a
numeric column holds the number, which cannot hold "erased", and exits 2, as
the erasure would, when the suppression list was lost or restored from an
older copy. Running it again
finds nothing. Killed or failed midway, run it again with the same number,
searched the same way or more widely (the same --number form, at least its keys,
--national-forms if it had it), with
any PBX's configuration of the sink: it completes the erasure, and its ledger
entry counts the rows the first attempt erased too; a recording's file it
removed (the journal says which, and from which store) is taken as removed
when run again against the same store, and refused (exit 2, naming
--missing-recordings-ok) against another. Every PBX's rows of the
sink are erased. A number that is a colleague's extension (the colleagues the
sink holds), as given or in a national form, is refused unless --allow-extension.

In a pseudonymised sink forget needs every key the rows were written under:
EXPORT_PSEUDONYM_KEY (the current one) and, after a key change or for another
PBX of the sink under its own key, each other one with --previous-key-file; it
refuses (exit 2) without one. The suppression list keeps the number under each
of them, and under a random key of its own when a PBX of the sink writes in
clear (by its stored rule; with none in clear, EXPORT_PSEUDONYM_KEY must be
set, and a WILDIX_PBX_ID that is none of the sink's PBXes is refused unless
--new-pbx-in-clear says it is a new PBX writing in clear), so that each PBX's export applies it under the key it writes with. It holds every
PBX's export lock of the sink while it works. Given with its country code
(+39…, 0039…), the number is found in its international forms and, in clear,
its national ones (without the country code; with the trunk prefix, 0 in most
countries) where written without + or 00: written so, the same digits are
another country's number (+352 8512784 beside Italy's 352 8512784). A national
form stored pseudonymised is found only with --national-forms, except in a
row that holds the number itself, where it is erased with it. Without + or 00
the number is refused (exit 2): a national number so given would be read as
another country's; --as-written searches the digits exactly as the rows write
them, without + or 00, reading no country code into them (never the number
written internationally with the same digits; in a pseudonymised sink its
pseudonym, which keeps no +, is that number's too). --as-written is refused
with a number beginning with + or 00, and with --national-forms.

A PostgreSQL sink receives the number in the values of forget's queries
(never in their text): where the server logs statements with their values
(log_min_duration_statement, log_statement), forget turns that off for its
own session (log_parameter_max_length = 0), and a role not allowed to is
refused (exit 2) before the number is sent, naming what to grant.`

// cmdForget is the forget command: its flags, then, in this order, every
// check that can refuse before anything is changed or locked (the number,
// the settings, the keys: forgetTarget; a mistyped folder or schema, an
// empty sink: needExportFolder, forgetScope; a colleague's extension:
// forgetExtension; a schema a dry run would have to migrate:
// migrateForForget), then, unless dry, every PBX's lock and the scope
// read again under them (lockForget), then app.forget. It stays one
// function (about 60 lines): that order is what keeps a refusal from
// changing anything, and one body shows it.
func cmdForget(ctx context.Context, a *app, args []string) error {
	fset := a.flags("forget", "--number NUMBER [--as-written] [--dry-run] [--previous-key-file FILE]… [--allow-empty] [--allow-extension] [--new-pbx-in-clear]", forgetHelp)
	number := fset.String("number", "", "the phone number, in international form: a + or 00 and the country code (in brackets or not), then the number; spaces, dashes, dots, slashes and brackets allowed")
	dry := fset.Bool("dry-run", false, "report what would be erased; change nothing")
	asWritten := fset.Bool("as-written", false, "--number is given without + or 00 exactly as the rows write it: searched only where written so, no country code read into it (neither the number written internationally with the same digits, another country's, nor national forms); refused with a --number beginning with + or 00, and with --national-forms. Without it, a number without + or 00 is refused, as a national number (3528512784) would be read as another country's")
	nationalForms := fset.Bool("national-forms", false, "in a pseudonymised sink, also erase the pseudonyms of the number's national forms; a national form's pseudonym is also the pseudonym of another country's number with the same digits (Italy's 352 8512784 and Luxembourg's +352 8512784), which is erased too: check with --dry-run first")
	missingOK := fset.Bool("missing-recordings-ok", false, "mark erased the rows of recordings listed as stored but not found in the store: only when the store setting is right and the files are already gone otherwise than by an interrupted forget of the number from this store (running that again completes it without this flag)")
	allowExtension := fset.Bool("allow-extension", false, "erase the number also where it is a colleague's extension on the PBX (the colleagues the sink holds): without it, such a number is refused, as forget would erase the colleague's extension from every call with them")
	allowEmpty := fset.Bool("allow-empty", false, "forget in a sink that holds no export yet (before the first export); without it, such a sink is taken for a mistyped EXPORT_CSV_DIR or EXPORT_DB_SCHEMA and refused. A CSV folder holding data files whose state is lost is refused with it too")
	newInClear := fset.Bool("new-pbx-in-clear", false, "WILDIX_PBX_ID is a new PBX, none of the sink's yet, that will write in clear (EXPORT_PSEUDONYM_KEY not set): the suppression list then keeps the number under a random key of its own too, stored beside it in clear. Without it, forget without EXPORT_PSEUDONYM_KEY under a WILDIX_PBX_ID that is none of a sink pseudonymised whole is refused, as a mistyped id would be; refused with EXPORT_PSEUDONYM_KEY set")
	var previous keyFiles
	fset.Var(&previous, "previous-key-file", "a file holding an earlier EXPORT_PSEUDONYM_KEY that rows of the sink were written under (after a key change); repeat for each")
	if err := parse(fset, args); err != nil {
		return err
	}
	if fset.NArg() > 0 {
		return fmt.Errorf("%w: forget takes no argument (%d given): give the number with --number", errUsage, fset.NArg())
	}
	if *number == "" {
		fset.Usage()
		return fmt.Errorf("%w: --number is required: the number in international form, a + and the country code, then the number", errUsage)
	}
	if err := a.load(config.Need{Sink: true}); err != nil {
		return err
	}
	if a.cfg.PBXID == "" {
		return fmt.Errorf("%w: WILDIX_PBX_URL (or WILDIX_PBX_ID) is not set: set it as for the export; forget records the erasure in its run ledger", errUsage)
	}
	f, pk, keys, err := a.forgetTarget(*number, previous, *nationalForms, *asWritten)
	if err != nil {
		return err
	}
	if *newInClear && pk != nil {
		return fmt.Errorf("%w: --new-pbx-in-clear is for a PBX writing in clear, and EXPORT_PSEUDONYM_KEY is set: remove the flag, or unset the key if PBX %s writes in clear", errUsage, a.cfg.PBXID)
	}
	if err := a.needExportFolder(*allowEmpty); err != nil {
		return err
	}
	cat, err := a.catalog()
	if err != nil {
		return err
	}
	s, err := a.openSink(ctx)
	if err != nil {
		return err
	}
	defer s.close()
	fg, scope, err := a.forgetScope(ctx, s, pk, keys, *allowEmpty)
	if err != nil {
		return err
	}
	if err := a.forgetExtension(ctx, fg, f, *allowExtension); err != nil {
		return err
	}
	if err := migrateForForget(ctx, s, cat, *dry); err != nil {
		return err
	}
	if !*dry {
		unlock, err := a.lockForget(ctx, fg, scope, pk, keys)
		if err != nil {
			return err
		}
		defer unlock()
	}
	search := forgetSearch(f, *nationalForms, append([]*pseudonym.Keyed{pk}, keys...))
	return a.forget(ctx, s, fg, f, pk, cat.All(), forgetOptions{dry: *dry, missingOK: *missingOK, search: search, newInClear: *newInClear})
}

// forgetSearch says in words how f is searched: in which forms, with
// which pseudonym keys (nil ones skipped), whether with --national-forms.
// A forget completes an interrupted or failed one of the same number
// only when it searches the same way or more widely
// (sinks.ForgetBegun.SameErasure, which reads these words).
func forgetSearch(f *sinks.Forgotten, nationalForms bool, keys []*pseudonym.Keyed) string {
	var ids []string
	for _, k := range keys {
		if k != nil {
			ids = append(ids, k.KeyID())
		}
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	var w []string
	if f.National() {
		w = append(w, "--number with + or 00 (national forms in clear too)")
	} else {
		w = append(w, "--number without + or 00 (as written only)")
	}
	if len(ids) == 0 {
		return strings.Join(append(w, "no pseudonym key"), ", ")
	}
	if nationalForms && f.National() {
		w = append(w, "--national-forms")
	}
	return strings.Join(append(w, "pseudonym key(s) "+strings.Join(ids, " ")), ", ")
}

// forgetTarget is the number forget looks for, with the pseudonym keys
// the sink's rows may be written under (the current one, nil when not
// set, and --previous-key-file's); it says on stdout in which forms the
// number is searched. A number without + or 00 is refused (exit 2)
// unless asWritten: a national number as a person writes it
// (3648191602) would otherwise be read as beginning with its country
// code (+36, Hungary), erase nothing of the person and put another
// country's number on the suppression list for good (attack5 F4).
func (a *app) forgetTarget(number string, previous keyFiles, nationalForms, asWritten bool) (*sinks.Forgotten, *pseudonym.Keyed, []*pseudonym.Keyed, error) {
	pk, err := a.pseudonymKey()
	if err != nil {
		return nil, nil, nil, err
	}
	keys, err := previous.keys()
	if err != nil {
		return nil, nil, nil, err
	}
	f, err := sinks.NewForgotten(number, append([]*pseudonym.Keyed{pk}, keys...)...)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%w: --number %s: %v", errUsage, describeValue(number), err)
	}
	if !f.National() && !asWritten {
		return nil, nil, nil, fmt.Errorf("%w: --number %s has no + or 00 before its digits: forget cannot tell a national number (as a person writes it, read so it would be another country's) from one beginning with its country code. Give it in international form, + and the country code, then the number (+39… for an Italian number): that form is also found where the rows write it with its country code but without + or 00 (39…). Only for digits the rows write with no country code at all (a national number as stored), add --as-written: they are then searched only as written, never written internationally (+…, 00…). Nothing was changed",
			errUsage, describeValue(number))
	}
	if asWritten && f.National() {
		return nil, nil, nil, fmt.Errorf("%w: --as-written takes --number exactly as the rows write it, without + or 00, and --number %s begins with + or 00: drop --as-written (a number with + or 00 is searched in its international forms and, in clear, its national ones), or give the digits as the rows write them, without + or 00. Nothing was changed",
			errUsage, describeValue(number))
	}
	if asWritten && nationalForms {
		return nil, nil, nil, fmt.Errorf("%w: --national-forms searches the pseudonyms of the national forms of a number given with its country code (+ or 00), and --as-written reads no country code into --number %s: drop --national-forms to search the digits as written, or drop --as-written and give the number with + and its country code. Nothing was changed",
			errUsage, describeValue(number))
	}
	if !f.National() {
		fmt.Fprintln(a.stdout, "Note: --as-written: --number is searched exactly as written, where the rows write it without + or 00: no country code is read into it, so neither a number written internationally with the same digits (another country's) nor national forms are searched. If it is a person's number with a country code, run forget with its international form (+ and the country code), which finds it written without + too.")
		fmt.Fprintln(a.stdout, "Note: --as-written: the suppression list keeps the digits as a number's, so later exports also erase the same digits written internationally (another country's number); the rows stored are erased as said above.")
		if pk != nil || len(keys) > 0 {
			fmt.Fprintln(a.stdout, "Note: --as-written in a pseudonymised sink: a pseudonym keeps no +, so the pseudonym of these digits is also that of the same digits written internationally (another country's number), which is erased too: check the dry run's counts.")
		}
		return f, pk, keys, nil
	}
	fmt.Fprintln(a.stdout, "Searching the number in its international forms and, in clear, in its national ones (without the country code; with the trunk prefix, 0 in most countries) where written without + or 00.")
	if nationalForms {
		if f.AddNationalPseudonyms(append([]*pseudonym.Keyed{pk}, keys...)...) > 0 {
			fmt.Fprintln(a.stdout, "--national-forms: also searching the pseudonyms of its national forms. Such a pseudonym is also that of another country's number with the same digits written internationally, which is erased too: check the dry run's counts.")
		}
	} else if pk != nil {
		fmt.Fprintln(a.stdout, "Note: a national form stored pseudonymised is searched only in rows holding the number itself (elsewhere its pseudonym may be another country's number's); add --national-forms to search it too, knowing that risk.")
	}
	return f, pk, keys, nil
}

// needExportFolder refuses, unless allowEmpty, a CSV folder that holds no
// export: a mistyped EXPORT_CSV_DIR is seen before opening the sink
// creates it.
func (a *app) needExportFolder(allowEmpty bool) error {
	if a.cfg.Sink == "postgres" {
		return nil
	}
	if _, err := os.Stat(filepath.Join(a.cfg.CSVDir, ".state")); err != nil {
		// Data files and no state: the state was lost, not the first
		// export, --allow-empty or not (review 20, R20-2).
		one, derr := sinks.CSVDataFile(a.cfg.CSVDir)
		if derr != nil {
			return derr
		}
		if one != "" {
			return fmt.Errorf("%w: EXPORT_CSV_DIR=%s holds data files (%s) but no .state: its state was lost; restore .state from a backup taken with the data (with none, run an export under the rule the rows were written under first: it stores the state again; README, Erasure). Forget needs it: without it, the keys the rows were pseudonymised under and the suppression list are not known. Nothing was changed", errUsage, a.cfg.CSVDir, one)
		}
		if allowEmpty {
			return nil
		}
		return fmt.Errorf("%w: EXPORT_CSV_DIR=%s holds no export (no .state folder): check the setting, it must be the export's folder; to forget a number before the first export, add --allow-empty", errUsage, a.cfg.CSVDir)
	}
	return nil
}

// forgetScope is what forget needs of s, and what s holds: it refuses a
// sink that cannot erase, one that holds no export (unless allowEmpty),
// and one pseudonymised under a key not given.
func (a *app) forgetScope(ctx context.Context, s *sink, pk *pseudonym.Keyed, keys []*pseudonym.Keyed, allowEmpty bool) (forgetter, *sinks.ForgetScope, error) {
	fg, ok := s.Sink.(forgetter)
	if !ok {
		return nil, nil, fmt.Errorf("the %s sink cannot erase", s.name)
	}
	scope, err := fg.ForgetScope(ctx)
	if err != nil {
		return nil, nil, err
	}
	if err := a.lostState(scope); err != nil {
		return nil, nil, err
	}
	if scope.Empty() && !allowEmpty {
		setting := "EXPORT_CSV_DIR=" + a.cfg.CSVDir
		if s.pg != nil {
			setting = "EXPORT_DB_SCHEMA=" + a.cfg.DBSchema
		}
		return nil, nil, fmt.Errorf("%w: %s holds no export (no PBX's state or run): check %s, it must be where the export writes; to forget a number before the first export, add --allow-empty", errUsage, s.name, setting)
	}
	if err := needKeys(scope, pk, keys); err != nil {
		return nil, nil, err
	}
	return fg, scope, nil
}

// lostState refuses (exit 2) a CSV folder holding data files of a PBX
// whose state is lost (.state/<pbx> gone, another PBX's state kept): the
// PBX's keys and rule are not known, and forget would report its rows
// erased while they hold the number's pseudonym (review 20, R20-2). It
// names each such PBX, judged by its own state (sinks.CSVStateLost:
// review 26, R26-3), and only those.
func (a *app) lostState(scope *sinks.ForgetScope) error {
	if len(scope.Lost) == 0 {
		return nil
	}
	var each []string
	for _, l := range scope.Lost {
		each = append(each, fmt.Sprintf("PBX %s (%s)", l.PBX, l.File))
	}
	return fmt.Errorf("%w: EXPORT_CSV_DIR=%s holds data files of %s but no state of it under .state (no cursor state: a run ledger or a record of the rule left alone does not count, when a data file's manifest is missing too): its state was lost; restore .state from a backup taken with the data (with none, run that PBX's export under the rule its rows were written under first: it stores the state again; README, Erasure). Forget needs it: without it, the keys its rows were pseudonymised under are not known. Nothing was changed",
		errUsage, a.cfg.CSVDir, strings.Join(each, ", "))
}

// forgetExtension refuses (exit 2), unless allow, a number that is, as
// given or in a national form forget searches too, a colleague's
// extension (review L6): forget finds a form in clear wherever it stands
// alone, so it would erase the colleague's extension from every call with
// them and from the colleague's entry, which a data-protection officer
// erasing an external caller does not mean. Only the colleagues the sink
// holds are known (the colleagues endpoint): without them forget cannot
// tell. Allowed, it says so.
func (a *app) forgetExtension(ctx context.Context, fg forgetter, f *sinks.Forgotten, allow bool) error {
	exts, err := fg.ForgetExtensions(ctx, f)
	if err != nil || len(exts) == 0 {
		return err
	}
	var pbxes []string
	national := false
	for _, e := range exts {
		pbxes = append(pbxes, e.PBX)
		national = national || e.National
	}
	what := "--number is"
	if national {
		what = "--number without its country code (a national form, which forget searches too) is"
	}
	if allow {
		fmt.Fprintf(a.stdout, "--allow-extension: %s the extension of a colleague of PBX %s: erased too, wherever it stands alone.\n", what, strings.Join(pbxes, ", "))
		return nil
	}
	how := "If it is an external caller's number, the rows cannot tell it from the colleague's: erase the colleague's extension with it only if you mean to"
	if national {
		how = "forget cannot search the number written with its country code while leaving its national form, which is that extension (--as-written searches only the digits as given, without + or 00, and would leave the number written internationally, +… or 00…, in the rows): to erase the person's number, the extension standing alone goes with it"
	}
	return fmt.Errorf("%w: %s the extension of a colleague of PBX %s (the sink's colleagues): forget would erase that extension from every call with the colleague and from the colleague's entry. %s; to erase it everywhere anyway, add --allow-extension (check with --dry-run first). Nothing was changed",
		errUsage, what, strings.Join(pbxes, ", "), how)
}

// migrateForForget brings a PostgreSQL sink's schema up to date, or, for
// a dry run, which changes nothing, the schema included, refuses one that
// lacks a migration.
func migrateForForget(ctx context.Context, s *sink, cat *record.Catalog, dry bool) error {
	if s.pg == nil {
		return nil
	}
	if !dry {
		return s.pg.Migrate(ctx, cat.All())
	}
	n, err := s.pg.PendingMigrations(ctx)
	if err != nil {
		return err
	}
	if n > 0 {
		return fmt.Errorf("%s lacks %d migration(s) of this version, and --dry-run changes nothing: run an export (or forget without --dry-run) first", s.name, n)
	}
	return nil
}

// lockForget takes the export lock of every PBX of the sink, and of this
// one: forget erases every PBX's rows, so no export of any of them may
// write the number while it works (a dry run reads only, and takes no
// lock: on the CSV sink a lock is a file). It reads the scope again under
// the locks, so that an export that finished a forced key change, or a
// PBX's first export, between the first reading and the locks is seen
// (review 30-fixes 3).
func (a *app) lockForget(ctx context.Context, fg forgetter, scope *sinks.ForgetScope, pk *pseudonym.Keyed, keys []*pseudonym.Keyed) (unlock func(), err error) {
	pbxes := scope.PBXes
	if !slices.Contains(pbxes, a.cfg.PBXID) {
		pbxes = append(slices.Clone(pbxes), a.cfg.PBXID)
	}
	lctx, cancel := context.WithTimeout(ctx, forgetLockTimeout)
	unlock, err = fg.LockPBXes(lctx, pbxes)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("lock the export of each of the sink's %d PBXes (forget erases every PBX's rows), within %v: %w", len(pbxes), forgetLockTimeout, err)
	}
	if scope, err = fg.ForgetScope(ctx); err == nil {
		err = a.lostState(scope)
	}
	if err == nil {
		err = needKeys(scope, pk, keys)
	}
	if err == nil {
		if extra := slices.DeleteFunc(slices.Clone(scope.PBXes), func(p string) bool { return slices.Contains(pbxes, p) }); len(extra) > 0 {
			err = fmt.Errorf("%w: PBX %s began exporting into the sink while forget took the locks: run forget again", sinks.ErrLocked, strings.Join(extra, ", "))
		}
	}
	if err != nil {
		unlock()
		return nil, err
	}
	return unlock, nil
}

// forgetOptions are forget's flags that change what it does.
type forgetOptions struct {
	dry        bool   // report only
	newInClear bool   // --new-pbx-in-clear: this PBX, none of the sink's, joins writing in clear
	missingOK  bool   // recordings listed but not in the store are taken as gone
	search     string // how the number is searched (forgetSearch)
}

// needKeys refuses (exit 2) a pseudonymised sink when a key its rows were
// written under is not given: the number's pseudonym under it could not
// be found, and forget would report the number gone while it stays. A key
// the suppression list keeps its numbers under and not given is refused
// by forgetFind (Suppression.CanAdd), once the schema is migrated.
func needKeys(scope *sinks.ForgetScope, pk *pseudonym.Keyed, previous []*pseudonym.Keyed) error {
	if len(scope.KeyIDs) == 0 {
		return nil
	}
	have := map[string]bool{}
	for _, k := range append([]*pseudonym.Keyed{pk}, previous...) {
		if k != nil {
			have[k.KeyID()] = true
		}
	}
	var missing []string
	for _, id := range scope.KeyIDs {
		if !have[id] {
			missing = append(missing, id)
		}
	}
	given := "is not set"
	if pk != nil {
		given = "is key " + pk.KeyID()
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: the sink's rows were written pseudonymised under key(s) %s, and forget lacks %s (EXPORT_PSEUDONYM_KEY %s): set EXPORT_PSEUDONYM_KEY (or _FILE) to the export's current key, and give each other key (an earlier one, another PBX's) with --previous-key-file FILE; without a key, the rows written under it are not found (README, Erasure)",
			errUsage, strings.Join(scope.KeyIDs, ", "), strings.Join(missing, ", "), given)
	}
	return nil
}

// listUnder tells f under which keys the suppression list keeps it
// (sinks.Forgotten.ListUnder; attack 9, F4: kept under this PBX's key
// only, every run of a PBX writing under another key, or in clear, into
// the same sink was refused for good): each key the sink's rows are
// written under, EXPORT_PSEUDONYM_KEY when set (under rule none too: the
// list is then made with it, not testable by whoever reads it), and the
// list's own random key when a PBX of the sink writes in clear
// (listClear), so that each PBX's run applies it under the key it writes
// with.
func (a *app) listUnder(ctx context.Context, fg forgetter, f *sinks.Forgotten, pk *pseudonym.Keyed, newInClear bool) error {
	scope, err := fg.ForgetScope(ctx)
	if err != nil {
		return err
	}
	clear, joining, err := a.listClear(ctx, fg, scope, pk, newInClear)
	if err != nil {
		return err
	}
	if joining {
		fmt.Fprintf(a.stdout, "Note: PBX %s has no rows in the sink yet and EXPORT_PSEUDONYM_KEY is not set: it is taken as writing in clear, and the suppression list keeps the number under a random key of its own too, stored beside it (anyone who can read the list can test a number against it; README, Erasure).\n", a.cfg.PBXID)
	}
	ids := slices.Clone(scope.KeyIDs)
	if pk != nil {
		ids = append(ids, pk.KeyID())
	}
	f.ListUnder(ids, clear)
	return nil
}

// listClear reports whether a PBX of the sink writes in clear, so that
// the suppression list must keep its numbers under a random key of its
// own too, stored beside it in clear (anyone who can read the list can
// then test a number against it). Each PBX with rows in the sink is
// judged by its stored rule only: rule none (whether its runs set a key
// is not known: they apply that key's section when the list has a whole
// one, else the random key's), or no rule stored (not known, taken as in
// clear); never by forget's own configuration (review 44, R44-2: forget
// run without EXPORT_PSEUDONYM_KEY on a sink pseudonymised whole kept a
// random key in clear beside the list, and the forgotten numbers could be
// found by trying candidates). Forget's own PBX (WILDIX_PBX_ID), while it
// is none of the sink's PBXes (no state nor run of it), is a PBX about to
// join, in clear when forget has no key (joining says so), only when
// newInClear (--new-pbx-in-clear) says so or the sink has no PBX yet:
// else a mistyped WILDIX_PBX_ID, or an administrator's configuration of
// its own without the key, kept a random key in clear beside a list
// pseudonymised whole (review 46, R46-2).
// Forget without EXPORT_PSEUDONYM_KEY on a sink none of whose PBXes
// writes in clear is refused (exit 2) before anything changes: forget
// asks it under the locks, before adding to the list (a dry run does
// not: reading the rules of a CSV folder stores what its manifests say,
// and a dry run writes nothing). A sink
// with no PBX yet (forget --allow-empty) takes the random key when forget
// has none, as a sink in clear only.
func (a *app) listClear(ctx context.Context, fg forgetter, scope *sinks.ForgetScope, pk *pseudonym.Keyed, newInClear bool) (clear, joining bool, err error) {
	store, ok := fg.(privacyStore)
	if !ok {
		return pk == nil, false, nil
	}
	for _, pbx := range scope.PBXes {
		was, found, err := store.PrivacyRule(ctx, pbx)
		if err != nil {
			return false, false, err
		}
		clear = clear || !found || was.KeyID == ""
	}
	if pk == nil && !slices.Contains(scope.PBXes, a.cfg.PBXID) {
		if !clear && !newInClear && !scope.Empty() {
			return false, false, fmt.Errorf("%w: WILDIX_PBX_ID=%s is none of the sink's PBXes (%s), every one of which writes its rows pseudonymised (under key(s) %s), and EXPORT_PSEUDONYM_KEY is not set: check WILDIX_PBX_ID (set it to one of the sink's PBXes, and EXPORT_PSEUDONYM_KEY (or _FILE) to its current key, each other key with --previous-key-file FILE); only if PBX %s really is new and will write in clear, run forget again with --new-pbx-in-clear: the suppression list then keeps the number under a random key stored beside it in clear too, with which anyone who can read the list can test numbers against it (README, Erasure). Nothing was changed",
				errUsage, a.cfg.PBXID, strings.Join(scope.PBXes, ", "), strings.Join(scope.KeyIDs, ", "), a.cfg.PBXID)
		}
		joining, clear = true, true
	}
	if pk == nil && !clear {
		return false, false, fmt.Errorf("%w: every PBX of the sink (%s) writes its rows pseudonymised (under key(s) %s), and EXPORT_PSEUDONYM_KEY is not set: set EXPORT_PSEUDONYM_KEY (or _FILE) to the export's current key, and give each other key with --previous-key-file FILE; the suppression list keeps the number under the keys the PBXes write under, and without EXPORT_PSEUDONYM_KEY forget would keep it under a random key stored beside the list in clear, with which anyone who can read the list could test numbers against it (README, Erasure). Nothing was changed",
			errUsage, strings.Join(scope.PBXes, ", "), strings.Join(scope.KeyIDs, ", "))
	}
	return clear, joining, nil
}

// keyFiles is --previous-key-file, repeated: files each holding an
// earlier pseudonym key (trailing line ends trimmed, as for
// EXPORT_PSEUDONYM_KEY_FILE).
type keyFiles []string

func (k *keyFiles) String() string     { return strings.Join(*k, ",") }
func (k *keyFiles) Set(v string) error { *k = append(*k, v); return nil }

func (k keyFiles) keys() ([]*pseudonym.Keyed, error) {
	var out []*pseudonym.Keyed
	for _, path := range k {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("%w: --previous-key-file %s: %v", errUsage, path, err)
		}
		key, err := pseudonym.New([]byte(strings.TrimRight(string(b), "\r\n")))
		if err != nil {
			return nil, fmt.Errorf("%w: --previous-key-file %s: %v", errUsage, path, err)
		}
		out = append(out, key)
	}
	return out, nil
}

// forget finds, reports and (unless dry) erases f, under the PBX's lock.
// Its seven parameters are what cmdForget resolved before taking the lock
// (the sink and its forgetter, the number, its key, the endpoints and the
// flags), each used once in the steps here; a struct would be built for
// this one call. It runs past 60 lines as one sequence of steps whose
// order is what makes a kill at any point recoverable (find, the
// recordings present, the keys the list keeps the number under, the list
// and the journal, the files, the rows, the ledger): one body shows it.
func (a *app) forget(ctx context.Context, s *sink, fg forgetter, f *sinks.Forgotten, pk *pseudonym.Keyed, endpoints []record.Endpoint, opt forgetOptions) error {
	w := a.stdout
	found, err := a.forgetFind(ctx, s, fg, f, pk, endpoints)
	if err != nil {
		return err
	}
	if opt.dry {
		return a.forgetDry(ctx, fg, found)
	}
	started := time.Now().UTC()
	var store recordingRemover
	var files storedFiles
	if len(found.Recordings) > 0 {
		if store, err = a.recordingRemover(ctx); err != nil {
			return err
		}
		before, err := removedBefore(ctx, fg, f, pk, opt.search, storeIdentity(a.cfg))
		if err != nil {
			return err
		}
		if files, err = a.presentRecordings(ctx, store, found.Recordings, before, opt.missingOK); err != nil {
			return err
		}
	}
	// The list first: from here on no export writes the number, so what
	// is erased below stays erased even when a step fails and is redone.
	b := sinks.ForgetBegun{ID: exporter.NewRunID(started), PBX: a.cfg.PBXID, Started: started, Search: opt.search,
		Rows: found.Rows(), Recordings: len(found.Recordings)}
	narrower := func(search string) (*sinks.ForgetFound, error) { return fg.ForgetFind(ctx, f.As(search), endpoints) }
	if err := a.listUnder(ctx, fg, f, pk, opt.newInClear); err != nil {
		return err
	}
	b, begun, added, err := a.suppressForget(ctx, fg, f, pk, b, narrower)
	if err != nil {
		return err
	}
	// The files before the rows: a row erased no longer says which file
	// was the number's.
	removed, err := a.removeRecordings(ctx, fg, store, begun.ID, b.Tag, files)
	if err != nil {
		return err
	}
	if err := a.keyRecordings(ctx, s, fg, f, pk); err != nil {
		return err
	}
	done, err := fg.ForgetErase(ctx, a.cfg.PBXID, f, endpoints)
	if done != nil {
		printFound(w, "erased", done)
	}
	if lerr := a.forgetLedger(ctx, fg, forgetRecord{b: b, begun: begun, found: found, done: done, files: len(files.present), gone: len(files.gone), counted: files.counted, removed: removed, added: added}, err); lerr != nil {
		err = errors.Join(err, fmt.Errorf("record the erasure in the run ledger: %w", lerr))
	}
	if err != nil {
		return err
	}
	fmt.Fprintln(w, "Searched again: the number is nowhere in the sink.")
	if st := a.cfg.RecordingsStore; st != "" && st != config.StoreNone {
		fmt.Fprintln(w, unnamedRecordings)
	}
	fmt.Fprintln(w, pbxStillHolds)
	a.log.Info("number erased", "rows", done.Rows(), "recordings_removed", len(files.present))
	return nil
}

// unnamedRecordings is what forget cannot find in a recordings store:
// the files no row names yet.
const unnamedRecordings = `Recording files that a failed or stopped recordings run stored before writing their rows
are named by no row, so forget cannot find them: the next run that lists their recordings
removes them once proven theirs (sha256); 'wildix-export check' lists the files no row names
(README, Erasure).`

// forgetDry ends a dry run: it says an interrupted erasure, and gives
// the exit code the erasure would end with. It checks the suppression
// list as the erasure does before adding the number (Suppress), reading
// only (review 21, R21-2: the check writes its mark of the manifests
// read, so the dry run made none, and said nothing of a list lost or
// restored from an older copy, which refuses the erasure, exit 2).
func (a *app) forgetDry(ctx context.Context, fg forgetter, found *sinks.ForgetFound) error {
	if err := a.sayInterrupted(ctx, fg); err != nil {
		return err
	}
	if err := fg.CheckSuppressionReadOnly(ctx); err != nil {
		// A refusal (a lost or older list, a damaged list or stamp) is
		// the erasure's too; any other error (the database gone, a
		// read failing, Ctrl-C) only stopped the check (review 30, R30-2).
		if errors.Is(err, record.ErrConfig) {
			return fmt.Errorf("dry run: nothing was changed; the erasure itself would be refused, before it changes anything: %w", err)
		}
		return fmt.Errorf("dry run: nothing was changed; checking the suppression list: %w", err)
	}
	fmt.Fprintln(a.stdout, "Dry run: nothing was changed, and the number was not added to the suppression list.")
	// What the erasure cannot erase (a numeric column holding the
	// number) fails it after every other row is erased: said now,
	// with the exit code the erasure would end with.
	return found.DryRunError()
}

// keyRecordings gives f the key of each PBX's recordings' ids, as the
// PBX's next run takes it, so that a recording's row keyed before ids
// were keyed gets the "k-" key that run computes, not a second row
// (sinks/forget_recordings.go). It takes it as that run's start does
// (SuppressionKey, which may carry it over or make it, as that start
// would), with the options that start would give: the PBX's stored rule,
// EXPORT_PSEUDONYM_KEY, no change. A PBX pseudonymised under another key
// than EXPORT_PSEUDONYM_KEY is left out (its start would have that key),
// as is one whose key cannot be opened or that has none: its rows get a
// key tied to nothing, as before, and its next run's row is a second
// one, erased too (README, Erasure).
func (a *app) keyRecordings(ctx context.Context, s *sink, fg forgetter, f *sinks.Forgotten, pk *pseudonym.Keyed) error {
	sk, ok := s.Sink.(suppressionKeyed)
	store, ruled := s.Sink.(privacyStore)
	if !ok || !ruled {
		return nil
	}
	scope, err := fg.ForgetScope(ctx)
	if err != nil {
		return err
	}
	keys := map[string]*pseudonym.Keyed{}
	for _, pbx := range scope.PBXes {
		was, found, err := store.PrivacyRule(ctx, pbx)
		if err != nil {
			return err
		}
		if was.KeyID != "" && (pk == nil || was.KeyID != pk.KeyID()) {
			continue
		}
		o := sinks.IDKeyOptions{PBX: pbx, Pseudonymize: was.KeyID != "", Key: secretBytes(a.cfg.PseudonymKey), Ruled: found, WrittenUnder: was.KeyID, CarryOnly: true}
		if k, err := sk.SuppressionKey(ctx, o); err == nil && k != nil {
			keys[pbx] = k
		}
	}
	f.KeyRecordingsWith(keys)
	return nil
}

// forgetFind checks that the suppression list's keys are given (pk or
// f's: forget adds the number under each), then finds f in
// the sink and says where. Its six parameters are forget's own, passed on
// as they are (a struct would exist for this one call).
func (a *app) forgetFind(ctx context.Context, s *sink, fg forgetter, f *sinks.Forgotten, pk *pseudonym.Keyed, endpoints []record.Endpoint) (*sinks.ForgetFound, error) {
	list, err := fg.Suppression(ctx)
	if err != nil {
		return nil, err
	}
	if err := list.CanAdd(f, pk); err != nil {
		return nil, fmt.Errorf("%w: %v", errUsage, err)
	}
	fmt.Fprintf(a.stdout, "Searching %s for the number.\n", s.name)
	found, err := fg.ForgetFind(ctx, f, endpoints)
	if err != nil {
		return nil, err
	}
	printFound(a.stdout, "found", found)
	if len(found.Recordings) > 0 {
		fmt.Fprintf(a.stdout, "found: %d stored recording file(s) of calls with the number\n", len(found.Recordings))
	}
	return found, nil
}

// removeRecordings removes from store the number's recording files
// present there, of the listed ones found, and says how many. Just
// before each removal it writes the file's tag (sinks.ForgetFileTag of
// the erasure's tag, the store's identity and the name) in the journal's
// entry id, the erasure's (attack5 F1): a forget killed after removing
// it is completed by running it again against the same store, no flag
// needed. It returns the tags of the files this erasure removed: now,
// and before (files.gone).
// Its six parameters stay apart: the forgetter journals, the store
// removes, and the entry's id and tag with the files found are what the
// journal's marks are made of; a struct would only carry them here.
func (a *app) removeRecordings(ctx context.Context, fg forgetter, store recordingRemover, id, tag string, files storedFiles) ([]string, error) {
	where := storeIdentity(a.cfg)
	removed := slices.Clone(files.gone)
	for _, name := range files.present {
		file := sinks.ForgetFileTag(tag, where, name)
		if err := fg.ForgetRemoving(ctx, id, where, file); err != nil {
			return nil, fmt.Errorf("remove a recording of the number: %w; nothing else was erased yet: run forget again", err)
		}
		if err := store.Remove(ctx, name); err != nil {
			return nil, fmt.Errorf("remove a recording of the number: %w; nothing else was erased yet: run forget again", err)
		}
		removed = append(removed, file)
		a.log.Debug("recording file of the number removed", "files", len(removed)-len(files.gone))
	}
	if n := len(files.present); n > 0 {
		fmt.Fprintf(a.stdout, "removed: %d recording file(s)\n", n)
	}
	if n := len(files.gone); n > 0 {
		fmt.Fprintf(a.stdout, "not in the store, removed from it by the interrupted forget of the number: %d recording file(s)\n", n)
	}
	if n := files.missing; n > 0 {
		fmt.Fprintf(a.stdout, "not in the store, taken as removed already (--missing-recordings-ok): %d recording file(s)\n", n)
	}
	return removed, nil
}

func printFound(w io.Writer, what string, found *sinks.ForgetFound) {
	if len(found.Places) == 0 {
		fmt.Fprintf(w, "%s: no row mentions the number\n", what)
		return
	}
	for _, p := range found.Places {
		fmt.Fprintf(w, "%s: %s, %d row(s)\n", what, p.Name, p.Rows)
	}
}

// suppressForget adds f to the sink's suppression list, then writes this
// forget, b (its id, start, search and what it found), its tag and
// whether it added the number set here, in the sink's forget journal
// (beginForget), both before any row changes. It returns this forget's
// entry, the journal's entry the ledger entry completes, and whether the
// number was added. narrower finds f searched as an earlier entry did
// (beginForget).
//
// Its six parameters are one step's: the sink, the number and its key,
// this forget's entry, and the search of an earlier one; a struct would
// carry them here only.
func (a *app) suppressForget(ctx context.Context, fg forgetter, f *sinks.Forgotten, pk *pseudonym.Keyed, b sinks.ForgetBegun, narrower func(search string) (*sinks.ForgetFound, error)) (_, begun sinks.ForgetBegun, added bool, err error) {
	was, err := fg.Suppression(ctx)
	if err != nil {
		return b, b, false, err
	}
	h, added, err := fg.Suppress(ctx, f, pk)
	if err != nil {
		return b, b, false, err
	}
	if added {
		fmt.Fprintln(a.stdout, "Added to the suppression list: later exports, look-backs and backfills write the number erased.")
	} else if added, err = a.unrecordedAdd(ctx, fg, was); err != nil {
		return b, b, false, err
	}
	b.Tag, b.Added = sinks.ForgetTag(h), added
	begun, err = a.beginForget(ctx, fg, b, narrower)
	return b, begun, added, err
}

// unrecordedAdd says whether a forget of a number listed already records
// the addition in its ledger entry, and says so: when the list holds more
// numbers than the run ledger records forgets adding one, a forget was
// stopped between adding its number and recording its erasure (attack 9,
// F1: its rows kept the number, a rerun said "already in the list" and
// recorded nothing, and the list lost later went unseen, every erasure
// undone by the next backfill). Recording it makes the ledger count the
// list's numbers again (CheckSuppression); the rows are searched and
// erased as always. The forget journal's entries that added their number
// are not counted: the forget completing each records its addition
// (ForgetBegun.Added), and counted here too the ledger would record more
// additions than the list holds numbers, a list refused as lost.
//
// The list as it was before (was) tells whether the number, listed
// already, was added under a key the list did not keep it under (review
// 46, R46-10: "Already in the suppression list." was all forget said).
func (a *app) unrecordedAdd(ctx context.Context, fg forgetter, was *sinks.Suppression) (bool, error) {
	un, err := fg.UnrecordedAdds(ctx)
	if err != nil {
		return false, err
	}
	now, err := fg.Suppression(ctx)
	if err != nil {
		return false, err
	}
	already := "Already in the suppression list"
	if grew := slices.DeleteFunc(now.KeyIDs(), func(id string) bool { return slices.Contains(was.KeyIDs(), id) }); len(grew) > 0 {
		already = fmt.Sprintf("Added to the suppression list under key(s) %s, new in it (it kept the number under its other keys already)", strings.Join(grew, ", "))
	}
	journal, err := fg.ForgetJournal(ctx)
	if err != nil {
		return false, err
	}
	for _, j := range journal {
		if j.Added {
			un--
		}
	}
	if un <= 0 {
		fmt.Fprintln(a.stdout, already+".")
		return false, nil
	}
	fmt.Fprintf(a.stdout, already+"; the list holds %d number(s) more than the run ledger records forgets adding one: a forget was stopped before recording its erasure; this one searches and erases the number's rows and records the addition.\n", un)
	return true, nil
}

// sayInterrupted says, for a dry run, which forgets were interrupted
// (the sink's forget journal): their numbers, this one or others, may
// still be in the sink.
func (a *app) sayInterrupted(ctx context.Context, fg forgetter) error {
	journal, err := fg.ForgetJournal(ctx)
	if err != nil {
		return err
	}
	for _, j := range journal {
		fmt.Fprintf(a.stdout, "Note: a forget begun %s was interrupted or failed before it completed: its number (this one or another) may still be in the sink; run forget again with it, searching as it did (%s).\n", j.Started.Format(time.RFC3339), cmp.Or(j.Search, "the same way"))
	}
	return nil
}

// beginForget writes b, this forget's entry, in the sink's forget
// journal before anything but the suppression list is changed, and
// returns the entry its ledger entry completes: the earliest one it
// completes (SameErasure: the same number searched the same way), left by
// a forget killed midway or failed, else b. An entry of the number
// searched otherwise is refused (exit 2): this forget would not find
// what that one searched, nor count right what it erased; it is named,
// with how to complete it. It says which other numbers' erasures were
// not completed: they may still be in the sink. An entry searched more
// narrowly than b is widened to b's search (widen) and written so.
func (a *app) beginForget(ctx context.Context, fg forgetter, b sinks.ForgetBegun, narrower func(search string) (*sinks.ForgetFound, error)) (sinks.ForgetBegun, error) {
	journal, err := fg.ForgetJournal(ctx)
	if err != nil {
		return b, err
	}
	begun := b
	for _, j := range journal {
		switch {
		case j.SameErasure(b) && begun.ID == b.ID:
			begun = j
			fmt.Fprintf(a.stdout, "Completing the erasure of the number begun %s and not completed (interrupted, or failed): it found %d row(s) and %d recording file(s); its ledger entry counts them.\n",
				j.Started.Format(time.RFC3339), j.Rows, j.Recordings)
			if begun, err = widen(j, b, narrower); err != nil {
				return b, err
			}
		case j.SameErasure(b):
			// a later entry of the same erasure (RecordForget's next,
			// written beside it): completed with it
		case j.Tag == b.Tag:
			return b, fmt.Errorf("%w: a forget of this number begun %s, searching %s, was interrupted or failed, and this one searches %s: run forget again searching as that one did or more widely (the same --number form, at least its keys, --national-forms if it had it) to complete it first; searching otherwise, it would not find what that one searched, nor count right what it erased; nothing was erased yet",
				errUsage, j.Started.Format(time.RFC3339), j.Search, b.Search)
		default:
			fmt.Fprintf(a.stdout, "Note: a forget of another number, begun %s, was interrupted or failed before it completed: that number may still be in the sink; run forget again with it.\n",
				j.Started.Format(time.RFC3339))
		}
	}
	write := b
	if begun.ID != b.ID && begun.Search != "" && begun.Search != b.Search {
		write = begun // widened: replaces the entry of its id
	}
	if err := fg.BeginForget(ctx, write); err != nil {
		return b, fmt.Errorf("%w; nothing was erased yet: run forget again", err)
	}
	return begun, nil
}

// widen returns j, an entry b completes (SameErasure), as the entry of b's
// search when b searches more widely (more keys, --national-forms): what
// the earlier attempt erased of its rows (those it found that its search,
// narrower, no longer finds) with what b found, and the same for
// recording files (review 10, R10-3: j was kept as it was, so a wider
// forget killed midway left its erasure described by the narrower search,
// and the forget completing it counted only that). j of an earlier
// version (no search) and j of b's search are returned as they are.
func widen(j, b sinks.ForgetBegun, narrower func(search string) (*sinks.ForgetFound, error)) (sinks.ForgetBegun, error) {
	if j.Search == "" || j.Search == b.Search {
		return j, nil
	}
	left, err := narrower(j.Search)
	if err != nil {
		return j, err
	}
	w := j
	w.Search = b.Search
	w.Rows = max(0, j.Rows-left.Rows()) + b.Rows
	w.Recordings = max(0, j.Recordings-len(left.Recordings)) + b.Recordings
	return w, nil
}

// forgetRecord is what forgetLedger records: the erasure's facts, each
// from a different step of forget.
type forgetRecord struct {
	b, begun    sinks.ForgetBegun // this forget's journal entry; the one it completes (beginForget)
	found, done *sinks.ForgetFound
	files       int      // recording files this run removed
	gone        int      // listed, not in the store, removed from it by an interrupted attempt (removedBefore)
	counted     int      // of gone, those a failed attempt's ledger entry counted already
	removed     []string // the tags of the files removed, by this run and before (removeRecordings)
	added       bool     // this run added the number to the suppression list
}

// forgetLedger records the erasure in the run ledger, mode forget: when,
// how many rows per place and files, never the number. fr.begun is the
// journal's entry it completes (beginForget): an earlier attempt's, when
// one was interrupted or failed, whose id, PBX and start the entry takes,
// and whose rows no longer found by this run it counts as erased by it
// (attack4 F8); then the notes say so. A failed erasure (failed not nil)
// records its counts as failed and leaves in the journal, under a new id,
// an entry of what is left to erase, for the forget that completes it
// (review 6, R6-3: the entry was dropped, and the completing forget
// counted nothing of the earlier attempts).
func (a *app) forgetLedger(ctx context.Context, fg forgetter, fr forgetRecord, failed error) error {
	begun, found, done := fr.begun, fr.found, fr.done
	r := &exporter.RunResult{ID: begun.ID, Mode: "forget", PBX: begun.PBX, Started: begun.Started}
	e := exporter.EndpointResult{Endpoint: "forget", Err: failed}
	if done != nil {
		e.Rows = done.Rows()
		for _, p := range done.Places {
			e.Notes = append(e.Notes, fmt.Sprintf("%s: %d row(s) erased", p.Name, p.Rows))
		}
	}
	if begun.PBX != a.cfg.PBXID {
		e.Notes = append(e.Notes, fmt.Sprintf("completed by a forget run with the configuration of PBX %s (forget erases every PBX's rows)", a.cfg.PBXID))
	}
	now := found.Rows()
	if done != nil && failed == nil {
		now = done.Rows()
	}
	earlierFiles := 0
	if interrupted := found.Rows() < begun.Rows || len(found.Recordings) < begun.Recordings || fr.gone > 0; interrupted || begun.Added && !fr.added {
		// Against what this run erased, not what it found: a file whose
		// edit the killed attempt had decided (its pending record
		// written) is found holding the number, then completed by the
		// recovery before this run erases, so its rows are the earlier
		// attempt's (TestForgetKilledMidwayCountsAll, seed
		// 1796650825932971342).
		earlierRows := max(0, begun.Rows-now)
		earlierFiles = max(0, begun.Recordings-len(found.Recordings)) + fr.gone - fr.counted
		e.Rows += earlierRows
		e.Notes = append(e.Notes, fmt.Sprintf("completes an erasure begun %s and interrupted or failed: it found %d row(s) and %d recording file(s); %d row(s) and %d file(s) of them were erased by it, the rest by this run",
			begun.Started.Format(time.RFC3339), begun.Rows, begun.Recordings, earlierRows, earlierFiles))
	}
	e.Notes = append(e.Notes, fmt.Sprintf("recording files removed: %d", fr.files+earlierFiles))
	if fr.added || begun.Added {
		e.Notes = append(e.Notes, sinks.NoteSuppressed)
	}
	r.Endpoints = []exporter.EndpointResult{e}
	r.Ended, r.Status = time.Now().UTC(), "ok"
	var next *sinks.ForgetBegun
	if failed != nil {
		r.Status = "failed"
		// What this run found and did not erase is left: counted by the
		// forget that completes the erasure, against what it finds then.
		var erased int64
		if done != nil {
			erased = done.Rows()
		}
		// Continues: on the CSV sink next is written before this ledger
		// entry, and a kill between them leaves next's files counted by
		// none (review 18, R18-1).
		next = &sinks.ForgetBegun{ID: exporter.NewRunID(r.Ended), PBX: begun.PBX, Started: begun.Started, Tag: fr.b.Tag, Search: fr.b.Search,
			Rows: max(0, found.Rows()-erased), Recordings: max(0, len(found.Recordings)-fr.files-fr.gone), Continues: r.ID}
		if len(fr.removed) > 0 {
			// Each counted by now: by this entry, or by the failed
			// attempt's before it (its Counted).
			next.Store, next.Removed, next.Counted = storeIdentity(a.cfg), fr.removed, fr.removed
		}
	}
	return fg.RecordForget(ctx, r, fr.b, next)
}

// recordingRemover opens the recordings store for removing files; an
// error when none is configured (the files would stay).
func (a *app) recordingRemover(ctx context.Context) (recordingRemover, error) {
	if !a.cfg.RecordingsOn() {
		return nil, fmt.Errorf("%w: recordings of calls with the number are stored, but EXPORT_RECORDINGS_STORE is not set: set it as for the export, so that forget can remove them, and run forget again", errUsage)
	}
	st, _, err := a.recordingsStore(ctx)
	if err != nil {
		return nil, err
	}
	rm, ok := st.(recordingRemover)
	if !ok {
		return nil, fmt.Errorf("the recordings store cannot remove files")
	}
	return rm, nil
}

// storedFiles are the recording files of the number the rows list as
// stored, as the store holds them (presentRecordings).
type storedFiles struct {
	present []string // in the store: to remove
	gone    []string // not in it, removed from it by an interrupted forget of this erasure: their tags
	counted int      // of gone, those a failed forget's ledger entry counted (erasureRemoved.counted)
	missing int      // not in it otherwise (--missing-recordings-ok)
}

// erasureRemoved is what the journal says an interrupted or failed
// forget of this erasure removed (removedBefore).
type erasureRemoved struct {
	tag     string          // the erasure's (sinks.ForgetTag), "" when none began
	store   string          // this run's store (storeIdentity)
	files   map[string]bool // tags of the files removed from this store
	counted map[string]bool // of files, those a failed forget's ledger entry counted (sinks.ForgetBegun.Counted)
	others  []string        // the other stores it removed files from
}

// removedBefore reads, in the journal's entries of this erasure (the same
// number searched the same way or more widely than they did), the files
// they removed (sinks.ForgetBegun.Removed, each written just before its
// removal) from store, this run's recordings store, and the other stores
// they removed files from. Only those files, and only in that store, are
// taken as removed (attack5 F1; review 10, R10-1: the tags of every file
// found, written before any removal, made a re-run pointed at another
// store take them all as removed and erase their rows, the files left in
// the real store named by no row). Its six parameters are forget's own,
// each read once here.
func removedBefore(ctx context.Context, fg forgetter, f *sinks.Forgotten, pk *pseudonym.Keyed, search, store string) (erasureRemoved, error) {
	er := erasureRemoved{store: store, files: map[string]bool{}, counted: map[string]bool{}}
	list, err := fg.Suppression(ctx)
	if err != nil {
		return er, err
	}
	if er.tag, err = list.ForgetTagOf(f, pk); err != nil || er.tag == "" {
		return er, err
	}
	journal, err := fg.ForgetJournal(ctx)
	if err != nil {
		return er, err
	}
	for _, j := range journal {
		if !j.SameErasure(sinks.ForgetBegun{Tag: er.tag, Search: search}) || len(j.Removed) == 0 {
			continue
		}
		if j.Store != store {
			er.others = append(er.others, j.Store)
			continue
		}
		for _, t := range j.Removed {
			er.files[t] = true
		}
		for _, t := range j.Counted {
			er.counted[t] = true
		}
	}
	return er, nil
}

// presentRecordings sorts the names rows list as stored by whether the
// store holds them. One not there is an error, nothing changed yet,
// unless before says an interrupted forget of this erasure removed it
// from this store (removedBefore), or missingOK: a store setting that
// names another folder or bucket would otherwise have forget mark the
// rows erased and leave the real files behind, named by no row, for ever.
func (a *app) presentRecordings(ctx context.Context, store recordingRemover, names []string, before erasureRemoved, missingOK bool) (storedFiles, error) {
	var sf storedFiles
	for _, name := range names {
		_, err := store.Stat(ctx, name)
		file := sinks.ForgetFileTag(before.tag, before.store, name)
		switch {
		case errors.Is(err, fs.ErrNotExist) && before.tag != "" && before.files[file]:
			sf.gone = append(sf.gone, file)
			if before.counted[file] {
				sf.counted++
			}
		case errors.Is(err, fs.ErrNotExist):
			sf.missing++
		case err != nil:
			return sf, fmt.Errorf("look for a recording of the number in the store: %w; nothing was erased", err)
		default:
			sf.present = append(sf.present, name)
		}
	}
	if missing := sf.missing; missing > 0 && !missingOK {
		where := "EXPORT_RECORDINGS_DIR=" + a.cfg.RecordingsDir
		if a.cfg.RecordingsStore == "s3" {
			where = fmt.Sprintf("EXPORT_RECORDINGS_S3_BUCKET=%s, EXPORT_RECORDINGS_S3_PREFIX=%s", a.cfg.S3Bucket, a.cfg.S3Prefix)
		}
		other := ""
		if len(before.others) > 0 {
			other = fmt.Sprintf(" An interrupted forget of this number removed files from another store (%s), this run's being %s: point EXPORT_RECORDINGS_* at that store and run forget again, which completes it.", strings.Join(slices.Compact(slices.Sorted(slices.Values(before.others))), "; "), before.store)
		}
		return sf, fmt.Errorf("%w: %d of the %d recording file(s) of the number the rows list as stored are not in the store (%s); nothing was erased: check the setting, it must be the export's store (with another one the files would stay, named by no row).%s If it is right and the files are gone already, removed otherwise than by an interrupted forget of the number from this store (which running forget again completes without a flag), run forget again with --missing-recordings-ok",
			errUsage, missing, len(names), where, other)
	}
	return sf, nil
}

// pseudonymKey is the pseudonym key (EXPORT_PSEUDONYM_KEY), nil when not
// set.
func (a *app) pseudonymKey() (*pseudonym.Keyed, error) {
	k, err := a.cfg.Pseudonyms()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errUsage, err)
	}
	return k, nil
}

// suppression is the sink's suppression list as the exporter's guard
// applies it (privacy.Suppressor): read again at the start of each run,
// under the PBX's lock, so that a worker applies what forget added since
// its last run. Safe for concurrent use.
type suppression struct {
	p atomic.Pointer[sinks.Suppressor]
}

// Apply implements privacy.Suppressor.
func (s *suppression) Apply(ep *record.Endpoint, row *record.Row) int {
	return s.p.Load().Apply(ep, row)
}

// Len is the number of numbers suppressed: with none, the guard copies
// no row for the list.
func (s *suppression) Len() int { return s.p.Load().Len() }

// loadSuppression reads the sink's suppression list into st's guard. A
// list that cannot be read with the configured key stops the run (exit
// 2): exporting without it would bring forgotten numbers back.
func (a *app) loadSuppression(ctx context.Context, st *started) error {
	if st.suppress == nil {
		return nil
	}
	fg, ok := st.sink.Sink.(forgetter)
	if !ok {
		return nil
	}
	l, err := fg.Suppression(ctx)
	if err != nil {
		return err
	}
	pk, err := a.pseudonymKey()
	if err != nil {
		return err
	}
	sup, err := l.Suppressor(pk)
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	st.suppress.p.Store(sup)
	if sup.Len() > 0 {
		a.log.Debug("suppression list read", "numbers", sup.Len())
	}
	return nil
}

// describeValue describes a --number value that is not a number without
// repeating it (it may be one, mistyped): its length, and the first
// character a phone number does not have.
func describeValue(s string) string {
	for i, r := range s {
		if !(r >= '0' && r <= '9' || strings.ContainsRune("+ -./()\u00a0", r)) {
			return fmt.Sprintf("(%d characters; character %d is %q)", utf8.RuneCountInString(s), utf8.RuneCountInString(s[:i])+1, r)
		}
	}
	return fmt.Sprintf("(%d characters)", utf8.RuneCountInString(s))
}

// forgetsOpen are the sink's forget journal's entries: erasures begun and
// not completed (killed or failed), whose numbers may still be in the
// sink. s nil (check of a CSV folder): the folder's, opened only when it
// holds an export (.state), so that nothing is created.
func (a *app) forgetsOpen(ctx context.Context, s *sink) ([]sinks.ForgetBegun, error) {
	if s == nil {
		if _, err := os.Stat(filepath.Join(a.cfg.CSVDir, ".state")); err != nil {
			return nil, nil
		}
		var err error
		if s, err = a.openSink(ctx); err != nil {
			return nil, err
		}
		defer s.close()
	}
	j, ok := s.Sink.(interface {
		ForgetJournal(context.Context) ([]sinks.ForgetBegun, error)
	})
	if !ok {
		return nil, nil
	}
	return j.ForgetJournal(ctx)
}

// forgetOpenTodo is what to do about an open entry (forgetsOpen).
const forgetOpenTodo = "its number (never named) may still be in the sink: run forget again with that number, searching as it did or more widely, to complete it"

// warnForgetsOpen logs a warning for each erasure not completed
// (forgetsOpen) at a run's start, naming its id and start, never its
// number (attack5 F1: a run said nothing of an interrupted erasure).
func (a *app) warnForgetsOpen(ctx context.Context, s *sink) {
	open, err := a.forgetsOpen(ctx, s)
	if err != nil {
		a.log.Warn("read the forget journal", "err", err)
		return
	}
	for _, j := range open {
		a.log.Warn("forget not completed", "forget_id", j.ID, "forget_started", j.Started, "search", j.Search, "todo", forgetOpenTodo)
	}
}

// checkForgets is check's warning (WARN, not a failure) for each erasure
// not completed (forgetsOpen).
func (a *app) checkForgets(ctx context.Context, c *checkLines, s *sink) {
	open, err := a.forgetsOpen(ctx, s)
	if err != nil {
		c.warn("forget", fmt.Sprintf("the forget journal cannot be read: %v", err))
		return
	}
	for _, j := range open {
		c.warn("forget", fmt.Sprintf("the erasure %s begun %s, searching %s, was interrupted or failed: %s", j.ID, j.Started.Format(time.RFC3339), cmp.Or(j.Search, "the same way"), forgetOpenTodo))
	}
}
