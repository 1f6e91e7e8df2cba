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
	"mime"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
)

// S2S signs each request as Wildix's official PHP client (s2s-client-php
// 2.0.0) does for WMS 5+ server-to-server applications: headers Host,
// X-APP-ID and a bearer HS256 JWT whose sign.hash is the sha256 of the
// canonical request
//
//	METHOD + path + C(headers) + C(query) [+ C(body), except for GET and DELETE]
//
// where path is the path as sent (percent-encoding kept), headers are the
// request's own headers (signed, listed first in sign.headers) then Host
// (its name only, no port) and X-APP-ID, and C lower-cases keys, orders
// them as PHP's ksort does (integer keys numerically), and emits
// "key:value;", a nested map or list (keys 0, 1, 2, ...) replaced by its
// own C, booleans as 1 and 0, strings trimmed of space, tab, newline, CR,
// NUL and VT only. The query and a form or JSON body are read as PHP reads
// them (filter[start][from]=X nests). auth/testdata/s2s-vectors.json holds
// the official client's answers; the tests check every one byte for byte.
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
	canonical, signed, err := s.canonical(req)
	if err != nil {
		closeBody(req)
		return nil, fmt.Errorf("s2s: sign %s %s: %w", req.Method, req.URL.Path, err)
	}
	r := req.Clone(req.Context())
	r.Header.Set("X-APP-ID", s.AppID)
	r.Header.Set("Authorization", "Bearer "+s.token(canonical, signed))
	base := s.Base
	if base == nil {
		base = http.DefaultTransport
	}
	return base.RoundTrip(r)
}

// formType is the content type Guzzle adds itself to form bodies (and, in
// the PHP client, to every request); it is never one of the signed headers.
const formType = "application/x-www-form-urlencoded"

// canonical returns the string a request's signature covers and the names
// of the headers it signs, in sign.headers order.
func (s *S2S) canonical(req *http.Request) (string, []string, error) {
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	headers := map[string]any{}
	var signed []string
	for name, vals := range req.Header {
		switch {
		case strings.EqualFold(name, "Authorization"), strings.EqualFold(name, "X-APP-ID"), strings.EqualFold(name, "Host"):
			continue
		case strings.EqualFold(name, "Content-Type") && len(vals) > 0 && strings.HasPrefix(vals[0], formType):
			continue
		}
		signed = append(signed, name)
		headers[name] = strings.Join(vals, ", ")
	}
	slices.Sort(signed) // a Go header map has no order; the PHP client keeps the caller's
	headers["Host"] = host
	headers["X-APP-ID"] = s.AppID
	signed = append(signed, "Host", "X-APP-ID")

	path := req.URL.EscapedPath()
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	c := req.Method + path + canon(headers) + canon(nestParams(req.URL.Query()))
	if req.Method != http.MethodGet && req.Method != http.MethodDelete && req.Body != nil && req.Body != http.NoBody {
		if req.GetBody == nil {
			return "", nil, fmt.Errorf("the body cannot be read twice (no GetBody)")
		}
		rc, err := req.GetBody()
		if err != nil {
			return "", nil, err
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return "", nil, err
		}
		body, err := parseBody(headerValue(req.Header, "Content-Type"), b)
		if err != nil {
			return "", nil, err
		}
		c += canon(body)
	}
	return c, signed, nil
}

// headerValue looks name up whatever the case its key was stored with.
func headerValue(h http.Header, name string) string {
	for k, v := range h {
		if strings.EqualFold(k, name) && len(v) > 0 {
			return v[0]
		}
	}
	return ""
}

// parseBody reads a body as PHP does: JSON when the content type says so
// (or it looks like JSON), else a form.
func parseBody(contentType string, b []byte) (map[string]any, error) {
	mt, _, _ := mime.ParseMediaType(contentType)
	trimmed := bytes.TrimSpace(b)
	if mt == "application/json" || strings.HasSuffix(mt, "+json") || (mt == "" && len(trimmed) > 0 && (trimmed[0] == '{' || trimmed[0] == '[')) {
		d := json.NewDecoder(bytes.NewReader(b))
		d.UseNumber()
		var v any
		if err := d.Decode(&v); err != nil {
			return nil, fmt.Errorf("body: %w", err)
		}
		switch v := v.(type) {
		case map[string]any:
			return v, nil
		case []any:
			return listMap(v), nil
		}
		return nil, fmt.Errorf("body: a JSON %T, not an object or a list", v)
	}
	form, err := url.ParseQuery(string(b))
	if err != nil {
		return nil, fmt.Errorf("body: %w", err)
	}
	return nestParams(form), nil
}

