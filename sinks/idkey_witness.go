package sinks

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/wildix-export/wildix-export/internal/safefile"
)

// A CSV folder keeps a second mark of each PBX's key of recordings' ids,
// beside the PBX's recordings' data files (recordings/.idkey-<pbx>.json,
// the key's id only), apart from the record of the keys and the PBX's
// mark, which are in .state: with those two lost together (attack 6, F3:
// .state/.idkeys.json and .state/<pbx>/.idkey.json deleted, the rule
// kept) the PBX looked like one of a folder written before keys were
// kept by PBX, and took a key of then (a pseudonymised PBX, its
// pseudonym key) that its recordings were not named with: the look-back
// copied each again, with a second row, exit 0. With the witness there,
// the PBX is known to have had a key from the record (idKeyRecord.hadKey),
// and a sink holding its k- recordings is refused, naming the record to
// restore. A folder written before the witness has none: its next start
// writes it. Rows whose PBX id or path tell the key (provenLegacy) are
// the other proof, where the witness is gone too.

// idKeyWitnessFile is pbx's witness.
func (s *CSV) idKeyWitnessFile(pbx string) string {
	return filepath.Join(s.opt.Dir, "recordings", ".idkey-"+safeName(pbx)+".json")
}

// readIDKeyWitness is the key id pbx's witness holds, "" when none.
func (s *CSV) readIDKeyWitness(pbx string) (string, error) {
	b, err := os.ReadFile(s.idKeyWitnessFile(pbx))
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read %s: %w", s.idKeyWitnessFile(pbx), err)
	}
	var m idKeyMarked
	json.Unmarshal(b, &m)
	return m.ID, nil
}

// witnessIDKey writes pbx's witness of its key id when it holds another
// (was): by a run with a recordings store (its folder made if need be,
// before any recording is copied), or whenever the recordings' folder
// is there.
func (s *CSV) witnessIDKey(o IDKeyOptions, id, was string) error {
	if was == id {
		return nil
	}
	dir := filepath.Dir(s.idKeyWitnessFile(o.PBX))
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) && o.CarryOnly {
		return nil
	}
	if _, err := s.mkdir("recordings"); err != nil {
		return err
	}
	b, _ := json.Marshal(idKeyMarked{ID: id})
	if err := safefile.Write(s.idKeyWitnessFile(o.PBX), b, fileMode); err != nil {
		return fmt.Errorf("mark it in %s: %w", dir, err)
	}
	return nil
}
