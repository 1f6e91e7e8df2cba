package sinks

import (
	"bytes"
	"context"
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
// one per sink, and never changes once recordings are stored with it: a
// new key would give every such recording a new name, and the look-back
// or a backfill would copy each again, with a second row (issue 30, R1).
// It is kept with the suppression list, written in the same record:
//
//   - on a sink in clear, in clear (Suppression.IDKey): a random key made
//     by the first run that needs one; or the list's own key, for a list
//     that had one before IDKey existed;
//   - on a pseudonymised sink, sealed (Suppression.IDKeySealed) with
//     AES-GCM under a key derived from the pseudonym key, never in
//     clear: without the pseudonym key, no one who reads the sink can
//     confirm a guessed number against a stored name (attack 1, A1). The
//     sealed key of a sink whose recordings were stored, before the key
//     was kept, under ids hashed with the pseudonym key itself is that
//     pseudonym key: nothing is stored for it but its id (SealedKey.Box
//     empty), until a key change seals it under the new key.
//
// A change of rule or key carries the key over, in one atomic write of
// the record (a transaction, or an atomic replace of the file), made by
// the run's start once the change is accepted (privacy.go of the
// command): none → on seals it and drops it in clear; a key change opens
// it with the earlier key (EXPORT_PSEUDONYM_PREVIOUS_KEY) and seals it
// under the new one; on → none stores it in clear too (a pseudonym key
// stays sealed: in clear, it would let anyone test numbers against the
// rows still pseudonymised with it). Each state the record goes through
// holds the key, so a run killed at any point loses nothing: at worst
// the next run needs the key it is sealed under, and says so.

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
// cannot open: the run stops rather than copy every recording again.
var ErrRecordingsKey = errors.New("the key of recordings' ids cannot be read")

// IDKeyOptions is what a run tells SuppressionKey.
type IDKeyOptions struct {
	// Pseudonymize is whether the run's rows are pseudonymised: the key
	// is then kept sealed with Key, and nothing of it in clear.
	Pseudonymize bool
	// Key is EXPORT_PSEUDONYM_KEY, Previous EXPORT_PSEUDONYM_PREVIOUS_KEY
	// (nil: not set).
	Key, Previous []byte
	// WrittenUnder is the id of the pseudonym key the PBX's rows were
	// written under before this run (its stored rule), "" when in clear
	// or none: recordings stored then, before the key was kept, were
	// hashed with that key itself. A run with it set and Pseudonymize
	// false is a forced change to none: the key is then stored in clear.
	WrittenUnder string
}

// idMaterial is the key of recordings' ids as a list holds it.
type idMaterial struct {
	raw    []byte
	pseudo bool // a pseudonym key: never stored in clear
	fresh  bool // made now: stored by the caller
	listed bool // the list's own key, kept as such
}

// recordingsKey returns the key of recordings' ids and whether l changed
// to keep it as o's rule wants it (sealed, or in clear), to be written.
func (l *Suppression) recordingsKey(o IDKeyOptions) (*pseudonym.Keyed, bool, error) {
	m, err := l.idMaterial(o)
	if err != nil {
		return nil, false, err
	}
	k, err := pseudonym.New(m.raw)
	if err != nil {
		return nil, false, fmt.Errorf("the key of recordings' ids kept with the suppression list is damaged (%v): restore the list from a backup; another key would copy every recording stored under a keyed name (k-…) again", err)
	}
	changed, err := l.keepIDKey(m, o)
	return k, changed, err
}

// idMaterial finds the key: sealed, or in clear (with a sealed copy of it
// after a change to none, the clear one is taken: the sealed may be under
// a key since unset); else, on a sink whose rows were pseudonymised, the
// pseudonym key they were written under (recordings stored before the
// key was kept); else the list's own key; else, a new one: the pseudonym
// key when pseudonymising (a sink's other PBX may have stored recordings
// hashed with it), otherwise a random key.
func (l *Suppression) idMaterial(o IDKeyOptions) (idMaterial, error) {
	switch {
	case l.IDKey != nil && (l.IDKeySealed != nil || o.WrittenUnder == ""):
		return idMaterial{raw: l.IDKey}, nil
	case l.IDKeySealed != nil:
		return l.IDKeySealed.open(o)
	case o.WrittenUnder != "":
		return (&SealedKey{By: o.WrittenUnder}).open(o)
	case l.Key != nil:
		return idMaterial{raw: l.Key, listed: true}, nil
	case l.KeyID != "":
		// A list made with the pseudonym key: as today, its key.
		pk, _ := newKeyed(o.Key)
		if _, err := l.keyed(pk); err != nil {
			return idMaterial{}, err
		}
		return idMaterial{raw: o.Key, pseudo: true, listed: true}, nil
	case o.Pseudonymize:
		if o.Key == nil {
			return idMaterial{}, fmt.Errorf("%w: EXPORT_PSEUDONYM_KEY is not set", ErrRecordingsKey)
		}
		return idMaterial{raw: o.Key, pseudo: true}, nil
	}
	raw := make([]byte, pseudonym.MinKeyLen)
	rand.Read(raw)
	return idMaterial{raw: raw, fresh: true}, nil
}

// keepIDKey makes l keep m as o's rule wants, and reports whether it
// changed: pseudonymising, sealed with o.Key and nothing in clear (but
// the list's own key, which the list needs); a pseudonym key, sealed with
// o.Key whatever the rule; in clear, a key made now, or any other after a
// change to none. A list's key in clear is kept as the list keeps it.
func (l *Suppression) keepIDKey(m idMaterial, o IDKeyOptions) (bool, error) {
	switch {
	case m.listed && !o.Pseudonymize:
		return false, nil
	case o.Pseudonymize || m.pseudo:
		if o.Key == nil {
			s := l.IDKeySealed
			if s == nil {
				k, _ := pseudonym.New(m.raw)
				s = &SealedKey{By: k.KeyID()}
			}
			return false, s.missing(o, "")
		}
		pk, err := pseudonym.New(o.Key)
		if err != nil {
			return false, err
		}
		changed := false
		if o.Pseudonymize && l.IDKey != nil {
			l.IDKey, changed = nil, true
		}
		if l.IDKeySealed == nil || l.IDKeySealed.By != pk.KeyID() {
			if l.IDKeySealed, err = seal(o.Key, m); err != nil {
				return false, err
			}
			changed = true
		}
		return changed, nil
	case m.fresh, o.WrittenUnder != "" && !bytes.Equal(l.IDKey, m.raw):
		l.IDKey = m.raw
		return true, nil
	}
	return false, nil
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
		do = "set EXPORT_PSEUDONYM_KEY (or _FILE) to it, under EXPORT_PSEUDONYMIZE=none too (the run that changes to none then keeps it in clear, unless it is the key the recordings were named with, which is never stored in clear and stays needed)"
	}
	return fmt.Errorf("%w: the key naming the sink's recordings stored under a keyed id (k-…) is sealed with EXPORT_PSEUDONYM_KEY %s, and %s: %s; "+
		"or export into a new schema or folder and recordings store; without it, every such recording would be copied again under a new name (README, Privacy)",
		ErrRecordingsKey, s.By, why, do)
}