func listMap(l []any) map[string]any {
	m := make(map[string]any, len(l))
	for i, v := range l {
		m[strconv.Itoa(i)] = v
	}
	return m
}

// token returns the JWT for a canonical string, its payload's keys in the
// PHP client's order and encoded as firebase/php-jwt encodes them.
func (s *S2S) token(canonical string, signed []string) string {
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	sum := sha256.Sum256([]byte(canonical))
	iat := now().Unix()
	var p strings.Builder
	p.WriteString(`{"iss":` + phpJSONString(s.AppName))
	p.WriteString(`,"iat":` + strconv.FormatInt(iat, 10) + `,"exp":` + strconv.FormatInt(iat+300, 10))
	p.WriteString(`,"sign":{"alg":"sha256","headers":[`)
	for i, n := range signed {
		if i > 0 {
			p.WriteByte(',')
		}
		p.WriteString(phpJSONString(n))
	}
	p.WriteString(`],"hash":"` + hex.EncodeToString(sum[:]) + `"}}`)
	enc := base64.RawURLEncoding
	unsigned := enc.EncodeToString([]byte(`{"typ":"JWT","alg":"HS256"}`)) + "." + enc.EncodeToString([]byte(p.String()))
	mac := hmac.New(sha256.New, []byte(s.Secret))
	mac.Write([]byte(unsigned))
	return unsigned + "." + enc.EncodeToString(mac.Sum(nil))
}

// phpJSONString encodes s as PHP's json_encode with JSON_UNESCAPED_SLASHES:
// everything outside printable ASCII as \uXXXX (UTF-16), slashes kept.
func phpJSONString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\b':
			b.WriteString(`\b`)
		case r == '\f':
			b.WriteString(`\f`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r > 0x7e:
			if r > 0xffff {
				r1, r2 := utf16.EncodeRune(r)
				fmt.Fprintf(&b, `\u%04x\u%04x`, r1, r2)
			} else {
				fmt.Fprintf(&b, `\u%04x`, r)
			}
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// canon is the C(map) of the recipe.
func canon(m map[string]any) string {
	lower := make(map[string]any, len(m))
	keys := make([]string, 0, len(m))
	// Sorted first, so that of two keys equal once lower-cased the same
	// one wins every time (PHP keeps the later).
	orig := make([]string, 0, len(m))
	for k := range m {
		orig = append(orig, k)
	}
	slices.Sort(orig)
	for _, k := range orig {
		lk := strings.ToLower(k)
		if _, dup := lower[lk]; !dup {
			keys = append(keys, lk)
		}
		lower[lk] = m[k]
	}
	slices.SortFunc(keys, phpKeyCompare)
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k + ":")
		switch v := lower[k].(type) {
		case map[string]any:
			b.WriteString(canon(v))
		case []any:
			b.WriteString(canon(listMap(v)))
		case bool:
			if v {
				b.WriteByte('1')
			} else {
				b.WriteByte('0')
			}
		case string:
			b.WriteString(strings.Trim(v, phpTrimmed))
		case json.Number:
			b.WriteString(v.String())
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

// phpTrimmed is what PHP's trim() strips by default.
const phpTrimmed = " \t\n\r\x00\x0B"

// phpIntKey reports whether PHP stores k as an integer array key: a
// decimal integer without a leading zero or plus sign, within int64.
func phpIntKey(k string) (int64, bool) {
	if k == "" || k == "-0" || (len(k) > 1 && k[0] == '0') || (len(k) > 2 && k[0] == '-' && k[1] == '0') || k[0] == '+' {
		return 0, false
	}
	n, err := strconv.ParseInt(k, 10, 64)
	return n, err == nil
}

// phpKeyCompare orders keys as PHP 8's ksort: integer keys numerically,
// otherwise as strings.
func phpKeyCompare(a, b string) int {
	ia, aok := phpIntKey(a)
	ib, bok := phpIntKey(b)
	if aok && bok {
		switch {
		case ia < ib:
			return -1
		case ia > ib:
			return 1
		}
		return 0
	}
	return strings.Compare(a, b)
}

// nestParams reads a query or form as PHP does: filter[start][from]=X
// nests, a[]=X appends, dots and spaces in a top-level name become _.
func nestParams(v url.Values) map[string]any {
	out := map[string]any{}
	names := make([]string, 0, len(v))
	for k := range v {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, key := range names {
		path := []string{key}
		if i := strings.IndexByte(key, '['); i > 0 && strings.HasSuffix(key, "]") {
			path = append([]string{key[:i]}, strings.Split(key[i+1:len(key)-1], "][")...)
		}
		path[0] = strings.NewReplacer(".", "_", " ", "_").Replace(path[0])
		for _, val := range v[key] {
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
