package auth

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"time"

	"golang.org/x/oauth2"
)

// TokenSource is what Transport needs of a token source. Token's context
// is the request's: it bounds a refresh. Invalidate is called with an
// access token the PBX answered 401 to; a source that cannot refresh (a
// static key) ignores it.
type TokenSource interface {
	Token(ctx context.Context) (*oauth2.Token, error)
	Invalidate(accessToken string)
}

// Static is a TokenSource for a bearer key that is never refreshed: the
// company API key (wsk-v1-...) or a PBX simple token (access_...).
type Static string

// Token implements TokenSource.
func (k Static) Token(context.Context) (*oauth2.Token, error) {
	return &oauth2.Token{AccessToken: string(k), TokenType: "Bearer"}, nil
}

// Invalidate implements TokenSource; a static key cannot be refreshed.
func (Static) Invalidate(string) {}

// Transport adds a bearer token to each request. On a 401 it invalidates
// the token and, when the source then has a different one, retries once:
// never a loop. It refuses, sending nothing, a request for another origin
// than Origin (the PBX's) or one that follows a redirect to another
// origin; with Origin nil, only the latter. Pair it with an http.Client
// whose CheckRedirect is SameOrigin, which says where a redirect led.
type Transport struct {
	Source TokenSource
	Base   http.RoundTripper
	Origin *url.URL // the PBX's address (WILDIX_PBX_URL)
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if err := checkOrigin(req, t.Origin); err != nil {
		closeBody(req)
		return nil, err
	}
	tok, err := t.Source.Token(req.Context())
	if err != nil {
		closeBody(req)
		return nil, err
	}
	resp, err := t.base().RoundTrip(withToken(req, tok))
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		return resp, err
	}
	if req.Body != nil && req.GetBody == nil {
		return resp, nil // cannot replay the body
	}
	t.Source.Invalidate(tok.AccessToken)
	next, err := t.Source.Token(req.Context())
	if err != nil {
		resp.Body.Close()
		return nil, err
	}
	if next.AccessToken == tok.AccessToken {
		return resp, nil
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	retry := req.Clone(req.Context())
	if req.GetBody != nil {
		if retry.Body, err = req.GetBody(); err != nil {
			return nil, err
		}
	}
	return t.base().RoundTrip(withToken(retry, next))
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

func (t *Transport) base() http.RoundTripper {
	if t.Base != nil {
		return t.Base
	}
	return http.DefaultTransport
}

func withToken(req *http.Request, tok *oauth2.Token) *http.Request {
	r := req.Clone(req.Context())
	r.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	return r
}

// TLSOptions say which PBX certificates to trust.
type TLSOptions struct {
	CAFile   string // PEM file of extra trusted CAs (a private CA)
	Insecure bool   // skip verification; never in production
}

// ErrUnreachable wraps failures to reach the PBX at all: DNS, refused
// connections, TLS trust. Timeouts and cut connections are not included,
// as they are worth retrying.
var ErrUnreachable = errors.New("PBX unreachable")

// NewTransport returns the base transport for talking to a PBX: timeouts
// on connecting and on headers, the configured CA trust, and errors that say
// what to do.
func NewTransport(o TLSOptions, timeout time.Duration) (http.RoundTripper, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	tr.ResponseHeaderTimeout = timeout
	tr.MaxIdleConnsPerHost = 64
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("WILDIX_CA_FILE: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("WILDIX_CA_FILE=%s holds no PEM certificate", o.CAFile)
		}
		tr.TLSClientConfig.RootCAs = pool
	}
	tr.TLSClientConfig.InsecureSkipVerify = o.Insecure
	return explaining{tr}, nil
}

type explaining struct{ base http.RoundTripper }

func (e explaining) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := e.base.RoundTrip(req)
	if err != nil {
		return nil, explainNetError(err, req.URL.Host)
	}
	return resp, nil
}

type netError struct {
	msg string
	err error
}

func (e *netError) Error() string   { return e.msg }
func (e *netError) Unwrap() []error { return []error{ErrUnreachable, e.err} }

func explainNetError(err error, host string) error {
	var (
		unknownCA *x509.UnknownAuthorityError
		hostErr   x509.HostnameError
		certErr   *tls.CertificateVerificationError
		dnsErr    *net.DNSError
		opErr     *net.OpError
	)
	switch {
	case errors.As(err, &unknownCA), errors.As(err, &certErr) && !errors.As(err, &hostErr):
		return &netError{fmt.Sprintf("the TLS certificate of %s is not trusted: set WILDIX_CA_FILE to the PEM of its CA (%v)", host, err), err}
	case errors.As(err, &hostErr):
		return &netError{fmt.Sprintf("the TLS certificate of %s is for another host: check WILDIX_PBX_URL (%v)", host, err), err}
	case errors.As(err, &dnsErr):
		return &netError{fmt.Sprintf("cannot resolve %s: check WILDIX_PBX_URL (%v)", host, err), err}
	case errors.As(err, &opErr) && opErr.Op == "dial":
		return &netError{fmt.Sprintf("cannot connect to %s: check WILDIX_PBX_URL and the network (%v)", host, err), err}
	}
	return err
}
