package sinks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/wildix-export/wildix-export/internal/pseudonym"
	"github.com/wildix-export/wildix-export/internal/safefile"
)

// The record of the keys of recordings' ids (idkey.go) is a record of
// its own, apart from the suppression list that held them before (review
// 6, R6-4: a list lost lost them, and every recording stored under a
// keyed id was copied again; R5-8: an earlier release rewriting the list
// dropped them, not knowing the field). PostgreSQL keeps it in a row of
// export_state of its own (pbx '', key idKeysKey); a CSV folder in
// .state/.idkeys.json, replaced atomically and synced as the list is.
//
// Moving the keys out of a list that holds them is safe for a run killed
// at any point. PostgreSQL writes the record and the list, stripped of
// the keys and marked (Suppression.IDKeysApart), in one transaction. A
// CSV folder writes the record first, then the list, each by an atomic
// replace: killed between, the record holds every key and the list still
// holds them too; the next start takes the record, adds to it any PBX's
// key only the list holds (an earlier release's), and strips the list
// again. The mark (on a list there is: none is made to carry it) says,
// once the record exists, that a record missing was lost: no PBX then takes a key of before keys were kept by PBX
// (NoLegacy), and one holding recordings under a keyed id is refused
// rather than given a new key (idMaterial).

// idKeyFormat is the format of the record this release writes: one that
// reads a later format refuses it rather than rewrite it without what it
// does not know (a downgrade is not supported: README, Privacy).
const idKeyFormat = 1

// idKeysKey is the export_state key of PostgreSQL's record (pbx ”).
const idKeysKey = "recordings id keys"

// idKeyMark is the key of the mark of the key a PBX took from the record
// (its id), kept apart from the record and the list, in the PBX's own
// namespace: PostgreSQL's export_state row pbx <pbx> key idKeyMark
// (which PrivacyRule and anyState do not count as the PBX's state: a
// first run that never committed would then be checked against rule
// none); a CSV folder's .state/<pbx>/.idkey.json (a dot file, which no
// state reader takes). It outlives the record when every row or file
// of no PBX is lost (the list's, the record's: deleted, or a restore
// leaving them out) while the PBX's rule stays: the PBX then never takes
// a key of before keys were kept by PBX (the pseudonym key itself, for a
// pseudonymised PBX), which would name its recordings anew, and is
// refused instead when it holds recordings under a keyed id
// (idMaterial). PostgreSQL kept the marks in rows pbx ” (key idKeyMark+"
// "+<pbx>) before, lost with the record (review 9, R9-2: a pseudonymised
// PBX took its pseudonym key and copied every k- recording again): such
// a mark is still read when the PBX has none of its own, and the start
// then writes the PBX's own.
const idKeyMark = "recordings id key"

// idKeyMarked is a mark's content.
type idKeyMarked struct {
	ID string `json:"id"`
}

// idKeyRecord is a sink's record of the keys of recordings' ids.
type idKeyRecord struct {
	// Format is the record's format (idKeyFormat); 0 for none stored.
	Format int `json:"format"`
	// Keys are the keys by PBX id.
	Keys map[string]*PBXKey `json:"keys,omitempty"`
	// SchemaKey and SchemaKeySealed are the schema's one key of before
	// keys were kept by PBX (in clear; sealed with a pseudonym key), as
	// the suppression list held them (Suppression.IDKey, IDKeySealed):
	// kept for the PBXes that named recordings with it.
	SchemaKey       []byte     `json:"schema_key,omitempty"`
	SchemaKeySealed *SealedKey `json:"schema_key_sealed,omitempty"`
	// NoLegacy says that no PBX of the sink named recordings before keys
	// were kept by PBX (the record was made on a sink holding no PBX's
	// state and no key of then, or made again after it was lost): a PBX
	// without a key takes a new one, never a key of then (review 7, R7-2,
	// R7-3: a PBX whose first run had no recordings store took the list's
	// own key, kept in clear, or the pseudonym key).
	NoLegacy bool `json:"no_legacy,omitempty"`

	hadKey    bool                             // the PBX's state marks a key taken from the record (idKeyMark)
	list      *Suppression                     // whose own key a PBX of before may have used
	where     string                           // where the record is kept, for messages
	newExport string                           // the sink's NewExportAdvice, for messages
	keyedRows func(pbx string) (string, error) // a recording of pbx under a keyed id, "" for none
	// keyedSample reads some of pbx's recordings' rows under a keyed id,
	// to prove a key of before keys were kept (provenLegacy).
	keyedSample func(pbx string) ([]keyedRow, error)
}

