package sinks

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/wildix-export/wildix-export/internal/pseudonym"
)

// The key of recordings' ids (exporter/recordings/key.go: a recording
// whose PBX id cannot name it is stored under "k-" and a keyed hash) is
// one per PBX of a sink, and never changes once the PBX's recordings are
// stored with it: a new key would give every such recording a new name,
// and the look-back or a backfill would copy each again, with a second
// row (issue 30, R1). Each PBX's rows and recordings are its own, each
// under its own rule and pseudonym key: so is its key (review 5, R5-3:
// one key per schema made two PBXes under two pseudonym keys refuse each
// other). It is kept in a record of its own (idKeyRecord, by PBX id;
// idkey_record.go), apart from the suppression list, which held it
// before: a list lost, or rewritten by an earlier release that does not
// know the field, no longer loses it (review 6, R6-4; R5-8):
//
//   - for a PBX in clear, in clear (PBXKey.Key): a random key made by its
//     first run, with or without a recordings store (a run without one
//     made none, and a later run with one took a key of before keys
//     were kept by PBX: review 7, R7-2, R7-3); or, for a PBX that stored
//     recordings before keys were kept by PBX, the key they were named
//     with (legacyMaterial), never on a sink whose record says no PBX
//     did (idKeyRecord.NoLegacy);
//   - for a pseudonymised PBX, sealed (PBXKey.Sealed) with AES-GCM under
//     a key derived from its pseudonym key, and its own copy in clear
//     dropped in the same write: without the pseudonym key, no one who
//     reads the sink can confirm a guessed number against a stored name
//     (attack 1, A1). A PBX whose recordings were named with its
//     pseudonym key itself (before keys were kept) keeps that key: sealed,
//     nothing is stored for it but its id (SealedKey.Box empty), until a
//     key change seals it under the new key.
//
// A change of rule or key carries the PBX's key over, in one atomic write
// of the record (a transaction, or an atomic replace of the file), made
// by the run's start once the change is accepted (privacy.go of the
// command), with or without a recordings store: none → on seals it and
// drops its copy in clear; a key change opens it with the earlier key
// (EXPORT_PSEUDONYM_PREVIOUS_KEY) and seals it under the new one; on →
// none keeps it sealed until the change is committed, and the first
// start after stores it in clear too (review 7, R7-4: stored in clear
// by the forced run's start, it sat in clear beside pseudonymised rows
// when that run never committed; a pseudonym key, or a key another PBX
// keeps sealed only, stays sealed: in clear, it would let anyone test
// numbers against the rows and names still pseudonymised with it). Each
// state the record goes through holds the key, and what a sink kept
// before (the schema's one key, the list's own key) is never dropped, so
// a run killed at any point loses nothing: at worst the next run needs
// the key it is sealed under, and says so.
//
// A PBX for which no key is found, and which would take a new one, is
// refused when the sink holds recordings of it stored under a keyed id
// (keyedRows): the record was lost (or the whole state), and a new key
// would copy every such recording again (R6-4). The refusal names the
// record and says to restore it. A key the configured keys cannot open
// is refused likewise (naming the key it needs) only while the sink
// holds such recordings of the PBX; holding none, nothing is named with
// it, and the PBX takes a new key (every PBX's first run makes one, with
// or without a recordings store: a PBX that never stored recordings is
// never refused for its key). A mark of each PBX's key kept apart
// from the record (idKeyMark) keeps a PBX whose record was lost from
// taking a key of before keys were kept by PBX instead (for a
// pseudonymised PBX, the pseudonym key itself, which no refusal would
// catch). Lost with the record and the list (the whole state), the PBX's
// rule is lost too: it then takes no key of before either.

// PBXKey is the key of one PBX's recordings' ids as the sink keeps it.
type PBXKey struct {
	// ID is the key's id (pseudonym.Keyed.KeyID): PBXes sharing one key,
	// from a sink of before keys were kept by PBX, share it.
	ID string `json:"id"`
	// Key is the key in clear, for a PBX in clear.
	Key []byte `json:"key,omitempty"`
	// Sealed is the key sealed with the PBX's pseudonym key.
	Sealed *SealedKey `json:"sealed,omitempty"`
}

