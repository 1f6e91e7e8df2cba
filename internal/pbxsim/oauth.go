package pbxsim

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

type authCode struct {
	client, redirect  string
	challenge, method string
	user              string
	expires           time.Time
	used              bool
}

type accessToken struct {
	user    string
	expires time.Time
}

type refreshToken struct {
	client, user string
	valid        bool
}

func randomToken(prefix string) string {
	b := make([]byte, 24)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

func (s *Sim) client(id string) *Client {
	for i := range s.opt.Clients {
		if s.opt.Clients[i].ID == id {
			return &s.opt.Clients[i]
		}
	}
	return nil
}

// authorize is the consent page. It auto-approves (or denies, when
// DenyConsent is set) and redirects to the registered redirect URI.
func (s *Sim) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	c := s.client(q.Get("client_id"))
	if c == nil {
		http.Error(w, "OAuth error: invalid_client: unknown Application ID", http.StatusBadRequest)
		return
	}
	redirect := q.Get("redirect_uri")
	if !slices.Contains(c.RedirectURIs, redirect) {
		http.Error(w, "OAuth error: invalid_request: redirect_uri is not registered for this application", http.StatusBadRequest)
		return
	}
	target, err := url.Parse(redirect)
	if err != nil {
		http.Error(w, "OAuth error: invalid_request: bad redirect_uri", http.StatusBadRequest)
		return
	}
	back := target.Query()
	if st := q.Get("state"); st != "" {
		back.Set("state", st)
	}
	switch {
	case q.Get("response_type") != "code":
		back.Set("error", "unsupported_response_type")
	case s.opt.DenyConsent:
		back.Set("error", "access_denied")
		back.Set("error_description", "The user denied access")
	case s.opt.PKCE == "required" && q.Get("code_challenge") == "":
		back.Set("error", "invalid_request")
		back.Set("error_description", "code_challenge required")
	default:
		code := randomToken("code_")
		s.mu.Lock()
		s.codes[code] = &authCode{
			client: c.ID, redirect: redirect, user: s.opt.User,
			challenge: q.Get("code_challenge"), method: q.Get("code_challenge_method"),
			expires: time.Now().Add(2 * time.Minute),
		}
		s.mu.Unlock()
		back.Set("code", code)
	}
	target.RawQuery = back.Encode()
	http.Redirect(w, r, target.String(), http.StatusFound)
}

func oauthError(w http.ResponseWriter, status int, code, desc string) {
	b, _ := json.Marshal(map[string]string{"error": code, "error_description": desc})
	writeJSON(w, status, b)
}

// token is the token endpoint: authorization_code and refresh_token grants.
func (s *Sim) token(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		oauthError(w, http.StatusMethodNotAllowed, "invalid_request", "POST required")
		return
	}
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", "malformed form body")
		return
	}
	c := s.tokenClient(w, r)
	if c == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var user, rt string
	switch r.PostForm.Get("grant_type") {
	case "authorization_code":
		code := s.codes[r.PostForm.Get("code")]
		switch {
		case code == nil || code.used || time.Now().After(code.expires) || code.client != c.ID:
			oauthError(w, http.StatusBadRequest, "invalid_grant", "Authorization code is invalid or expired")
			return
		case code.redirect != r.PostForm.Get("redirect_uri"):
			oauthError(w, http.StatusBadRequest, "invalid_grant", "redirect_uri does not match")
			return
		case s.opt.PKCE != "ignore" && code.challenge != "" && !pkceOK(code, r.PostForm.Get("code_verifier")):
			oauthError(w, http.StatusBadRequest, "invalid_grant", "code_verifier does not match")
			return
		}
		code.used = true
		user = code.user
		rt = randomToken("rt_")
		s.refresh[rt] = refreshToken{client: c.ID, user: user, valid: true}
		s.Stats.CodeExchanges.Add(1)
	case "refresh_token":
		old := r.PostForm.Get("refresh_token")
		t, ok := s.refresh[old]
		if !ok || !t.valid || t.client != c.ID {
			oauthError(w, http.StatusBadRequest, "invalid_grant", "Refresh token is invalid, expired or revoked")
			return
		}
		user = t.user
		rt = old
		if s.opt.RotateRefreshTokens {
			s.refresh[old] = refreshToken{}
			rt = randomToken("rt_")
			s.refresh[rt] = refreshToken{client: c.ID, user: user, valid: true}
		}
		if s.opt.RefreshOmitsRefreshToken {
			rt = ""
		}
		s.Stats.Refreshes.Add(1)
	default:
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "grant_type must be authorization_code or refresh_token")
		return
	}
	s.writeTokens(w, user, rt)
}