// decodeIDKeys reads a record kept at where.
func decodeIDKeys(b []byte, where string) (*idKeyRecord, error) {
	var r idKeyRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%w: the record of the keys of recordings' ids (%s) is damaged (%v): restore it from the backup taken with the data; a new key would copy every recording stored under a keyed id (k-…) again",
			ErrRecordingsKey, where, err)
	}
	if r.Format > idKeyFormat {
		return nil, fmt.Errorf("%w: the record of the keys of recordings' ids (%s) is of format %d, written by a later release of wildix-export, and this one reads format %d: run that release or a later one (going back to an earlier release is not supported: README, Privacy)",
			ErrRecordingsKey, where, r.Format, idKeyFormat)
	}
	return &r, nil
}

// adoptIDKeys makes rec (nil: none stored) the record of list l's sink:
// a new one when none is stored (NoLegacy when the list says one was
// lost, or when the sink holds no PBX's state nor key of before), with
// every key l holds that rec lacks moved into it. It reports whether l
// changed (stripped of its keys, marked), to be written after the
// record, and whether rec gained a key from l.
func adoptIDKeys(rec *idKeyRecord, l *Suppression, anyState bool, where string) (*idKeyRecord, bool, bool) {
	if rec == nil || rec.Format == 0 {
		rec = &idKeyRecord{Format: idKeyFormat}
		rec.NoLegacy = l.IDKeysApart || !anyState && l.IDKey == nil && l.IDKeySealed == nil && len(l.IDKeys) == 0
	}
	rec.list, rec.where = l, where
	changed := !l.IDKeysApart || l.IDKey != nil || l.IDKeySealed != nil || len(l.IDKeys) > 0
	gained := false
	for pbx, k := range l.IDKeys {
		if rec.Keys[pbx] == nil {
			if rec.Keys == nil {
				rec.Keys = map[string]*PBXKey{}
			}
			rec.Keys[pbx], gained = k, true
		}
	}
	if rec.SchemaKey == nil && l.IDKey != nil {
		rec.SchemaKey, gained = l.IDKey, true
	}
	if rec.SchemaKeySealed == nil && l.IDKeySealed != nil {
		rec.SchemaKeySealed, gained = l.IDKeySealed, true
	}
	l.IDKeys, l.IDKey, l.IDKeySealed, l.IDKeysApart = nil, nil, nil, true
	if l.Numbers == nil {
		l.Numbers = []SuppressedNumber{}
	}
	return rec, changed, gained
}