// SealedKey is the key of recordings' ids sealed with a pseudonym key.
type SealedKey struct {
	// By is the id (pseudonym.Keyed.KeyID) of the pseudonym key it is
	// sealed with.
	By string `json:"by"`
	// Box is a nonce and the key sealed with AES-GCM (sealKey); empty
	// when the key is the pseudonym key By names itself.
	Box []byte `json:"box,omitempty"`
	// Pseudonym marks a Box holding an earlier pseudonym key, which rows
	// may still be pseudonymised with: never stored in clear.
	Pseudonym bool `json:"pseudonym_key,omitempty"`
}

// ErrRecordingsKey is a key of recordings' ids that the configured keys
// cannot open, or that the sink lost while holding recordings named with
// it: the run stops rather than copy every recording again.
var ErrRecordingsKey = errors.New("the key of recordings' ids cannot be read")

// IDKeyOptions is what a run tells SuppressionKey.
type IDKeyOptions struct {
	// PBX is the PBX's id (WILDIX_PBX_ID): whose key it is.
	PBX string
	// Pseudonymize is whether the run's rows are pseudonymised: the key
	// is then kept sealed with Key, and nothing of it in clear.
	Pseudonymize bool
	// Key is EXPORT_PSEUDONYM_KEY, Previous EXPORT_PSEUDONYM_PREVIOUS_KEY
	// (nil: not set).
	Key, Previous []byte
	// Ruled is whether the sink holds the PBX's rule (stored with its
	// first commit of rows, since before recordings were named k-): a
	// PBX without one has stored no recording yet, and takes a new key.
	Ruled bool
	// WrittenUnder is the id of the pseudonym key the PBX's rows were
	// written under before this run (its stored rule), "" when in clear
	// or none (then Ruled tells): recordings stored before keys were
	// kept were hashed with that key itself. A run with it set and
	// Pseudonymize false is a forced change to none: the key stays
	// sealed until that change is committed (review 7, R7-4: stored in
	// clear by a run that then never committed, it sat in clear beside
	// pseudonymised rows); the first start after (WrittenUnder "")
	// stores it in clear (unless it must stay sealed).
	WrittenUnder string
	// RuleLost is whether the PBX's stored rule is missing and Ruled and
	// WrittenUnder are its run ledger's (attack 6, F4): a key of before
	// keys were kept (legacyMaterial) is then never taken, as the record
	// and the PBX's mark of its key may have been lost with the rule (a
	// restore without dot files): with no key kept, a sink holding keyed
	// recordings is refused (review 16, R16-5: the pseudonym key was
	// taken, and the look-back's recordings copied again, exit 0).
	RuleLost bool
	// newExport is the sink's way out into a new schema or folder
	// (NewExportAdvice), for the refusals.
	newExport string
	// CarryOnly is a run without a recordings store: it carries the
	// PBX's key over a change of rule or key, and makes one as a run
	// with a store does (a later run with one found none, and took a key
	// of before keys were kept by PBX: review 7, R7-2).
	CarryOnly bool
}

// idMaterial is the key of recordings' ids as a list holds it.
type idMaterial struct {
	raw     []byte
	pseudo  bool // a pseudonym key: never stored in clear
	sealed  bool // found only sealed: stored in clear by a change to none
	replace bool // a new key replacing one that named no recording the sink holds
}

