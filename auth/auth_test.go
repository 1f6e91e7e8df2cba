package auth

import (
	"bufio"
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/wildix-export/wildix-export/internal/pbxsim"
	"github.com/wildix-export/wildix-export/internal/pgtest"
)

const (
	clientID     = "app-id"
	clientSecret = "very-secret-value"
	pasteURI     = "https://pbx.example/api/v1/doc/"
)

type fixture struct {
	sim *pbxsim.Sim
	srv *httptest.Server
	cfg oauth2.Config
}

func freePort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func newFixture(t *testing.T, o pbxsim.Options) *fixture {
	t.Helper()
	// The simulator's port first, so that the redirect's free port cannot
	// be the same one (a redirect on the PBX's own port is never served
	// locally).
	var simp atomic.Pointer[pbxsim.Sim]
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { simp.Load().ServeHTTP(w, r) }))
	t.Cleanup(srv.Close)
	return newFixtureAt(t, o, srv, &simp, fmt.Sprintf("http://127.0.0.1:%d/callback", freePort(t)))
}

// newFixtureAt is newFixture with the simulator's server started and
// the loopback Redirect URI given.
func newFixtureAt(t *testing.T, o pbxsim.Options, srv *httptest.Server, simp *atomic.Pointer[pbxsim.Sim], loop string) *fixture {
	t.Helper()
	o.Clients = []pbxsim.Client{{ID: clientID, Secret: clientSecret, RedirectURIs: []string{loop, pasteURI}}}
	o.S2SApps = []pbxsim.S2SApp{{ID: "APPID", Name: "exporter", Secret: "s3cr3t"}}
	sim := pbxsim.New(o)
	simp.Store(sim)
	return &fixture{sim: sim, srv: srv, cfg: oauth2.Config{
		ClientID: clientID, ClientSecret: clientSecret, RedirectURL: loop, Endpoint: Endpoint(srv.URL),
	}}
}

// browser follows the authorization URL as a browser would, landing on
// the loopback listener.
func browser(t *testing.T) func(string) {
	return func(authURL string) {
		resp, err := http.Get(authURL)
		if err != nil {
			t.Errorf("browser: %v", err)
			return
		}
		resp.Body.Close()
	}
}

