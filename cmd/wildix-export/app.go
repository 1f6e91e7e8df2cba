package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/wildix-export/wildix-export/auth"
	"github.com/wildix-export/wildix-export/config"
	"github.com/wildix-export/wildix-export/exporter/privacy"
	"github.com/wildix-export/wildix-export/exporter/record"
	"github.com/wildix-export/wildix-export/internal/pseudonym"
	"github.com/wildix-export/wildix-export/sinks"
	"github.com/wildix-export/wildix-export/sinks/recstore"
)

// Exit codes, documented in the README; a cron or an orchestrator tells
// failures apart by them.
const (
	exitOK          = 0   // success
	exitFailed      = 1   // an export, query or check failed
	exitConfig      = 2   // bad configuration, flag or argument
	exitAuth        = 3   // authorization needed: run `wildix-export authorize`
	exitDatabase    = 4   // PostgreSQL unreachable or unusable
	exitLocked      = 5   // another export of this PBX is running; this one skipped
	exitUnreachable = 6   // the PBX cannot be reached (DNS, connection, TLS)
	exitInterrupted = 7   // stopped by SIGINT/SIGTERM; committed progress is kept
	exitAborted     = 130 // a second signal aborted
)

var (
	errUsage       = errors.New("usage error")
	errInterrupted = errors.New("interrupted")
	// errQuiet marks an error already reported to the person (in a run's
	// summary or check's lines): main gives only its exit code.
	errQuiet = errors.New("reported")
)

func exitCode(err error) int {
	var cfgErr *config.Error
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.As(err, &cfgErr), errors.Is(err, errUsage), errors.Is(err, record.ErrConfig):
		return exitConfig
	case errors.Is(err, recstore.ErrDenied):
		// The recordings store's key lacks a permission, which the
		// error names: forget's and the retention's as a run's (attack9
		// F3).
		return exitConfig
	case errors.Is(err, auth.ErrReauthorize):
		return exitAuth
	case errors.Is(err, sinks.ErrDatabase):
		return exitDatabase
	case errors.Is(err, sinks.ErrLocked):
		return exitLocked
	case errors.Is(err, auth.ErrUnreachable):
		return exitUnreachable
	case errors.Is(err, errInterrupted), errors.Is(err, context.Canceled):
		return exitInterrupted
	}
	return exitFailed
}

// app is what every command is given.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	lookupEnv      func(string) (string, bool) // os.LookupEnv, or a test's map
	log            *slog.Logger
	cfg            *config.Config
	// redact replaces phone numbers in logs, errors and notes, with
	// pseudonymisation on (nil when off).
	redact *privacy.Redactor
	// force accepts a pseudonymisation rule or key other than the one
	// the sink's rows were written under (run --force).
	force bool
	// beforeRun, set only by tests, is called under the lock at the start
	// of every export run (a seam to make one panic).
	beforeRun func()
	// now, set only by tests, is the clock each run's retention cut is
	// read from (time.Now when nil).
	now func() time.Time
}

type command struct {
	name, args, summary string
	run                 func(ctx context.Context, a *app, args []string) error
}

var commands []command

func init() {
	commands = []command{
		{"demo", "[flags]", "export from a built-in PBX simulator, with no PBX or database: the quick start", cmdDemo},
		{"authorize", "[flags]", "authorize once with OAuth 2.0 and store the token", cmdAuthorize},
		{"run", "[--once] [--now] [flags]", "export on EXPORT_SCHEDULE (a worker), or once", cmdRun},
		{"backfill", "--from DATE --to DATE [flags]", "export a past date range, window by window, resumable", cmdBackfill},
		{"check", "", "check the PBX, the token and the sink, one line each", cmdCheck},
		{"forget", "--number NUMBER [--dry-run]", "erase a phone number everywhere in the sink, on request, for good", cmdForget},
		{"query", "PATH", "GET any PBX API path and print the JSON", cmdQuery},
		{"endpoints", "[-v]", "list the endpoints that can be exported", cmdEndpoints},
		{"notify", "--test", "send a test message to every notification target (EXPORT_NOTIFY)", cmdNotify},
		{"config", "", "print the effective configuration (secrets redacted) and its problems", cmdConfig},
		{"version", "", "print the version", cmdVersion},
	}
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "wildix-export exports Wildix PBX data (call history first) into PostgreSQL or CSV.\n\nUsage:\n  wildix-export <command> [flags]\n\nCommands:\n")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "\nRun 'wildix-export <command> -h' for a command's flags. Configuration comes from\nenvironment variables; 'wildix-export config -h' lists them.\n")
}

