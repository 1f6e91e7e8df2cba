package auth

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/wildix-export/wildix-export/internal/pbxsim"
)

// elsewhere is a second origin that records every request it receives.
type elsewhere struct {
	srv  *httptest.Server
	mu   sync.Mutex
	seen []string // method, URL, headers and body of each request
}

func newElsewhere(t *testing.T) *elsewhere {
	e := &elsewhere{}
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		e.mu.Lock()
		e.seen = append(e.seen, r.Method+" "+r.URL.String()+" "+strings.Join(headerLines(r.Header), " ")+" "+string(body))
		e.mu.Unlock()
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, `{"type":"result","result":{},"access_token":"at_evil","token_type":"Bearer","expires_in":3600}`)
	}))
	t.Cleanup(e.srv.Close)
	return e
}

func headerLines(h http.Header) []string {
	var out []string
	for k, vs := range h {
		for _, v := range vs {
			out = append(out, k+": "+v)
		}
	}
	return out
}

// received fails the test when the second origin saw any request: a
// request there could only carry what the client attaches for the PBX.
func (e *elsewhere) received(t *testing.T, secrets ...string) {
	t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, s := range e.seen {
		for _, secret := range secrets {
			if secret != "" && strings.Contains(s, secret) {
				t.Errorf("the second origin received a credential (%.12s...)", secret)
			}
		}
		if strings.Contains(strings.ToLower(s), "authorization:") {
			t.Errorf("the second origin received an Authorization header")
		}
	}
	if len(e.seen) > 0 {
		t.Errorf("the second origin received %d requests, want none: %.300q", len(e.seen), e.seen)
	}
}

// redirecting puts a front before the simulator that, once on is set,
// answers every API call with 302 and the token endpoint with 307 to the
// same path on the second origin.
func redirecting(t *testing.T, f *fixture, to *elsewhere) (on *atomic.Bool) {
	on = new(atomic.Bool)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if on.Load() {
			switch {
			case strings.HasPrefix(r.URL.Path, "/api/"):
				http.Redirect(w, r, to.srv.URL+r.URL.RequestURI(), http.StatusFound)
				return
			case r.URL.Path == "/authorization/oauth2Token":
				http.Redirect(w, r, to.srv.URL+r.URL.RequestURI(), http.StatusTemporaryRedirect)
				return
			}
		}
		f.sim.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	f.srv = front
	f.cfg.Endpoint = Endpoint(front.URL)
	return on
}

func wantRedirectError(t *testing.T, err error, e *elsewhere) {
	t.Helper()
	var re *RedirectError
	if !errors.As(err, &re) || !errors.Is(err, ErrUnreachable) {
		t.Fatalf("err = %v, want a RedirectError", err)
	}
	if !strings.Contains(err.Error(), e.srv.URL) || !strings.Contains(err.Error(), "WILDIX_PBX_URL") {
		t.Fatalf("err = %v, want it to name the target %s and what to do", err, e.srv.URL)
	}
}

