package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/wildix-export/wildix-export/internal/pbxsim"
	"github.com/wildix-export/wildix-export/internal/pgtest"
)

// pbxHostFixture is a simulator on loopback whose application's Redirect
// URI is on the PBX's own host and port (https://{PBX}/api/v1/doc/, as
// Wildix's Postman guide registers it; here http, the PBX being local).
func pbxHostFixture(t *testing.T) *fixture {
	t.Helper()
	var sim *pbxsim.Sim
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { sim.ServeHTTP(w, r) }))
	base := "http://" + srv.Listener.Addr().String()
	onPBX := base + "/api/v1/doc/"
	sim = pbxsim.New(pbxsim.Options{Clients: []pbxsim.Client{{ID: clientID, Secret: clientSecret, RedirectURIs: []string{onPBX}}}})
	srv.Start()
	t.Cleanup(srv.Close)
	return &fixture{sim: sim, srv: srv, cfg: oauth2.Config{ClientID: clientID, ClientSecret: clientSecret, RedirectURL: onPBX, Endpoint: Endpoint(base)}}
}

// TestAuthorizeInTwoSteps: the first step saves the authorization in
// progress and returns the address; a second store instance (another
// process or machine sharing the store) finishes it with the address the
// browser landed on. The landed address works once.
func TestAuthorizeInTwoSteps(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{"file", "postgres"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			f := pbxHostFixture(t)
			var first, second PendingStore
			if kind == "file" {
				fs := fileStore(t, nil)
				first = fs
				second, _ = NewFileStore(fs.Path(), nil)
			} else {
				schema, pool := migratedSchema(t)
				ps, err := NewPostgresStore(pool, schema, nil)
				if err != nil {
					t.Fatal(err)
				}
				pool2, err := pgxpoolNew(ctx, pgtest.URL())
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(pool2.Close)
				first = ps
				if second, err = NewPostgresStore(pool2, schema, nil); err != nil {
					t.Fatal(err)
				}
			}
			o := AuthorizeOptions{Config: f.cfg, HTTPClient: http.DefaultClient, Store: first, PBX: "pbx1"}
			p, authURL, err := BeginAuthorize(ctx, o)
			if err != nil {
				t.Fatal(err)
			}
			if d := time.Until(p.Expires); d < 9*time.Minute || d > 10*time.Minute {
				t.Fatalf("the authorization in progress expires in %v, want about 10 minutes", d)
			}
			if fs, ok := first.(*FileStore); ok {
				st, err := os.Stat(fs.PendingPath())
				if err != nil || st.Mode().Perm() != 0o600 {
					t.Fatalf("pending file: %v, %v; want mode 0600", st, err)
				}
				raw, err := os.ReadFile(fs.PendingPath())
				if err != nil || !strings.Contains(string(raw), "pbx1") {
					t.Fatalf("pending file: %s, %v", raw, err)
				}
			}
			landed := consent(t, authURL)

			o.Store = second
			rec, err := FinishAuthorize(ctx, o, landed)
			if err != nil {
				t.Fatal(err)
			}
			if got := mustLoad(t, first); got.RefreshToken != rec.RefreshToken || got.AccessToken != rec.AccessToken {
				t.Fatal("the token finished by the second store is not in the first")
			}
			if _, err := first.LoadPending(ctx, "pbx1"); !errors.Is(err, ErrNoPending) {
				t.Fatalf("after finishing, the authorization in progress: %v, want none", err)
			}
			if code := f.call(t, NewSource(SourceOptions{Config: f.cfg, Store: first, PBX: "pbx1"})); code != 200 {
				t.Fatalf("API call with the token: %d", code)
			}
			_, err = FinishAuthorize(ctx, o, landed)
			if !errors.Is(err, ErrNoPending) || !strings.Contains(err.Error(), "authorize --print-url") {
				t.Fatalf("finishing twice: %v", err)
			}
		})
	}
}

