package main

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/wildix-export/wildix-export/config"
)

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
