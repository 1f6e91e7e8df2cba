package main

// Tests of authorization through the CLI, in process: run(ctx, args, lookupEnv, stdin,
// stdout, stderr) with the configuration in the environment (t.Setenv, so
// these tests do not run in parallel).

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wildix-export/wildix-export/auth"
	"github.com/wildix-export/wildix-export/internal/pbxsim"
	"github.com/wildix-export/wildix-export/internal/pgtest"
	"github.com/wildix-export/wildix-export/simtest"
)

// azEnv sets the environment for an in-process run, every WILDIX_ and
// EXPORT_ variable of the machine cleared first.
func azEnv(t *testing.T, kv ...string) {
	t.Helper()
	for _, e := range os.Environ() {
		k, _, _ := strings.Cut(e, "=")
		if strings.HasPrefix(k, "WILDIX_") || strings.HasPrefix(k, "EXPORT_") {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
	for _, e := range kv {
		k, v, _ := strings.Cut(e, "=")
		t.Setenv(k, v)
	}
}

type azResult struct {
	err            error
	code           int
	stdout, stderr string
}

// azRun runs the CLI in process.
func azRun(t *testing.T, stdin string, args ...string) azResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out, errb bytes.Buffer
	err := run(ctx, args, os.LookupEnv, strings.NewReader(stdin), &out, &errb)
	return azResult{err, exitCode(err), out.String(), errb.String()}
}

// azTree reads every file under dir, by relative path.
func azTree(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		files[rel] = b
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// TestRefreshLostInTheWindowExitsThree: the PBX rotates a single-use
// refresh token and the process dies before saving the new one (a fault
// hook, exactly there). The next run exits 3 with the message to run
// `wildix-export authorize`, and the data and cursors already exported are
// untouched.
func TestRefreshLostInTheWindowExitsThree(t *testing.T) {
	f := simtest.New(t, pbxsim.Options{Calls: 30, RotateRefreshTokens: true})
	f.Authorize(t)
	dir := t.TempDir()
	azEnv(t, "WILDIX_PBX_URL="+f.Server.URL, "WILDIX_CLIENT_ID="+simtest.ClientID, "WILDIX_CLIENT_SECRET="+simtest.ClientSecret,
		"WILDIX_REDIRECT_URL="+f.Redirect, "WILDIX_TOKEN_FILE="+f.TokenFile, "EXPORT_CSV_DIR="+dir,
		"WILDIX_TIMEZONE=Europe/Rome", "EXPORT_LOG_FORMAT=json")
	if r := azRun(t, "", "run", "--once"); r.err != nil {
		t.Fatalf("first run: exit %d: %v\n%s", r.code, r.err, r.stderr)
	}
	exported := azTree(t, dir)
	if len(exported) == 0 {
		t.Fatal("the first run wrote nothing")
	}

	// A process refreshing, killed right after the PBX answered.
	store, err := auth.NewFileStore(f.TokenFile, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	rec, err := store.Load(ctx, f.URL.Host)
	if err != nil {
		t.Fatal(err)
	}
	rec.Expiry = time.Now().Add(-time.Minute)
	if err := store.Save(ctx, f.URL.Host, rec); err != nil {
		t.Fatal(err)
	}
	killed := errors.New("killed (test hook)")
	src := auth.NewSource(auth.SourceOptions{Config: f.OAuthConfig(), Store: store, PBX: f.URL.Host, AfterExchange: func() error { return killed }})
	if _, err := src.Token(ctx); !errors.Is(err, killed) {
		t.Fatalf("killed refresh: %v", err)
	}

	r := azRun(t, "", "run", "--once")
	if r.code != exitAuth || !errors.Is(r.err, auth.ErrReauthorize) || !strings.Contains(r.err.Error(), "wildix-export authorize") {
		t.Fatalf("next run: exit %d (want %d): %v\n%s", r.code, exitAuth, r.err, r.stderr)
	}
	after := azTree(t, dir)
	for name, before := range exported {
		switch {
		case strings.HasSuffix(name, "runs.jsonl"): // the run ledger: the failed run appended
			if !bytes.HasPrefix(after[name], before) || len(after[name]) == len(before) {
				t.Errorf("the run ledger %s was not appended to", name)
			}
		case !bytes.Equal(after[name], before):
			t.Errorf("%s changed or vanished after the failed run", name)
		}
	}
	for name := range after {
		if _, ok := exported[name]; !ok && strings.Contains(name, "call_history") {
			t.Errorf("the failed run wrote %s", name)
		}
	}
}

// azPBX starts a simulator on loopback whose application's Redirect URI is
// on the PBX's own host and port (https://{PBX}/api/v1/doc/ in Wildix's
// guide), so the address can only be pasted: the two-step case.
func azPBX(t *testing.T) (pbxURL, redirect string) {
	t.Helper()
	var sim *pbxsim.Sim
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { sim.ServeHTTP(w, r) }))
	pbxURL = "http://" + srv.Listener.Addr().String()
	redirect = pbxURL + "/api/v1/doc/"
	sim = pbxsim.New(pbxsim.Options{Calls: 10, Clients: []pbxsim.Client{{ID: simtest.ClientID, Secret: simtest.ClientSecret, RedirectURIs: []string{redirect}}}})
	srv.Start()
	t.Cleanup(srv.Close)
	return pbxURL, redirect
}

// azApprove plays the person: open the printed address, approve, and copy
// the address the browser lands on.
func azApprove(t *testing.T, authURL string) string {
	t.Helper()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(strings.TrimSpace(authURL))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if !strings.Contains(loc, "code=") {
		t.Fatalf("consent answered %d to %q", resp.StatusCode, loc)
	}
	return loc
}

// TestAuthorizeInTwoStepsCLI: `authorize --print-url` prints the address and
// exits; `authorize --redirect-url <landed>`, a separate run sharing only
// the token store, finishes it; the token then works. With the token file
// and with the PostgreSQL token store. A replayed or superseded address is
// refused.
func TestAuthorizeInTwoStepsCLI(t *testing.T) {
	for _, kind := range []string{"file", "postgres"} {
		t.Run(kind, func(t *testing.T) {
			pbxURL, redirect := azPBX(t)
			env := []string{"WILDIX_PBX_URL=" + pbxURL, "WILDIX_CLIENT_ID=" + simtest.ClientID, "WILDIX_CLIENT_SECRET=" + simtest.ClientSecret,
				"WILDIX_REDIRECT_URL=" + redirect, "EXPORT_LOG_FORMAT=json"}
			if kind == "file" {
				env = append(env, "WILDIX_TOKEN_FILE="+filepath.Join(t.TempDir(), "token.json"))
			} else {
				schema, _ := pgtest.Schema(t)
				env = append(env, "EXPORT_SINK=postgres", "EXPORT_DATABASE_URL="+pgtest.URL(), "EXPORT_DB_SCHEMA="+schema)
			}
			azEnv(t, env...)

			first := azRun(t, "", "authorize", "--print-url")
			if first.err != nil || !strings.HasPrefix(first.stdout, pbxURL+"/authorization/oauth2?") ||
				!strings.Contains(first.stderr, "wildix-export authorize --redirect-url") {
				t.Fatalf("first step: exit %d: %v\nstdout %q\nstderr %s", first.code, first.err, first.stdout, first.stderr)
			}
			landed := azApprove(t, first.stdout)

			if kind == "file" {
				// A newer attempt supersedes this one: its address is refused.
				again := azRun(t, "", "authorize", "--print-url")
				if again.err != nil {
					t.Fatal(again.err)
				}
				r := azRun(t, "", "authorize", "--redirect-url", landed)
				if r.err == nil || !strings.Contains(r.err.Error(), "does not match the authorization in progress") {
					t.Fatalf("superseded address: exit %d: %v", r.code, r.err)
				}
				landed = azApprove(t, again.stdout)
			}

			second := azRun(t, "", "authorize", "--redirect-url", landed)
			if second.err != nil || !strings.Contains(second.stderr, "Authorized.") {
				t.Fatalf("second step: exit %d: %v\n%s", second.code, second.err, second.stderr)
			}
			q := azRun(t, "", "query", "/api/v1/personal/info")
			if q.err != nil {
				t.Fatalf("query with the token: exit %d: %v\n%s", q.code, q.err, q.stderr)
			}
			replay := azRun(t, "", "authorize", "--redirect-url", landed)
			if replay.err == nil || !strings.Contains(replay.err.Error(), "no authorization in progress") {
				t.Fatalf("the same address again: exit %d: %v", replay.code, replay.err)
			}
			if r := azRun(t, "", "authorize", "--print-url", "--redirect-url", landed); r.code != exitConfig {
				t.Fatalf("both flags: exit %d, want %d", r.code, exitConfig)
			}
		})
	}
}

// TestRunRefusesRedirectsAwayFromThePBX: the PBX (a front before the
// simulator) answers every API call with 302 and its token endpoint with
// 307 to a second origin that records what it receives. With an API key,
// S2S, and OAuth (a refresh due), `run --once` fails with exit 6 and a
// message naming the redirect's target, and the second origin receives
// nothing at all: no key, token, signature, secret or refresh token.
func TestRunRefusesRedirectsAwayFromThePBX(t *testing.T) {
	for _, kind := range []string{"api key", "s2s", "oauth"} {
		t.Run(kind, func(t *testing.T) {
			var mu sync.Mutex
			var received []string
			elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				mu.Lock()
				received = append(received, fmt.Sprintf("%s %s %v %s", r.Method, r.URL, r.Header, b))
				mu.Unlock()
			}))
			defer elsewhere.Close()

			var sim *pbxsim.Sim
			var on atomic.Bool
			front := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if on.Load() {
					switch {
					case strings.HasPrefix(r.URL.Path, "/api/"):
						http.Redirect(w, r, elsewhere.URL+r.URL.RequestURI(), http.StatusFound)
						return
					case r.URL.Path == "/authorization/oauth2Token":
						http.Redirect(w, r, elsewhere.URL+r.URL.RequestURI(), http.StatusTemporaryRedirect)
						return
					}
				}
				sim.ServeHTTP(w, r)
			}))
			pbxURL := "http://" + front.Listener.Addr().String()
			redirect := pbxURL + "/api/v1/doc/"
			sim = pbxsim.New(pbxsim.Options{Calls: 10, APIKeys: []string{"wsk-v1-secret-key"},
				S2SApps: []pbxsim.S2SApp{{ID: "s2s-app", Name: "exporter", Secret: "s2s-secret"}},
				Clients: []pbxsim.Client{{ID: simtest.ClientID, Secret: simtest.ClientSecret, RedirectURIs: []string{redirect}}}})
			front.Start()
			defer front.Close()

			tokenFile := filepath.Join(t.TempDir(), "token.json")
			env := []string{"WILDIX_PBX_URL=" + pbxURL, "EXPORT_CSV_DIR=" + t.TempDir(), "WILDIX_TIMEZONE=Europe/Rome", "EXPORT_LOG_FORMAT=json"}
			secrets := []string{"wsk-v1-secret-key", "s2s-secret", "eyJ", simtest.ClientSecret}
			switch kind {
			case "api key":
				env = append(env, "WILDIX_API_KEY=wsk-v1-secret-key")
			case "s2s":
				env = append(env, "WILDIX_S2S_APP_ID=s2s-app", "WILDIX_S2S_APP_NAME=exporter", "WILDIX_S2S_SECRET=s2s-secret")
			case "oauth":
				env = append(env, "WILDIX_CLIENT_ID="+simtest.ClientID, "WILDIX_CLIENT_SECRET="+simtest.ClientSecret,
					"WILDIX_REDIRECT_URL="+redirect, "WILDIX_TOKEN_FILE="+tokenFile)
			}
			azEnv(t, env...)
			if kind == "oauth" {
				first := azRun(t, "", "authorize", "--print-url")
				if first.err != nil {
					t.Fatal(first.err)
				}
				if r := azRun(t, "", "authorize", "--redirect-url", azApprove(t, first.stdout)); r.err != nil {
					t.Fatal(r.err)
				}
				store, err := auth.NewFileStore(tokenFile, nil)
				if err != nil {
					t.Fatal(err)
				}
				host := strings.TrimPrefix(pbxURL, "http://")
				rec, err := store.Load(context.Background(), host)
				if err != nil {
					t.Fatal(err)
				}
				secrets = append(secrets, rec.AccessToken, rec.RefreshToken)
				rec.Expiry = time.Now().Add(-time.Minute) // a refresh is due
				if err := store.Save(context.Background(), host, rec); err != nil {
					t.Fatal(err)
				}
			}
			on.Store(true)
			r := azRun(t, "", "run", "--once")
			if r.code != exitUnreachable || r.err == nil || !strings.Contains(r.err.Error(), elsewhere.URL) {
				t.Fatalf("run: exit %d (want %d): %v\n%s", r.code, exitUnreachable, r.err, r.stderr)
			}
			mu.Lock()
			defer mu.Unlock()
			for _, got := range received {
				for _, s := range secrets {
					if strings.Contains(got, s) {
						t.Errorf("the second origin received a credential (%.10s...)", s)
					}
				}
			}
			if len(received) > 0 {
				t.Fatalf("the second origin received %d requests, want none", len(received))
			}
		})
	}
}
