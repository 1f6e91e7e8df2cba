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
		fmt.Fprintf(a.stderr, "Usage: wildix-export config\n\nPrints the effective configuration, secrets redacted, and every problem found.\n\nEnvironment variables (default, description):\n")
		config.Usage(a.stderr)
	}
	if err := parse(fs, args); err != nil {
		return err
	}
	err := a.load(config.Need{PBX: true, Sink: true})
	if a.cfg != nil {
		a.cfg.Print(a.stdout)
	}
	var cfgErr *config.Error
	if errors.As(err, &cfgErr) {
		fmt.Fprintln(a.stdout)
		fmt.Fprintln(a.stdout, strings.TrimSpace(cfgErr.Error()))
		return fmt.Errorf("%w: %w", errQuiet, err)
	}
	return err
}