// recordingsKey returns the key of o.PBX's recordings' ids and whether r
// changed to keep it as o's rule wants it (sealed, or in clear), to be
// written.
func (r *idKeyRecord) recordingsKey(o IDKeyOptions) (*pseudonym.Keyed, bool, error) {
	if o.newExport = r.newExport; o.newExport == "" {
		o.newExport = newExportAdvice
	}
	m, err := r.idMaterial(o)
	if err != nil {
		return nil, false, err
	}
	k, err := pseudonym.New(m.raw)
	if err != nil {
		return nil, false, fmt.Errorf("%w: the key of PBX %q's recordings' ids kept in %s is damaged (%v): restore it from the backup taken with the data; another key would copy every recording stored under a keyed name (k-…) again", ErrRecordingsKey, o.PBX, r.where, err)
	}
	changed, err := r.keepIDKey(k.KeyID(), m, o)
	return k, changed, err
}

// idMaterial finds o.PBX's key (keptMaterial); else a new random one,
// unless the sink holds recordings of the PBX named with a key it lost
// (keyedRows: refused, naming the record to restore). A kept key the
// configured keys cannot open is refused too, unless the sink holds no
// recording of the PBX under a keyed id: it is then replaced by a new
// one (nothing is named with it).
func (r *idKeyRecord) idMaterial(o IDKeyOptions) (idMaterial, error) {
	m, err := r.keptMaterial(o)
	if !errors.Is(err, ErrRecordingsKey) && (err != nil || m.raw != nil) {
		return m, err
	}
	// No key, or one the configured keys cannot open: a new key, when
	// the sink holds no recording of the PBX named with one (a PBX that
	// never stored recordings under a keyed id is never refused for
	// its key: review 7, R7-2 made every PBX's first run make one).
	held := ""
	if r.keyedRows != nil {
		var herr error
		if held, herr = r.keyedRows(o.PBX); herr != nil {
			return idMaterial{}, fmt.Errorf("look for recordings stored under a keyed id: %w", herr)
		}
	}
	switch {
	case err != nil && (r.keyedRows == nil || held != ""):
		return m, err
	case held != "":
		return idMaterial{}, fmt.Errorf("%w: the sink holds recordings of PBX %q stored under a keyed id (%s), and keeps no key of recordings' ids for it: "+
			"the record of the keys (%s) was lost, or the state restored from a backup older than those recordings; "+
			"restore it, with the suppression list, from the backup taken with the data (README, Erasure), and run again; "+
			"a new key would name every such recording anew and copy it again, with a second row. "+
			"With no backup holding it: delete PBX %q's recordings stored under a keyed id (their rows, whose recording starts with k-, and their files), "+
			"accepting that they are copied again; or %s",
			ErrRecordingsKey, o.PBX, held, r.where, o.PBX, o.newExport)
	}
	raw := make([]byte, pseudonym.MinKeyLen)
	rand.Read(raw)
	return idMaterial{raw: raw, replace: err != nil}, nil
}

// keptMaterial is o.PBX's key as the record keeps it, in clear or
// sealed; else, for a PBX that has written rows on a sink that may hold
// recordings named before keys were kept by PBX, the key they were named
// with (legacyMaterial), unless the PBX's mark says it took a key from
// the record (hadKey, idKeyMark: the record was lost); else none (nil
// raw).
func (r *idKeyRecord) keptMaterial(o IDKeyOptions) (idMaterial, error) {
	if e := r.Keys[o.PBX]; e != nil {
		switch {
		case e.Key != nil:
			return idMaterial{raw: e.Key}, nil
		case e.Sealed != nil:
			m, err := e.Sealed.open(o)
			m.sealed = true
			return m, err
		}
		return idMaterial{}, fmt.Errorf("%w: %s keeps it for PBX %q neither in clear nor sealed: restore it from the backup taken with the data", ErrRecordingsKey, r.where, o.PBX)
	}
	if !r.NoLegacy && !r.hadKey && !o.RuleLost && (o.Ruled || o.WrittenUnder != "") {
		m, err := r.legacyMaterial(o)
		if err == nil {
			err = r.provenLegacy(o, m) // attack 6, F3
		}
		return m, err
	}
	return idMaterial{}, nil
}