// SuppressionKey returns the key of the ids of recordings that cannot be
// stored under their PBX id (exporter.Exporter.RecordingsKey; idkey.go),
// kept in the schema's record of those keys, and keeps it as o's rule
// wants (sealed, or in clear), in one transaction that also moves into
// the record any key the suppression list still holds: an error wrapping
// ErrRecordingsKey when it is sealed with a key o lacks, or lost while
// the schema holds recordings named with it; ErrSuppressionKey when it is
// a list's made with another pseudonym key.
func (p *Postgres) SuppressionKey(ctx context.Context, o IDKeyOptions) (*pseudonym.Keyed, error) {
	const what = "keep the key of recordings' ids"
	tx, err := p.pool.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, dbError(err))
	}
	defer tx.Rollback(ctx)
	st, err := p.readIDKeys(ctx, tx, o.PBX)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	st.rec.keyedRows = func(pbx string) (string, error) { return p.keyedRecording(ctx, tx, pbx) }
	st.rec.keyedSample = func(pbx string) ([]keyedRow, error) { return p.keyedSample(ctx, tx, pbx) }
	k, changed, err := st.rec.recordingsKey(o)
	if err != nil {
		return nil, err
	}
	marking := st.mark.ID != k.KeyID()
	if !changed && !st.made && !st.listChanged && !marking {
		return k, nil
	}
	upsert := "INSERT INTO " + p.ident("export_state") + ` (pbx, key, state) VALUES ($1, $2, $3)
ON CONFLICT (pbx, key) DO UPDATE SET state = EXCLUDED.state, updated_at = now()`
	rb, _ := json.Marshal(st.rec)
	mb, _ := json.Marshal(idKeyMarked{ID: k.KeyID()})
	lb, _ := json.Marshal(st.list)
	for _, w := range []struct {
		do  bool
		key string
		b   []byte
		pbx string
	}{{changed || st.made || st.gained, idKeysKey, rb, suppressionPBX}, {marking, idKeyMark, mb, o.PBX}, {st.listChanged, suppressionKey, lb, suppressionPBX}} {
		if !w.do {
			continue
		}
		if _, err := tx.Exec(ctx, upsert, w.pbx, w.key, w.b); err != nil {
			return nil, fmt.Errorf("%s: %w", what, dbError(err))
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("%s: %w", what, dbError(err))
	}
	return k, nil
}

// idKeyStart is what a start reads to find a PBX's key: the suppression
// list, the record made ready for it (adoptIDKeys: made, when none was
// stored; the list changed, when it held keys or was not marked), and
// the PBX's mark (idKeyMark).
type idKeyStart struct {
	list              *Suppression
	rec               *idKeyRecord
	mark              idKeyMarked
	made, listChanged bool
	gained            bool   // the record gained a key from the list
	witness           string // the key id of the folder's witness of the PBX's key (CSV: idkey_witness.go)
}

// newIDKeyStart is the start of a record read (nil: none stored) at
// where, with list l and the PBX's mark.
func newIDKeyStart(l *Suppression, rec *idKeyRecord, anyState bool, where string, mark idKeyMarked) *idKeyStart {
	listed := l != nil
	if !listed {
		l = &Suppression{}
	}
	st := &idKeyStart{list: l, mark: mark, made: rec == nil || rec.Format == 0}
	st.rec, st.listChanged, st.gained = adoptIDKeys(rec, l, anyState, where)
	st.listChanged = st.listChanged && listed // no list is made to be marked
	st.rec.hadKey = mark.ID != ""
	return st
}

