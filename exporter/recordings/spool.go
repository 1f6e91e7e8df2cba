package recordings

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sethvargo/go-retry"

	"github.com/wildix-export/wildix-export/sinks/recstore"
)

// Token is the PBX Simple Token that fetches recording files (an
// access_… key). It redacts itself in fmt and slog, so logging a Spool or
// an error holding one never shows it.
type Token string

func (Token) String() string               { return "[redacted]" }
func (Token) GoString() string             { return `"[redacted]"` }
func (Token) LogValue() slog.Value         { return slog.StringValue("[redacted]") }
func (Token) MarshalText() ([]byte, error) { return []byte("[redacted]"), nil }

// ErrVanished is a recording whose file the PBX (or cloud storage) answers
// 404 or 410: deleted between the list and the download. Counted, not a
// failure.
var ErrVanished = errors.New("the file is gone (404/410)")

// StatusError is an answer that is neither the file, a redirect nor a 404.
type StatusError struct {
	Status int
	Host   string // the server that answered (the PBX or cloud storage)
	Hint   string // what to do, when known
}

func (e *StatusError) Error() string {
	s := fmt.Sprintf("%s answered %d %s", e.Host, e.Status, http.StatusText(e.Status))
	if e.Hint != "" {
		s += ": " + e.Hint
	}
	return s
}

// RedirectError is a redirect the spool client refuses to follow: to
// plain http, without a usable Location, or one too many. Never retried.
type RedirectError struct{ Reason string }

func (e *RedirectError) Error() string { return "redirect refused: " + e.Reason }

// Spool fetches recording files from the PBX's /spoolview/recordings/
// with the Simple Token, following redirects to cloud storage without any
// credential. Its fields are read-only once it is in use; safe for
// concurrent use.
//
// The token goes in an Authorization: Bearer header, only in requests to
// Origin (scheme, host and port all equal). A redirect is followed by a
// request built afresh: no Authorization, no cookie (the client has no
// jar), no header but Accept, and to https only (or back to Origin). Go's
// http.Client would keep Authorization on a redirect to the same host on
// another port; the Spool never lets it follow one.
type Spool struct {
	// Origin is the PBX's https://host[:port]; a path in it is ignored.
	Origin *url.URL
	Token  Token
	// Transport carries the requests (default http.DefaultTransport): for
	// extra CA certificates or a proxy. It must add no credential (not
	// auth's OAuth transport): it carries the requests to cloud storage
	// too. Redirects are the Spool's.
	Transport http.RoundTripper
	// MaxAttempts is how many times one file is tried (default 6): a
	// 5xx, a 429, a transport error, a body cut short or not what the
	// PBX announced.
	MaxAttempts int
	// MinBackoff is the first wait between attempts, doubling with
	// jitter up to 30s (default 500ms); a Retry-After longer wins.
	MinBackoff time.Duration
	// Stall ends an attempt whose answer does not begin, or whose body
	// gives no byte, for this long (default 2 minutes), then retried.
	Stall time.Duration
	Log   *slog.Logger
}

// maxRedirects is how many redirects one attempt follows: a PBX's file
// answers one, to cloud storage.
const maxRedirects = 3

// Fetched is what a successful Fetch did.
type Fetched struct {
	Attempts   int
	Redirected bool // the file came from another origin (cloud storage)
}

