package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wildix-export/wildix-export/auth"
	"github.com/wildix-export/wildix-export/config"
	"github.com/wildix-export/wildix-export/exporter"
	pbxapi "github.com/wildix-export/wildix-export/exporter/pbx"
	"github.com/wildix-export/wildix-export/exporter/record"
)

// cmdCheck only reads: it changes nothing in the sink (missing migrations
// are reported, the next export applies them) and reads nothing from the
// PBX beyond whom the credentials act as, a few call records of 3 (how
// call history can be paged) and, with a recordings store, a list of
// recordings and the first bytes of one file.
func cmdCheck(ctx context.Context, a *app, args []string) error {
	fs := a.flags("check", "", "Check each configured piece, one line each: configuration, sink reachable and\nwritable, PBX reachable, token valid and whom it acts as, how the PBX pages call history,\nand with a recordings store: the store, one recording's file fetched, and warnings (WARN)\nwhen copying falls behind or an erasure (forget) was not completed. Changes nothing.")
	if err := parse(fs, args); err != nil {
		return err
	}
	c := &checkLines{w: a.stdout}
	err := a.load(config.Need{PBX: true, Sink: true})
	if a.redact != nil {
		c.redact = a.redact.Text // each line, as run's logs (attack 30 L3, A3)
	}
	var limits []any
	if err == nil {
		limits = append(limits, rateCap(a.cfg.MaxRPS))
	}
	if c.line(err, "configuration", limits...) != nil {
		return c.result()
	}
	for _, t := range a.cfg.Notify {
		c.line(nil, "notify", t) // sending is `notify --test`'s, not check's
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cat, err := a.catalog()
	if c.line(err, "catalog") != nil {
		return c.result()
	}
	// The sink first: with PostgreSQL it also holds the token.
	s, err := a.checkSink(ctx, c)
	if err != nil && a.cfg.Sink == "postgres" {
		c.line(errors.New("needs the database, which failed above"), "credentials")
		return c.result()
	}
	if s != nil {
		defer s.close()
	}
	if err == nil {
		a.checkForgets(ctx, c, s)
	}
	var pool *pgxpool.Pool
	if s != nil {
		pool = s.pool
	}
	p, err := a.pbxClient(ctx, pool)
	if c.line(err, "credentials") != nil {
		return c.result()
	}
	if a.checkPBX(ctx, c, p) {
		a.checkPaging(ctx, c, p, cat)
		a.checkRecordings(ctx, c, p, cat, s)
	}
	return c.result()
}

// checkPaging tells how call history is paged on this PBX (exporter.Probe).
func (a *app) checkPaging(ctx context.Context, c *checkLines, p *pbx, cat *record.Catalog) {
	eps, err := cat.Select([]string{"call_history"})
	if err != nil {
		c.line(err, "paging", "call_history")
		return
	}
	x := &exporter.Exporter{Client: p.client, PBX: a.cfg.PBXID, Zone: a.cfg.Timezone, Log: a.log, PageSize: a.cfg.PageSize}
	pg, err := x.Probe(ctx, &eps[0])
	if err != nil {
		c.line(fmt.Errorf("probe call_history paging: %w", err), "paging", "call_history")
		return
	}
	if pg.Kind == exporter.PagingNone {
		c.line(fmt.Errorf("%s: an export of call_history would fail, committing nothing; report this PBX's version (an upgrade that honours filter[id] and sort=id, or filter[start], fixes it)", pg.Sentence), "paging", "call_history")
		return
	}
	c.line(nil, "paging", "call_history "+pg.Sentence)
}

// checkLines prints one line per check and keeps the failures.
type checkLines struct {
	w        io.Writer
	failures []error
	// redact, when set (pseudonymisation on), redacts each line.
	redact func(string) string
}

// line prints the check's status; it returns err.
func (c *checkLines) line(err error, what string, detail ...any) error {
	status := "ok  "
	if err != nil {
		status = "FAIL"
		c.failures = append(c.failures, err)
		detail = append(detail, err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s  %-13s", status, what)
	for _, d := range detail {
		fmt.Fprintf(&b, " %v", d)
	}
	c.print(b.String())
	return err
}

// warn prints a warning: a check that passed but needs attention. It
// does not fail check.
func (c *checkLines) warn(what, detail string) {
	c.print(fmt.Sprintf("WARN  %-13s %s", what, detail))
}

func (c *checkLines) print(line string) {
	if c.redact != nil {
		line = c.redact(line)
	}
	fmt.Fprintln(c.w, line)
}

// result is nil, or the failures, already printed.
func (c *checkLines) result() error {
	if len(c.failures) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %w", errQuiet, errors.Join(c.failures...))
}

// checkSink opens the sink and checks it can be written, changing nothing.
func (a *app) checkSink(ctx context.Context, c *checkLines) (*sink, error) {
	if a.cfg.Sink != "postgres" {
		return nil, c.line(writable(a.cfg.CSVDir), "sink", "csv "+a.cfg.CSVDir)
	}
	s, err := a.openSink(ctx)
	if err != nil {
		return nil, c.line(err, "sink", "postgres schema "+a.cfg.DBSchema)
	}
	note, err := a.checkSchema(ctx, s)
	if c.line(err, "sink", "postgres schema "+a.cfg.DBSchema+note) != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

// checkSchema tells whether the database user may create the exporter's
// tables, and how many migrations the next export will apply.
func (a *app) checkSchema(ctx context.Context, s *sink) (note string, err error) {
	var may bool
	var user string
	err = s.pool.QueryRow(ctx, `SELECT current_user, CASE WHEN to_regnamespace($1) IS NULL
  THEN has_database_privilege(current_database(), 'CREATE')
  ELSE has_schema_privilege($1, 'CREATE') AND has_schema_privilege($1, 'USAGE') END`, a.cfg.DBSchema).Scan(&user, &may)
	if err != nil {
		return "", fmt.Errorf("check privileges: %w", err)
	}
	if !may {
		return "", fmt.Errorf("user %s may not create tables in schema %s: GRANT CREATE, USAGE ON SCHEMA %s TO %s (or CREATE on the database)", user, a.cfg.DBSchema, a.cfg.DBSchema, user)
	}
	n, err := s.pg.PendingMigrations(ctx)
	if err != nil || n == 0 {
		return "", err
	}
	return fmt.Sprintf(" (%d migration(s) not applied yet: the next export applies them)", n), nil
}

// checkPBX asks the PBX whom the credentials act as; it reports whether
// the PBX answered and the token is good.
func (a *app) checkPBX(ctx context.Context, c *checkLines, p *pbx) bool {
	began := time.Now()
	status, body, err := p.client.Get(ctx, "/api/v1/personal/info")
	if err == nil && status != http.StatusOK && status != http.StatusUnauthorized && status != http.StatusForbidden {
		err = fmt.Errorf("GET /api/v1/personal/info: %w", &pbxapi.APIError{Status: status, Reason: pbxapi.Reason(body)})
	}
	if c.line(err, "pbx", a.cfg.PBXURL.String(), fmt.Sprintf("(answered in %s)", time.Since(began).Round(time.Millisecond))) != nil {
		return false
	}
	if status != http.StatusOK {
		err = &pbxapi.APIError{Status: status, Reason: pbxapi.Reason(body)}
		if a.cfg.Auth == config.AuthOAuth {
			err = fmt.Errorf("%w: %w", auth.ErrReauthorize, err)
		}
		c.line(err, "token")
		return false
	}
	var me struct {
		Result struct{ ID, Name, Extension, Role string } `json:"result"`
	}
	if err := json.Unmarshal(body, &me); err != nil {
		c.line(fmt.Errorf("read /api/v1/personal/info: %w", err), "token")
		return false
	}
	name := me.Result.Name
	if a.cfg.Pseudonymize.Staff && a.redact != nil && a.redact.Keys != nil {
		// Under all a colleague's name is its pseudonym, as in the
		// colleagues table (attack 30 L5).
		name = a.redact.Keys.Name(name)
	}
	who := fmt.Sprintf("acts as %s (extension %s, role %s)", name, me.Result.Extension, me.Result.Role)
	if exp := p.expiry(); !exp.IsZero() {
		who += ", token valid until " + exp.Local().Format(time.RFC3339)
	}
	c.line(nil, "token", string(a.cfg.Auth), who)
	return true
}

// writable checks that dir, or the folder it will be made in, takes a
// file, leaving nothing behind.
func writable(dir string) error {
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil {
			f, err := os.CreateTemp(d, ".check-*")
			if err != nil {
				return err
			}
			name := f.Name()
			f.Close()
			return os.Remove(name)
		} else if !errors.Is(err, fs.ErrNotExist) || d == filepath.Dir(d) {
			return err
		}
	}
}

// rateCap says what EXPORT_MAX_RPS allows.
func rateCap(rps int) string {
	if rps <= 0 {
		return "no cap on requests to the PBX (EXPORT_MAX_RPS=0)"
	}
	return fmt.Sprintf("at most %d requests a second to the PBX (EXPORT_MAX_RPS)", rps)
}