// readIDKeys reads, in tx, the schema's record of keys (its row made
// when missing, '{}' until written, and locked: one PBX's start at a
// time moves and changes the keys), its list (locked, as Suppress locks
// it, when there is one: nil when none) and pbx's mark.
func (p *Postgres) readIDKeys(ctx context.Context, tx pgx.Tx, pbx string) (*idKeyStart, error) {
	table := p.ident("export_state")
	var lb, rb []byte
	if _, err := tx.Exec(ctx, "INSERT INTO "+table+" (pbx, key, state) VALUES ($1, $2, '{}') ON CONFLICT DO NOTHING", suppressionPBX, idKeysKey); err != nil {
		return nil, dbError(err)
	}
	if err := tx.QueryRow(ctx, "SELECT state FROM "+table+" WHERE pbx = $1 AND key = $2 FOR UPDATE", suppressionPBX, idKeysKey).Scan(&rb); err != nil {
		return nil, dbError(err)
	}
	var l *Suppression
	err := tx.QueryRow(ctx, "SELECT state FROM "+table+" WHERE pbx = $1 AND key = $2 FOR UPDATE", suppressionPBX, suppressionKey).Scan(&lb)
	switch {
	case err == nil:
		if l, err = decodeSuppression(lb); err != nil {
			return nil, err
		}
	case !errors.Is(err, pgx.ErrNoRows):
		return nil, dbError(err)
	}
	where := fmt.Sprintf("%s, row pbx '' key '%s'", table, idKeysKey)
	rec, err := decodeIDKeys(rb, where)
	if err != nil {
		return nil, err
	}
	anyState := true
	if rec.Format == 0 {
		if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM "+table+" WHERE pbx <> $1 AND key <> $2)", suppressionPBX, idKeyMark).Scan(&anyState); err != nil {
			return nil, dbError(err)
		}
	}
	// The PBX's own mark (st.mark: the start writes it when missing);
	// else one an earlier release kept in a row pbx '', which says as
	// much that the PBX took a key from the record (hadKey).
	var mark, before idKeyMarked
	for _, m := range []struct {
		pbx, key string
		into     *idKeyMarked
	}{{pbx, idKeyMark, &mark}, {suppressionPBX, idKeyMark + " " + pbx, &before}} {
		if err := tx.QueryRow(ctx, "SELECT state FROM "+table+" WHERE pbx = $1 AND key = $2", m.pbx, m.key).Scan(m.into); err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return nil, dbError(err)
		}
	}
	st := newIDKeyStart(l, rec, anyState, where, mark)
	st.rec.hadKey = st.rec.hadKey || before.ID != ""
	st.rec.newExport = p.NewExportAdvice()
	return st, nil
}

// keyedRecording returns a recording of pbx the schema stores under a
// keyed id (its table and key), "" when none (or no recordings table).
func (p *Postgres) keyedRecording(ctx context.Context, q pgx.Tx, pbx string) (string, error) {
	var key string
	err := q.QueryRow(ctx, "SELECT recording FROM "+p.ident("recordings")+" WHERE pbx = $1 AND recording LIKE 'k-%' LIMIT 1", pbx).Scan(&key)
	var pe *pgconn.PgError
	switch {
	case errors.Is(err, pgx.ErrNoRows), errors.As(err, &pe) && pe.Code == "42P01":
		return "", nil
	case err != nil:
		return "", dbError(err)
	}
	return fmt.Sprintf("table %s, recording %s", p.ident("recordings"), key), nil
}

// idKeysFile is where the CSV sink keeps the record: in the state folder,
// beside the suppression list.
func (s *CSV) idKeysFile() string {
	return filepath.Join(s.opt.Dir, ".state", ".idkeys.json")
}

// SuppressionKey is Postgres.SuppressionKey for the folder: under the
// suppression list's lock, the record is replaced atomically, then the
// list stripped of the keys it held (package comment above).
func (s *CSV) SuppressionKey(ctx context.Context, o IDKeyOptions) (_ *pseudonym.Keyed, err error) {
	const what = "keep the key of recordings' ids"
	defer func() { err = s.advise(err) }()
	dir, err := s.mkdir(".state")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	// The record's own lock; the list's too when there is a list (to be
	// stripped), as Suppress takes it: no list is made to be marked.
	locks := []string{".idkeys.lock"}
	if _, err := os.Stat(s.suppressionFile()); err == nil {
		locks = append(locks, ".suppressed.lock")
	}
	for _, name := range locks {
		lock := safefile.NewLock(filepath.Join(dir, name), fileMode)
		if err := lock.Wait(ctx, 100*time.Millisecond); err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		defer lock.Unlock()
	}
	st, err := s.readIDKeys(ctx, o.PBX, len(locks) > 1)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	st.rec.keyedRows = s.keyedRecording
	st.rec.keyedSample = s.keyedSample
	k, changed, err := st.rec.recordingsKey(o)
	if err != nil {
		return nil, err
	}
	// The record first, then the list stripped: each state between
	// holds every key (package comment).
	if changed || st.made || st.gained {
		b, _ := json.Marshal(st.rec)
		if err := safefile.Write(s.idKeysFile(), b, fileMode); err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
	}
	if st.listChanged {
		b, _ := json.Marshal(st.list)
		if err := safefile.Write(s.suppressionFile(), b, fileMode); err != nil {
			return nil, fmt.Errorf("%s: move them out of the suppression list: %w", what, err)
		}
	}
	if st.mark.ID != k.KeyID() {
		dir, err := s.mkStateDir(o.PBX)
		if err == nil {
			b, _ := json.Marshal(idKeyMarked{ID: k.KeyID()})
			err = safefile.Write(s.idKeyMarkFile(o.PBX), b, fileMode)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: mark it in %s: %w", what, dir, err)
		}
	}
	if err := s.witnessIDKey(o, k.KeyID(), st.witness); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return k, nil
}