// TestCredentialsStayAtThePBXOrigin: a PBX redirecting every API call (302)
// and its token endpoint (307) to a second origin. Whatever the credential
// (OAuth access token, refresh token, client secret, code, API key, S2S
// JWT), the second origin receives nothing, and each call fails naming
// where the redirect led. Each guard is tested alone: the client's
// CheckRedirect, and the transports' own refusal under a client that
// follows every redirect.
func TestCredentialsStayAtThePBXOrigin(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	setup := func(t *testing.T, o pbxsim.Options) (*fixture, *elsewhere, *atomic.Bool, *url.URL) {
		f := newFixture(t, o)
		e := newElsewhere(t)
		on := redirecting(t, f, e)
		pbx, err := url.Parse(f.srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		return f, e, on, pbx
	}
	// clients: the wiring's (CheckRedirect) and Go's default (follows all).
	clients := func(tr http.RoundTripper, pbx *url.URL) map[string]*http.Client {
		return map[string]*http.Client{
			"same-origin client": {Transport: tr, CheckRedirect: SameOrigin(pbx)},
			"following client":   {Transport: tr},
		}
	}
	get := func(c *http.Client, f *fixture) error {
		resp, err := c.Get(f.srv.URL + "/api/v1/PBX/CallHistory/?count=2")
		if err == nil {
			resp.Body.Close()
			return errors.New("the call succeeded")
		}
		return err
	}

	t.Run("oauth", func(t *testing.T) {
		t.Parallel()
		f, e, on, pbx := setup(t, pbxsim.Options{RotateRefreshTokens: true})
		store := fileStore(t, nil)
		rec := f.authorize(t, store, "auto")
		on.Store(true)
		src := NewSource(SourceOptions{Config: f.cfg, Store: store, PBX: "pbx1"})
		for name, c := range clients(&Transport{Source: src, Origin: pbx}, pbx) {
			wantRedirectError(t, get(c, f), e)
			t.Logf("%s: refused", name)
		}
		// Refresh: the token endpoint answers 307 to the second origin.
		expire(t, store)
		_, err := NewSource(SourceOptions{Config: f.cfg, Store: store, PBX: "pbx1"}).Token(context.Background())
		wantRedirectError(t, err, e)
		// Code exchange: a fresh code, then the token endpoint redirects.
		on.Store(false)
		cfg := f.cfg
		cfg.RedirectURL = pasteURI
		o := AuthorizeOptions{Config: cfg, HTTPClient: http.DefaultClient, Store: fileStore(t, nil), PBX: "p", Stdout: io.Discard}
		_, authURL, err := BeginAuthorize(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		landed := consent(t, authURL)
		on.Store(true)
		_, err = FinishAuthorize(ctx, o, landed)
		wantRedirectError(t, err, e)
		code := mustQuery(t, landed).Get("code")
		e.received(t, rec.AccessToken, rec.RefreshToken, clientSecret, code)
		if got := mustLoad(t, store); got.RefreshToken != rec.RefreshToken {
			t.Fatal("the stored refresh token changed")
		}
	})
	t.Run("api key", func(t *testing.T) {
		t.Parallel()
		f, e, on, pbx := setup(t, pbxsim.Options{APIKeys: []string{"wsk-v1-secret-key"}})
		on.Store(true)
		for _, c := range clients(&Transport{Source: Static("wsk-v1-secret-key"), Origin: pbx}, pbx) {
			wantRedirectError(t, get(c, f), e)
		}
		// Without Origin, the transport still refuses to follow a redirect
		// to another origin with the key.
		wantRedirectError(t, get(&http.Client{Transport: &Transport{Source: Static("wsk-v1-secret-key")}}, f), e)
		e.received(t, "wsk-v1-secret-key")
	})
	t.Run("s2s", func(t *testing.T) {
		t.Parallel()
		f, e, on, pbx := setup(t, pbxsim.Options{})
		on.Store(true)
		s := &S2S{AppID: "APPID", AppName: "exporter", Secret: "s3cr3t", Origin: pbx}
		for _, c := range clients(s, pbx) {
			wantRedirectError(t, get(c, f), e)
		}
		e.received(t, "APPID", "eyJ")
	})
	t.Run("a request for another origin", func(t *testing.T) {
		t.Parallel()
		_, e, _, pbx := setup(t, pbxsim.Options{})
		for _, tr := range []http.RoundTripper{
			&Transport{Source: Static("wsk-v1-secret-key"), Origin: pbx},
			&S2S{AppID: "APPID", AppName: "exporter", Secret: "s3cr3t", Origin: pbx},
		} {
			resp, err := (&http.Client{Transport: tr}).Get(e.srv.URL + "/api/v1/PBX/CallHistory/")
			if err == nil {
				resp.Body.Close()
			}
			var re *RedirectError
			if !errors.As(err, &re) {
				t.Fatalf("err = %v, want a refusal", err)
			}
		}
		e.received(t, "wsk-v1-secret-key", "APPID")
	})
}

// consent plays the person approving on the consent page and returns the
// address the PBX redirected the browser to.
func consent(t *testing.T, authURL string) string {
	t.Helper()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if mustQuery(t, loc).Get("code") == "" {
		t.Fatalf("consent: %d to %q", resp.StatusCode, loc)
	}
	return loc
}

func mustQuery(t *testing.T, raw string) url.Values {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u.Query()
}

func TestSameOrigin(t *testing.T) {
	t.Parallel()
	pbx, _ := url.Parse("https://PBX.example.com/")
	check := SameOrigin(pbx)
	for _, tc := range []struct {
		to string
		ok bool
	}{
		{"https://pbx.example.com/api/v1/x", true},
		{"https://pbx.example.com:443/api/v1/x", true},
		{"http://pbx.example.com/api/v1/x", false},
		{"https://pbx.example.com:8443/api/v1/x", false},
		{"https://evil.example.com/api/v1/x", false},
		{"https://pbx.example.com.evil.example/", false},
	} {
		u, _ := url.Parse(tc.to)
		err := check(&http.Request{URL: u}, []*http.Request{{URL: pbx}})
		if (err == nil) != tc.ok {
			t.Errorf("redirect to %s: err = %v, want allowed=%t", tc.to, err, tc.ok)
		}
	}
}
