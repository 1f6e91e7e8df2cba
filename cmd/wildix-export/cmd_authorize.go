package main

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/wildix-export/wildix-export/auth"
	"github.com/wildix-export/wildix-export/config"
)

// authorizeHelp is what `wildix-export authorize --help` says above the flags.
const authorizeHelp = `Authorize wildix-export once with the PBX's OAuth 2.0 authorization-code flow
and store the token (WILDIX_TOKEN_FILE, or the database with EXPORT_SINK=postgres).

With a loopback WILDIX_REDIRECT_URL (http://127.0.0.1:PORT/...), it listens for
the redirect itself: open the printed address, approve, done. With any other
Redirect URI (such as https://{PBX}/api/v1/doc/), paste the address the browser
landed on.

In two steps, from anywhere sharing the token store (a pod, a container, another
machine): 'authorize --print-url' saves the authorization in progress in the
store, prints the address and exits; open it, approve, and within 10 minutes run
'authorize --redirect-url <the address the browser landed on>'.`

func cmdAuthorize(ctx context.Context, a *app, args []string) error {
	fs := a.flags("authorize", "[flags]", authorizeHelp)
	landed := fs.String("redirect-url", "", "finish the authorization in progress with the address the browser landed on (or the code alone)")
	printURL := fs.Bool("print-url", false, "start an authorization, print its address and exit without waiting (finish with --redirect-url)")
	timeout := fs.Duration("timeout", 5*time.Minute, "how long to wait for the browser")
	noBrowser := fs.Bool("no-browser", false, "do not try to open a browser")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *printURL && *landed != "" {
		return fmt.Errorf("%w: --print-url starts an authorization and --redirect-url finishes one: use one at a time", errUsage)
	}
	if err := a.load(config.Need{PBX: true}); err != nil {
		return err
	}
	if a.cfg.Auth != config.AuthOAuth {
		return fmt.Errorf("%w: authorize is for OAuth 2.0; with WILDIX_API_KEY or S2S settings there is nothing to authorize", errUsage)
	}
	pool, err := a.tokenDB(ctx)
	if err != nil {
		return err
	}
	if pool != nil {
		defer pool.Close()
		// The token tables are created by the migrations: authorize may
		// be the first command run against the database.
		if err := a.migrateTokenDB(ctx, pool); err != nil {
			return err
		}
	}
	store, where, err := a.tokenStore(ctx, pool)
	if err != nil {
		return err
	}
	base, err := a.baseTransport()
	if err != nil {
		return err
	}
	o := auth.AuthorizeOptions{
		Config: a.oauthConfig(), ClientAuth: a.cfg.TokenAuth, HTTPClient: &http.Client{Transport: base, Timeout: a.cfg.RequestTimeout},
		Store: store, PBX: a.cfg.PBXID, RedirectedTo: *landed, Stdin: a.stdin, Stdout: a.stdout, Stderr: a.stderr,
		Timeout: *timeout, OpenBrowser: !*noBrowser, Log: a.log,
	}
	if *printURL {
		return a.beginAuthorize(ctx, o, where)
	}
	rec, err := auth.Authorize(ctx, o)
	if err != nil {
		return fmt.Errorf("authorize: %w", err)
	}
	fmt.Fprintf(a.stderr, "Authorized. Token for PBX %s stored in %s (expires %s, refreshed automatically).\nNext: wildix-export check, then wildix-export run --once\n",
		a.cfg.PBXID, where, rec.Expiry.Local().Format(time.RFC3339))
	return nil
}

// beginAuthorize is authorize --print-url: the authorization in progress
// saved in the token store (where names it), its address printed, and
// how to finish it.
func (a *app) beginAuthorize(ctx context.Context, o auth.AuthorizeOptions, where string) error {
	p, authURL, err := auth.BeginAuthorize(ctx, o)
	if err != nil {
		return fmt.Errorf("authorize: %w", err)
	}
	fmt.Fprintln(a.stdout, authURL)
	fmt.Fprintf(a.stderr, "Open the address above in a browser and approve the application. The browser then lands on\n%s?code=...\n"+
		"Before %s, finish from any machine sharing the token store (%s) with:\n  wildix-export authorize --redirect-url '<the whole address the browser landed on>'\n",
		p.RedirectURI, p.Expires.Local().Format(time.RFC3339), where)
	return nil
}