// idKeyMarkFile is the CSV sink's mark of pbx's key (idKeyMark).
func (s *CSV) idKeyMarkFile(pbx string) string {
	return filepath.Join(s.stateDir(pbx), ".idkey.json")
}

// readIDKeys reads the folder's record of keys, its list when listed
// (nil else) and pbx's mark; the caller holds their locks.
func (s *CSV) readIDKeys(ctx context.Context, pbx string, listed bool) (*idKeyStart, error) {
	var l *Suppression
	if listed {
		var err error
		if l, err = s.Suppression(ctx); err != nil {
			return nil, err
		}
	}
	var rec *idKeyRecord
	anyState := true
	b, err := os.ReadFile(s.idKeysFile())
	switch {
	case err == nil:
		if rec, err = decodeIDKeys(b, s.idKeysFile()); err != nil {
			return nil, err
		}
	case errors.Is(err, fs.ErrNotExist):
		if anyState, err = s.anyPBXState(); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("read %s: %w", s.idKeysFile(), err)
	}
	var mark idKeyMarked
	if b, err := os.ReadFile(s.idKeyMarkFile(pbx)); err == nil {
		json.Unmarshal(b, &mark)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read %s: %w", s.idKeyMarkFile(pbx), err)
	}
	st := newIDKeyStart(l, rec, anyState, s.idKeysFile(), mark)
	if st.witness, err = s.readIDKeyWitness(pbx); err != nil {
		return nil, err
	}
	st.rec.hadKey = st.rec.hadKey || st.witness != ""
	st.rec.newExport = s.NewExportAdvice()
	return st, nil
}

// anyPBXState reports whether the folder holds any PBX's state (a state
// file in its state folder, as PrivacyRule counts it; a record kept
// beside the state, isPBXRecord, is none).
func (s *CSV) anyPBXState() (bool, error) {
	files, err := filepath.Glob(filepath.Join(s.opt.Dir, ".state", "*", "*.json"))
	if err != nil {
		return false, err
	}
	for _, f := range files {
		if !strings.HasPrefix(filepath.Base(f), ".") && !strings.HasPrefix(filepath.Base(filepath.Dir(f)), ".") && !isPBXRecord(filepath.Base(f)) {
			return true, nil
		}
	}
	return false, nil
}

// errFound stops a scan at what it looked for.
var errFound = errors.New("found")

// keyedRecording returns a recording of pbx the folder stores under a
// keyed id (its data file and key), "" when none.
func (s *CSV) keyedRecording(pbx string) (string, error) {
	dir := filepath.Join(s.opt.Dir, "recordings")
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	files, err := s.ownFiles(pbx, dir)
	if err != nil {
		return "", err
	}
	for _, f := range files {
		var key string
		err := scanRows(filepath.Join(dir, f.Name), []string{"recording"}, func(k string, _ []byte) error {
			if strings.HasPrefix(k, "k-") {
				key = k
				return errFound
			}
			return nil
		})
		switch {
		case errors.Is(err, errFound):
			return fmt.Sprintf("data file %s, recording %s", filepath.Join("recordings", f.Name), key), nil
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return "", fmt.Errorf("read %s: %w", f.Name, err)
		}
	}
	return "", nil
}
