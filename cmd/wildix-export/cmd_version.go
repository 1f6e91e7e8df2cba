package main

import (
	"context"
	"fmt"

	"github.com/wildix-export/wildix-export/sinks"
)

// version is set at build time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

func cmdVersion(_ context.Context, a *app, args []string) error {
	fs := a.flags("version", "", "Print the version.")
	if err := parse(fs, args); err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "wildix-export %s (schema version %d)\n", version, sinks.SchemaVersion())
	return nil
}