// TestAuthorizationInProgressRefused: expired, another PBX, another
// application, a superseded attempt, none at all: each refused with a
// message saying what to do, nothing exchanged, nothing stored.
func TestAuthorizationInProgressRefused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := pbxHostFixture(t)
	setup := func(t *testing.T) (AuthorizeOptions, *Pending, string) {
		o := AuthorizeOptions{Config: f.cfg, HTTPClient: http.DefaultClient, Store: fileStore(t, nil), PBX: "pbx1"}
		p, authURL, err := BeginAuthorize(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		return o, p, consent(t, authURL)
	}
	edit := func(t *testing.T, o AuthorizeOptions, p *Pending, change func(*Pending)) {
		change(p)
		if err := o.Store.SavePending(ctx, o.PBX, p); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name    string
		prepare func(t *testing.T, o *AuthorizeOptions, p *Pending, landed *string)
		want    string
	}{
		{"expired", func(t *testing.T, o *AuthorizeOptions, p *Pending, _ *string) {
			edit(t, *o, p, func(p *Pending) { p.Started, p.Expires = p.Started.Add(-11*time.Minute), time.Now().Add(-time.Minute) })
		}, "expired after 10m0s: run `wildix-export authorize` again"},
		{"ten-year expiry", func(t *testing.T, o *AuthorizeOptions, p *Pending, _ *string) {
			edit(t, *o, p, func(p *Pending) {
				p.Started, p.Expires = time.Now().Add(-PendingTTL-time.Minute), time.Now().Add(10*365*24*time.Hour)
			})
		}, "expired after 10m0s: run `wildix-export authorize` again"},
		{"started in the future", func(t *testing.T, o *AuthorizeOptions, p *Pending, _ *string) {
			edit(t, *o, p, func(p *Pending) {
				p.Started, p.Expires = time.Now().Add(time.Hour), time.Now().Add(time.Hour+PendingTTL)
			})
		}, "in the future: check the clocks"},
		{"another PBX", func(t *testing.T, o *AuthorizeOptions, p *Pending, _ *string) {
			edit(t, *o, p, func(p *Pending) { p.Origin = "https://other-pbx.example:443" })
		}, "was started against https://other-pbx.example:443, not this WILDIX_PBX_URL"},
		{"another application", func(t *testing.T, o *AuthorizeOptions, p *Pending, _ *string) {
			edit(t, *o, p, func(p *Pending) { p.ClientID = "other-app" })
		}, "started for another application (WILDIX_CLIENT_ID other-app)"},
		{"superseded attempt", func(t *testing.T, o *AuthorizeOptions, _ *Pending, _ *string) {
			if _, _, err := BeginAuthorize(ctx, *o); err != nil {
				t.Fatal(err)
			}
		}, "does not match the authorization in progress"},
		{"forged state", func(t *testing.T, _ *AuthorizeOptions, _ *Pending, landed *string) {
			*landed = strings.Replace(*landed, "state=", "state=x", 1)
		}, "does not match the authorization in progress"},
		{"none", func(t *testing.T, o *AuthorizeOptions, _ *Pending, _ *string) {
			if err := o.Store.DeletePending(ctx, o.PBX); err != nil {
				t.Fatal(err)
			}
		}, "no authorization in progress for PBX pbx1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, p, landed := setup(t)
			exchanges := f.sim.Stats.CodeExchanges.Load()
			tc.prepare(t, &o, p, &landed)
			_, err := FinishAuthorize(ctx, o, landed)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
			if _, err := o.Store.Load(ctx, "pbx1"); !errors.Is(err, ErrNoToken) {
				t.Fatalf("a token was stored: %v", err)
			}
			if n := f.sim.Stats.CodeExchanges.Load(); n != exchanges {
				t.Fatal("the code was exchanged")
			}
		})
	}
}