func (f *fixture) authorize(t *testing.T, store PendingStore, clientAuth string) *Record {
	t.Helper()
	rec, err := Authorize(context.Background(), AuthorizeOptions{
		Config: f.cfg, ClientAuth: clientAuth, HTTPClient: http.DefaultClient, Store: store, PBX: "pbx1",
		Stdout: io.Discard, Timeout: 10 * time.Second, Ready: browser(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

func (f *fixture) call(t *testing.T, src TokenSource) int {
	t.Helper()
	c := &http.Client{Transport: &Transport{Source: src}}
	resp, err := c.Get(f.srv.URL + "/api/v1/personal/info")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func fileStore(t *testing.T, key []byte) *FileStore {
	s, err := NewFileStore(filepath.Join(t.TempDir(), "tokens.json"), key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestLoopbackFlowStoresToken(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"body", "both", "basic"} {
		t.Run("pbx client auth "+mode, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, pbxsim.Options{ClientAuth: mode})
			store := fileStore(t, nil)
			rec := f.authorize(t, store, "auto")
			want := map[string]string{"body": "body", "both": "body", "basic": "basic"}[mode]
			if rec.ClientAuth != want {
				t.Fatalf("detected client auth %q, want %q", rec.ClientAuth, want)
			}
			got, err := store.Load(context.Background(), "pbx1")
			if err != nil || got.RefreshToken != rec.RefreshToken || got.AccessToken == "" {
				t.Fatalf("stored %v, %v", got, err)
			}
			if code := f.call(t, NewSource(SourceOptions{Config: f.cfg, Store: store, PBX: "pbx1"})); code != 200 {
				t.Fatalf("API call with stored token: %d", code)
			}
		})
	}
}

func TestPasteFlowStoresToken(t *testing.T) {
	t.Parallel()
	f := newFixture(t, pbxsim.Options{})
	cfg := f.cfg
	cfg.RedirectURL = pasteURI
	store := fileStore(t, nil)
	outR, outW := io.Pipe()
	inR, inW := io.Pipe()
	go func() {
		// The person: open the printed URL, approve, copy the address.
		line, _ := bufio.NewReader(outR).ReadString('\n')
		c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := c.Get(strings.TrimSpace(line))
		if err != nil {
			t.Errorf("consent: %v", err)
			return
		}
		resp.Body.Close()
		fmt.Fprintln(inW, resp.Header.Get("Location"))
		io.Copy(io.Discard, outR)
	}()
	_, err := Authorize(context.Background(), AuthorizeOptions{
		Config: cfg, HTTPClient: http.DefaultClient, Store: store, PBX: "pbx1", Stdin: inR, Stdout: outW,
	})
	outW.Close()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Load(context.Background(), "pbx1"); err != nil {
		t.Fatal(err)
	}
}

func TestAuthorizeErrors(t *testing.T) {
	t.Parallel()
	f := newFixture(t, pbxsim.Options{})
	run := func(cfg oauth2.Config, landed string) error {
		o := AuthorizeOptions{
			Config: cfg, HTTPClient: http.DefaultClient, Store: fileStore(t, nil), PBX: "p",
			Stdout: io.Discard, Timeout: 5 * time.Second, RedirectedTo: landed, Ready: browser(t),
		}
		if landed != "" { // the first step, then the landed address
			p, _, err := BeginAuthorize(context.Background(), o)
			if err != nil {
				return err
			}
			o.RedirectedTo = strings.ReplaceAll(landed, "{state}", p.State)
		}
		_, err := Authorize(context.Background(), o)
		return err
	}
	wrongSecret := f.cfg
	wrongSecret.ClientSecret = "nope"
	unregistered := f.cfg
	unregistered.RedirectURL = "http://127.0.0.1:1/not-registered"
	pasted := f.cfg
	pasted.RedirectURL = pasteURI
	for _, tc := range []struct {
		name   string
		cfg    oauth2.Config
		landed string
		want   string
	}{
		{"wrong secret", wrongSecret, "", "check WILDIX_CLIENT_ID and WILDIX_CLIENT_SECRET"},
		{"redirect not registered", unregistered, "", "register http://127.0.0.1:1/not-registered as a Redirect URI"},
		{"state mismatch", pasted, pasteURI + "?code=abc&state=forged", "state in the redirect does not match"},
		{"denied", pasted, pasteURI + "?error=access_denied&state={state}", "access was denied"},
		{"denied, another attempt's state", pasted, pasteURI + "?error=access_denied&state=x", "state in the redirect does not match"},
		{"stale code", pasted, "bare-code-that-does-not-exist", "codes are single use"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := run(tc.cfg, tc.landed)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
			if strings.Contains(err.Error(), clientSecret) {
				t.Fatalf("error leaks the secret: %v", err)
			}
		})
	}
	t.Run("unreachable", func(t *testing.T) {
		cfg := f.cfg
		cfg.Endpoint = Endpoint("http://127.0.0.1:1")
		tr, _ := NewTransport(TLSOptions{}, time.Second)
		_, err := Authorize(context.Background(), AuthorizeOptions{Config: cfg, HTTPClient: &http.Client{Transport: tr}, Store: fileStore(t, nil), PBX: "p", Stdout: io.Discard})
		if !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), "cannot connect to 127.0.0.1:1") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("untrusted certificate", func(t *testing.T) {
		tls := httptest.NewTLSServer(f.sim)
		defer tls.Close()
		cfg := f.cfg
		cfg.Endpoint = Endpoint(tls.URL)
		tr, _ := NewTransport(TLSOptions{}, time.Second)
		_, err := Authorize(context.Background(), AuthorizeOptions{Config: cfg, HTTPClient: &http.Client{Transport: tr}, Store: fileStore(t, nil), PBX: "p", Stdout: io.Discard})
		if !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), "WILDIX_CA_FILE") {
			t.Fatalf("err = %v", err)
		}
	})
}

// TestShortLivedRotatingTokens: 2-second access tokens and single-use
// refresh tokens, over real time (proactive refreshes) and over hundreds of
// forced expiries (the 401 path), as ten minutes of calls would see.
func TestShortLivedRotatingTokens(t *testing.T) {
	t.Parallel()
	f := newFixture(t, pbxsim.Options{AccessTokenTTL: 2 * time.Second, RotateRefreshTokens: true})
	store := fileStore(t, nil)
	f.authorize(t, store, "auto")
	src := NewSource(SourceOptions{Config: f.cfg, Store: store, PBX: "pbx1"})
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if code := f.call(t, src); code != 200 {
			t.Fatalf("call: %d", code)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if f.sim.Stats.Refreshes.Load() < 2 {
		t.Fatalf("refreshes = %d, want proactive refreshes over 5s of 2s tokens", f.sim.Stats.Refreshes.Load())
	}
	for i := 0; i < 300; i++ {
		f.sim.ExpireAccessTokens()
		if code := f.call(t, src); code != 200 {
			t.Fatalf("call %d after expiry: %d", i, code)
		}
	}
	// The store holds the one refresh token still valid: a new process
	// starting from it refreshes fine.
	fresh := NewSource(SourceOptions{Config: f.cfg, Store: store, PBX: "pbx1"})
	f.sim.ExpireAccessTokens()
	fresh.Invalidate(mustLoad(t, store).AccessToken)
	if _, err := fresh.Token(context.Background()); err != nil {
		t.Fatalf("new process from the store: %v", err)
	}
}

func mustLoad(t *testing.T, s Store) *Record {
	r, err := s.Load(context.Background(), "pbx1")
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRevokedRefreshTokenAsksToReauthorize(t *testing.T) {
	t.Parallel()
	f := newFixture(t, pbxsim.Options{AccessTokenTTL: time.Hour})
	store := fileStore(t, nil)
	f.authorize(t, store, "auto")
	f.sim.RevokeRefreshTokens()
	f.sim.ExpireAccessTokens()
	src := NewSource(SourceOptions{Config: f.cfg, Store: store, PBX: "pbx1"})
	c := &http.Client{Transport: &Transport{Source: src}}
	_, err := c.Get(f.srv.URL + "/api/v1/personal/info")
	if !errors.Is(err, ErrReauthorize) || !strings.Contains(err.Error(), "wildix-export authorize") {
		t.Fatalf("err = %v, want ErrReauthorize", err)
	}
	_, err = NewSource(SourceOptions{Config: f.cfg, Store: fileStore(t, nil), PBX: "pbx1"}).Token(context.Background())
	if !errors.Is(err, ErrReauthorize) {
		t.Fatalf("empty store: err = %v, want ErrReauthorize", err)
	}
}

func TestStaticKeyRefusedOnceNotLooped(t *testing.T) {
	t.Parallel()
	f := newFixture(t, pbxsim.Options{APIKeys: []string{"wsk-v1-good"}})
	if code := f.call(t, Static("wsk-v1-good")); code != 200 {
		t.Fatalf("good key: %d", code)
	}
	if code := f.call(t, Static("wsk-v1-bad")); code != 401 {
		t.Fatalf("bad key: %d, want 401", code)
	}
	if n := f.sim.Stats.Unauthorized.Load(); n != 1 {
		t.Fatalf("401s = %d, want exactly 1 (no retry loop)", n)
	}
}

func TestFileStoreDurabilityAndSecrecy(t *testing.T) {
	t.Parallel()
	key := make([]byte, 32)
	for i := range key {
		key[i] = byte(i)
	}
	s := fileStore(t, key)
	ctx := context.Background()
	rec := &Record{AccessToken: "at_secret_123", RefreshToken: "rt_secret_456", Expiry: time.Now().Add(time.Hour)}
	if err := s.Save(ctx, "a", rec); err != nil {
		t.Fatal(err)
	}
	if err := s.Save(ctx, "b", &Record{AccessToken: "other"}); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(s.Path())
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want 0600", st.Mode().Perm())
	}
	raw, err := os.ReadFile(s.Path())
	if err != nil || len(raw) == 0 {
		t.Fatalf("token file: %v, %d bytes", err, len(raw))
	}
	if strings.Contains(string(raw), "secret") {
		t.Fatalf("encrypted file shows a token: %s", raw)
	}
	got, err := s.Load(ctx, "a")
	if err != nil || got.RefreshToken != "rt_secret_456" {
		t.Fatalf("load: %v %v", got, err)
	}
	if fmt.Sprintf("%v %+v %#v %s", got, got, got, got) != "" && strings.Contains(fmt.Sprintf("%v %+v %#v %s", got, got, got, got), "secret") {
		t.Fatal("formatting a Record shows a token")
	}
	wrong, _ := NewFileStore(s.Path(), make([]byte, 32))
	if _, err := wrong.Load(ctx, "a"); err == nil || !strings.Contains(err.Error(), "WILDIX_TOKEN_KEY") {
		t.Fatalf("wrong key: %v", err)
	}
	os.Chmod(s.Path(), 0o644)
	if _, err := s.Load(ctx, "a"); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("readable by others: %v", err)
	}
}

func TestPostgresStore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	t.Run("not migrated", func(t *testing.T) {
		t.Parallel()
		schema, pool := pgtest.Schema(t)
		s, err := NewPostgresStore(pool, schema, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Load(ctx, "x"); err == nil || !strings.Contains(err.Error(), "not migrated (run `wildix-export authorize` or `run --once`") {
			t.Fatalf("load from an unmigrated schema: %v", err)
		}
		var tables int
		if err := pool.QueryRow(ctx, "SELECT count(*) FROM information_schema.tables WHERE table_schema = $1", schema).Scan(&tables); err != nil {
			t.Fatal(err)
		}
		if tables != 0 {
			t.Fatalf("the store created %d tables: it must run no DDL", tables)
		}
	})
	schema, pool := migratedSchema(t)
	s, err := NewPostgresStore(pool, schema, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(ctx, "x"); !errors.Is(err, ErrNoToken) {
		t.Fatalf("empty: %v", err)
	}
	f := newFixture(t, pbxsim.Options{AccessTokenTTL: 2 * time.Second, RotateRefreshTokens: true})
	f.authorize(t, s, "auto")
	src := NewSource(SourceOptions{Config: f.cfg, Store: s, PBX: "pbx1"})
	for i := 0; i < 50; i++ {
		f.sim.ExpireAccessTokens()
		if code := f.call(t, src); code != 200 {
			t.Fatalf("call %d: %d", i, code)
		}
	}
}

// The helper process: a second program sharing the store. It is this test
// binary, started with WILDIX_AUTH_HELPER set.
func TestMain(m *testing.M) {
	if os.Getenv("WILDIX_AUTH_HELPER") != "" {
		os.Exit(helper())
	}
	os.Exit(m.Run())
}

func helper() int {
	ctx := context.Background()
	var store Store
	if schema := os.Getenv("HELPER_SCHEMA"); schema != "" {
		pool, err := pgxpoolNew(ctx, os.Getenv("HELPER_DB"))
		if err != nil {
			fmt.Println("error", err)
			return 1
		}
		store, err = NewPostgresStore(pool, schema, nil)
		if err != nil {
			fmt.Println("error", err)
			return 1
		}
	} else {
		store, _ = NewFileStore(os.Getenv("HELPER_FILE"), nil)
	}
	base := os.Getenv("HELPER_PBX")
	cfg := oauth2.Config{ClientID: clientID, ClientSecret: clientSecret, Endpoint: Endpoint(base)}
	src := NewSource(SourceOptions{Config: cfg, Store: store, PBX: "pbx1"})
	if at, err := strconv.ParseInt(os.Getenv("HELPER_AT"), 10, 64); err == nil {
		time.Sleep(time.Until(time.Unix(0, at)))
	}
	c := &http.Client{Transport: &Transport{Source: src}}
	resp, err := c.Get(base + "/api/v1/personal/info")
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	resp.Body.Close()
	fmt.Println("refreshed", resp.StatusCode)
	if os.Getenv("HELPER_HANG") != "" {
		time.Sleep(time.Minute)
	}
	if resp.StatusCode != 200 {
		return 1
	}
	return 0
}

func helperCmd(t *testing.T, f *fixture, env ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), append([]string{"WILDIX_AUTH_HELPER=1", "HELPER_PBX=" + f.srv.URL}, env...)...)
	return cmd
}

