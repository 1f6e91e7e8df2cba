package sinks

import (
	"errors"
	"testing"

	"github.com/wildix-export/wildix-export/exporter/recordings"
	"github.com/wildix-export/wildix-export/internal/pseudonym"
)

// TestProvenLegacy: a key of before keys were kept by PBX is taken only
// when it gives a stored k- recording whose PBX id and path tell (no
// pseudonym, nothing erased) its name (attack 6, F3): another key is
// refused with ErrRecordingsKey naming the recording; rows that cannot
// tell (their path pseudonymised) leave the key taken as before.
func TestProvenLegacy(t *testing.T) {
	right, _ := pseudonym.New([]byte("the-key-the-recordings-were-named-with"))
	path := "/spoolview/recordings/2026/12/07/09.44.20-201-202-fc399149-2.wav"
	named := recordings.StoredID(recordings.Recording{Path: path, IDKey: right})
	tells := []keyedRow{{key: named, path: path}}
	scrubbed := []keyedRow{{key: named, path: "/spoolview/recordings/09.44.20-201-p:abcdefgh23456789-2.wav"}}
	for _, tc := range []struct {
		name    string
		rows    []keyedRow
		key     []byte
		refused bool
	}{
		{"the right key", tells, []byte("the-key-the-recordings-were-named-with"), false},
		{"another key", tells, []byte("another-key-taken-for-one-of-before-00"), true},
		{"rows that cannot tell", scrubbed, []byte("another-key-taken-for-one-of-before-00"), false},
		{"no row", nil, []byte("another-key-taken-for-one-of-before-00"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &idKeyRecord{where: ".state/.idkeys.json", keyedSample: func(string) ([]keyedRow, error) { return tc.rows, nil }}
			err := r.provenLegacy(IDKeyOptions{PBX: "pbx1", newExport: "export into a new folder"}, idMaterial{raw: tc.key})
			if got := errors.Is(err, ErrRecordingsKey); got != tc.refused {
				t.Fatalf("provenLegacy: %v; want refused %v", err, tc.refused)
			}
		})
	}
}