// TestRedirectOnThePBXHostIsNeverServedLocally: with a loopback PBX and a
// Redirect URI on its host and port, authorize does not listen there (the
// PBX does) but asks for the landed address, and finishes with it.
func TestRedirectOnThePBXHostIsNeverServedLocally(t *testing.T) {
	t.Parallel()
	f := pbxHostFixture(t)
	store := fileStore(t, nil)
	outR, outW := io.Pipe()
	inR, inW := io.Pipe()
	go func() {
		line, err := readLine(outR)
		if err != nil {
			t.Errorf("read the address: %v", err)
			return
		}
		resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Get(line)
		if err != nil {
			t.Errorf("consent: %v", err)
			return
		}
		resp.Body.Close()
		io.WriteString(inW, resp.Header.Get("Location")+"\n")
		io.Copy(io.Discard, outR)
	}()
	_, err := Authorize(context.Background(), AuthorizeOptions{
		Config: f.cfg, HTTPClient: http.DefaultClient, Store: store, PBX: "pbx1", Stdin: inR, Stdout: outW, Timeout: 10 * time.Second,
	})
	outW.Close()
	if err != nil {
		t.Fatal(err)
	}
	mustLoad(t, store)

	for _, tc := range []struct {
		redirect, pbx string
		local         bool
	}{
		{"http://127.0.0.1:8765/callback", "http://127.0.0.1:8080", true},
		{"http://127.0.0.1:8080/api/v1/doc/", "http://127.0.0.1:8080", false},
		{"http://localhost:80/api/v1/doc/", "http://localhost", false},
		{"http://[::1]:9000/cb", "https://pbx.example.com", true},
		{"https://127.0.0.1:8765/callback", "https://pbx.example.com", false},
		{"https://pbx.example.com/api/v1/doc/", "https://pbx.example.com", false},
	} {
		if got := servesLocally(tc.redirect, tc.pbx+"/authorization/oauth2"); got != tc.local {
			t.Errorf("servesLocally(%s, PBX %s) = %t, want %t", tc.redirect, tc.pbx, got, tc.local)
		}
	}
}

func readLine(r io.Reader) (string, error) {
	var b strings.Builder
	buf := make([]byte, 1)
	for {
		if _, err := r.Read(buf); err != nil {
			return b.String(), err
		}
		if buf[0] == '\n' {
			return strings.TrimSpace(b.String()), nil
		}
		b.WriteByte(buf[0])
	}
}

// TestPendingSealedLikeTheToken: with a key, the authorization in progress
// is encrypted at rest and bound to its PBX; formatting it shows neither
// the state nor the verifier.
func TestPendingSealedLikeTheToken(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	key := make([]byte, 32)
	for i := range key {
		key[i] = byte(i + 7)
	}
	s := fileStore(t, key)
	p := &Pending{State: "state-secret-1", Verifier: "verifier-secret-2", RedirectURI: pasteURI, Origin: "https://pbx.example.com:443",
		ClientID: clientID, Started: time.Now().UTC().Truncate(time.Second), Expires: time.Now().Add(PendingTTL).UTC().Truncate(time.Second)}
	if err := s.SavePending(ctx, "pbx1", p); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(s.PendingPath())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(raw), "secret") {
		t.Fatalf("the pending file shows the state or verifier: %s", raw)
	}
	got, err := s.LoadPending(ctx, "pbx1")
	if err != nil || got.State != p.State || got.Verifier != p.Verifier || !got.Expires.Equal(p.Expires) {
		t.Fatalf("load: %+v, %v", got, err)
	}
	if out := fmt.Sprintf("%v %+v %#v %s", got, got, got, got); strings.Contains(out, "secret") {
		t.Fatalf("formatting shows a secret: %s", out)
	}
	wrong, _ := NewFileStore(s.Path(), make([]byte, 32))
	if _, err := wrong.LoadPending(ctx, "pbx1"); err == nil || !strings.Contains(err.Error(), "WILDIX_TOKEN_KEY") {
		t.Fatalf("wrong key: %v", err)
	}
	// Moved to another PBX's entry, it does not open.
	var c pendingContent
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	c.Pending["pbx2"] = c.Pending["pbx1"]
	if err := s.writePending(&c); err != nil {
		t.Fatal(err)
	}
	if _, err := s.LoadPending(ctx, "pbx2"); err == nil {
		t.Fatal("an entry moved to another PBX opened")
	}
}

// attackerCode is a code the PBX issued to someone else's authorization,
// without PKCE (what a login-CSRF or code injection would plant).
func (f *fixture) attackerCode(t *testing.T, redirect string) string {
	t.Helper()
	cfg := f.cfg
	cfg.RedirectURL = redirect
	return mustQuery(t, consent(t, cfg.AuthCodeURL("attackers-own-state"))).Get("code")
}

// stillUnspent: the attacker's code was never exchanged by the flow under
// test (it still yields a token when its owner exchanges it).
func (f *fixture) stillUnspent(t *testing.T, redirect, code string) {
	t.Helper()
	cfg := f.cfg
	cfg.RedirectURL = redirect
	if _, err := cfg.Exchange(context.Background(), code); err != nil {
		t.Fatalf("the attacker's code was spent by the flow: %v", err)
	}
}