// legacyMaterial is the key a PBX that has written rows named its
// recordings with before keys were kept by PBX, as that release chose
// it: the schema's one key (SchemaKeySealed, or SchemaKey when both:
// after a change to none), unless it cannot be opened by a pseudonymised PBX,
// which that release then refused (two PBXes under two keys); else the
// pseudonym key itself for a pseudonymised PBX; else the schema's key in
// clear, or the suppression list's own key, or the pseudonym key a
// list was made with; else none (nil raw).
func (r *idKeyRecord) legacyMaterial(o IDKeyOptions) (idMaterial, error) {
	l := r.list
	if l == nil {
		l = &Suppression{}
	}
	if r.SchemaKey != nil && (r.SchemaKeySealed != nil || o.WrittenUnder == "") {
		return idMaterial{raw: r.SchemaKey}, nil
	}
	if r.SchemaKeySealed != nil {
		m, err := r.SchemaKeySealed.open(o)
		if err == nil || o.WrittenUnder == "" {
			m.sealed = true
			return m, err
		}
	}
	switch {
	case o.WrittenUnder != "":
		return (&SealedKey{By: o.WrittenUnder}).open(o)
	case l.Key != nil:
		return idMaterial{raw: l.Key}, nil
	case l.KeyID != "":
		pk, _ := newKeyed(o.Key)
		if _, err := l.keyed(pk); err != nil {
			return idMaterial{}, err
		}
		return idMaterial{raw: o.Key, pseudo: true}, nil
	}
	return idMaterial{}, nil
}

// keepIDKey makes l keep m, whose id is id, as o.PBX's key the way o's
// rule wants, and reports whether it changed: pseudonymising, sealed with
// o.Key and the PBX's copy in clear dropped; a pseudonym key, sealed with
// o.Key whatever the rule; in clear, a key found in clear, or one found
// sealed by a start of a PBX whose rows are in clear (no rule under a
// pseudonym key committed: o.WrittenUnder "") unless another PBX keeps it
// sealed only; the start of a forced change to none keeps it sealed,
// as its rule is not committed yet (R7-4). It never drops anything
// else.
func (l *idKeyRecord) keepIDKey(id string, m idMaterial, o IDKeyOptions) (bool, error) {
	was := l.Keys[o.PBX]
	r := &PBXKey{ID: id}
	if was != nil && !m.replace {
		r.Key, r.Sealed = was.Key, was.Sealed
	}
	clear := !o.Pseudonymize && !m.pseudo && (!m.sealed || o.WrittenUnder == "" && !l.sealedElsewhere(id, o))
	if clear {
		r.Key = m.raw
	} else {
		if o.Key == nil {
			s := r.Sealed
			if s == nil {
				s = &SealedKey{By: id}
			}
			return false, s.missing(o, "")
		}
		pk, err := pseudonym.New(o.Key)
		if err != nil {
			return false, err
		}
		if r.Sealed == nil || r.Sealed.By != pk.KeyID() {
			if r.Sealed, err = seal(o.Key, m); err != nil {
				return false, err
			}
		}
		if o.Pseudonymize || m.pseudo {
			r.Key = nil
		}
	}
	if was != nil && was.ID == r.ID && bytes.Equal(was.Key, r.Key) && was.Sealed == r.Sealed {
		return false, nil
	}
	if l.Keys == nil {
		l.Keys = map[string]*PBXKey{}
	}
	l.Keys[o.PBX] = r
	return true, nil
}

// sealedElsewhere reports whether another PBX, or the schema's one key of
// before keys were kept by PBX, keeps the key id only sealed: it then
// stays out of clear, as its recordings' names are pseudonymised.
func (l *idKeyRecord) sealedElsewhere(id string, o IDKeyOptions) bool {
	for pbx, r := range l.Keys {
		if pbx != o.PBX && r.ID == id && r.Key == nil {
			return true
		}
	}
	if l.SchemaKeySealed == nil || l.SchemaKey != nil {
		return false
	}
	m, err := l.SchemaKeySealed.open(o)
	if err != nil {
		return true // unknown: it may be this key
	}
	k, err := pseudonym.New(m.raw)
	return err == nil && k.KeyID() == id
}

