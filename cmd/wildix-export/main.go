// Command wildix-export exports call history and directory data from Wildix
// PBXes into PostgreSQL tables or CSV files. Run it without arguments for
// the list of commands; README.md is the manual.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	_ "time/tzdata" // a static binary in a minimal image still knows time zones
)

func main() {
	// The first SIGINT or SIGTERM cancels the context: scheduling stops and
	// the batch in flight may commit within EXPORT_SHUTDOWN_GRACE. A second
	// signal aborts at once; nothing uncommitted is kept either way.
	ctx, cancel := context.WithCancelCause(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		s := <-sigs
		cancel(fmt.Errorf("%w by %v", errInterrupted, s))
		<-sigs
		fmt.Fprintln(os.Stderr, "wildix-export: second signal: aborting")
		os.Exit(exitAborted)
	}()
	err := run(ctx, os.Args[1:], os.LookupEnv, os.Stdin, os.Stdout, os.Stderr)
	if err != nil && !errors.Is(err, errQuiet) && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "wildix-export:", err)
	}
	os.Exit(exitCode(err))
}