// Fetch fetches the file at p (a path under /spoolview/recordings/ or a
// URL on Origin, as the list gives it) and passes its body to consume,
// with the size the server announced (-1 when it did not). A body cut
// short returns an error from its Read, so consume fails; Fetch then tries
// again from the start, as it does for a consume error matching
// *recstore.MismatchError (a file not what was announced, maybe cut
// cleanly) or recstore.ErrFetchAgain (a store that needs the stream again
// from its start). Other consume errors (the store's) end it. consume must leave
// nothing behind when it fails: it is called again.
//
// Errors: a *RefusedError for a path not fetched at all, ErrVanished for
// 404/410, a *RedirectError, a *StatusError (401/403 name the token to
// create), the last error after MaxAttempts, or ctx's. None holds the
// token or a signed address's query.
func (s *Spool) Fetch(ctx context.Context, p string, consume func(body io.Reader, size int64) error) (Fetched, error) {
	if o := s.Origin; o == nil || (o.Scheme != "https" && o.Scheme != "http") || o.Host == "" {
		return Fetched{}, errors.New("recordings: the PBX's origin is not set (https://host[:port])")
	}
	u, err := spoolURL(s.Origin, p)
	if err != nil {
		return Fetched{}, err
	}
	attempts := s.MaxAttempts
	if attempts <= 0 {
		attempts = 6
	}
	minB := s.MinBackoff
	if minB <= 0 {
		minB = 500 * time.Millisecond
	}
	var hint time.Duration
	// A fresh backoff per file: go-retry backoffs keep state.
	next := retry.WithMaxRetries(uint64(attempts-1), retry.WithCappedDuration(30*time.Second, retry.WithJitterPercent(20, retry.NewExponential(minB))))
	backoff := retry.BackoffFunc(func() (time.Duration, bool) {
		d, stop := next.Next()
		return max(d, hint), stop
	})
	var f Fetched
	err = retry.Do(ctx, backoff, func(ctx context.Context) error {
		f.Attempts++
		var redirected bool
		var err error
		redirected, hint, err = s.attempt(ctx, u, consume)
		f.Redirected = redirected
		if err == nil || ctx.Err() != nil {
			return err
		}
		var tr transient
		if errors.As(err, &tr) {
			if f.Attempts < attempts {
				s.log().Warn("recording fetch failed, retrying", "url", redact(u), "attempt", f.Attempts, "err", err)
			}
			return retry.RetryableError(err)
		}
		return err
	})
	if err != nil && f.Attempts > 1 {
		err = fmt.Errorf("after %d attempts: %w", f.Attempts, err)
	}
	return f, err
}

// Probe fetches the first bytes of the file at p and stops: for check,
// which reports whether one file can be fetched (a 401 names the token to
// create). Vanished is ErrVanished, as for Fetch; retried as Fetch is.
func (s *Spool) Probe(ctx context.Context, p string) (Fetched, error) {
	f, err := s.Fetch(ctx, p, func(body io.Reader, _ int64) error {
		if _, err := io.ReadFull(body, make([]byte, 12)); err != nil {
			return err // a body cut short, or a file of less than a WAV header's start
		}
		return errProbed
	})
	if errors.Is(err, errProbed) {
		return f, nil
	}
	return f, err
}

// errProbed ends a Probe's consume once the file's first bytes came.
var errProbed = errors.New("probed")

// transient marks a failure worth another attempt.
type transient struct{ err error }

func (t transient) Error() string { return t.err.Error() }
func (t transient) Unwrap() error { return t.err }

