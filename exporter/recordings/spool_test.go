package recordings

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wildix-export/wildix-export/internal/pbxsim"
	"github.com/wildix-export/wildix-export/sinks/recstore"
)

// fetchAll fetches p with sp and returns its bytes.
func fetchAll(ctx context.Context, sp *Spool, p string) ([]byte, Fetched, error) {
	var b []byte
	f, err := sp.Fetch(ctx, p, func(body io.Reader, _ int64) error {
		var err error
		b, err = io.ReadAll(body)
		return err
	})
	return b, f, err
}

// TestSpoolNoCredentialLeavesThePBX: the redirect to cloud storage (the
// same host as the PBX, another port: where Go's client would keep
// Authorization) is followed with no credential; the stand-in counts
// any it receives.
func TestSpoolNoCredentialLeavesThePBX(t *testing.T) {
	t.Parallel()
	e := recSetup(t, pbxsim.Options{Seed: 5}, cloudTLS)
	pbx, _ := url.Parse(e.pbx.URL)
	cloud, _ := url.Parse(e.cloud.URL)
	if pbx.Hostname() != cloud.Hostname() || pbx.Port() == cloud.Port() {
		t.Fatalf("PBX %s and cloud %s: want the same host on other ports", pbx.Host, cloud.Host)
	}
	sp := e.spool(t)
	for _, r := range e.recordings(false)[:5] {
		b, f, err := fetchAll(context.Background(), sp, r.Path)
		if err != nil {
			t.Fatalf("fetch %s: %v", r.ID, err)
		}
		if int64(len(b)) != r.Size || !f.Redirected {
			t.Errorf("fetch %s: %d bytes, redirected %v; want %d bytes from the cloud", r.ID, len(b), f.Redirected, r.Size)
		}
	}
	st := &e.sim.Stats.Recordings
	if got := st.CloudCredentials.Load(); got != 0 {
		t.Errorf("the cloud stand-in received %d requests carrying a credential; want 0", got)
	}
	if got := st.CloudRequests.Load(); got != 5 {
		t.Errorf("the cloud stand-in served %d requests; want 5", got)
	}
}

// TestSpoolRedirects: a redirect to plain http is refused at once (never
// retried, nothing sent there); so are too many redirects, one with
// credentials in it, and one back to the PBX outside the spool.
func TestSpoolRedirects(t *testing.T) {
	t.Parallel()
	t.Run("to http", func(t *testing.T) {
		t.Parallel()
		e := recSetup(t, pbxsim.Options{Seed: 6}, cloudPlain)
		r := e.recordings(false)[0]
		_, f, err := fetchAll(context.Background(), e.spool(t), r.Path)
		var re *RedirectError
		if !errors.As(err, &re) || !strings.Contains(err.Error(), "not https") {
			t.Fatalf("fetch redirected to http = %v; want a *RedirectError saying not https", err)
		}
		if f.Attempts != 1 {
			t.Errorf("%d attempts; want 1 (a refused redirect is not retried)", f.Attempts)
		}
		if n := e.sim.Stats.Recordings.CloudRequests.Load() + e.sim.Stats.Recordings.CloudCredentials.Load(); n != 0 {
			t.Errorf("the http origin received %d requests", n)
		}
	})
	var hits atomic.Int64
	tls := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		http.Redirect(w, r, r.URL.Path, http.StatusFound) // forever
	}))
	t.Cleanup(tls.Close)
	for _, c := range []struct {
		name, loc, want string
	}{
		{"a loop", tls.URL + "/loop", "more than 3 redirects"},
		{"credentials in it", strings.Replace(tls.URL, "https://", "https://u:p@", 1) + "/x", "credentials"},
		{"back to the PBX outside the spool", "/api/v1/PBX/recordings", "outside /spoolview/recordings/"},
		{"back to the PBX, climbing", "/spoolview/recordings/2026/..%2f..%2fetc", "slash"},
		{"no Location", "", "no Location"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var pbxHits atomic.Int64
			pbx := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				pbxHits.Add(1)
				if c.loc != "" {
					w.Header().Set("Location", c.loc)
				}
				w.WriteHeader(http.StatusFound)
			}))
			t.Cleanup(pbx.Close)
			u, _ := url.Parse(pbx.URL)
			tr := tls.Client().Transport.(*http.Transport).Clone()
			sp := &Spool{Origin: u, Token: testToken, Transport: tr, MinBackoff: 1}
			_, f, err := fetchAll(context.Background(), sp, "/spoolview/recordings/2026/01/01/a.wav")
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("fetch = %v; want an error saying %q", err, c.want)
			}
			if f.Attempts != 1 || pbxHits.Load() != 1 {
				t.Errorf("%d attempts, %d PBX requests; want 1 (not retried, the PBX not asked again)", f.Attempts, pbxHits.Load())
			}
		})
	}
}

