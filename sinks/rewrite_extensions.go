package sinks

import (
	"context"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/wildix-export/wildix-export/exporter/record"
)

// StoredExtensions returns the extensions pbx's colleagues' rows in the
// sink hold: the column "extension" of each of endpoints that is the
// staff's (record.Endpoint.Staff), every row, deleted ones included (a
// colleague removed from the PBX since). A rewrite under the rule
// (RewriteUnderRule) keeps them readable with those the run's start read
// from the PBX, so that a colleague gone from the PBX keeps the long
// extension earlier rows hold readable (review 17, R17-1). Values as
// stored, each once; the caller tells which are long extensions.
func (p *Postgres) StoredExtensions(ctx context.Context, pbx string, endpoints []record.Endpoint) ([]string, error) {
	tables, err := p.tables(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range endpoints {
		if !e.Staff || e.Column("extension") < 0 || !slices.Contains(tables, e.Name) {
			continue
		}
		rows, err := p.pool.Query(ctx, "SELECT DISTINCT extension::text FROM "+p.ident(e.Name)+" WHERE pbx = $1 AND extension IS NOT NULL", pbx)
		if err != nil {
			return nil, fmt.Errorf("read the extensions of %s: %w", e.Name, dbError(err))
		}
		ext, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return nil, fmt.Errorf("read the extensions of %s: %w", e.Name, dbError(err))
		}
		out = append(out, ext...)
	}
	return out, nil
}

// StoredExtensions is Postgres.StoredExtensions for the folder: every
// data file of pbx of the staff's endpoints (every run's snapshot
// files), read through EditRows with an edit that changes nothing.
func (s *CSV) StoredExtensions(ctx context.Context, pbx string, endpoints []record.Endpoint) ([]string, error) {
	seen := map[string]bool{}
	var out []string
	for i := range endpoints {
		e := &endpoints[i]
		if !e.Staff || e.Column("extension") < 0 {
			continue
		}
		var header []string
		at := -1
		_, err := s.EditRows(ctx, pbx, e, "look", func(h, cells []string) (RowEdit, error) {
			if !slices.Equal(h, header) {
				header, at = slices.Clone(h), slices.Index(h, "extension")
			}
			if at >= 0 && at < len(cells) {
				if v := s.unquoteCell(cells[at]); v != "" && !seen[v] {
					seen[v] = true
					out = append(out, v)
				}
			}
			return RowEdit{}, nil
		})
		if err != nil {
			return nil, fmt.Errorf("read the extensions of %s: %w", e.Name, err)
		}
	}
	return out, nil
}
