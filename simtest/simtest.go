// Package simtest starts a PBX simulator on loopback and authorizes a real
// client against it through the OAuth code flow, for tests that need the
// whole path from PBX to sink.
//
// Only tests import it. It sits at the root beside cmd, not under
// internal/ (which holds what the program itself uses): it imports auth,
// exporter/pbx and internal/pbxsim, and nothing it imports imports it, so
// every arrow from it points down.
package simtest

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/wildix-export/wildix-export/auth"
	"github.com/wildix-export/wildix-export/exporter/pbx"
	"github.com/wildix-export/wildix-export/internal/pbxsim"
)

// Credentials of the application the fixture registers.
const (
	ClientID     = "wildix-export-test"
	ClientSecret = "test-secret-Zq9"
)

// Fixture is a running simulator and an authorized client.
type Fixture struct {
	Sim       *pbxsim.Sim
	Server    *httptest.Server
	URL       *url.URL
	Redirect  string
	TokenFile string
	Source    *auth.Source
	HTTP      *http.Client

	// redirect holds Redirect's port from New until Authorize serves on
	// it, or ReleaseRedirect frees it for a command that listens itself:
	// a port chosen free and closed could be taken, under parallel load,
	// by any other socket before the flow listens on it again.
	mu       sync.Mutex
	redirect net.Listener
}

// New starts a simulator with o (its OAuth client registered) and, unless
// noAuth, authorizes through the loopback flow into a token file.
func New(t testing.TB, o pbxsim.Options) *Fixture {
	t.Helper()
	// The simulator's port is taken first, so that the free port picked
	// for the redirect can never be the PBX's own: a Redirect URI on the
	// PBX's host and port is never served locally (the paste flow would
	// wait for standard input).
	var sim atomic.Pointer[pbxsim.Sim]
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { sim.Load().ServeHTTP(w, r) }))
	t.Cleanup(srv.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	f := &Fixture{redirect: ln}
	t.Cleanup(f.ReleaseRedirect)
	redirect := fmt.Sprintf("http://127.0.0.1:%d/callback", port)
	o.Clients = append(o.Clients, pbxsim.Client{ID: ClientID, Secret: ClientSecret, RedirectURIs: []string{redirect}})
	sim.Store(pbxsim.New(o))
	u, _ := url.Parse(srv.URL)
	f.Sim, f.Server, f.URL, f.Redirect, f.TokenFile = sim.Load(), srv, u, redirect, filepath.Join(t.TempDir(), "token.json")
	return f
}

// ReleaseRedirect closes the listener holding Redirect's port, for a test
// whose command listens on Redirect itself (`wildix-export authorize`).
// The port may then be taken by another socket before the command
// listens: such a test can fail on a port in use, never pass wrongly.
func (f *Fixture) ReleaseRedirect() {
	if ln := f.takeRedirect(); ln != nil {
		ln.Close()
	}
}

// takeRedirect hands over the listener holding Redirect's port, once;
// nil afterwards (a second Authorize listens on the address again).
func (f *Fixture) takeRedirect() net.Listener {
	f.mu.Lock()
	defer f.mu.Unlock()
	ln := f.redirect
	f.redirect = nil
	return ln
}

// OAuthConfig is the client's configuration.
func (f *Fixture) OAuthConfig() oauth2.Config {
	return oauth2.Config{ClientID: ClientID, ClientSecret: ClientSecret, RedirectURL: f.Redirect, Endpoint: auth.Endpoint(f.Server.URL)}
}

// Authorize runs the code flow, playing the browser, and returns a client
// whose token source refreshes and persists into the fixture's token file.
func (f *Fixture) Authorize(t testing.TB) *http.Client {
	t.Helper()
	store, err := auth.NewFileStore(f.TokenFile, nil)
	if err != nil {
		t.Fatal(err)
	}
	ln := f.takeRedirect()
	if ln != nil {
		defer ln.Close() // closed by the flow when served; again, harmlessly
	}
	_, err = auth.Authorize(context.Background(), auth.AuthorizeOptions{
		Config: f.OAuthConfig(), HTTPClient: http.DefaultClient, Store: store, PBX: f.URL.Host,
		Stdout: io.Discard, Timeout: 10 * time.Second, Listener: ln,
		Ready: func(u string) {
			if resp, err := http.Get(u); err == nil {
				resp.Body.Close()
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	f.Source = auth.NewSource(auth.SourceOptions{Config: f.OAuthConfig(), Store: store, PBX: f.URL.Host})
	f.HTTP = &http.Client{Transport: &auth.Transport{Source: f.Source}}
	return f.HTTP
}

// Client returns an exporter client for the simulator with short backoffs.
func (f *Fixture) Client(hc *http.Client) *pbx.Client {
	return &pbx.Client{HTTP: hc, Base: f.URL, MaxAttempts: 12, Timeout: 2 * time.Second, MinBackoff: 5 * time.Millisecond}
}
