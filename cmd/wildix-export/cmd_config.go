package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"reflect"
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
	// A setting's value and a problem quoting it may be personal (a
	// number set by mistake): redacted as run's error is (attack 30 L3),
	// in the table as in the problems (attack3 F3).
	redact := func(s string) string { return s }
	if a.redact != nil {
		redact = a.redact.Text
	}
	var table strings.Builder
	a.cfg.Print(&table)
	numbers := heldAsNumbers(a.cfg)
	for _, line := range strings.SplitAfter(table.String(), "\n") {
		if f := strings.Fields(line); len(f) == 2 && numbers[f[1]] {
			io.WriteString(a.stdout, line) // a size or a count, no one's number
			continue
		}
		io.WriteString(a.stdout, redact(line))
	}
	epErr := a.checkEndpoints()
	if err == nil && epErr == nil {
		return nil
	}
	fmt.Fprintln(a.stdout)
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

// heldAsNumbers is the set of values cfg holds as numbers (a size in
// bytes, a count), as the table shows them: EXPORT_MAX_RESPONSE_SIZE's
// 67108864 is read as such and no one's phone number, whereas a text
// setting holding digits (EXPORT_LOG_LEVEL=+39…) may be one.
func heldAsNumbers(cfg *config.Config) map[string]bool {
	held := map[string]bool{}
	v := reflect.ValueOf(cfg).Elem()
	for i := range v.NumField() {
		if !v.Type().Field(i).IsExported() {
			continue
		}
		switch f := v.Field(i); f.Kind() {
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
			reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
			held[fmt.Sprint(f.Interface())] = true
		}
	}
	return held
}