// run is the program: main only adds signals, the environment and the
// exit code.
func run(ctx context.Context, args []string, lookupEnv func(string) (string, bool), stdin io.Reader, stdout, stderr io.Writer) error {
	a := newApp(lookupEnv, stdin, stdout, stderr)
	err := a.run(ctx, args)
	if r := a.errorRedactor(err); r != nil {
		err = r.Error(err)
	}
	return err
}

// errorRedactor is what redacts the error err a command returns: the
// configuration's (app.load), or, for an error found before the command
// read it (a bad flag: backfill --from +39…), the one the environment's
// settings make (attack 30 L3: every command's errors as run's).
func (a *app) errorRedactor(err error) *privacy.Redactor {
	if a.redact != nil || err == nil {
		return a.redact
	}
	cfg, _ := config.Load(config.Need{}, a.lookupEnv)
	return redactorOf(cfg, a.lookupEnv)
}

// redactorOf is the redactor of the settings cfg read from lookup: under
// a rule, one that replaces numbers by their pseudonyms; when
// pseudonymisation is asked for (EXPORT_PSEUDONYMIZE other than none,
// also a value that is no rule) but no key can be read, one that leaves
// each number out, so that the configuration's own problems (a number
// given as EXPORT_RETENTION) are not shown in clear either; nil when it is
// not asked for.
func redactorOf(cfg *config.Config, lookup func(string) (string, bool)) *privacy.Redactor {
	if cfg != nil && cfg.Pseudonymize.On() {
		if keys, err := cfg.Pseudonyms(); err == nil && keys != nil {
			return &privacy.Redactor{Keys: keys, Names: cfg.Pseudonymize.Names}
		}
		return &privacy.Redactor{Names: cfg.Pseudonymize.Names}
	}
	v, _ := lookup("EXPORT_PSEUDONYMIZE")
	if _, err := pseudonym.ParseRule(v); err != nil {
		return &privacy.Redactor{Names: true} // a rule not read: the most it may be
	}
	return nil
}

func newApp(lookupEnv func(string) (string, bool), stdin io.Reader, stdout, stderr io.Writer) *app {
	return &app{stdin: stdin, stdout: stdout, stderr: stderr, lookupEnv: lookupEnv, log: newLogger(stderr, "auto", "info")}
}

// run runs the command args name; tests call it in process.
func (a *app) run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		usage(a.stderr)
		return fmt.Errorf("%w: no command given", errUsage)
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		usage(a.stdout)
		return nil
	}
	for _, c := range commands {
		if c.name == args[0] {
			return c.run(ctx, a, args[1:])
		}
	}
	usage(a.stderr)
	return fmt.Errorf("%w: unknown command %q", errUsage, args[0])
}

// flags returns a command's flag set; its usage goes to stderr. The line
// the flag package prints itself for a bad flag quotes what was given
// (backfill --window +39…): it goes through the redactor errors go
// through (attack3 F2); the usage, written while printing, goes as is.
func (a *app) flags(name, args, summary string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	errOut := flagErrors{a}
	fs.SetOutput(errOut)
	fs.Usage = func() {
		fmt.Fprintf(a.stderr, "Usage: wildix-export %s %s\n\n%s\n", name, args, summary)
		if hasFlags(fs) {
			fmt.Fprintln(a.stderr, "\nFlags:")
			fs.SetOutput(a.stderr)
			defer fs.SetOutput(errOut)
			fs.PrintDefaults()
		}
	}
	return fs
}

// flagErrors is a flag set's output outside its usage: the flag
// package's error line, redacted as the command's error would be.
type flagErrors struct{ a *app }

func (w flagErrors) Write(p []byte) (int, error) {
	if r := w.a.errorRedactor(errUsage); r != nil {
		if _, err := io.WriteString(w.a.stderr, r.Text(string(p))); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	return w.a.stderr.Write(p)
}

func hasFlags(fs *flag.FlagSet) bool {
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	return n > 0
}

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	return nil
}

// load reads the configuration and sets up logging from it.
func (a *app) load(need config.Need) error {
	cfg, err := config.Load(need, a.lookupEnv)
	if cfg != nil {
		a.cfg = cfg
		a.log = newLogger(a.stderr, cfg.LogFormat, cfg.LogLevel)
		if a.redact = redactorOf(cfg, a.lookupEnv); a.redact != nil {
			a.log = slog.New(a.redact.Handler(a.log.Handler()))
		}
	}
	return err
}

func newLogger(w io.Writer, format, level string) *slog.Logger {
	var lv slog.Level
	lv.UnmarshalText([]byte(level))
	opts := &slog.HandlerOptions{Level: lv}
	if format == "auto" {
		format = "json"
		if isTerminal(w) {
			format = "text"
		}
	}
	if format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
