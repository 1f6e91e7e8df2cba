package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// execer is what generateCalls needs of a connection or a transaction.
type execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// groups measures group_intervals for one call group over a year of one
// PBX: -n calls of three legs each (a ring-all group of three members;
// answered, abandoned, short abandons and timeouts) generated in the
// database, the schema, colleagues and call groups set up by a real
// export. Its limit, measured in the same run, is one sequential scan of
// the same call_history. The year is generated with the reporting
// triggers off and group_calls_stored computed once whole (what the
// migration does for an existing database); then a nightly run's day of
// calls is written with the triggers on and off, to show what keeping
// group_calls up to date costs a run.
func (b *bench) groups(ctx context.Context) error {
	o := b.o
	s, err := b.startSim(10)
	if err != nil {
		return err
	}
	defer s.stop()
	schema := randomName("bench_groups_")
	if _, err := b.exportWith(b.wx, s.base, "EXPORT_SINK=postgres", "EXPORT_DATABASE_URL="+o.db, "EXPORT_DB_SCHEMA="+schema,
		"EXPORT_ENDPOINTS=colleagues,call_groups"); err != nil {
		return fmt.Errorf("set up schema %s: %w", schema, err)
	}
	conn, err := pgx.Connect(ctx, o.db)
	if err != nil {
		return fmt.Errorf("PostgreSQL at -db: %w", err)
	}
	defer conn.Close(ctx)
	defer conn.Exec(context.WithoutCancel(ctx), "DROP SCHEMA "+schema+" CASCADE")
	var pbx string
	if err := conn.QueryRow(ctx, "SELECT pbx FROM "+schema+".colleagues LIMIT 1").Scan(&pbx); err != nil {
		return fmt.Errorf("read the PBX's name: %w", err)
	}
	fmt.Fprintf(os.Stderr, "groups: generating %d calls (%d legs)…\n", o.n, 3*o.n)
	start := time.Now()
	if _, err := conn.Exec(ctx, "ALTER TABLE "+schema+".call_history DISABLE TRIGGER group_calls_legs_inserted"); err != nil {
		return fmt.Errorf("turn the reporting trigger off: %w", err)
	}
	if err := generateCalls(ctx, conn, schema, pbx, 1, o.n, o.n); err != nil {
		return err
	}
	if _, err := conn.Exec(ctx, "ALTER TABLE "+schema+".call_history ENABLE TRIGGER group_calls_legs_inserted"); err != nil {
		return fmt.Errorf("turn the reporting trigger on: %w", err)
	}
	if _, err := conn.Exec(ctx, "ANALYZE "+schema+".call_history"); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "groups: generated in %s; computing group_calls_stored…\n", time.Since(start).Round(time.Second))
	start = time.Now()
	if _, err := conn.Exec(ctx, "SELECT "+schema+".group_calls_rebuild($1)", pbx); err != nil {
		return fmt.Errorf("compute group_calls_stored: %w", err)
	}
	b.add("groups: group_calls_stored computed whole", o.n, sample{d: time.Since(start)}, "once, by the migration; again when colleagues' extensions or call groups change")
	if _, err := conn.Exec(ctx, "ANALYZE "+schema+".group_calls_stored"); err != nil {
		return err
	}
	if err := b.groupQueries(ctx, conn, schema, pbx); err != nil {
		return err
	}
	return b.nightlyRun(ctx, conn, schema, pbx)
}

// generateCalls inserts calls from to to (legs 3c to 3c+2) of a year of
// perYear calls. Call c rings 201-203 at once; c mod 10: 0-6 answered by
// one member after c mod 40 s, 7 abandoned after 8 + c mod 30 s, 8 a
// short abandon (3 s), 9 the group's 30 s timeout.
func generateCalls(ctx context.Context, q execer, schema, pbx string, from, to, perYear int) error {
	_, err := q.Exec(ctx, fmt.Sprintf(`
INSERT INTO %[1]s.call_history (pbx, id, start_time, answer_time, end_time, duration, billsec, disposition, type,
  src, dst, from_number, to_number, channel, dstchannel, lastapp, tz_offset, raw, run_id)
SELECT $1, 3 * c + k, ts,
       CASE WHEN ans THEN ts + make_interval(secs => w) END,
       ts + make_interval(secs => w + CASE WHEN ans THEN 120 ELSE 0 END),
       w + CASE WHEN ans THEN 120 ELSE 0 END, CASE WHEN ans THEN 120 ELSE 0 END,
       CASE WHEN ans THEN 'ANSWERED' ELSE 'NO ANSWER' END, 'call',
       '+39333' || c, '600', '+39333' || c, '600', 'SIP/trunk-' || to_hex(c), 'SIP/' || (201 + k) || '-' || to_hex(3 * c + k),
       'Dial', '+0100', '{}'::jsonb, 'bench'
FROM generate_series($2::integer, $3::integer) c
CROSS JOIN generate_series(0, 2) k
CROSS JOIN LATERAL (SELECT timestamptz '2025-01-01 00:00:00+00' + make_interval(secs => c * (365.0 * 86400 / $4::integer)) AS ts,
                           CASE WHEN c %% 10 < 7 THEN c %% 40 WHEN c %% 10 = 7 THEN 8 + c %% 30 WHEN c %% 10 = 8 THEN 3 ELSE 30 END AS w) t
CROSS JOIN LATERAL (SELECT c %% 10 < 7 AND k = c %% 3 AS ans) a`, schema), pbx, from, to, perYear)
	if err != nil {
		return fmt.Errorf("generate calls %d to %d: %w", from, to, err)
	}
	return nil
}

