package sinks

import (
	"crypto/rand"
	"slices"
	"strings"

	"github.com/wildix-export/wildix-export/exporter/record"
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
// emptied, so nothing is stored under either key.

// recordingKeyTells reports whether key, a recording row's key, holds a
// phone number (what forget's search finds, any number) or is an
// unkeyed hash of text that may hold one ("h-").
func recordingKeyTells(key string) bool {
	if strings.HasPrefix(key, "h-") {
		return true
	}
	_, n := pseudonym.Replace(key, func(string) bool { return true }, "")
	return n > 0
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