// attempt is one try: the request to the PBX, the redirects, the body
// given to consume.
//
// It stays one function (about 65 lines): the redirect loop decides, hop
// by hop, whether the token may go with the request (the PBX's exact
// origin only) and whether a hop may be followed (https only); keeping the
// request, the credential rule and the status switch on one screen is what
// shows that no credential leaves the origin.
func (s *Spool) attempt(ctx context.Context, u *url.URL, consume func(io.Reader, int64) error) (redirected bool, hint time.Duration, err error) {
	client := &http.Client{
		Transport: s.Transport,
		// The Spool follows redirects itself, building each request
		// afresh: a client's own following would keep Authorization on
		// the same host's other ports.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	cur := u
	for hop := 0; ; hop++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, cur.String(), nil)
		if err != nil {
			return redirected, 0, fmt.Errorf("GET %s: %w", redact(cur), err)
		}
		req.Header.Set("Accept", "audio/*, application/octet-stream")
		if sameOrigin(cur, s.Origin) {
			req.Header.Set("Authorization", "Bearer "+string(s.Token))
		}
		resp, err := s.do(ctx, client, req)
		if err != nil {
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err // its text holds the URL, maybe signed
			}
			err = fmt.Errorf("GET %s: %w", redact(cur), err)
			var cert *tls.CertificateVerificationError
			if errors.As(err, &cert) {
				return redirected, 0, err // another attempt would meet the same certificate
			}
			return redirected, 0, transient{err}
		}
		switch st := resp.StatusCode; {
		case st == http.StatusOK:
			if ct := resp.Header.Get("Content-Type"); notAFile(ct) {
				drain(resp)
				return redirected, 0, fmt.Errorf("GET %s: %s answered 200 with %s, not a recording: a login page or an error in place of the file (is the token a PBX Simple Token?)", redact(cur), cur.Host, quoteShort(ct))
			}
			return redirected, 0, s.consume(resp, cur, consume)
		case st == http.StatusMovedPermanently || st == http.StatusFound || st == http.StatusSeeOther ||
			st == http.StatusTemporaryRedirect || st == http.StatusPermanentRedirect:
			drain(resp)
			next, err := s.redirect(cur, resp.Header.Get("Location"), hop)
			if err != nil {
				return redirected, 0, fmt.Errorf("GET %s: %w", redact(cur), err)
			}
			cur, redirected = next, redirected || !sameOrigin(next, s.Origin)
			continue
		case st == http.StatusNotFound || st == http.StatusGone:
			drain(resp)
			return redirected, 0, fmt.Errorf("GET %s: %w", redact(cur), ErrVanished)
		default:
			drain(resp)
			e := &StatusError{Status: st, Host: cur.Host}
			retryable := st >= 500 || st == http.StatusTooManyRequests || st == http.StatusRequestTimeout
			if (st == http.StatusUnauthorized || st == http.StatusForbidden) && sameOrigin(cur, s.Origin) {
				e.Hint = "the PBX refused the recordings token: files need a PBX Simple Token created for an admin user (WMS → PBX → Integrations → Applications → Simple Token)"
			}
			err := fmt.Errorf("GET %s: %w", redact(cur), e)
			if retryable {
				return redirected, retryAfter(resp.Header.Get("Retry-After")), transient{err}
			}
			return redirected, 0, err
		}
	}
}

// do sends req, giving up when no answer begins within Stall: a server
// that takes a request and never answers. The answer's body is read on a
// context that lives until ctx ends: the caller's attempt.
func (s *Spool) do(ctx context.Context, client *http.Client, req *http.Request) (*http.Response, error) {
	wait := s.stall()
	actx, cancel := context.WithCancelCause(ctx)
	late := fmt.Errorf("no answer within %s", wait)
	timer := time.AfterFunc(wait, func() { cancel(late) })
	resp, err := client.Do(req.WithContext(actx))
	if !timer.Stop() && err != nil && context.Cause(actx) == late {
		return nil, late
	}
	if err != nil {
		cancel(nil)
		return nil, err
	}
	resp.Body = cancelOnClose{resp.Body, func() { cancel(nil) }}
	return resp, nil
}

// cancelOnClose releases an answer's context when its body is closed.
type cancelOnClose struct {
	io.ReadCloser
	cancel func()
}

func (c cancelOnClose) Close() error { err := c.ReadCloser.Close(); c.cancel(); return err }

func (s *Spool) stall() time.Duration {
	if s.Stall > 0 {
		return s.Stall
	}
	return 2 * time.Minute
}

// redirect checks a redirect's Location and returns where to go.
func (s *Spool) redirect(from *url.URL, loc string, hop int) (*url.URL, error) {
	if hop+1 > maxRedirects {
		return nil, &RedirectError{Reason: fmt.Sprintf("more than %d redirects", maxRedirects)}
	}
	if loc == "" {
		return nil, &RedirectError{Reason: "no Location"}
	}
	to, err := from.Parse(loc)
	if err != nil {
		return nil, &RedirectError{Reason: "a Location that is not a URL"}
	}
	to.Fragment, to.RawFragment = "", ""
	switch {
	case to.User != nil:
		return nil, &RedirectError{Reason: "a Location holding credentials"}
	case sameOrigin(to, s.Origin):
		// Back on the PBX: its own rules hold there.
		return spoolURL(s.Origin, to.String())
	case to.Scheme != "https":
		return nil, &RedirectError{Reason: fmt.Sprintf("to %s://%s, not https: a recording is fetched from cloud storage over https only", to.Scheme, to.Host)}
	case to.Host == "":
		return nil, &RedirectError{Reason: "a Location without a host"}
	}
	return to, nil
}