// expire makes the stored token look expired, so every process must refresh.
func expire(t *testing.T, s Store) {
	r := mustLoad(t, s)
	r.Expiry = time.Now().Add(-time.Minute)
	if err := s.Save(context.Background(), "pbx1", r); err != nil {
		t.Fatal(err)
	}
}

func TestTwoProcessesRefreshAtOnce(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{"file", "postgres"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, pbxsim.Options{RotateRefreshTokens: true})
			var store PendingStore
			var env []string
			if kind == "file" {
				fs := fileStore(t, nil)
				store, env = fs, []string{"HELPER_FILE=" + fs.Path()}
			} else {
				schema, pool := migratedSchema(t)
				ps, err := NewPostgresStore(pool, schema, nil)
				if err != nil {
					t.Fatal(err)
				}
				store, env = ps, []string{"HELPER_SCHEMA=" + schema, "HELPER_DB=" + pgtest.URL()}
			}
			f.authorize(t, store, "auto")
			for round := 0; round < 3; round++ {
				expire(t, store)
				at := "HELPER_AT=" + strconv.FormatInt(time.Now().Add(700*time.Millisecond).UnixNano(), 10)
				var wg sync.WaitGroup
				outs := make([]string, 2)
				for i := range 2 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						out, err := helperCmd(t, f, append(env, at)...).CombinedOutput()
						outs[i] = string(out)
						if err != nil {
							t.Errorf("process %d: %v: %s", i, err, out)
						}
					}()
				}
				wg.Wait()
			}
			// The store ends with the newest token: it still refreshes.
			expire(t, store)
			if _, err := NewSource(SourceOptions{Config: f.cfg, Store: store, PBX: "pbx1"}).Token(context.Background()); err != nil {
				t.Fatalf("after the races: %v", err)
			}
			if n := f.sim.Stats.Refreshes.Load(); n != 4 {
				t.Fatalf("refreshes = %d, want 4 (one per round, the other process reuses it, plus the last)", n)
			}
		})
	}
}

