package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// groups measures group_intervals for one call group over a year of one
// PBX: -n calls of three legs each (a ring-all group of three members;
// answered, abandoned, short abandons and timeouts) generated in the
// database, the schema, colleagues and call groups set up by a real
// export. Its limit, measured in the same run, is one sequential scan of
// the same call_history.
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
	// Call c rings 201-203 at once; c mod 10: 0-6 answered by one member
	// after c mod 40 s, 7 abandoned after 8 + c mod 30 s, 8 a short abandon
	// (3 s), 9 the group's 30 s timeout.
	_, err = conn.Exec(ctx, fmt.Sprintf(`
INSERT INTO %[1]s.call_history (pbx, id, start_time, answer_time, end_time, duration, billsec, disposition, type,
  src, dst, from_number, to_number, channel, dstchannel, lastapp, tz_offset, raw, run_id)
SELECT $1, 3 * c + k, ts,
       CASE WHEN ans THEN ts + make_interval(secs => w) END,
       ts + make_interval(secs => w + CASE WHEN ans THEN 120 ELSE 0 END),
       w + CASE WHEN ans THEN 120 ELSE 0 END, CASE WHEN ans THEN 120 ELSE 0 END,
       CASE WHEN ans THEN 'ANSWERED' ELSE 'NO ANSWER' END, 'call',
       '+39333' || c, '600', '+39333' || c, '600', 'SIP/trunk-' || to_hex(c), 'SIP/' || (201 + k) || '-' || to_hex(3 * c + k),
       'Dial', '+0100', '{}'::jsonb, 'bench'
FROM generate_series(1, $2::integer) c
CROSS JOIN generate_series(0, 2) k
CROSS JOIN LATERAL (SELECT timestamptz '2025-01-01 00:00:00+00' + make_interval(secs => c * (365.0 * 86400 / $2::integer)) AS ts,
                           CASE WHEN c %% 10 < 7 THEN c %% 40 WHEN c %% 10 = 7 THEN 8 + c %% 30 WHEN c %% 10 = 8 THEN 3 ELSE 30 END AS w) t
CROSS JOIN LATERAL (SELECT c %% 10 < 7 AND k = c %% 3 AS ans) a`, schema), pbx, o.n)
	if err != nil {
		return fmt.Errorf("generate calls: %w", err)
	}
	if _, err := conn.Exec(ctx, "ANALYZE "+schema+".call_history"); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "groups: generated in %s\n", time.Since(start).Round(time.Second))
	return b.groupQueries(ctx, conn, schema, pbx)
}

// groupQueries times the limit and group_intervals, o.runs times each;
// then the materialised step docs/reporting.md suggests: group_calls
// stored once (its time a figure of its own), and group_intervals' own
// definition read over the stored rows.
func (b *bench) groupQueries(ctx context.Context, conn *pgx.Conn, schema, pbx string) error {
	var def string
	if err := conn.QueryRow(ctx, "SELECT pg_get_viewdef($1::regclass)", schema+".group_intervals").Scan(&def); err != nil {
		return fmt.Errorf("read group_intervals' definition: %w", err)
	}
	stored := schema + ".bench_group_calls"
	def = strings.ReplaceAll(def, schema+".group_calls", stored)
	if !strings.Contains(def, stored) {
		def = strings.ReplaceAll(def, "FROM group_calls", "FROM "+stored)
	}
	if !strings.Contains(def, stored) {
		return fmt.Errorf("group_intervals' definition does not read group_calls:\n%s", def)
	}
	start := time.Now()
	if _, err := conn.Exec(ctx, "CREATE MATERIALIZED VIEW "+stored+" AS SELECT * FROM "+schema+".group_calls"); err != nil {
		return fmt.Errorf("materialise group_calls: %w", err)
	}
	if _, err := conn.Exec(ctx, "CREATE INDEX ON "+stored+" (pbx, group_key, interval_start)"); err != nil {
		return fmt.Errorf("index the stored group_calls: %w", err)
	}
	b.add("groups: group_calls materialised (refresh after each run)", b.o.n, sample{d: time.Since(start)}, "CREATE MATERIALIZED VIEW and its index")
	conn.Exec(ctx, "ANALYZE "+stored)
	queries := []struct{ name, sql, note string }{
		{"groups: scan limit (count of call_history)", "SELECT count(*) FROM " + schema + ".call_history WHERE pbx = $1", "3 legs a call"},
		{"groups: group_intervals, one group, a year", "SELECT count(*) FROM " + schema + ".group_intervals WHERE pbx = $1 AND group_key = 'g:1'", "the view, computed at the query"},
		{"groups: group_intervals over the materialised group_calls", "SELECT count(*) FROM (" + strings.TrimSuffix(strings.TrimSpace(def), ";") + ") gi WHERE pbx = $1 AND group_key = 'g:1'", "the view's definition over the stored rows"},
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
	fmt.Fprintf(w, "| group_intervals, one group over %d calls (a year) | %.2f s, %.0f × a scan of call_history | < 2 s at 1,000,000 calls |\n",
		g.rows, g.median().Seconds(), g.median().Seconds()/lim.median().Seconds())
	if m := b.figures["groups: group_intervals over the materialised group_calls"]; m != nil {
		fmt.Fprintf(w, "| the same over a materialised group_calls | %.2f s, %.1f × a scan of call_history | < 2 s at 1,000,000 calls |\n",
			m.median().Seconds(), m.median().Seconds()/lim.median().Seconds())
	}
}
