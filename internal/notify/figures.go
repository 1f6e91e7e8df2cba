package notify

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// DayCalls reads a PBX-local day's call figures from the reporting views
// of schema (calls_daily and missed_calls, README "Reporting"), so that
// the summary says what a report on the same data says.
func DayCalls(ctx context.Context, pool *pgxpool.Pool, schema, pbx string, day time.Time) (*CallFigures, error) {
	d := day.Format(time.DateOnly)
	var c CallFigures
	err := pool.QueryRow(ctx, `SELECT coalesce(sum(calls), 0)::bigint, coalesce(sum(answered), 0)::bigint
FROM `+pgx.Identifier{schema, "calls_daily"}.Sanitize()+` WHERE pbx = $1 AND day = $2::date`, pbx, d).Scan(&c.Calls, &c.Answered)
	if err != nil {
		return nil, fmt.Errorf("read calls of %s from calls_daily: %w", d, err)
	}
	err = pool.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE next_call_id IS NULL)
FROM `+pgx.Identifier{schema, "missed_calls"}.Sanitize()+` WHERE pbx = $1 AND local_start::date = $2::date`, pbx, d).Scan(&c.Missed, &c.NotCalledBack)
	if err != nil {
		return nil, fmt.Errorf("read missed calls of %s from missed_calls: %w", d, err)
	}
	return &c, nil
}
