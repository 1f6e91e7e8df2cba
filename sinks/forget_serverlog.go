package sinks

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wildix-export/wildix-export/exporter/record"
)

// Forget sends PostgreSQL the number it erases: its clear forms as bind
// parameters (the colleagues' extensions compared with them) and a
// pattern spelling it digit by digit (the search of every table); the
// statements' text never holds it (extended). A server logging statements
// (log_statement, log_min_duration_statement, log_min_duration_sample,
// log_transaction_sample_rate) writes their parameters into its log too,
// unless log_parameter_max_length is 0, and a failed statement's when
// log_parameter_max_length_on_error is not 0: the erasure would leave the
// number in clear where forget cannot erase it (attack10 F1). So every
// statement carrying the number goes on a connection quietConn gives.

// extended is the first argument of every statement carrying the number:
// it makes pgx send the statement with the extended protocol, its
// parameters apart from its text, whatever EXPORT_DATABASE_URL's
// default_query_exec_mode. With simple_protocol (usual behind pgbouncer)
// pgx would write them into the text, which log_parameter_max_length = 0
// does not hide (R46-1). A pooler in transaction mode may send its two
// round trips, and the session's settings, to different server
// connections (review 49, R49-1): README tells to run forget against the
// database or a session-mode pool.
const extended = pgx.QueryExecModeDescribeExec

// serverLog is the server's settings deciding whether it logs a
// statement's bind parameters, as pg_settings gives them (base units);
// a setting missing (an older server, one hidden from the role) is "".
type serverLog map[string]string

// serverLogNames are the settings serverLog reads.
var serverLogNames = []string{"log_statement", "log_min_duration_statement", "log_min_duration_sample",
	"log_statement_sample_rate", "log_transaction_sample_rate", "log_parameter_max_length", "log_parameter_max_length_on_error"}

// num is setting name as a number; missing or not a number, dflt.
func (s serverLog) num(name string, dflt float64) float64 {
	v, err := strconv.ParseFloat(s[name], 64)
	if err != nil {
		return dflt
	}
	return v
}

// logsStatements says whether the server may log a statement forget
// sends with its parameters (log_parameter_max_length aside) on a
// connection that modifies rows (modifies) or only searches. A setting
// it cannot read counts as logging. log_statement = mod counts only
// where the connection modifies: it logs no SELECT (R46-6).
func (s serverLog) logsStatements(modifies bool) bool {
	switch s["log_statement"] {
	case "none", "ddl":
	case "mod":
		if modifies {
			return true
		}
	default:
		return true
	}
	return s.num("log_min_duration_statement", 0) >= 0 ||
		s.num("log_min_duration_sample", 0) >= 0 && s.num("log_statement_sample_rate", 1) > 0 ||
		s.num("log_transaction_sample_rate", 1) > 0
}

// quietOnError says whether log_parameter_max_length_on_error must be
// set to 0: it is not 0, and the server has it (before PostgreSQL 13 it
// has not, and logs no failed statement's parameters: R46-9).
func (s serverLog) quietOnError() bool {
	return s["log_parameter_max_length_on_error"] != "" && s.num("log_parameter_max_length_on_error", -1) != 0
}

// logging names the settings making the server log statements, with
// their values, for the refusal.
func (s serverLog) logging() string {
	var out []string
	for _, n := range serverLogNames[:5] {
		out = append(out, n+"="+s[n])
	}
	return strings.Join(out, ", ")
}

// quietConn acquires a connection of the pool on which the server logs
// no bind parameter (quiet); release it when done. Every statement
// carrying the number forget erases goes on one; modifies says whether
// any of them changes a row (searches only: false).
func (p *Postgres) quietConn(ctx context.Context, modifies bool) (*pgxpool.Conn, error) {
	c, err := p.pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("forget: connect to PostgreSQL: %w", dbError(err))
	}
	if err := quiet(ctx, c.Conn(), modifies); err != nil {
		c.Release()
		return nil, err
	}
	return c, nil
}

// quiet makes the server log no bind parameter of c's statements, for
// the session: log_parameter_max_length_on_error set to 0 when it is not
// (any role may), and log_parameter_max_length when the server logs
// statements (a superuser, or a role granted SET on it, may). When that
// is refused it refuses (record.ErrConfig, exit 2), naming the settings
// and what to do, before any statement carrying the number is sent.
// It is read again on each connection acquired: a SET lasts the session.
func quiet(ctx context.Context, c *pgx.Conn, modifies bool) error {
	// The names in the text: a statement without parameters, none logged.
	rows, err := c.Query(ctx, "SELECT name, setting FROM pg_settings WHERE name IN ('"+strings.Join(serverLogNames, "', '")+"')")
	if err != nil {
		return fmt.Errorf("forget: read the server's logging settings: %w", dbError(err))
	}
	s := serverLog{}
	var name, setting string
	if _, err := pgx.ForEachRow(rows, []any{&name, &setting}, func() error {
		s[name] = setting
		return nil
	}); err != nil {
		return fmt.Errorf("forget: read the server's logging settings: %w", dbError(err))
	}
	// auto_explain logs the plans of statements it times, and a custom
	// plan holds the parameters' values as constants (attack11 F1: the
	// extension check's clear forms and the search's pattern); a generic
	// plan keeps $1. Any role may set it; a server before PostgreSQL 12
	// lacks it (undefined_object), and plans no custom plan there.
	if _, err := c.Exec(ctx, "SET plan_cache_mode = force_generic_plan"); err != nil {
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "42704" {
			return fmt.Errorf("forget: set plan_cache_mode = force_generic_plan, so that a logged plan holds no number: %w", dbError(err))
		}
	}
	if s.quietOnError() {
		if _, err := c.Exec(ctx, "SET log_parameter_max_length_on_error = 0"); err != nil {
			return fmt.Errorf("forget: set log_parameter_max_length_on_error = 0 (it is %q), so that the server's log of a failed statement holds no number: %w", s["log_parameter_max_length_on_error"], dbError(err))
		}
	}
	if s.num("log_parameter_max_length", -1) == 0 || !s.logsStatements(modifies) {
		return nil
	}
	_, err = c.Exec(ctx, "SET log_parameter_max_length = 0")
	if err == nil {
		return nil
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "42501" && pgErr.Code != "42704" { // insufficient_privilege, undefined_object (before PostgreSQL 13)
		return fmt.Errorf("forget: set log_parameter_max_length = 0: %w", dbError(err))
	}
	var role string
	if err := c.QueryRow(ctx, "SELECT current_user").Scan(&role); err != nil {
		return fmt.Errorf("forget: read the role: %w", dbError(err))
	}
	return fmt.Errorf("%w: the PostgreSQL server logs this connection's statements (%s) with their parameters (log_parameter_max_length=%s), and forget sends the number it erases as a parameter: it would stay in clear in the server's log, where forget cannot erase it. Role %s may not set log_parameter_max_length to 0 for its session (%s). Run forget as a role that may (a superuser, or one granted it: GRANT SET ON PARAMETER log_parameter_max_length TO %s, PostgreSQL 15 or later), or have the DBA run ALTER ROLE %s SET log_parameter_max_length = 0 (or turn the statement logging off for the role). Forget stopped before sending the number",
		record.ErrConfig, s.logging(), s["log_parameter_max_length"], role, pgErr.Message, pgx.Identifier{role}.Sanitize(), pgx.Identifier{role}.Sanitize())
}