// TestSpoolTokens: a file needs the Simple Token; a wrong one is refused
// at once with what to create, and never shown.
func TestSpoolTokens(t *testing.T) {
	t.Parallel()
	e := recSetup(t, pbxsim.Options{Seed: 7}, noCloud)
	r := e.recordings(false)[0]
	for _, tok := range []Token{"wsk-v1-companykey", "access_not-the-token"} {
		sp := e.spool(t)
		sp.Token = tok
		_, f, err := fetchAll(context.Background(), sp, r.Path)
		var se *StatusError
		if !errors.As(err, &se) || se.Status != http.StatusUnauthorized || !strings.Contains(err.Error(), "Simple Token") {
			t.Errorf("token %s: fetch = %v; want a 401 naming the Simple Token", tok, err)
		}
		if f.Attempts != 1 {
			t.Errorf("token refused: %d attempts; want 1", f.Attempts)
		}
		if strings.Contains(err.Error(), string(tok)) {
			t.Errorf("the error shows the token: %v", err)
		}
	}
	var logged bytes.Buffer
	sp := e.spool(t)
	slog.New(slog.NewTextHandler(&logged, nil)).Info("spool", "spool", sp, "token", sp.Token)
	for _, s := range []string{fmt.Sprint(sp.Token), fmt.Sprintf("%v %+v %#v %s", sp, sp, sp, sp.Token), logged.String()} {
		if strings.Contains(s, testToken) {
			t.Errorf("the token shows: %s", s)
		}
	}
}

// TestSpoolVanished: 404 is ErrVanished, not retried.
func TestSpoolVanished(t *testing.T) {
	t.Parallel()
	o := pbxsim.Options{Seed: 8}
	o.Recordings.Vanished = someIDs(t, o, 1, 1)
	for _, cloud := range []cloudMode{noCloud, cloudTLS} {
		e := recSetup(t, o, cloud)
		var r Recording
		for _, x := range e.recordings(false) {
			if x.ID == fmt.Sprint(o.Recordings.Vanished[0]) {
				r = x
			}
		}
		_, f, err := fetchAll(context.Background(), e.spool(t), r.Path)
		if !errors.Is(err, ErrVanished) || f.Attempts != 1 {
			t.Errorf("cloud %v: fetch of a deleted file = %v after %d attempts; want ErrVanished after 1", cloud, err, f.Attempts)
		}
	}
}

// TestSpoolRetries: 5xx, 429, no answer, a body cut short and one that
// stalls (nothing for Spool.Stall) are retried, up to
// MaxAttempts; the consumer sees each attempt from the start. Stall is
// short (2 s) only where a case waits for it, and generous elsewhere: on
// a busy machine a loopback answer can take longer than a short Stall,
// which would count as one more failed attempt (it did, at 50 ms).
func TestSpoolRetries(t *testing.T) {
	t.Parallel()
	const file = "RIFF-and-the-rest-of-a-recording"
	for _, c := range []struct {
		name  string
		fail  func(w http.ResponseWriter, r *http.Request)
		fails int
		stall bool // the case waits for Spool.Stall
	}{
		{"503", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(503) }, 2, false},
		{"429", func(w http.ResponseWriter, _ *http.Request) { w.Header().Set("Retry-After", "0"); w.WriteHeader(429) }, 2, false},
		{"stalled", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", fmt.Sprint(len(file)))
			io.WriteString(w, file[:10])
			w.(http.Flusher).Flush()
			<-r.Context().Done() // until the client gives up on it
		}, 2, true},
		{"no answer", func(w http.ResponseWriter, r *http.Request) {
			<-r.Context().Done() // until the client gives up on it
		}, 2, true},
		{"cut", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Length", fmt.Sprint(len(file)))
			io.WriteString(w, file[:10])
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		}, 3, false},
		{"cut cleanly (no length)", func(w http.ResponseWriter, _ *http.Request) { w.(http.Flusher).Flush(); io.WriteString(w, file[:10]) }, 3, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var n atomic.Int64
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if n.Add(1) <= int64(c.fails) {
					c.fail(w, r)
					return
				}
				io.WriteString(w, file)
			}))
			t.Cleanup(srv.Close)
			u, _ := url.Parse(srv.URL)
			sp := &Spool{Origin: u, Token: testToken, MinBackoff: 1, Stall: time.Minute}
			if c.stall {
				sp.Stall = 2 * time.Second
			}
			var got []byte
			f, err := sp.Fetch(context.Background(), "/spoolview/recordings/a.wav", func(body io.Reader, size int64) error {
				b, err := io.ReadAll(body)
				if err != nil {
					return err
				}
				if len(b) != len(file) { // what a store does with an announced size
					return fmt.Errorf("%d bytes: %w", len(b), &mismatch)
				}
				got = b
				return nil
			})
			if err != nil || string(got) != file || f.Attempts != c.fails+1 {
				t.Fatalf("fetch = %q, %+v, %v; want the file after %d attempts", got, f, err, c.fails+1)
			}
			sp.MaxAttempts = c.fails
			n.Store(0)
			if _, f, err := fetchAll(context.Background(), sp, "/spoolview/recordings/a.wav"); err == nil && c.name != "cut cleanly (no length)" {
				t.Errorf("with %d attempts: %+v, nil; want the last failure", c.fails, f)
			}
		})
	}
}