// seal seals m with the pseudonym key pk: nothing but pk's id when m is
// pk itself.
func seal(pk []byte, m idMaterial) (*SealedKey, error) {
	k, err := pseudonym.New(pk)
	if err != nil {
		return nil, err
	}
	s := &SealedKey{By: k.KeyID(), Pseudonym: m.pseudo}
	if bytes.Equal(m.raw, pk) {
		s.Pseudonym = false
		return s, nil
	}
	nonce := make([]byte, 12)
	rand.Read(nonce)
	s.Box = sealKey(pk).Seal(nonce, nonce, m.raw, s.aad())
	return s, nil
}

// open opens s with o's key or previous key, whichever it is sealed
// with.
func (s *SealedKey) open(o IDKeyOptions) (idMaterial, error) {
	var by []byte
	for _, k := range [][]byte{o.Key, o.Previous} {
		if pk, _ := newKeyed(k); pk != nil && pk.KeyID() == s.By {
			by = k
			break
		}
	}
	if by == nil {
		return idMaterial{}, s.missing(o, "")
	}
	if len(s.Box) == 0 {
		return idMaterial{raw: by, pseudo: true}, nil
	}
	if len(s.Box) < 12 {
		return idMaterial{}, s.missing(o, "it is damaged")
	}
	raw, err := sealKey(by).Open(nil, s.Box[:12], s.Box[12:], s.aad())
	if err != nil {
		return idMaterial{}, s.missing(o, "it is damaged")
	}
	return idMaterial{raw: raw, pseudo: s.Pseudonym}, nil
}

// aad binds a box to its purpose and to the key it is sealed with.
func (s *SealedKey) aad() []byte {
	return []byte("wildix-export recordings' id key\x00" + s.By)
}

// sealKey is the AEAD a key of recordings' ids is sealed with under the
// pseudonym key pk: AES-256-GCM keyed by HMAC-SHA-256 of a fixed label
// under pk, never pk itself.
func sealKey(pk []byte) cipher.AEAD {
	h := hmac.New(sha256.New, pk)
	h.Write([]byte("wildix-export: seal of the key of recordings' ids"))
	block, _ := aes.NewCipher(h.Sum(nil))
	aead, _ := cipher.NewGCM(block)
	return aead
}

// newKeyed is pseudonym.New, nil for no key.
func newKeyed(b []byte) (*pseudonym.Keyed, error) {
	if b == nil {
		return nil, nil
	}
	return pseudonym.New(b)
}

// missing is the error of a key of recordings' ids that o's keys cannot
// open: which key it needs, which are set, and what to do. Keys are
// named by their ids only.
func (s *SealedKey) missing(o IDKeyOptions, why string) error {
	have := func(b []byte) string {
		if k, _ := newKeyed(b); k != nil {
			return "key " + k.KeyID()
		}
		return "not set"
	}
	if why == "" {
		why = fmt.Sprintf("EXPORT_PSEUDONYM_KEY is %s, EXPORT_PSEUDONYM_PREVIOUS_KEY %s", have(o.Key), have(o.Previous))
	}
	do := "after a forced change of key (run --force), set EXPORT_PSEUDONYM_PREVIOUS_KEY (or _FILE) to the earlier key for one run, which seals it again with the new one; or set EXPORT_PSEUDONYM_KEY back to it"
	if !o.Pseudonymize {
		do = "set EXPORT_PSEUDONYM_KEY (or _FILE) to it, under EXPORT_PSEUDONYMIZE=none too, until a run after the change to none has passed (that run keeps it in clear, unless it is the key the recordings were named with, which is never stored in clear and stays needed)"
	}
	return fmt.Errorf("%w: the key naming the sink's recordings stored under a keyed id (k-…) is sealed with EXPORT_PSEUDONYM_KEY %s, and %s: %s; "+
		"or %s; without it, every such recording would be copied again under a new name (README, Privacy)",
		ErrRecordingsKey, s.By, why, do, o.newExport)
}