// tokenClient is the client authenticated at the token endpoint as
// Options.ClientAuth says, or nil with the error written to w.
func (s *Sim) tokenClient(w http.ResponseWriter, r *http.Request) *Client {
	id, secret := r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	bid, bsecret, basic := r.BasicAuth()
	switch s.opt.ClientAuth {
	case "body":
		// As reported of real PBXes: credentials are read from the body
		// only, so Basic alone reads as an empty client id.
	case "basic":
		if id != "" && !basic {
			oauthError(w, http.StatusUnauthorized, "invalid_client", "Client authentication must use HTTP Basic")
			return nil
		}
		id, secret = bid, bsecret
	default:
		if basic {
			id, secret = bid, bsecret
		}
	}
	if id == "" {
		oauthError(w, http.StatusBadRequest, "invalid_client", "Empty client ID")
		return nil
	}
	c := s.client(id)
	if c == nil || subtle.ConstantTimeCompare([]byte(secret), []byte(c.Secret)) != 1 {
		oauthError(w, http.StatusUnauthorized, "invalid_client", "Client authentication failed")
		return nil
	}
	return c
}

// writeTokens answers a grant: a new access token for user, and rt (none
// when empty). The caller holds s.mu.
func (s *Sim) writeTokens(w http.ResponseWriter, user, rt string) {
	at := randomToken("at_")
	s.access[at] = accessToken{user: user, expires: time.Now().Add(s.opt.AccessTokenTTL)}
	resp := map[string]any{"access_token": at, "token_type": "Bearer"}
	ttl := int64(s.opt.AccessTokenTTL / time.Second)
	if s.opt.ExpiresInString {
		resp["expires_in"] = strconv.FormatInt(ttl, 10)
	} else {
		resp["expires_in"] = ttl
	}
	if rt != "" {
		resp["refresh_token"] = rt
	}
	b, _ := json.Marshal(resp)
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, b)
}

func pkceOK(c *authCode, verifier string) bool {
	if verifier == "" {
		return false
	}
	if c.method == "S256" {
		sum := sha256.Sum256([]byte(verifier))
		return base64.RawURLEncoding.EncodeToString(sum[:]) == c.challenge
	}
	return verifier == c.challenge
}

// RevokeRefreshTokens invalidates every refresh token, as an admin removing
// the application's grants does.
func (s *Sim) RevokeRefreshTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k := range s.refresh {
		s.refresh[k] = refreshToken{}
	}
}

// ExpireAccessTokens makes every issued access token expired.
func (s *Sim) ExpireAccessTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, t := range s.access {
		t.expires = time.Time{}
		s.access[k] = t
	}
}

// authenticate checks the request's credentials and returns the extension
// it acts as.
func (s *Sim) authenticate(r *http.Request) (string, bool) {
	if r.Header.Get("X-APP-ID") != "" {
		return s.verifyS2S(r)
	}
	h := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if !ok {
		tok = r.URL.Query().Get("token")
	}
	if tok == "" {
		return "", false
	}
	for _, k := range s.opt.APIKeys {
		if subtle.ConstantTimeCompare([]byte(k), []byte(tok)) == 1 {
			return s.opt.User, true
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.access[tok]
	if !ok || time.Now().After(t.expires) {
		return "", false
	}
	return t.user, true
}