// syncBuffer is a log written by the listener's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestLoopbackIgnoresForgedRedirects: while authorize waits on the
// loopback address, requests any local process or web page can send (a
// code marked bare=1, a code with no or a wrong state, access_denied with
// no or a wrong state) are answered 400, logged without the code, and do
// not end the wait; the person's own redirect then completes it. The
// attacker's code is never exchanged, and the request carries PKCE.
func TestLoopbackIgnoresForgedRedirects(t *testing.T) {
	t.Parallel()
	f := newFixture(t, pbxsim.Options{})
	attacker := f.attackerCode(t, f.cfg.RedirectURL)
	forged := []string{
		"?code=" + attacker + "&bare=1",
		"?code=" + attacker,
		"?code=" + attacker + "&state=wrong",
		"?error=access_denied",
		"?error=access_denied&error_description=The+user+denied+access&state=wrong",
	}
	type outcome struct {
		authURL string
		forged  []int
		real    int
	}
	done := make(chan outcome, 1)
	ready := func(authURL string) {
		out := outcome{authURL: authURL}
		for _, q := range forged {
			resp, err := http.Get(f.cfg.RedirectURL + q)
			if err != nil {
				t.Errorf("forged redirect %s: %v", q, err)
				out.forged = append(out.forged, 0)
				continue
			}
			resp.Body.Close()
			out.forged = append(out.forged, resp.StatusCode)
		}
		if resp, err := http.Get(authURL); err != nil { // the person approves
			t.Errorf("the person's redirect: %v", err)
		} else {
			resp.Body.Close()
			out.real = resp.StatusCode
		}
		done <- out
	}
	var logs syncBuffer
	store := fileStore(t, nil)
	_, err := Authorize(context.Background(), AuthorizeOptions{
		Config: f.cfg, HTTPClient: http.DefaultClient, Store: store, PBX: "pbx1", Stdout: io.Discard,
		Timeout: 20 * time.Second, Ready: ready, Log: slog.New(slog.NewTextHandler(&logs, nil)),
	})
	if err != nil {
		t.Fatalf("authorize: %v", err)
	}
	var out outcome
	select {
	case out = <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("the browser never finished")
	}
	for i, status := range out.forged {
		if status != http.StatusBadRequest {
			t.Errorf("forged redirect %s answered %d, want 400", forged[i], status)
		}
	}
	if out.real != http.StatusOK {
		t.Fatalf("the person's redirect answered %d, want 200", out.real)
	}
	if n := strings.Count(logs.String(), "redirect ignored"); n != len(forged) {
		t.Errorf("%d forged redirects logged, want %d:\n%s", n, len(forged), logs.String())
	}
	if strings.Contains(logs.String(), attacker) {
		t.Errorf("the log shows the code: %s", logs.String())
	}
	if q := mustQuery(t, out.authURL); q.Get("code_challenge") == "" || q.Get("code_challenge_method") != "S256" {
		t.Errorf("the authorization request carries no S256 PKCE challenge: %s", out.authURL)
	}
	if n := f.sim.Stats.CodeExchanges.Load(); n != 1 {
		t.Fatalf("%d codes exchanged, want the person's one", n)
	}
	if code := f.call(t, NewSource(SourceOptions{Config: f.cfg, Store: store, PBX: "pbx1"})); code != 200 {
		t.Fatalf("API call with the stored token: %d", code)
	}
	f.stillUnspent(t, f.cfg.RedirectURL, attacker)
}

