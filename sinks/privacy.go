package sinks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/wildix-export/wildix-export/exporter"
	"github.com/wildix-export/wildix-export/internal/safefile"
)

// The pseudonymisation rule and key id a PBX's rows are written under
// (issue 30) are kept with its state, so that a run under another rule or
// key is seen before it writes (cmd refuses it unless forced: mixing two
// keys breaks every join). A PBX with state from before this was kept
// counts as rule none.

// privacyKey is the export_state key of the rule: a space keeps it apart
// from every endpoint's and backfill window's key.
const privacyKey = "pseudonymisation rule"

// privacyFile is the CSV sink's file of the rule, in the PBX's state
// folder: a leading dot keeps it apart from every state file.
const privacyFile = ".privacy.json"

// PrivacyRule returns the rule pbx's rows were written under, and whether
// the PBX has rows or state at all (false: a first export, any rule
// fits). State from before the rule was kept gives rule none.
func (p *Postgres) PrivacyRule(ctx context.Context, pbx string) (exporter.Privacy, bool, error) {
	var b []byte
	err := p.pool.QueryRow(ctx, "SELECT state FROM "+p.ident("export_state")+" WHERE pbx = $1 AND key = $2", pbx, privacyKey).Scan(&b)
	switch {
	case err == nil:
		return decodePrivacy(b)
	case !errors.Is(err, pgx.ErrNoRows):
		return exporter.Privacy{}, false, fmt.Errorf("read the pseudonymisation rule: %w", dbError(err))
	}
	var found bool
	if err := p.pool.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM "+p.ident("export_state")+" WHERE pbx = $1)", pbx).Scan(&found); err != nil {
		return exporter.Privacy{}, false, fmt.Errorf("read the pseudonymisation rule: %w", dbError(err))
	}
	return exporter.Privacy{Rule: "none"}, found, nil
}

// SetPrivacyRule stores the rule pbx's rows are written under from now on.
func (p *Postgres) SetPrivacyRule(ctx context.Context, pbx string, r exporter.Privacy) error {
	r.Changed = ""
	b, _ := json.Marshal(r)
	_, err := p.pool.Exec(ctx, "INSERT INTO "+p.ident("export_state")+` (pbx, key, state) VALUES ($1, $2, $3)
ON CONFLICT (pbx, key) DO UPDATE SET state = EXCLUDED.state, updated_at = now()`, pbx, privacyKey, b)
	if err != nil {
		return fmt.Errorf("store the pseudonymisation rule: %w", dbError(err))
	}
	return nil
}

// PrivacyRule is Postgres.PrivacyRule for the folder: state is any file
// in the PBX's state folder.
func (s *CSV) PrivacyRule(_ context.Context, pbx string) (_ exporter.Privacy, _ bool, err error) {
	defer func() { err = s.advise(err) }()
	b, err := os.ReadFile(filepath.Join(s.stateDir(pbx), privacyFile))
	if err == nil {
		return decodePrivacy(b)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return exporter.Privacy{}, false, fmt.Errorf("read the pseudonymisation rule: %w", err)
	}
	entries, err := os.ReadDir(s.stateDir(pbx))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return exporter.Privacy{}, false, fmt.Errorf("read the pseudonymisation rule: %w", err)
	}
	found := false
	for _, e := range entries {
		found = found || strings.HasSuffix(e.Name(), ".json") && !strings.HasPrefix(e.Name(), ".")
	}
	return exporter.Privacy{Rule: "none"}, found, nil
}

// SetPrivacyRule is Postgres.SetPrivacyRule for the folder (an atomic
// replace).
func (s *CSV) SetPrivacyRule(_ context.Context, pbx string, r exporter.Privacy) (err error) {
	defer func() { err = s.advise(err) }()
	r.Changed = ""
	b, _ := json.Marshal(r)
	dir, err := s.mkStateDir(pbx)
	if err != nil {
		return fmt.Errorf("store the pseudonymisation rule: %w", err)
	}
	if err := safefile.Write(filepath.Join(dir, privacyFile), b, fileMode); err != nil {
		return fmt.Errorf("store the pseudonymisation rule: %w", err)
	}
	return nil
}

func decodePrivacy(b []byte) (exporter.Privacy, bool, error) {
	var r exporter.Privacy
	if err := json.Unmarshal(b, &r); err != nil || r.Rule == "" {
		return r, true, fmt.Errorf("the stored pseudonymisation rule %q is damaged: restore it from a backup, or remove it and run with --force", b)
	}
	return r, true, nil
}
