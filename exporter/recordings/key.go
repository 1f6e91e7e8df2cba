package recordings

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"

	"github.com/wildix-export/wildix-export/internal/pseudonym"
)

// The id a recording is stored under (issue 29's object names, issue
// 30's privacy): it is the key of the recording's row, in its stored
// name, and in the store's index of keys, and nothing erases it when
// forget erases the recording's number. So it never holds a phone number
// in clear, nor an unkeyed hash of text holding one:
//
//   - a PBX id of 1 to 64 letters, digits, '-' or '_' holding no number
//     (pseudonym.Replace, the search forget does, finds none in it) is
//     used as it is;
//   - any other id (a number in it, "rec-258-393761714455" or
//     "+393216606904", another character, or one starting with the
//     hashed ids' marks "h-" and "k-"), and the path of a recording sent
//     without an id (its file name holds the caller's number), become
//     "k-" and a keyed hash (Recording.IDKey, pseudonym.Keyed.Tag): the
//     sink's key of recordings' ids, kept with its suppression list, in
//     clear on a sink in clear, sealed with the pseudonym key under
//     pseudonymisation (sinks/idkey.go). Without that key, no one can
//     confirm a guessed number or path against a stored name: the
//     extensions and numbers a path can hold are few enough to be tried
//     one by one against an unkeyed sha256 (attack 1, A1). It never
//     changes once recordings are named with it: a forced change of
//     pseudonym key or rule carries it over, else every recording the
//     look-back lists again would be copied a second time (issue 30, R1).
//
// A keyed hash of the path stays after forget (the row's key, the
// stored name of a file forget did not have to remove), as the hash of
// the forgotten number stays in the suppression list: it tells nothing
// without the key.
//
// Stores written before used "h-" and an unkeyed sha256, and PBX ids as
// they were (LegacyID): the exporter recognises those keys among the
// recordings it exported within the look-back, and the Copier finds a
// file stored under its old name when nothing is under the new one (a
// state lost since), so that none is copied a second time under its new
// id nor given a second row.

// idMark and legacyMark start the ids made by hashing: a PBX id starting
// with either is hashed too, so that no id can take another's name.
const (
	idMark     = "k-"
	legacyMark = "h-"
)

// StoredID is the id r is stored under, and the key of its row: its ID
// when it is 1 to 64 letters, digits, '-' or '_' holding no phone number
// and not starting with a hashed id's mark ("k-", "h-": no id can take
// another's name); any other ID, and the path of a recording without
// one, "k-" and a keyed hash of it (never a number, nor an unkeyed hash
// of one).
func StoredID(r Recording) string {
	switch {
	case r.ID == "":
		return keyedID(r, "path", r.Path)
	case !plainID(r.ID):
		return keyedID(r, "id", r.ID)
	}
	return r.ID
}

// AltID is the id r is stored under when another recording holds
// StoredID(r): "k-" and the keyed hash of its id and path.
func AltID(r Recording) string {
	return keyedID(r, "id+path", r.ID+"\x00"+r.Path)
}

// keyedID is "k-" and the keyed hash of s in domain (r.IDKey's); ""
// without a key, a name no file can be stored under (recstore.Name
// refuses it, so Copy fails naming the recording): the exporter gives
// every recording the key, and a hash without it would be the unkeyed
// one this replaces.
func keyedID(r Recording, domain, s string) string {
	if r.IDKey == nil {
		return ""
	}
	return idMark + r.IDKey.Tag("recording "+domain, s)
}

// plainID reports whether id, a PBX recording id, is used as it is: 1 to
// 64 ASCII letters, digits, '-' or '_', not starting with a hashed id's
// mark, and holding no phone number.
func plainID(id string) bool {
	if !usableID(id) || strings.HasPrefix(id, idMark) || strings.HasPrefix(id, legacyMark) {
		return false
	}
	_, n := pseudonym.Replace(id, func(string) bool { return true }, "")
	return n == 0
}

// usableID reports whether id, a PBX recording id, is usable as it is in
// a stored name: 1 to 64 ASCII letters, digits, '-' or '_'. A loop, not a
// regular expression: `{1,64}` compiled at every process start (a
// millisecond and a half of each run's CPU).
func usableID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, c := range []byte(id) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// LegacyID is the id r was stored under before ids were keyed: its ID
// when it was 1 to 64 letters, digits, '-' or '_' not starting with
// "h-", else "h-" and 40 hex digits of the sha256 of "id:" and its ID,
// or of "path:" and its path when it had none. Only to recognise what
// earlier runs stored, never to name anything new.
func LegacyID(r Recording) string {
	switch {
	case r.ID == "":
		return legacyHash("path:" + r.Path)
	case !usableID(r.ID) || strings.HasPrefix(r.ID, legacyMark):
		return legacyHash("id:" + r.ID)
	}
	return r.ID
}

// LegacyAltID is AltID as it was before ids were keyed (LegacyID).
func LegacyAltID(r Recording) string {
	return legacyHash("id+path:" + r.ID + "\x00" + r.Path)
}

func legacyHash(s string) string {
	h := sha256.Sum256([]byte(s))
	return legacyMark + hex.EncodeToString(h[:20])
}
