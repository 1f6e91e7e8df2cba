package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/wildix-export/wildix-export/auth"
	"github.com/wildix-export/wildix-export/config"
	pbxapi "github.com/wildix-export/wildix-export/exporter/pbx"
)

func cmdQuery(ctx context.Context, a *app, args []string) error {
	fs := a.flags("query", "PATH", `GET any PBX API path (with its query string) with the stored credentials and
print the JSON answer indented, as Postman's last step did. For example:
  wildix-export query '/api/v1/PBX/CallHistory/?count=2&sort=id&dir=DESC'

The answer is printed as the PBX sends it, in clear, whatever
EXPORT_PSEUDONYMIZE says: query is an administrator's look at the PBX, not an
export. Its output holds the callers' numbers and names: keep it out of
tickets, chats and shared files.`)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 || !strings.HasPrefix(fs.Arg(0), "/") {
		fs.Usage()
		return fmt.Errorf("%w: query takes one path starting with /, e.g. /api/v1/personal/info", errUsage)
	}
	if strings.HasPrefix(fs.Arg(0), "//") {
		// A URL would read //host/... as another host: the credentials
		// go to the PBX only.
		return fmt.Errorf("%w: query %q: a path starting with // names another host; give the PBX's own path with one /, e.g. /api/v1/personal/info", errUsage, fs.Arg(0))
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
		apiErr := &pbxapi.APIError{Status: status, Reason: pbxapi.Reason(body)}
		if status == http.StatusUnauthorized && a.cfg.Auth == config.AuthOAuth {
			return fmt.Errorf("query %s: %w: %w", fs.Arg(0), auth.ErrReauthorize, apiErr)
		}
		return fmt.Errorf("query %s: %w", fs.Arg(0), apiErr)
	}
	fmt.Fprintln(a.stdout, out.String())
	return nil
}
