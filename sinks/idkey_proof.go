package sinks

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/wildix-export/wildix-export/exporter/recordings"
	"github.com/wildix-export/wildix-export/internal/pseudonym"
)

// A key of before keys were kept by PBX (legacyMaterial) is taken for a
// PBX that has written rows and whose key the record does not hold, nor
// its mark says it took one: a sink of before. The record and the mark
// deleted together (attack 6, F3: .idkeys.json and .state/<pbx>/.idkey.json
// removed, the rule kept) look the same, and the key taken then (the
// suppression list's own key, the pseudonym key) is not the one the
// PBX's recordings were named with: the look-back copied every one again,
// with a second row, exit 0. So the key is taken only once proven: the
// names it gives the PBX's stored recordings under a keyed id (k-), read
// from their rows' PBX id and path, must be theirs. A row whose id or
// path a rule replaced (a pseudonym, erased) cannot tell; under a rule,
// those of calls between extensions, whose id and path hold no number
// replaced, can. With none that can, the key is taken as before.

// keyedRow is a recording's row under a keyed id: its key, the PBX's id
// and path as the row holds them.
type keyedRow struct{ key, id, path string }

// legacyProofRows is how many rows under a keyed id legacy proof reads.
const legacyProofRows = 20

// tells reports whether kr's id and path are as the PBX sent them: no
// pseudonym and nothing erased in them.
func (kr keyedRow) tells() bool {
	for _, v := range []string{kr.id, kr.path} {
		if strings.Contains(v, pseudonym.NumberPrefix) || strings.Contains(v, pseudonym.NamePrefix) || strings.Contains(v, Erased) {
			return false
		}
	}
	return kr.id != "" || kr.path != ""
}

// provenLegacy checks m, a key of before keys were kept by PBX, against
// the rows of o.PBX under a keyed id (r.keyedSample): nil when no row can
// tell (none, or every one's id and path replaced) or one's name is the
// one m gives it; else the refusal, naming the record to restore.
func (r *idKeyRecord) provenLegacy(o IDKeyOptions, m idMaterial) error {
	if r.keyedSample == nil || m.raw == nil {
		return nil
	}
	rows, err := r.keyedSample(o.PBX)
	if err != nil {
		return fmt.Errorf("look for recordings stored under a keyed id: %w", err)
	}
	k, err := pseudonym.New(m.raw)
	if err != nil {
		return nil // a damaged key is refused by recordingsKey
	}
	told := ""
	for _, kr := range rows {
		if !kr.tells() {
			continue
		}
		rec := recordings.Recording{ID: kr.id, Path: kr.path, IDKey: k}
		if recordings.StoredID(rec) == kr.key || kr.id != "" && recordings.AltID(rec) == kr.key {
			return nil
		}
		if told == "" {
			told = kr.key
		}
	}
	if told == "" {
		return nil
	}
	return fmt.Errorf("%w: the sink holds recordings of PBX %q stored under a keyed id (recording %s), and keeps no key of recordings' ids for it, nor the mark of one in the PBX's state; "+
		"the key a sink written before keys were kept by PBX named them with does not give their names: "+
		"the record of the keys (%s) and the PBX's mark of its key were lost, or the state restored from a backup older than them; "+
		"restore them, with the suppression list, from the backup taken with the data (README, Erasure), and run again; "+
		"another key would name every such recording anew and copy it again, with a second row. "+
		"With no backup holding them: delete PBX %q's recordings stored under a keyed id (their rows, whose recording starts with k-, and their files), "+
		"accepting that they are copied again; or %s",
		ErrRecordingsKey, o.PBX, told, r.where, o.PBX, o.newExport)
}

// keyedSample reads up to legacyProofRows of pbx's recordings' rows under
// a keyed id that are not erased and whose id and path hold no pseudonym
// (keyedRow.tells: under a rule, those of calls between extensions).
func (p *Postgres) keyedSample(ctx context.Context, q pgx.Tx, pbx string) ([]keyedRow, error) {
	rows, err := q.Query(ctx, "SELECT recording, coalesce(id, ''), coalesce(path, '') FROM "+p.ident("recordings")+
		" WHERE pbx = $1 AND recording LIKE 'k-%' AND coalesce(status, '') <> $2 AND coalesce(id, '') || coalesce(path, '') NOT LIKE '%p:%' "+
		"AND coalesce(id, '') || coalesce(path, '') NOT LIKE '%n:%' ORDER BY recording LIMIT $3", pbx, Erased, legacyProofRows)
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "42P01" {
		return nil, nil
	}
	if err != nil {
		return nil, dbError(err)
	}
	var out []keyedRow
	var kr keyedRow
	_, err = pgx.ForEachRow(rows, []any{&kr.key, &kr.id, &kr.path}, func() error {
		out = append(out, kr)
		return nil
	})
	return out, dbError(err)
}

// keyedSample is Postgres.keyedSample for the folder: the rows of pbx's
// recordings data files, read in order until enough are found (every
// file, when fewer are: only the start of a run whose key is not kept).
func (s *CSV) keyedSample(pbx string) ([]keyedRow, error) {
	dir := filepath.Join(s.opt.Dir, "recordings")
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	files, err := s.ownFiles(pbx, dir)
	if err != nil {
		return nil, err
	}
	var out []keyedRow
	for _, f := range files {
		if len(out) >= legacyProofRows {
			break
		}
		rows, err := s.keyedRowsOf(filepath.Join(dir, f.Name), legacyProofRows-len(out))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("read %s: %w", f.Name, err)
		}
		out = append(out, rows...)
	}
	return out, nil
}

// keyedRowsOf reads up to n rows under a keyed id, not erased, that tell
// (keyedRow.tells), of the recordings data file path.
func (s *CSV) keyedRowsOf(path string, n int) ([]keyedRow, error) {
	src, err := openData(path)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	cr := csv.NewReader(src)
	cr.FieldsPerRecord = -1
	header, err := cr.Read()
	if err != nil {
		return nil, err
	}
	at := func(row []string, name string) string {
		if i := slices.Index(header, name); i >= 0 && i < len(row) {
			return s.unquoteCell(row[i])
		}
		return ""
	}
	var out []keyedRow
	for len(out) < n {
		row, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		if kr := (keyedRow{key: at(row, "recording"), id: at(row, "id"), path: at(row, "path")}); strings.HasPrefix(kr.key, "k-") && at(row, "status") != Erased && kr.tells() {
			out = append(out, kr)
		}
	}
	return out, nil
}
