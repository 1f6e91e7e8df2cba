package pbxsim

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// verifyS2S checks a server-to-server signed request as a PBX would,
// written apart from the client (auth/s2s.go), from the recipe in
// docs/pbx-api.md (S2S), so that a mistake in one is not repeated in the
// other: an HS256 JWT whose sign.hash is the sha256 of
// METHOD + path as sent + C(signed headers) + C(query) [+ C(body) except
// for GET and DELETE], the body read as PHP reads it (JSON or a form).
func (s *Sim) verifyS2S(r *http.Request) (string, bool) {
	var app *S2SApp
	for i := range s.opt.S2SApps {
		if s.opt.S2SApps[i].ID == r.Header.Get("X-APP-ID") {
			app = &s.opt.S2SApps[i]
		}
	}
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if app == nil || !ok {
		return "", false
	}
	p, ok := s2sPayload(tok, app)
	if !ok {
		return "", false
	}
	canonical, ok := s2sCanonical(r, p.Sign.Headers)
	if !ok {
		return "", false
	}
	sum := sha256.Sum256([]byte(canonical))
	if p.Sign.Hash != hex.EncodeToString(sum[:]) {
		s.opt.Log.Debug("s2s signature mismatch", "canonical", canonical)
		return "", false
	}
	return s.opt.User, true
}

// s2sClaims is what verifyS2S reads of a signed request's JWT payload.
type s2sClaims struct {
	Iss  string
	Exp  int64
	Sign struct {
		Alg     string
		Headers json.RawMessage
		Hash    string
	}
}

// s2sPayload is the payload of tok, an HS256 JWT signed with app's
// secret, issued by app and not expired; ok is false otherwise.
func s2sPayload(tok string, app *S2SApp) (p s2sClaims, ok bool) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return p, false
	}
	mac := hmac.New(sha256.New, []byte(app.Secret))
	mac.Write([]byte(parts[0] + "." + parts[1]))
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || !hmac.Equal(sig, mac.Sum(nil)) {
		return p, false
	}
	var hdr struct{ Alg string }
	if b, err := base64.RawURLEncoding.DecodeString(parts[0]); err != nil || json.Unmarshal(b, &hdr) != nil || hdr.Alg != "HS256" {
		return p, false
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil || json.Unmarshal(b, &p) != nil {
		return p, false
	}
	return p, p.Iss == app.Name && time.Now().Unix() <= p.Exp
}

// s2sCanonical is the text whose sha256 r's signature holds: method,
// path as sent, C of the headers signed (named in signed), C of the
// query and, except for GET and DELETE, C of the body. It reads r's body
// and puts it back for the handler.
func s2sCanonical(r *http.Request, signed json.RawMessage) (string, bool) {
	// headers is a list in the PHP client and a {"0":..} object in the
	// Python ports; both are accepted.
	var names []string
	if json.Unmarshal(signed, &names) != nil {
		var m map[string]string
		if json.Unmarshal(signed, &m) != nil {
			return "", false
		}
		for _, v := range m {
			names = append(names, v)
		}
	}
	headers := map[string]any{}
	for _, n := range names {
		if strings.EqualFold(n, "host") {
			host := r.Host
			if h, _, err := net.SplitHostPort(host); err == nil {
				host = h
			}
			headers["host"] = host
		} else {
			headers[n] = r.Header.Get(n)
		}
	}
	path, _, _ := strings.Cut(r.RequestURI, "?")
	canonical := r.Method + path + canon(headers) + canon(phpParams(r.URL.Query()))
	if r.Method != http.MethodGet && r.Method != http.MethodDelete && r.Body != nil {
		raw, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			return "", false
		}
		r.Body = io.NopCloser(bytes.NewReader(raw)) // the handler reads it again
		body, ok := phpBody(r.Header.Get("Content-Type"), raw)
		if !ok {
			return "", false
		}
		canonical += canon(body)
	}
	return canonical, true
}

// canon is C(map): keys lower-cased and in PHP ksort order (integer keys
// by value, the others as strings), each "key:value;", nested maps and
// lists replaced by their own C, booleans 1 and 0, strings trimmed as PHP's
// trim() does.
func canon(m map[string]any) string {
	lower := map[string]any{}
	for k, v := range m {
		lower[strings.ToLower(k)] = v
	}
	keys := make([]string, 0, len(lower))
	for k := range lower {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, aErr := strconv.ParseInt(keys[i], 10, 64)
		b, bErr := strconv.ParseInt(keys[j], 10, 64)
		if aErr == nil && bErr == nil && strconv.FormatInt(a, 10) == keys[i] && strconv.FormatInt(b, 10) == keys[j] {
			return a < b
		}
		return keys[i] < keys[j]
	})
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k)
		b.WriteByte(':')
		switch v := lower[k].(type) {
		case map[string]any:
			b.WriteString(canon(v))
		case []any:
			m := map[string]any{}
			for i, e := range v {
				m[strconv.Itoa(i)] = e
			}
			b.WriteString(canon(m))
		case bool:
			if v {
				b.WriteByte('1')
			} else {
				b.WriteByte('0')
			}
		case string:
			b.WriteString(strings.Trim(v, " \t\n\r\x00\x0B"))
		case json.Number:
			b.WriteString(string(v))
		}
		b.WriteByte(';')
	}
	return b.String()
}

// phpBody reads a request body as PHP does: JSON (json_decode into arrays)
// for a JSON content type, else a form ($_POST).
func phpBody(contentType string, raw []byte) (map[string]any, bool) {
	if strings.Contains(strings.ToLower(contentType), "json") {
		d := json.NewDecoder(bytes.NewReader(raw))
		d.UseNumber()
		var v any
		if d.Decode(&v) != nil {
			return nil, false
		}
		switch v := v.(type) {
		case map[string]any:
			return v, true
		case []any:
			m := map[string]any{}
			for i, e := range v {
				m[strconv.Itoa(i)] = e
			}
			return m, true
		}
		return nil, false
	}
	form, err := url.ParseQuery(string(raw))
	if err != nil {
		return nil, false
	}
	return phpParams(form), true
}

// phpParams turns filter[start][from]=X into nested maps, as PHP does.
func phpParams(v url.Values) map[string]any {
	out := map[string]any{}
	for key, vals := range v {
		path := []string{key}
		if i := strings.IndexByte(key, '['); i > 0 && strings.HasSuffix(key, "]") {
			path = append([]string{key[:i]}, strings.Split(key[i+1:len(key)-1], "][")...)
		}
		// PHP turns dots and spaces in a top-level name into underscores.
		path[0] = strings.NewReplacer(".", "_", " ", "_").Replace(path[0])
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