// SuppressionKey returns the key, kept with the schema's suppression
// list, of the ids of recordings that cannot be stored under their PBX id
// (exporter.Exporter.RecordingsKey; idkey.go), and keeps it as o's rule
// wants (sealed, or in clear), in one transaction: an error wrapping
// ErrRecordingsKey when it is sealed with a key o lacks, or
// ErrSuppressionKey when it is a list's made with another pseudonym key.
func (p *Postgres) SuppressionKey(ctx context.Context, o IDKeyOptions) (*pseudonym.Keyed, error) {
	l, err := p.Suppression(ctx)
	if err != nil {
		return nil, err
	}
	if k, changed, err := l.recordingsKey(o); !changed || err != nil {
		return k, err
	}
	var k *pseudonym.Keyed
	err = p.updateSuppression(ctx, "keep the key of recordings' ids", func(l *Suppression) (changed bool, err error) {
		k, changed, err = l.recordingsKey(o)
		return changed, err
	})
	if err != nil {
		return nil, err
	}
	return k, nil
}

// SuppressionKey returns the key of the folder's recordings' ids, kept
// with its suppression list as o's rule wants, under the list's lock and
// by an atomic replace of its file (Postgres.SuppressionKey).
func (s *CSV) SuppressionKey(ctx context.Context, o IDKeyOptions) (_ *pseudonym.Keyed, err error) {
	l, err := s.Suppression(ctx)
	if err != nil {
		return nil, err
	}
	if k, changed, err := l.recordingsKey(o); !changed || err != nil {
		return k, err
	}
	var k *pseudonym.Keyed
	err = s.updateSuppression(ctx, "keep the key of recordings' ids", func(l *Suppression) (changed bool, err error) {
		k, changed, err = l.recordingsKey(o)
		return changed, err
	})
	if err != nil {
		return nil, err
	}
	return k, nil
}
