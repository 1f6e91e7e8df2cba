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
)

// A colleague's extension may have as many digits as an external number
// (7 or more): forget would then erase it, as it erases any form of the
// number in clear, from every row naming the colleague, and the
// colleague's own entry (review L6). The colleagues the sink holds (the
// colleagues endpoint, a snapshot of the PBX's directory) tell which
// numbers are extensions, so forget can refuse one unless told it is
// meant.

// ForgetExtension is a colleague's extension among the forms forget
// searches in clear (ForgetExtensions).
type ForgetExtension struct {
	PBX string // the PBX whose colleague has it
	// National is true when the extension is a national form of the
	// number given, not the number as given.
	National bool
}

// ClearForms are the digit runs f is searched as in clear: the number's
// digits and, given internationally, its national forms.
func (f *Forgotten) ClearForms() []string {
	return append([]string{f.digits}, f.national...)
}

// extensionsAmong returns, of exts (PBX → the extensions its colleagues
// have), those that are one of f's clear forms, sorted by PBX.
func extensionsAmong(f *Forgotten, exts map[string][]string) []ForgetExtension {
	var out []ForgetExtension
	for pbx, list := range exts {
		for _, e := range list {
			digits := strings.TrimSpace(e)
			if len(digits) < MinForgetDigits || strings.Trim(digits, "0123456789") != "" {
				continue
			}
			if i := slices.Index(f.ClearForms(), digits); i >= 0 {
				out = append(out, ForgetExtension{PBX: pbx, National: i > 0})
				break
			}
		}
	}
	slices.SortFunc(out, func(a, b ForgetExtension) int { return strings.Compare(a.PBX, b.PBX) })
	return out
}

// ForgetExtensions returns the PBXes of the schema one of whose
// colleagues (the colleagues table) has an extension that is one of f's
// clear forms. A schema without the table gives none: it cannot tell.
// It asks on a connection whose statements' parameters the server does
// not log (quietConn), or refuses: forget's first statement carrying the
// number, before it changes anything.
func (p *Postgres) ForgetExtensions(ctx context.Context, f *Forgotten) ([]ForgetExtension, error) {
	c, err := p.quietConn(ctx, false)
	if err != nil {
		return nil, err
	}
	defer c.Release()
	var there bool
	if err := c.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", p.ident("colleagues")).Scan(&there); err != nil {
		return nil, fmt.Errorf("read the colleagues' extensions: %w", dbError(err))
	}
	if !there {
		return nil, nil
	}
	rows, err := c.Query(ctx, "SELECT DISTINCT pbx, extension FROM "+p.ident("colleagues")+" WHERE extension = ANY($1)", extended, f.ClearForms())
	if err != nil {
		return nil, fmt.Errorf("read the colleagues' extensions: %w", dbError(err))
	}
	exts := map[string][]string{}
	var pbx, ext string
	if _, err := pgx.ForEachRow(rows, []any{&pbx, &ext}, func() error {
		exts[pbx] = append(exts[pbx], ext)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("read the colleagues' extensions: %w", dbError(err))
	}
	return extensionsAmong(f, exts), nil
}

// ForgetExtensions is Postgres.ForgetExtensions for the folder: every
// PBX's colleagues files (their manifests say whose). A folder without
// them gives none.
func (s *CSV) ForgetExtensions(ctx context.Context, f *Forgotten) (_ []ForgetExtension, err error) {
	defer func() { err = s.advise(err) }()
	dir := filepath.Join(s.opt.Dir, "colleagues")
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	scope, err := s.ForgetScope(ctx)
	if err != nil {
		return nil, err
	}
	exts := map[string][]string{}
	for _, pbx := range scope.PBXes {
		files, err := s.ownFiles(pbx, dir)
		if err != nil {
			return nil, fmt.Errorf("read the colleagues' extensions: %w", err)
		}
		for _, of := range files {
			list, err := csvColumn(filepath.Join(dir, of.Name), "extension")
			if err != nil {
				return nil, fmt.Errorf("read the colleagues' extensions in colleagues/%s: %w", of.Name, err)
			}
			exts[pbx] = append(exts[pbx], list...)
		}
	}
	return extensionsAmong(f, exts), nil
}

// csvColumn returns the values of the column named name of the data
// file at path (none when it has no such column).
func csvColumn(path, name string) ([]string, error) {
	r, err := openData(path)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	c := slices.Index(header, name)
	if c < 0 {
		return nil, nil
	}
	var out []string
	for {
		row, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		if c < len(row) {
			out = append(out, row[c])
		}
	}
}