func TestKilledAfterRefreshLeavesUsableStore(t *testing.T) {
	t.Parallel()
	f := newFixture(t, pbxsim.Options{RotateRefreshTokens: true})
	store := fileStore(t, nil)
	f.authorize(t, store, "auto")
	expire(t, store)
	cmd := helperCmd(t, f, "HELPER_FILE="+store.Path(), "HELPER_HANG=1")
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(out).ReadString('\n')
	if !strings.HasPrefix(line, "refreshed 200") {
		t.Fatalf("helper said %q", line)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	expire(t, store)
	if code := f.call(t, NewSource(SourceOptions{Config: f.cfg, Store: store, PBX: "pbx1"})); code != 200 {
		t.Fatalf("next process: %d", code)
	}
}

// TestPrivateCA: a PBX whose certificate is signed by a private CA is
// trusted once WILDIX_CA_FILE names that CA, and not before.
func TestPrivateCA(t *testing.T) {
	t.Parallel()
	f := newFixture(t, pbxsim.Options{APIKeys: []string{"wsk-v1-ca"}})
	srv := httptest.NewTLSServer(f.sim)
	defer srv.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	get := func(o TLSOptions) error {
		tr, err := NewTransport(o, 5*time.Second)
		if err != nil {
			return err
		}
		c := &http.Client{Transport: &Transport{Source: Static("wsk-v1-ca"), Base: tr}}
		resp, err := c.Get(srv.URL + "/api/v1/personal/info")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	}
	if err := get(TLSOptions{}); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("without the CA: %v, want a trust error", err)
	}
	if err := get(TLSOptions{CAFile: ca}); err != nil {
		t.Fatalf("with WILDIX_CA_FILE: %v", err)
	}
	if _, err := NewTransport(TLSOptions{CAFile: filepath.Join(t.TempDir(), "none.pem")}, time.Second); err == nil || !strings.Contains(err.Error(), "WILDIX_CA_FILE") {
		t.Fatalf("missing CA file: %v", err)
	}
}