// TestLoopbackServesTheGivenListener: a listener held open on the
// Redirect URI's port from the start (the demo's and the tests' fixture's,
// so that no other socket takes the port between choosing and listening)
// is served by the flow, which completes; listening on the address again
// instead would fail, the port being held (checked first, so that the
// test tells the two apart).
func TestLoopbackServesTheGivenListener(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var simp atomic.Pointer[pbxsim.Sim]
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { simp.Load().ServeHTTP(w, r) }))
	t.Cleanup(srv.Close)
	f := newFixtureAt(t, pbxsim.Options{}, srv, &simp, fmt.Sprintf("http://%s/callback", ln.Addr()))
	o := AuthorizeOptions{Config: f.cfg, HTTPClient: http.DefaultClient, Store: fileStore(t, nil), PBX: "pbx1", Stdout: io.Discard,
		Timeout: 20 * time.Second, Ready: browser(t)}
	if _, err := Authorize(context.Background(), o); err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("authorize listening on a held port: %v, want address already in use", err)
	}
	o.Store, o.Listener = fileStore(t, nil), ln
	if _, err := Authorize(context.Background(), o); err != nil {
		t.Fatalf("authorize on the given listener: %v", err)
	}
	if code := f.call(t, NewSource(SourceOptions{Config: f.cfg, Store: o.Store, PBX: "pbx1"})); code != 200 {
		t.Fatalf("API call with the stored token: %d", code)
	}
}

// TestLoopbackMatchingErrorEndsTheWait: an error= with the right state is
// the PBX's answer, and ends the authorization with its message.
func TestLoopbackMatchingErrorEndsTheWait(t *testing.T) {
	t.Parallel()
	f := newFixture(t, pbxsim.Options{DenyConsent: true})
	_, err := Authorize(context.Background(), AuthorizeOptions{
		Config: f.cfg, HTTPClient: http.DefaultClient, Store: fileStore(t, nil), PBX: "pbx1", Stdout: io.Discard,
		Timeout: 20 * time.Second, Ready: browser(t),
	})
	if err == nil || !strings.Contains(err.Error(), "access was denied on the PBX's consent page") {
		t.Fatalf("err = %v, want access denied", err)
	}
}

// TestPastedAddressCannotSkipTheState: in the paste flow and with
// --redirect-url, an address carrying bare=1 (or no state) is an address,
// and its state must match: it is refused and its code never exchanged.
// Only input that is no address at all is taken as a bare code.
func TestPastedAddressCannotSkipTheState(t *testing.T) {
	t.Parallel()
	f := newFixture(t, pbxsim.Options{})
	cfg := f.cfg
	cfg.RedirectURL = pasteURI
	for _, tc := range []struct{ name, landed string }{
		{"bare=1", pasteURI + "?code={code}&bare=1"},
		{"bare=1 without the address", "code={code}&bare=1"},
		{"no state", pasteURI + "?code={code}"},
		{"empty state", pasteURI + "?code={code}&state=&bare="},
	} {
		t.Run(tc.name, func(t *testing.T) {
			attacker := f.attackerCode(t, pasteURI)
			landed := strings.ReplaceAll(tc.landed, "{code}", attacker)
			// Pasted at the prompt.
			store := fileStore(t, nil)
			_, err := Authorize(context.Background(), AuthorizeOptions{
				Config: cfg, HTTPClient: http.DefaultClient, Store: store, PBX: "pbx1",
				Stdin: strings.NewReader(landed + "\n"), Stdout: io.Discard,
			})
			if err == nil || !strings.Contains(err.Error(), "state in the redirect does not match") {
				t.Fatalf("pasted: err = %v, want the state refused", err)
			}
			// Given to --redirect-url.
			o := AuthorizeOptions{Config: cfg, HTTPClient: http.DefaultClient, Store: store, PBX: "pbx1"}
			if _, _, err := BeginAuthorize(context.Background(), o); err != nil {
				t.Fatal(err)
			}
			if _, err := FinishAuthorize(context.Background(), o, landed); err == nil || !strings.Contains(err.Error(), "state in the redirect does not match") {
				t.Fatalf("--redirect-url: err = %v, want the state refused", err)
			}
			if _, err := store.Load(context.Background(), "pbx1"); !errors.Is(err, ErrNoToken) {
				t.Fatalf("a token was stored: %v", err)
			}
			f.stillUnspent(t, pasteURI, attacker)
		})
	}
	t.Run("a bare code typed by the person", func(t *testing.T) {
		store := fileStore(t, nil)
		o := AuthorizeOptions{Config: cfg, HTTPClient: http.DefaultClient, Store: store, PBX: "pbx1"}
		_, authURL, err := BeginAuthorize(context.Background(), o)
		if err != nil {
			t.Fatal(err)
		}
		code := mustQuery(t, consent(t, authURL)).Get("code")
		if _, err := FinishAuthorize(context.Background(), o, "  "+code+"\n"); err != nil {
			t.Fatalf("bare code: %v", err)
		}
		mustLoad(t, store)
	})
}

