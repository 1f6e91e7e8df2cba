package auth

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// S2S signs each request as Wildix's official PHP client does (WMS 5+
// server-to-server applications): headers Host, X-APP-ID and a bearer HS256
// JWT whose sign.hash is the sha256 of the canonical request
//
//	METHOD + path + C(headers) + C(query) [+ C(body) for other than GET and DELETE]
//
// where C lower-cases and sorts keys and emits "key:value;", nested maps
// (PHP-style filter[start][from]) replaced by their own C.
//
// Like Transport, it signs nothing for another origin than Origin (the
// PBX's), nor for a request that follows a redirect to another origin.
type S2S struct {
	AppID, AppName, Secret string
	Base                   http.RoundTripper
	Origin                 *url.URL         // the PBX's address (WILDIX_PBX_URL)
	Now                    func() time.Time // for tests; time.Now when nil
}

// RoundTrip implements http.RoundTripper.
func (s *S2S) RoundTrip(req *http.Request) (*http.Response, error) {
	if err := checkOrigin(req, s.Origin); err != nil {
		closeBody(req)
		return nil, err
	}
	r := req.Clone(req.Context())
	r.Header.Set("X-APP-ID", s.AppID)
	var body map[string]any
	if r.Method != http.MethodGet && r.Method != http.MethodDelete && req.Body != nil && req.GetBody != nil {
		rc, err := req.GetBody()
		if err != nil {
			return nil, err
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return nil, err
		}
		if form, err := url.ParseQuery(string(b)); err == nil && !bytes.HasPrefix(bytes.TrimSpace(b), []byte("{")) {
			body = NestParams(form)
		} else if err := json.Unmarshal(b, &body); err != nil {
			return nil, fmt.Errorf("s2s: sign body: %w", err)
		}
	}
	tok, err := s.Sign(r.Method, r.URL.Host, r.URL.Path, r.URL.Query(), body)
	if err != nil {
		return nil, err
	}
	r.Header.Set("Authorization", "Bearer "+tok)
	base := s.Base
	if base == nil {
		base = http.DefaultTransport
	}
	return base.RoundTrip(r)
}

// Canonical returns the string whose hash a signature covers.
func (s *S2S) Canonical(method, host, path string, query url.Values, body map[string]any) string {
	if h, _, ok := strings.Cut(host, ":"); ok {
		host = h
	}
	c := method + path + Canon(map[string]any{"host": host, "x-app-id": s.AppID}) + Canon(NestParams(query))
	if body != nil && method != http.MethodGet && method != http.MethodDelete {
		c += Canon(body)
	}
	return c
}

// Sign returns the JWT for one request.
func (s *S2S) Sign(method, host, path string, query url.Values, body map[string]any) (string, error) {
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	sum := sha256.Sum256([]byte(s.Canonical(method, host, path, query, body)))
	iat := now().Unix()
	payload, err := json.Marshal(map[string]any{
		"iss": s.AppName, "iat": iat, "exp": iat + 300,
		"sign": map[string]any{"alg": "sha256", "headers": []string{"Host", "X-APP-ID"}, "hash": hex.EncodeToString(sum[:])},
	})
	if err != nil {
		return "", err
	}
	enc := base64.RawURLEncoding
	unsigned := enc.EncodeToString([]byte(`{"typ":"JWT","alg":"HS256"}`)) + "." + enc.EncodeToString(payload)
	mac := hmac.New(sha256.New, []byte(s.Secret))
	mac.Write([]byte(unsigned))
	return unsigned + "." + enc.EncodeToString(mac.Sum(nil)), nil
}

// Canon is the C(map) of the S2S recipe.
func Canon(m map[string]any) string {
	lower := make(map[string]any, len(m))
	keys := make([]string, 0, len(m))
	for k, v := range m {
		k = strings.ToLower(k)
		lower[k] = v
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k + ":")
		switch v := lower[k].(type) {
		case map[string]any:
			b.WriteString(Canon(v))
		case bool:
			b.WriteString(map[bool]string{true: "1", false: "0"}[v])
		case string:
			b.WriteString(strings.TrimSpace(v))
		case float64:
			b.WriteString(strconv.FormatFloat(v, 'f', -1, 64))
		case nil:
		default:
			fmt.Fprint(&b, v)
		}
		b.WriteString(";")
	}
	return b.String()
}

// NestParams turns PHP-style keys (filter[start][from]=X) into nested maps.
func NestParams(v url.Values) map[string]any {
	out := map[string]any{}
	for key, vals := range v {
		path := []string{key}
		if i := strings.IndexByte(key, '['); i > 0 && strings.HasSuffix(key, "]") {
			path = append([]string{key[:i]}, strings.Split(key[i+1:len(key)-1], "][")...)
		}
		for _, val := range vals {
			m := out
			for j, p := range path {
				if p == "" {
					p = strconv.Itoa(len(m))
				}
				if j == len(path)-1 {
					m[p] = val
					break
				}
				next, ok := m[p].(map[string]any)
				if !ok {
					next = map[string]any{}
					m[p] = next
				}
				m = next
			}
		}
	}
	return out
}