// TestTokenResponseVariants: what docs/pbx-api.md leaves unknown about the
// token endpoint, each played by the simulator: expires_in as a string,
// refresh answers without a refresh_token (the old one must be kept), a
// PBX that ignores PKCE.
func TestTokenResponseVariants(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		o    pbxsim.Options
	}{
		{"expires_in as a string", pbxsim.Options{ExpiresInString: true, AccessTokenTTL: 2 * time.Second}},
		{"refresh keeps the refresh token", pbxsim.Options{RefreshOmitsRefreshToken: true, AccessTokenTTL: 2 * time.Second}},
		{"PKCE ignored", pbxsim.Options{PKCE: "ignore", AccessTokenTTL: 2 * time.Second}},
		{"PKCE required", pbxsim.Options{PKCE: "required", AccessTokenTTL: 2 * time.Second}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, tc.o)
			store := fileStore(t, nil)
			rec := f.authorize(t, store, "auto")
			if rec.Expiry.IsZero() || time.Until(rec.Expiry) > 3*time.Second {
				t.Fatalf("expiry %v: expires_in not understood", rec.Expiry)
			}
			src := NewSource(SourceOptions{Config: f.cfg, Store: store, PBX: "pbx1"})
			for i := 0; i < 5; i++ {
				f.sim.ExpireAccessTokens()
				if code := f.call(t, src); code != 200 {
					t.Fatalf("call %d: %d", i, code)
				}
			}
			if got := mustLoad(t, store); got.RefreshToken == "" {
				t.Fatal("the refresh token was lost")
			}
		})
	}
}