// groupQueries times the limit and group_intervals, o.runs times each.
func (b *bench) groupQueries(ctx context.Context, conn *pgx.Conn, schema, pbx string) error {
	queries := []struct{ name, sql, note string }{
		{"groups: scan limit (count of call_history)", "SELECT count(*) FROM " + schema + ".call_history WHERE pbx = $1", "3 legs a call"},
		{"groups: group_intervals, one group, a year", "SELECT count(*) FROM " + schema + ".group_intervals gi WHERE pbx = $1 AND group_key = 'g:1' AND length(gi::text) > 0",
			"every column computed (as text), over group_calls_stored"},
	}
	for r := 0; r < b.o.runs; r++ {
		for _, q := range queries {
			start := time.Now()
			var n int64
			if err := conn.QueryRow(ctx, q.sql, pbx).Scan(&n); err != nil {
				return fmt.Errorf("%s: %w", q.name, err)
			}
			b.add(q.name, b.o.n, sample{d: time.Since(start)}, fmt.Sprintf("%s; %d rows", q.note, n))
		}
	}
	return nil
}

// nightlyRun writes the next day's calls (a 365th of the year) as a run's
// batches of 1,000 legs would, in one transaction rolled back, with the
// reporting triggers off (the figure before) and on, o.runs times each.
func (b *bench) nightlyRun(ctx context.Context, conn *pgx.Conn, schema, pbx string) error {
	day := max(b.o.n/365, 1)
	for r := 0; r < b.o.runs; r++ {
		for _, on := range []bool{false, true} {
			d, err := b.writeDay(ctx, conn, schema, pbx, day, on)
			if err != nil {
				return err
			}
			name := "groups: a nightly run's day written, reporting triggers off"
			if on {
				name = "groups: a nightly run's day written, reporting triggers on"
			}
			b.add(name, 3*day, sample{d: d}, fmt.Sprintf("%d calls in statements of 1,000 legs, one transaction", day))
		}
	}
	return nil
}

func (b *bench) writeDay(ctx context.Context, conn *pgx.Conn, schema, pbx string, day int, triggers bool) (time.Duration, error) {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback(ctx)
	if !triggers {
		if _, err := tx.Exec(ctx, "ALTER TABLE "+schema+".call_history DISABLE TRIGGER USER"); err != nil {
			return 0, fmt.Errorf("turn the reporting triggers off: %w", err)
		}
	}
	start := time.Now()
	for c := b.o.n + 1; c <= b.o.n+day; c += 333 {
		if err := generateCalls(ctx, tx, schema, pbx, c, min(c+332, b.o.n+day), b.o.n); err != nil {
			return 0, err
		}
	}
	return time.Since(start), nil
}

// reportGroups prints the groups case's figures against its goal.
func (b *bench) reportGroups(w io.Writer) {
	g, lim := b.figures["groups: group_intervals, one group, a year"], b.figures["groups: scan limit (count of call_history)"]
	if g == nil || lim == nil {
		return
	}
	fmt.Fprintln(w, "\n## Call groups (issue 26)")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| figure | value | goal |")
	fmt.Fprintln(w, "|---|---|---|")
	fmt.Fprintf(w, "| group_intervals, one group over %d calls (a year) | %.2f s, %.1f × a scan of call_history | < 2 s at 1,000,000 calls |\n",
		g.rows, g.median().Seconds(), g.median().Seconds()/lim.median().Seconds())
	if f := b.figures["groups: group_calls_stored computed whole"]; f != nil {
		fmt.Fprintf(w, "| group_calls_stored computed whole (the migration, once) | %.0f s | reported |\n", f.median().Seconds())
	}
	off, on := b.figures["groups: a nightly run's day written, reporting triggers off"], b.figures["groups: a nightly run's day written, reporting triggers on"]
	if off != nil && on != nil {
		fmt.Fprintf(w, "| a nightly run's day (%d legs) written, reporting triggers on ÷ off | %.2f s ÷ %.2f s = %.1f | small |\n",
			on.rows, on.median().Seconds(), off.median().Seconds(), on.median().Seconds()/off.median().Seconds())
	}
}