var mismatch = recstore.MismatchError{What: "size", Want: "32", Got: "10"}

// TestSpoolUntrustedCertificate: cloud storage whose certificate is not
// trusted fails at once, saying so (another attempt would meet the same
// certificate).
func TestSpoolUntrustedCertificate(t *testing.T) {
	t.Parallel()
	e := recSetup(t, pbxsim.Options{Seed: 10}, cloudTLS)
	sp := e.spool(t)
	sp.Transport = http.DefaultTransport.(*http.Transport).Clone()
	_, f, err := fetchAll(context.Background(), sp, e.recordings(false)[0].Path)
	if err == nil || !strings.Contains(err.Error(), "certificate") || f.Attempts != 1 {
		t.Fatalf("fetch from an untrusted cloud = %v after %d attempts; want a certificate error after 1", err, f.Attempts)
	}
}

// TestSpoolRefusesAPage: a 200 that is a web page or a JSON answer (a
// login page in place of the file) is not taken for a recording, and not
// retried.
func TestSpoolRefusesAPage(t *testing.T) {
	t.Parallel()
	for _, ct := range []string{"text/html; charset=utf-8", "application/json"} {
		var n atomic.Int64
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			n.Add(1)
			w.Header().Set("Content-Type", ct)
			io.WriteString(w, "<html>Login</html>")
		}))
		t.Cleanup(srv.Close)
		u, _ := url.Parse(srv.URL)
		sp := &Spool{Origin: u, Token: testToken, MinBackoff: 1}
		b, f, err := fetchAll(context.Background(), sp, "/spoolview/recordings/a.wav")
		if err == nil || !strings.Contains(err.Error(), "not a recording") || f.Attempts != 1 || n.Load() != 1 || b != nil {
			t.Errorf("%s: fetch = %q, %+v, %v; want an error saying not a recording after 1 attempt", ct, b, f, err)
		}
	}
}

// TestSpoolRedirectWithinThePBX: a redirect to another file of the PBX's
// own spool keeps the token (the same origin); the file is fetched.
func TestSpoolRedirectWithinThePBX(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Header.Get("Authorization") != "Bearer "+testToken:
			w.WriteHeader(http.StatusUnauthorized)
		case r.URL.Path == "/spoolview/recordings/a.wav":
			http.Redirect(w, r, "/spoolview/recordings/2026/b.wav", http.StatusFound)
		case r.URL.Path == "/spoolview/recordings/2026/b.wav":
			io.WriteString(w, "RIFF")
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	b, f, err := fetchAll(context.Background(), &Spool{Origin: u, Token: testToken, MinBackoff: 1}, "/spoolview/recordings/a.wav")
	if err != nil || string(b) != "RIFF" || f.Redirected {
		t.Fatalf("fetch = %q, %+v, %v; want the file, not counted as redirected elsewhere", b, f, err)
	}
}

// TestSpoolProbe: check's probe fetches the start of a file (through the
// cloud redirect) and stops; a company key is refused naming the Simple
// Token.
func TestSpoolProbe(t *testing.T) {
	t.Parallel()
	e := recSetup(t, pbxsim.Options{Seed: 11}, cloudTLS)
	r := e.recordings(false)[0]
	sp := e.spool(t)
	if f, err := sp.Probe(context.Background(), r.Path); err != nil || !f.Redirected || f.Attempts != 1 {
		t.Errorf("Probe = %+v, %v; want the file's start from the cloud at the first attempt", f, err)
	}
	sp.Token = "wsk-v1-companykey"
	if _, err := sp.Probe(context.Background(), r.Path); err == nil || !strings.Contains(err.Error(), "Simple Token") {
		t.Errorf("Probe with a company key = %v; want a refusal naming the Simple Token", err)
	}
	if n := e.sim.Stats.Recordings.CloudCredentials.Load(); n != 0 {
		t.Errorf("the cloud stand-in received %d credentials", n)
	}
}
