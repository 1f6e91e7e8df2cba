package auth

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// Credentials (bearer keys, access tokens, S2S signatures, the client
// secret, codes and refresh tokens) go only to the PBX's own origin: the
// scheme, host and port of WILDIX_PBX_URL. Two guards keep them there: the
// http.Clients follow a redirect only within that origin (SameOrigin), and
// the transports that attach credentials refuse a request for any other
// origin, whoever built it.

// origin is the scheme, host and port of u, the default port made
// explicit, so that https://pbx and https://pbx:443 compare equal.
func origin(u *url.URL) string {
	scheme := strings.ToLower(u.Scheme)
	port := u.Port()
	if port == "" {
		switch scheme {
		case "https":
			port = "443"
		case "http":
			port = "80"
		}
	}
	return scheme + "://" + net.JoinHostPort(strings.ToLower(u.Hostname()), port)
}

// RedirectError is a redirect the client refused to follow because it
// leads away from the PBX's origin. It wraps ErrUnreachable: the PBX, as
// configured, does not answer.
type RedirectError struct {
	Target string // where the redirect led, without any password
	Origin string // the PBX's origin
}

func (e *RedirectError) Error() string {
	return fmt.Sprintf("the PBX redirected to %s, outside its origin %s: credentials are sent only to the PBX's own origin; "+
		"if the PBX moved, set WILDIX_PBX_URL to its new address", e.Target, e.Origin)
}

func (e *RedirectError) Unwrap() error { return ErrUnreachable }

// SameOrigin returns an http.Client CheckRedirect that follows at most 10
// redirects, each only within the origin of pbx (so never from https to
// http), and otherwise fails with a RedirectError naming the target.
func SameOrigin(pbx *url.URL) func(*http.Request, []*http.Request) error {
	want := origin(pbx)
	return func(req *http.Request, via []*http.Request) error {
		if origin(req.URL) != want {
			return &RedirectError{Target: req.URL.Redacted(), Origin: want}
		}
		if len(via) >= 10 {
			return fmt.Errorf("the PBX redirected 10 times in a row from %s: stopped", via[0].URL.Redacted())
		}
		return nil
	}
}

// checkOrigin refuses a request that a transport would send credentials
// with when it is not for the PBX's origin (pbx, when known) or when it
// follows a redirect that changed origin. It is the second guard, behind
// the client's CheckRedirect.
func checkOrigin(req *http.Request, pbx *url.URL) error {
	want := ""
	if pbx != nil {
		want = origin(pbx)
	}
	// A client following a redirect sets Response to the answer that
	// redirected; the first request of the chain fixes the origin.
	first := req
	for first.Response != nil && first.Response.Request != nil {
		first = first.Response.Request
	}
	if want == "" {
		want = origin(first.URL)
	}
	if got := origin(req.URL); got != want || origin(first.URL) != want {
		return &RedirectError{Target: req.URL.Redacted(), Origin: want}
	}
	return nil
}

// originClient returns a copy of hc (http.DefaultClient when nil) that
// follows redirects only within the origin of rawURL, for the token
// endpoint. A bad URL leaves hc following no redirect at all.
func originClient(hc *http.Client, rawURL string) *http.Client {
	if hc == nil {
		hc = http.DefaultClient
	}
	c := *hc
	u, err := url.Parse(rawURL)
	if err != nil {
		c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		return &c
	}
	c.CheckRedirect = SameOrigin(u)
	return &c
}
