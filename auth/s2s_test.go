package auth

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wildix-export/wildix-export/internal/pbxsim"
)

// s2sVector is one entry of testdata/s2s-vectors.json. The file was
// produced by running Wildix's official PHP client, s2s-client-php 2.0.0
// (github.com/Wildix/s2s-client-php, commit 3eb5eb3, with its composer.lock
// dependencies, on PHP 8.2), unmodified, with its clock fixed to each
// vector's time, recording the canonical string it hashed, the JWT, and the
// request it handed to its transport; its "note" and "fields" say how.
type s2sVector struct {
	ID     string
	About  string
	Config struct {
		Host      string
		AppID     string `json:"app_id"`
		AppName   string `json:"app_name"`
		SecretKey string `json:"secret_key"`
	}
	Time  int64
	Input struct {
		Method  string
		Options struct {
			Headers map[string]string
		}
	}
	Canonical         string
	CanonicalSHA256   string   `json:"canonical_sha256"`
	JWTPayloadJSON    string   `json:"jwt_payload_json"`
	JWT               string   `json:"jwt"`
	SignedHeaderNames []string `json:"signed_header_names"`
	RequestTarget     string   `json:"request_target"`
	BodySent          string   `json:"body_sent"`
}

func loadS2SVectors(t *testing.T) []s2sVector {
	t.Helper()
	b, err := os.ReadFile("testdata/s2s-vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var file struct{ Vectors []s2sVector }
	if err := json.Unmarshal(b, &file); err != nil {
		t.Fatal(err)
	}
	if len(file.Vectors) != 16 {
		t.Fatalf("%d vectors, want 16", len(file.Vectors))
	}
	return file.Vectors
}

// TestS2SAgainstOfficialClientVectors builds each vector's request as a Go
// caller would (the URL, headers and body the PHP client handed to its
// transport), signs it, and sends it over loopback: the canonical string,
// its sha256, the signed header names and the JWT received must be the
// official client's, byte for byte.
func TestS2SAgainstOfficialClientVectors(t *testing.T) {
	t.Parallel()
	for _, v := range loadS2SVectors(t) {
		t.Run(v.ID, func(t *testing.T) {
			t.Parallel()
			type seen struct {
				header     http.Header
				host, body string
				target     string
			}
			got := make(chan seen, 1)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				got <- seen{r.Header.Clone(), r.Host, string(b), r.RequestURI}
			}))
			defer srv.Close()
			host, err := url.Parse(v.Config.Host)
			if err != nil {
				t.Fatal(err)
			}
			req, err := http.NewRequest(v.Input.Method, srv.URL+v.RequestTarget, strings.NewReader(v.BodySent))
			if err != nil {
				t.Fatal(err)
			}
			if v.BodySent == "" {
				req.Body, req.GetBody, req.ContentLength = http.NoBody, nil, 0
			}
			req.Host = host.Hostname()
			for k, val := range v.Input.Options.Headers {
				req.Header[k] = []string{val} // the caller's spelling, as the PHP client keeps it
			}
			if headerValue(req.Header, "Content-Type") == "" {
				req.Header.Set("Content-Type", formType) // as Guzzle sends, unsigned
			}
			s := &S2S{AppID: v.Config.AppID, AppName: v.Config.AppName, Secret: v.Config.SecretKey,
				Now: func() time.Time { return time.Unix(v.Time, 0) }}

			canonical, signed, err := s.canonical(req)
			if err != nil {
				t.Fatal(err)
			}
			if canonical != v.Canonical {
				t.Fatalf("%s\ncanonical\n %q\nwant\n %q", v.About, canonical, v.Canonical)
			}
			if sum := sha256.Sum256([]byte(canonical)); hex.EncodeToString(sum[:]) != v.CanonicalSHA256 {
				t.Fatalf("sha256 %x, want %s", sum, v.CanonicalSHA256)
			}
			if !slices.Equal(signed, v.SignedHeaderNames) {
				t.Fatalf("signed headers %q, want %q", signed, v.SignedHeaderNames)
			}

			resp, err := (&http.Client{Transport: s}).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			r := <-got
			if a := r.header.Get("Authorization"); a != "Bearer "+v.JWT {
				t.Fatalf("Authorization\n %s\nwant\n Bearer %s", a, v.JWT)
			}
			parts := strings.Split(v.JWT, ".")
			if payload, _ := base64.RawURLEncoding.DecodeString(parts[1]); string(payload) != v.JWTPayloadJSON {
				t.Fatalf("the vector's JWT does not hold its payload: %s", payload)
			}
			if r.header.Get("X-App-Id") != v.Config.AppID || r.host != host.Hostname() || r.target != v.RequestTarget || r.body != v.BodySent {
				t.Fatalf("sent X-APP-ID %q, Host %q, target %q, body %q", r.header.Get("X-App-Id"), r.host, r.target, r.body)
			}
		})
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestS2SAgainstSimulator: the simulator's verifier, written apart from the
// signer, accepts what the signer sends (query, a header of the caller's,
// a percent-encoded path, form and JSON bodies with lists) and refuses a
// wrong secret, and a body or header changed after signing. The simulator
// answers 405 to a POST it accepted and 401 to one it refused.
func TestS2SAgainstSimulator(t *testing.T) {
	t.Parallel()
	f := newFixture(t, pbxsim.Options{})
	send := func(secret, method, target, contentType, body string, tamper func(*http.Request)) int {
		t.Helper()
		s := &S2S{AppID: "APPID", AppName: "exporter", Secret: secret}
		if tamper != nil {
			s.Base = roundTripFunc(func(r *http.Request) (*http.Response, error) {
				tamper(r)
				return http.DefaultTransport.RoundTrip(r)
			})
		}
		req, err := http.NewRequest(method, f.srv.URL+target, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if body == "" {
			req.Body, req.GetBody, req.ContentLength = http.NoBody, nil, 0
		}
		req.Header.Set("Accept", "application/json")
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		resp, err := (&http.Client{Transport: s}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	const query = "/api/v1/PBX/CallHistory/?count=2&filter[start][from]=2026-01-01%2000:00:00&filter[start][to]=2026-01-02%2000:00:00&email[]=a&email[]=b"
	const jsonBody = `{"ids":["8455","8456","8457","1","2","3","4","5","6","7","8","9"],"options":{"autoAnswer":true,"n":3}}`
	setBody := func(b string) func(*http.Request) {
		return func(r *http.Request) {
			r.Body, r.ContentLength = io.NopCloser(strings.NewReader(b)), int64(len(b))
		}
	}
	for _, tc := range []struct {
		name                                string
		secret, method, target, ctype, body string
		tamper                              func(*http.Request)
		want                                int
	}{
		{"query", "s3cr3t", "GET", query, "", "", nil, 200},
		{"wrong secret", "wrong", "GET", query, "", "", nil, 401},
		{"percent-encoded path", "s3cr3t", "GET", "/api/v1/Calls/SIP%2F204-0000028a/Recordings", "", "", nil, 404},
		{"form body", "s3cr3t", "POST", "/api/v1/Originate/?async=1", formType, "from=201&to=%20202%09", nil, 405},
		{"json body with a list", "s3cr3t", "POST", "/api/v1/PBX/recordings/download/", "application/json", jsonBody, nil, 405},
		{"body changed after signing", "s3cr3t", "POST", "/api/v1/Originate/", "application/json", jsonBody,
			setBody(strings.Replace(jsonBody, "8457", "8458", 1)), 401},
		{"signed header changed", "s3cr3t", "GET", query, "", "", func(r *http.Request) { r.Header.Set("Accept", "text/html") }, 401},
	} {
		if got := send(tc.secret, tc.method, tc.target, tc.ctype, tc.body, tc.tamper); got != tc.want {
			t.Errorf("%s: status %d, want %d", tc.name, got, tc.want)
		}
	}
}