// TestLoopbackHoldsNoConnection: the loopback listener keeps no
// connection open for whoever reaches it while authorize waits. A
// connection that sent a request is closed once answered (no keep-alive:
// the redirect is one request), and one that sends nothing or only part
// of its headers is closed after loopbackHeaderTimeout. Idle keep-alive
// connections were held until authorize ended: a local process holding
// enough of them took every file descriptor (accept: too many open files),
// and the person's own redirect never reached authorize.
func TestLoopbackHoldsNoConnection(t *testing.T) {
	t.Parallel()
	f := newFixture(t, pbxsim.Options{})
	addr := strings.TrimSuffix(strings.TrimPrefix(f.cfg.RedirectURL, "http://"), "/callback")
	held := []struct{ name, send string }{
		{"answered, then idle", "GET /callback?code=x&state=wrong HTTP/1.1\r\nHost: " + addr + "\r\n\r\n"},
		{"partial headers", "GET /callback?code=x&state=wrong HTTP/1.1\r\nHost: " + addr + "\r\n"},
		{"nothing sent", ""},
	}
	closed := make(chan error, len(held))
	ready := func(authURL string) {
		for _, h := range held {
			go func() { closed <- closedByServer(addr, h.send, loopbackHeaderTimeout+10*time.Second) }()
		}
		for range held {
			if err := <-closed; err != nil {
				t.Error(err)
			}
		}
		browser(t)(authURL)
	}
	_, err := Authorize(context.Background(), AuthorizeOptions{
		Config: f.cfg, HTTPClient: http.DefaultClient, Store: fileStore(t, nil), PBX: "pbx1", Stdout: io.Discard,
		Timeout: loopbackHeaderTimeout + 30*time.Second, Ready: ready,
	})
	if err != nil {
		t.Fatalf("authorize: %v", err)
	}
}

// closedByServer connects to addr, sends send, and reads until the server
// closes the connection, failing if it is still open after wait.
func closedByServer(addr, send string, wait time.Duration) error {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := io.WriteString(c, send); err != nil {
		return err
	}
	c.SetReadDeadline(time.Now().Add(wait))
	if _, err := io.Copy(io.Discard, c); err != nil {
		return fmt.Errorf("connection sent %q still open after %s: %w", send, wait, err)
	}
	return nil
}

// TestLoopbackLogsAFloodOnce: a process or web page sending forged
// redirects without end gets the first loggedIgnored of them logged and
// one line saying that the rest are not, so that it cannot bury the
// terminal (and the address to open) under warnings; every one is still
// answered 400 and the person's redirect completes.
func TestLoopbackLogsAFloodOnce(t *testing.T) {
	t.Parallel()
	f := newFixture(t, pbxsim.Options{})
	const n = 3 * loggedIgnored
	statuses := make(chan int, n)
	ready := func(authURL string) {
		for i := range n {
			resp, err := http.Get(f.cfg.RedirectURL + fmt.Sprintf("?code=forged-%d&state=wrong", i))
			if err != nil {
				t.Error(err)
				statuses <- 0
				continue
			}
			resp.Body.Close()
			statuses <- resp.StatusCode
		}
		browser(t)(authURL)
	}
	var logs syncBuffer
	_, err := Authorize(context.Background(), AuthorizeOptions{
		Config: f.cfg, HTTPClient: http.DefaultClient, Store: fileStore(t, nil), PBX: "pbx1", Stdout: io.Discard,
		Timeout: 20 * time.Second, Ready: ready, Log: slog.New(slog.NewTextHandler(&logs, nil)),
	})
	if err != nil {
		t.Fatalf("authorize: %v", err)
	}
	for range n {
		if s := <-statuses; s != http.StatusBadRequest {
			t.Errorf("forged redirect answered %d, want 400", s)
		}
	}
	if got := strings.Count(logs.String(), "redirect ignored"); got != loggedIgnored {
		t.Errorf("%d forged redirects logged of %d, want the first %d:\n%s", got, n, loggedIgnored, logs.String())
	}
	if got := strings.Count(logs.String(), "further forged redirects are not logged"); got != 1 {
		t.Errorf("the end of logging said %d times, want once:\n%s", got, logs.String())
	}
}
