package auth

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wildix-export/wildix-export/exporter/record"
	"github.com/wildix-export/wildix-export/internal/pgtest"
	"github.com/wildix-export/wildix-export/sinks"
)

func pgxpoolNew(ctx context.Context, url string) (*pgxpool.Pool, error) { return pgxpool.New(ctx, url) }

// migratedSchema is a fresh schema with the versioned migrations applied,
// as every command that uses the PostgreSQL token store has them.
func migratedSchema(t *testing.T) (string, *pgxpool.Pool) {
	t.Helper()
	schema, pool := pgtest.Schema(t)
	cat, err := record.LoadCatalog("")
	if err != nil {
		t.Fatal(err)
	}
	if err := sinks.NewPostgres(pool, schema, nil).Migrate(context.Background(), cat.All()); err != nil {
		t.Fatal(err)
	}
	return schema, pool
}