// consume gives the body to the caller, watching for a body cut short and
// a stalled one.
func (s *Spool) consume(resp *http.Response, at *url.URL, consume func(io.Reader, int64) error) error {
	stall := s.stall()
	b := &body{r: resp.Body}
	// Closing the body from the timer makes a blocked Read fail: a
	// connection that stays open and sends nothing is retried.
	timer := time.AfterFunc(stall, func() { b.stalled(); resp.Body.Close() })
	b.timer, b.stall = timer, stall
	defer timer.Stop()
	defer resp.Body.Close()
	err := consume(b, resp.ContentLength)
	if err == nil {
		if rerr := b.readErr(); rerr != nil {
			// consume returned success over a failed body: never trust it.
			return transient{fmt.Errorf("GET %s: body: %w", redact(at), rerr)}
		}
		return nil
	}
	if rerr := b.readErr(); rerr != nil {
		return transient{fmt.Errorf("GET %s: body: %w", redact(at), rerr)}
	}
	var m *recstore.MismatchError
	if errors.As(err, &m) || errors.Is(err, recstore.ErrFetchAgain) {
		return transient{fmt.Errorf("GET %s: %w", redact(at), err)}
	}
	return err
}

// body is a response body that remembers its first failure and reports a
// stall instead of the closed body's error.
type body struct {
	r     io.Reader
	timer *time.Timer
	stall time.Duration
	mu    sync.Mutex
	err   error
	stuck bool
}

func (b *body) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if n > 0 {
		b.timer.Reset(b.stall)
	}
	if err != nil && err != io.EOF {
		// Never io.ErrUnexpectedEOF itself (still matched by errors.Is):
		// minio-go's multipart reader compares with it and takes it for
		// the end of a stream of unknown length, completing an upload of
		// the bytes before the cut.
		err = &cutError{err}
		b.mu.Lock()
		if b.stuck {
			err = fmt.Errorf("no byte for %s", b.stall)
		}
		if b.err == nil {
			b.err = err
		}
		b.mu.Unlock()
	}
	return n, err
}

// cutError is a body that failed before its end.
type cutError struct{ err error }

func (e *cutError) Error() string { return "cut short: " + e.err.Error() }
func (e *cutError) Unwrap() error { return e.err }

func (b *body) stalled() { b.mu.Lock(); b.stuck = true; b.mu.Unlock() }

func (b *body) readErr() error { b.mu.Lock(); defer b.mu.Unlock(); return b.err }

// notAFile reports whether a 200's Content-Type is a page or an API
// answer rather than a file: stored, it would pass for a recording when
// the PBX announced no size.
func notAFile(contentType string) bool {
	mt, _, _ := strings.Cut(strings.ToLower(contentType), ";")
	switch strings.TrimSpace(mt) {
	case "text/html", "application/json", "application/xhtml+xml":
		return true
	}
	return false
}

// drain reads a little of a body not used, so the connection is kept.
func drain(resp *http.Response) {
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	resp.Body.Close()
}

// redact is u for a message or a log: scheme, host and the path's
// folders, never the file's name (a PBX's carries the caller's number,
// which must be erasable) nor the query (a signed address's signature).
// The caller names the recording by its id.
func redact(u *url.URL) string {
	dir := u.EscapedPath()
	if i := strings.LastIndexByte(dir, '/'); i >= 0 {
		dir = dir[:i+1]
	}
	if len(dir) > 120 {
		dir = dir[:120]
	}
	return u.Scheme + "://" + u.Host + dir + "…"
}

func retryAfter(h string) time.Duration {
	if h == "" {
		return 0
	}
	if s, err := strconv.Atoi(strings.TrimSpace(h)); err == nil && s >= 0 {
		return min(time.Duration(s)*time.Second, 5*time.Minute)
	}
	if t, err := http.ParseTime(h); err == nil {
		return min(max(time.Until(t), 0), 5*time.Minute)
	}
	return 0
}

func (s *Spool) log() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.New(slog.DiscardHandler)
}
