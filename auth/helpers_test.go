package auth

import (
	"context"

	"github.com/jackc/pgx/v5/pgxpool"
)

func pgxpoolNew(ctx context.Context, url string) (*pgxpool.Pool, error) { return pgxpool.New(ctx, url) }
