package pbxsim

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// verifyS2S checks a server-to-server signed request, built independently
// of the client from the recipe in docs/pbx-api.md (S2S): an HS256 JWT
// whose sign.hash is sha256 of METHOD + path + C(headers) + C(query).
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
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return "", false
	}
	mac := hmac.New(sha256.New, []byte(app.Secret))
	mac.Write([]byte(parts[0] + "." + parts[1]))
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || !hmac.Equal(sig, mac.Sum(nil)) {
		return "", false
	}
	var hdr struct{ Alg string }
	if b, err := base64.RawURLEncoding.DecodeString(parts[0]); err != nil || json.Unmarshal(b, &hdr) != nil || hdr.Alg != "HS256" {
		return "", false
	}
	var p struct {
		Iss  string
		Exp  int64
		Sign struct {
			Alg     string
			Headers json.RawMessage
			Hash    string
		}
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil || json.Unmarshal(b, &p) != nil {
		return "", false
	}
	if p.Iss != app.Name || time.Now().Unix() > p.Exp {
		return "", false
	}
	// headers is a list in the PHP client and a {"0":..} object in the
	// Python ports; both are accepted.
	var names []string
	if json.Unmarshal(p.Sign.Headers, &names) != nil {
		var m map[string]string
		if json.Unmarshal(p.Sign.Headers, &m) != nil {
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
	canonical := r.Method + r.URL.Path + canon(headers) + canon(phpParams(r.URL.Query()))
	sum := sha256.Sum256([]byte(canonical))
	if p.Sign.Hash != hex.EncodeToString(sum[:]) {
		s.opt.Log.Debug("s2s signature mismatch", "canonical", canonical)
		return "", false
	}
	return s.opt.User, true
}

// canon is C(map): keys lower-cased and sorted, each "key:value;", nested
// maps replaced by their own C.
func canon(m map[string]any) string {
	keys := make([]string, 0, len(m))
	lower := map[string]any{}
	for k, v := range m {
		lk := strings.ToLower(k)
		lower[lk] = v
		keys = append(keys, lk)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k)
		b.WriteByte(':')
		switch v := lower[k].(type) {
		case map[string]any:
			b.WriteString(canon(v))
		case bool:
			if v {
				b.WriteByte('1')
			} else {
				b.WriteByte('0')
			}
		case string:
			b.WriteString(strings.TrimSpace(v))
		}
		b.WriteByte(';')
	}
	return b.String()
}

// phpParams turns filter[start][from]=X into nested maps, as PHP does.
func phpParams(v url.Values) map[string]any {
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
