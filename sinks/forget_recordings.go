package sinks

import (
	"crypto/rand"
	"encoding/json"
	"slices"
	"strings"

	"github.com/wildix-export/wildix-export/exporter/record"
	"github.com/wildix-export/wildix-export/exporter/recordings"
	"github.com/wildix-export/wildix-export/internal/pseudonym"
)

// A recording's row is keyed by the id its file is stored under
// (exporter/recordings/key.go), which forget, as every key, leaves as it
// is: a "k-" keyed hash tells nothing without its key, as the
// suppression list's hashes. Rows written before ids were keyed may hold
// one that tells the number: a PBX id holding it ("rec-258-393761714455")
// or "h-" and an unkeyed sha256 of the file's path or of such an id,
// which trying the extensions confirms (attack 1, A1 and A4). forget
// gives those rows a key tied to nothing (erasedKey), in the same
// statement that erases them; their file is removed and their object
// emptied, so nothing is stored under either key. The recordings state's
// recent keys (exporter/recordings_rows.go) lose the old keys too, in the
// same transaction (PostgreSQL) or before the rows are rewritten (CSV:
// its states and the manifests' copies of them), so that no unkeyed hash
// of the path stays there (review1, R3). The next run then lists the
// recording as new: the suppression list keeps its file from being copied,
// and its row is written again, under its "k-" key, marked erased. So
// forget gives such a row that "k-" key itself, as the exporter computes
// it (recordings.StoredID, AltID for a clash), when the row's id and path
// are those its old key was made of and the PBX's key of recordings' ids
// is known (KeyRecordingsWith): the next run's row replaces it, one row
// per recording. Otherwise (a pseudonymised path, which no longer gives
// its old key; a PBX whose key forget cannot open or that has none yet)
// the key is tied to nothing ("erased-…"), and the next run's row is a
// second one, erased too.

// KeyRecordingsWith gives f the key of each PBX's recordings' ids (by PBX
// id) the PBX's next run names recordings with: a recording's row whose
// key tells the number is given the key that run computes for it.
func (f *Forgotten) KeyRecordingsWith(keys map[string]*pseudonym.Keyed) {
	f.recKeys = keys
}

// recordingKeyFor is the key forget gives a recording's row of pbx whose
// key tells the number (recordingKeyTells), its id and path as the row
// holds them: the one the exporter computes for the recording, when key
// is the one it had before ids were keyed (recordings.LegacyID,
// LegacyAltID) and pbx's key is known; else erasedKey.
func (f *Forgotten) recordingKeyFor(pbx, key, id, path string) string {
	if k := f.recKeys[pbx]; k != nil {
		r := recordings.Recording{ID: id, Path: path, IDKey: k}
		switch {
		case key == recordings.LegacyID(r):
			if n := recordings.StoredID(r); n != "" && !recordingKeyTells(n) {
				return n
			}
		case id != "" && key == recordings.LegacyAltID(r):
			return recordings.AltID(r)
		}
	}
	return erasedKey()
}

// cellValue is the value of the cell named name in cells, a row of pl;
// "" when pl has none.
func (pl pgPlace) cellValue(cells []string, name string) string {
	for i, c := range pl.cells {
		if c.name == name {
			return cells[i]
		}
	}
	return ""
}

// recordingKeyTells reports whether key, a recording row's key, holds a
// phone number (what forget's search finds, any number) or is an
// unkeyed hash of text that may hold one ("h-"). A key of the shape the
// exporter gives keyed ids (keyedShape) is a keyed hash, never a number,
// even when its letters and digits happen to hold seven digits in a row
// (about one key in twelve thousand): taken for one, forget gave its row
// "erased-…" and the next run's look-back wrote the recording a second
// row.
func recordingKeyTells(key string) bool {
	switch {
	case strings.HasPrefix(key, "h-"):
		return true
	case keyedShape(key):
		return false
	}
	_, n := pseudonym.Replace(key, func(string) bool { return true }, "")
	return n > 0
}

// keyedShape reports whether key has the shape of a keyed id
// (recordings.StoredID, AltID): "k-" and the 16 letters of a keyed tag
// (pseudonym.Keyed.Tag: 10 bytes in base32, a-z and 2-7). Since ids were
// keyed no PBX id is taken as it is with that mark; a key of before (a
// PBX id used as it was) has this shape only if the PBX's id had it.
func keyedShape(key string) bool {
	t, ok := strings.CutPrefix(key, "k-")
	if !ok || len(t) != 16 {
		return false
	}
	for _, c := range t {
		if !('a' <= c && c <= 'z' || '2' <= c && c <= '7') {
			return false
		}
	}
	return true
}

// recordingKeyMentions reports whether key holds f.
func recordingKeyMentions(key string, f *Forgotten) bool {
	_, n := pseudonym.Replace(key, f.match, "")
	return n > 0
}

// erasedKey is the key forget gives a recording's row whose key told the
// number: "erased-" and 16 random letters, unique, derived from nothing.
func erasedKey() string {
	b := make([]byte, 16)
	rand.Read(b)
	for i := range b {
		b[i] = 'a' + b[i]%26
	}
	return Erased + "-" + string(b)
}

// recordingKeyColumn is the index in header of the key column of e, an
// endpoint with files (recordings); -1 for any other.
func recordingKeyColumn(e *record.Endpoint, header []string) int {
	if e.Files == "" || len(e.Key) != 1 {
		return -1
	}
	i := slices.IndexFunc(e.Columns, func(c record.Column) bool { return c.Field == e.Key[0] })
	if i < 0 {
		return -1
	}
	return slices.Index(header, e.Columns[i].Name)
}

// withoutRecent is state, a state's JSON, without the keys old in its
// "recent" object; ok is false when it held none of them (state is then
// returned as it was).
func withoutRecent(state []byte, old map[string]bool) (_ []byte, ok bool) {
	var st map[string]json.RawMessage
	var recent map[string]json.RawMessage
	if len(old) == 0 || json.Unmarshal(state, &st) != nil || json.Unmarshal(st["recent"], &recent) != nil {
		return state, false
	}
	for k := range recent {
		if old[k] {
			delete(recent, k)
			ok = true
		}
	}
	if !ok {
		return state, false
	}
	st["recent"], _ = json.Marshal(recent)
	b, _ := json.Marshal(st)
	return b, true
}
