package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/wildix-export/wildix-export/auth"
	"github.com/wildix-export/wildix-export/config"
	"github.com/wildix-export/wildix-export/exporter"
)

func cmdQuery(ctx context.Context, a *app, args []string) error {
	fs := a.flags("query", "PATH", `GET any PBX API path (with its query string) with the stored credentials and
print the JSON answer indented, as Postman's last step did. For example:
  wildix-export query '/api/v1/PBX/CallHistory/?count=2&sort=id&dir=DESC'`)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 || !strings.HasPrefix(fs.Arg(0), "/") {
		fs.Usage()
		return fmt.Errorf("%w: query takes one path starting with /, e.g. /api/v1/personal/info", errUsage)
	}
	if err := a.load(config.Need{PBX: true}); err != nil {
		return err
	}
	pool, err := a.tokenDB(ctx)
	if err != nil {
		return err
	}
	if pool != nil {
		defer pool.Close()
	}
	p, err := a.pbxClient(ctx, pool)
	if err != nil {
		return err
	}
	status, body, err := p.client.Get(ctx, fs.Arg(0))
	if err != nil {
		return fmt.Errorf("query %s: %w", fs.Arg(0), err)
	}
	var out bytes.Buffer
	if json.Indent(&out, body, "", "  ") != nil {
		out.Reset()
		out.Write(body)
	}
	if status < 200 || status > 299 {
		fmt.Fprintln(a.stderr, out.String())
		apiErr := &exporter.APIError{Status: status, Reason: exporter.Reason(body)}
		if status == http.StatusUnauthorized && a.cfg.Auth == config.AuthOAuth {
			return fmt.Errorf("query %s: %w: %w", fs.Arg(0), auth.ErrReauthorize, apiErr)
		}
		return fmt.Errorf("query %s: %w", fs.Arg(0), apiErr)
	}
	fmt.Fprintln(a.stdout, out.String())
	return nil
}

func cmdCheck(ctx context.Context, a *app, args []string) error {
	fs := a.flags("check", "", "Check each configured piece, one line each: configuration, PBX reachable,\ntoken valid and whom it acts as, sink reachable and writable.")
	if err := parse(fs, args); err != nil {
		return err
	}
	var failures []error
	line := func(err error, what string, detail ...any) {
		status := "ok  "
		if err != nil {
			status = "FAIL"
			failures = append(failures, err)
			detail = append(detail, err)
		}
		fmt.Fprintf(a.stdout, "%s  %-13s", status, what)
		for _, d := range detail {
			fmt.Fprintf(a.stdout, " %v", d)
		}
		fmt.Fprintln(a.stdout)
	}
	if err := a.load(config.Need{PBX: true, Sink: true}); err != nil {
		line(err, "configuration")
		return fmt.Errorf("%w: %w", errQuiet, err)
	}
	line(nil, "configuration", rateCap(a.cfg.MaxRPS))
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()

	// The sink first: with PostgreSQL it also holds the token.
	cat, err := a.catalog()
	if err != nil {
		line(err, "catalog")
		return fmt.Errorf("%w: %w", errQuiet, err)
	}
	var s *sink
	if a.cfg.Sink == "postgres" {
		s, err = a.openSink(ctx, cat)
		if err == nil {
			defer s.close()
			_, err = s.pool.Exec(ctx, "SELECT 1 FROM "+pgx.Identifier{a.cfg.DBSchema, "export_state"}.Sanitize()+" LIMIT 1")
		}
		line(err, "sink", "postgres schema "+a.cfg.DBSchema)
	} else {
		err = writable(a.cfg.CSVDir)
		line(err, "sink", "csv "+a.cfg.CSVDir)
	}
	var p *pbx
	if s != nil {
		p, err = a.pbxClient(ctx, s.pool)
	} else if a.cfg.Sink != "postgres" {
		p, err = a.pbxClient(ctx, nil)
	} else {
		err = errors.New("needs the database, which failed above")
	}
	if err != nil {
		line(err, "credentials")
		return fmt.Errorf("%w: %w", errQuiet, errors.Join(failures...))
	}
	began := time.Now()
	status, body, err := p.client.Get(ctx, "/api/v1/personal/info")
	if err == nil && status != http.StatusOK && status != http.StatusUnauthorized && status != http.StatusForbidden {
		err = fmt.Errorf("GET /api/v1/personal/info: %w", &exporter.APIError{Status: status, Reason: exporter.Reason(body)})
	}
	line(err, "pbx", a.cfg.PBXURL.String(), fmt.Sprintf("(answered in %s)", time.Since(began).Round(time.Millisecond)))
	if err == nil {
		if status != http.StatusOK {
			err = &exporter.APIError{Status: status, Reason: exporter.Reason(body)}
			if a.cfg.Auth == config.AuthOAuth {
				err = fmt.Errorf("%w: %w", auth.ErrReauthorize, err)
			}
			line(err, "token")
		} else {
			var me struct {
				Result struct{ ID, Name, Extension, Role string } `json:"result"`
			}
			json.Unmarshal(body, &me)
			who := fmt.Sprintf("acts as %s (extension %s, role %s)", me.Result.Name, me.Result.Extension, me.Result.Role)
			if exp := p.expiry(); !exp.IsZero() {
				who += ", token valid until " + exp.Local().Format(time.RFC3339)
			}
			line(nil, "token", string(a.cfg.Auth), who)
		}
	}
	if len(failures) > 0 {
		return fmt.Errorf("%w: %w", errQuiet, errors.Join(failures...))
	}
	return nil
}

// rateCap says what EXPORT_MAX_RPS allows.
func rateCap(rps int) string {
	if rps <= 0 {
		return "none (EXPORT_MAX_RPS=0)"
	}
	return fmt.Sprintf("at most %d requests a second to the PBX (EXPORT_MAX_RPS)", rps)
}

// writable checks that dir exists (or can be made) and takes a file.
func writable(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".check-*")
	if err != nil {
		return err
	}
	name := f.Name()
	f.Close()
	return os.Remove(name)
}

func cmdEndpoints(_ context.Context, a *app, args []string) error {
	fs := a.flags("endpoints", "[-v]", "List the endpoints that can be exported: built in, and from EXPORT_ENDPOINTS_FILE.")
	verbose := fs.Bool("v", false, "also list each endpoint's columns")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := a.load(config.Need{}); err != nil {
		return err
	}
	cat, err := a.catalog()
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tMODE\tPATH\tKEY\tCOLUMNS")
	for _, e := range cat.All() {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\n", e.Name, e.Mode, e.Path, strings.Join(e.Key, ","), len(e.Columns))
		if *verbose {
			for _, c := range e.Columns {
				fmt.Fprintf(tw, "\t\t  %s\t%s\t(PBX field %s)\n", c.Name, c.Type, c.Field)
			}
		}
	}
	return tw.Flush()
}
