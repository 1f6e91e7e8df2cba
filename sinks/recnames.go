package sinks

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/wildix-export/wildix-export/exporter/record"
)

// Rows naming a recording's file.
//
// The exporter removes a file from the recordings store that no row
// names only on proof that it is a recording it must not keep (a failed
// run stored it, and the number of its call was forgotten since: attack
// 6, F12). "No row names it" is asked of the sink here, over every PBX's
// rows: a row of any status, any PBX, naming the file keeps it.

// NamedObjects reports which of names a row of ep's table names in its
// object column, whatever its PBX or status (a name no row names is not
// in the map). A table not created yet names none.
func (p *Postgres) NamedObjects(ctx context.Context, ep *record.Endpoint, names []string) (map[string]bool, error) {
	out := map[string]bool{}
	if len(names) == 0 {
		return out, nil
	}
	var there bool
	if err := p.pool.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", p.ident(ep.Name)).Scan(&there); err != nil {
		return nil, fmt.Errorf("read %s: %w", ep.Name, dbError(err))
	}
	if !there {
		return out, nil
	}
	rows, err := p.pool.Query(ctx, "SELECT DISTINCT object FROM "+p.ident(ep.Name)+" WHERE object = ANY($1::text[])", names)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", ep.Name, dbError(err))
	}
	defer rows.Close()
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, fmt.Errorf("read %s: %w", ep.Name, dbError(err))
		}
		out[n] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", ep.Name, dbError(err))
	}
	return out, nil
}

// NamedObjects reports which of names a row of ep's folder names in its
// object column, whatever its PBX or status: every data file of the
// folder is read (.csv and .csv.gz, committed or not: a file that may
// hold a row counts), one at a time. A folder not created yet names none.
// A file named as the sink names its data files (csvDataName) that cannot
// be read, or whose header has no object column (damaged), fails the
// call: its rows may name files, which are kept (review 40, R40-2: it was
// skipped as a foreign file, and the files it named became removable).
// Any other file (a report put beside the data files: R34-2) is read as
// far as it can be, its names kept; one without an object column, or
// that cannot be read, names no more.
func (s *CSV) NamedObjects(ctx context.Context, ep *record.Endpoint, names []string) (map[string]bool, error) {
	out := map[string]bool{}
	if len(names) == 0 {
		return out, nil
	}
	want := make(map[string]bool, len(names))
	for _, n := range names {
		want[n] = n != ""
	}
	dir := filepath.Join(s.opt.Dir, ep.Name)
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".csv") && !strings.HasSuffix(name, ".csv.gz") {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		err := namedIn(filepath.Join(dir, name), want, out)
		switch {
		case err == nil, errors.Is(err, fs.ErrNotExist):
			// Read, or removed since the listing (an edit, a prune).
		case !csvDataName.MatchString(name):
			// Not the sink's (R34-2: a report put beside the data
			// files): it names no more than was read of it.
			s.opt.Log.Debug("recordings: a CSV file not named as the sink's data files, unreadable or with no object column, read as naming no file", "file", ep.Name+"/"+name, "err", err)
		case errors.Is(err, errNoObject):
			return nil, fmt.Errorf("read %s/%s: %w: it is named as the sink's data files, whose rows may name stored recordings, which are kept until it is read: restore it from a backup (or move it out of the folder if it is not the sink's)", ep.Name, name, err)
		default:
			return nil, fmt.Errorf("read %s/%s: %w", ep.Name, name, err)
		}
	}
	return out, nil
}

// errNoObject is a data file whose header has no object column.
var errNoObject = errors.New("its header has no object column (damaged)")

// namedIn adds to out each of want (a name → asked) that a row of the
// data file at path names in its object column; errNoObject when its
// header has none.
func namedIn(path string, want, out map[string]bool) error {
	has, err := hasObjectColumn(path)
	if err != nil {
		return err
	}
	if !has {
		return errNoObject
	}
	return scanFile(path, []string{"object"}, nil, func(obj string, _ []byte) error {
		// As cell wrote it with EXPORT_CSV_SAFE_FORMULAS: a name never
		// starts so, but a row naming it that way still names it.
		for _, o := range []string{obj, strings.TrimPrefix(obj, "'")} {
			if want[o] {
				out[o] = true
			}
		}
		return nil
	})
}

// errHeaderRead stops hasObjectColumn's scan once the header is read.
var errHeaderRead = errors.New("header read")

// hasObjectColumn reports whether the header of the data file at path
// has an object column; a file with no record has none.
func hasObjectColumn(path string) (bool, error) {
	has := false
	err := scanFile(path, nil, func(raw []byte) error {
		header, err := csv.NewReader(bytes.NewReader(raw)).Read()
		if err != nil {
			return fmt.Errorf("read %s: header: %w", path, err)
		}
		has = slices.Contains(header, "object")
		return errHeaderRead
	}, func(string, []byte) error { return errHeaderRead })
	if err != nil && !errors.Is(err, errHeaderRead) {
		return false, err
	}
	return has, nil
}

// PeekState is pbx's committed state under key as the state file holds
// it, read only: unlike State, no crashed commit is completed and no
// stale file removed, so that `check` (which reads the recordings' files
// pending removal there) changes nothing, even beside a run going on. A
// commit not completed yet is not seen.
func (s *CSV) PeekState(_ context.Context, pbx, key string) ([]byte, error) {
	st, err := s.readState(pbx, key)
	if err != nil || st == nil {
		return nil, err
	}
	return st.State, nil
}
