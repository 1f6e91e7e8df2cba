package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/wildix-export/wildix-export/config"
)

func cmdConfig(_ context.Context, a *app, args []string) error {
	fs := a.flags("config", "", "")
	fs.Usage = func() {
		fmt.Fprintf(a.stderr, "Usage: wildix-export config\n\nPrints the effective configuration, secrets redacted, and every problem found,\nEXPORT_ENDPOINTS_FILE and EXPORT_ENDPOINTS read and checked as run reads them.\n\nEnvironment variables (default, description):\n")
		config.Usage(a.stderr)
	}
	if err := parse(fs, args); err != nil {
		return err
	}
	err := a.load(config.Need{PBX: true, Sink: true})
	var cfgErr *config.Error
	if err != nil && !errors.As(err, &cfgErr) {
		return err
	}
	if a.cfg == nil {
		return err
	}
	a.cfg.Print(a.stdout)
	epErr := a.checkEndpoints()
	if err == nil && epErr == nil {
		return nil
	}
	fmt.Fprintln(a.stdout)
	// A problem quotes the value as given, which may be personal (a
	// number set by mistake): redacted as run's error is (attack 30 L3).
	redact := func(s string) string { return s }
	if a.redact != nil {
		redact = a.redact.Text
	}
	if cfgErr != nil {
		fmt.Fprintln(a.stdout, redact(strings.TrimSpace(cfgErr.Error())))
	}
	if epErr != nil {
		fmt.Fprintln(a.stdout, redact(strings.TrimPrefix(epErr.Error(), errUsage.Error()+": ")))
	}
	return fmt.Errorf("%w: %w", errQuiet, errors.Join(err, epErr))
}

// checkEndpoints reads EXPORT_ENDPOINTS_FILE and the names of
// EXPORT_ENDPOINTS as run does, so that config fails where run would.
func (a *app) checkEndpoints() error {
	cat, err := a.catalog()
	if err != nil {
		return err
	}
	if _, err := a.selectEndpoints(cat, a.cfg.Endpoints); err != nil {
		return fmt.Errorf("%w: EXPORT_ENDPOINTS: %v", errUsage, err)
	}
	return nil
}
