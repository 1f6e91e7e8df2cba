// Package pbx reads a Wildix PBX's REST API: one request of a list
// endpoint (Client.List) with retries, backoff, Retry-After, a request
// rate cap and a bound on an answer's size; the answer's envelope parsed
// (ParseList) into its total and records; and the PBX's refusals as
// APIError. It knows nothing of what the records mean (record) or how a
// list is paged (paging).
package pbx

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/sethvargo/go-retry"
	"github.com/wildix-export/wildix-export/exporter/jsonscan"
	"golang.org/x/time/rate"
)

// DefaultMaxResponseSize is the default of Client.MaxResponseSize
// (EXPORT_MAX_RESPONSE_SIZE).
const DefaultMaxResponseSize = 64 << 20

// maxTotal is the largest result.total taken as a count: a trillion
// records, far beyond any PBX, far below where paging arithmetic overflows.
const maxTotal = 1 << 40

// maxReason bounds a PBX error text kept in errors, logs and the ledger.
const maxReason = 2 << 10

// Client reads a PBX's REST API. Its HTTP client carries the
// authentication. Safe for concurrent use.
type Client struct {
	HTTP        *http.Client
	Base        *url.URL // e.g. https://acme.wildixin.com
	MaxAttempts int      // per request; default 8
	Timeout     time.Duration
	// MinBackoff is the first retry's wait, doubled each time up to 30s.
	MinBackoff time.Duration
	// MaxResponseSize bounds one answer's body, in bytes
	// (EXPORT_MAX_RESPONSE_SIZE; 0: DefaultMaxResponseSize). A larger
	// answer is an error, not retried; with the concurrency, it bounds the
	// memory answers can take.
	MaxResponseSize int64
	// Limiter, when set, is waited on before every request to the PBX,
	// retries included: EXPORT_MAX_RPS (see NewLimiter). Nil: no cap.
	Limiter *rate.Limiter
	Log     *slog.Logger
}

// NewLimiter returns the cap of EXPORT_MAX_RPS: at most rps requests in
// any one second, one at a time (burst 1); nil (no cap) for rps <= 0.
// Requests are spaced 1/rps apart plus 10%: the limiter keeps a fixed
// schedule, so at exactly 1/rps a request held up on its way (a new
// connection, a busy machine) bunches with the next, and rps+1 of them
// could reach the PBX within one second. The margin absorbs up to 100 ms
// of such delay in every second.
func NewLimiter(rps int) *rate.Limiter {
	if rps <= 0 {
		return nil
	}
	return rate.NewLimiter(rate.Every(time.Second*11/time.Duration(10*rps)), 1)
}

// wait takes the limiter's next slot, if there is a limiter.
func (c *Client) wait(ctx context.Context) error {
	if c.Limiter == nil {
		return nil
	}
	if err := c.Limiter.Wait(ctx); err != nil {
		return fmt.Errorf("wait for EXPORT_MAX_RPS: %w", err)
	}
	return nil
}

// Counts counts requests to the PBX: each attempt, and those that were
// retries. Safe for concurrent use.
type Counts struct {
	Requests, Retries atomic.Int64
}

// APIError is an answer from the PBX that is not worth retrying: a 4xx
// other than 429, or {"type":"error"}.
type APIError struct {
	Status int
	Reason string
}

func (e *APIError) Error() string {
	msg := fmt.Sprintf("%d %s", e.Status, http.StatusText(e.Status))
	if e.Reason != "" {
		msg += fmt.Sprintf(": %q", e.Reason)
	}
	switch e.Status {
	case http.StatusUnauthorized:
		msg += ": the PBX refused the token or key; check the credentials, or run `wildix-export authorize` again"
	case http.StatusForbidden:
		msg += ": the token's user may not read this; authorize as a PBX admin, or use an API key with the right scopes"
	case http.StatusNotFound:
		msg += ": this PBX has no such endpoint; check the path, or remove the endpoint from EXPORT_ENDPOINTS"
	}
	return msg
}

// ListPage is one page of a list endpoint.
type ListPage struct {
	Total   int64 // -1 when the PBX sent no total
	Records []json.RawMessage
}

// Get fetches path (with its query) once, without retries, and returns the
// status and body: the `query` command's Postman-like GET.
func (c *Client) Get(ctx context.Context, pathQuery string) (int, []byte, error) {
	u, err := c.Base.Parse(pathQuery)
	if err != nil {
		return 0, nil, fmt.Errorf("path %q: %w", pathQuery, err)
	}
	if u.Host != c.Base.Host {
		return 0, nil, fmt.Errorf("path %q points away from the PBX", pathQuery)
	}
	if err := c.wait(ctx); err != nil {
		return 0, nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := c.read(resp)
	return resp.StatusCode, body, err
}

// read reads an answer's body, refusing one larger than MaxResponseSize
// before holding it: by its Content-Length when announced, else as it
// comes. An error answer's body is only cut, so that its status still
// tells what happened.
func (c *Client) read(resp *http.Response) ([]byte, error) {
	limit := c.MaxResponseSize
	if limit <= 0 {
		limit = DefaultMaxResponseSize
	}
	tooLarge := fmt.Errorf("the PBX's answer is larger than EXPORT_MAX_RESPONSE_SIZE=%d bytes (%s); lower EXPORT_PAGE_SIZE, or raise EXPORT_MAX_RESPONSE_SIZE if this PBX's records are that large", limit, sizeText(limit))
	ok := resp.StatusCode < 400
	if ok && resp.ContentLength > limit {
		return nil, tooLarge
	}
	// Read into a buffer of the announced size, when there is one: a page
	// of 1,000 records read by io.ReadAll would be copied a dozen times as
	// its buffer grew.
	var buf bytes.Buffer
	if ok && resp.ContentLength > 0 {
		buf.Grow(int(resp.ContentLength) + bytes.MinRead)
	}
	if _, err := buf.ReadFrom(io.LimitReader(resp.Body, limit+1)); err != nil {
		return nil, retryable{fmt.Errorf("read body: %w", err)}
	}
	body := buf.Bytes()
	if int64(len(body)) > limit {
		if ok {
			return nil, tooLarge
		}
		body = body[:limit]
	}
	return body, nil
}

// sizeText writes a byte count as people read it: 64MiB, 512KiB, 1000B.
func sizeText(n int64) string {
	for _, u := range []struct {
		unit string
		size int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.size && n%u.size == 0 {
			return strconv.FormatInt(n/u.size, 10) + u.unit
		}
	}
	return strconv.FormatInt(n, 10) + "B"
}

func (c *Client) timeout() time.Duration {
	if c.Timeout > 0 {
		return c.Timeout
	}
	return 60 * time.Second
}

// List fetches one page of a list endpoint, retrying 429, 5xx, timeouts,
// cut connections and unreadable bodies with exponential backoff and
// jitter, honouring Retry-After.
func (c *Client) List(ctx context.Context, path string, q url.Values, n *Counts) (*ListPage, error) {
	u := *c.Base
	u.Path = path
	u.RawQuery = q.Encode()
	attempts := c.MaxAttempts
	if attempts <= 0 {
		attempts = 8
	}
	minB := c.MinBackoff
	if minB <= 0 {
		minB = 250 * time.Millisecond
	}
	var hint time.Duration // Retry-After of the last answer
	// A fresh backoff per request: go-retry backoffs keep state.
	backoff := retry.BackoffFunc(func() func() (time.Duration, bool) {
		next := retry.WithCappedDuration(30*time.Second, retry.WithJitterPercent(20, retry.NewExponential(minB)))
		next = retry.WithMaxRetries(uint64(attempts-1), next)
		return func() (time.Duration, bool) {
			d, stop := next.Next()
			if hint > d {
				d = hint
			}
			return d, stop
		}
	}())
	attempt := 0
	var page *ListPage
	err := retry.Do(ctx, backoff, func(ctx context.Context) error {
		if err := c.wait(ctx); err != nil {
			return err
		}
		attempt++
		n.Requests.Add(1)
		if attempt > 1 {
			n.Retries.Add(1)
		}
		var err error
		page, hint, err = c.list(ctx, u.String())
		if err == nil {
			return nil
		}
		var re retryable
		if errors.As(err, &re) && ctx.Err() == nil {
			if attempt < attempts {
				c.log().Warn("request failed, retrying", "url", u.Path, "start", q.Get("start"), "attempt", attempt, "err", err)
			}
			return retry.RetryableError(err)
		}
		return err
	})
	if err != nil {
		if attempt > 1 {
			return nil, fmt.Errorf("GET %s (after %d attempts): %w", path, attempt, err)
		}
		return nil, fmt.Errorf("GET %s: %w", path, err)
	}
	return page, nil
}

func (c *Client) log() *slog.Logger {
	if c.Log != nil {
		return c.Log
	}
	return slog.New(slog.DiscardHandler)
}

// retryable marks failures worth another attempt.
type retryable struct{ err error }

func (r retryable) Error() string { return r.err.Error() }
func (r retryable) Unwrap() error { return r.err }

func (c *Client) list(ctx context.Context, u string) (*ListPage, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.HTTP.Do(req)
	if err != nil {
		if transient(err) {
			return nil, 0, retryable{err}
		}
		return nil, 0, err
	}
	defer resp.Body.Close()
	body, err := c.read(resp)
	if err != nil {
		return nil, 0, err
	}
	switch s := resp.StatusCode; {
	case s == http.StatusTooManyRequests:
		return nil, retryAfter(resp.Header.Get("Retry-After")), retryable{&APIError{Status: s, Reason: Reason(body)}}
	case s >= 500:
		return nil, retryAfter(resp.Header.Get("Retry-After")), retryable{&APIError{Status: s, Reason: Reason(body)}}
	case s >= 400:
		return nil, 0, &APIError{Status: s, Reason: Reason(body)}
	case s == http.StatusNoContent:
		return &ListPage{Total: 0}, 0, nil
	}
	p, err := ParseList(body)
	if err != nil {
		var ae *APIError
		if errors.As(err, &ae) {
			return nil, 0, err
		}
		// A truncated or garbled body may be a one-off; retry it.
		return nil, 0, retryable{err}
	}
	return p, 0, nil
}

// transient reports whether a transport error may pass on its own:
// timeouts, refused or reset connections, bodies cut short. An error from
// the token source (a refused authorization) is not.
func transient(err error) bool {
	var ue *url.Error
	if errors.As(err, &ue) {
		if ue.Timeout() {
			return true
		}
		err = ue.Err // url.Error is itself a net.Error: look beneath it
	}
	var ne net.Error
	return errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne)
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

// Reason extracts the PBX's reason from an error body, cut to a few KiB,
// or a short Excerpt of a body that has none.
func Reason(body []byte) string {
	var e struct {
		Reason json.RawMessage `json:"reason"`
	}
	if json.Unmarshal(body, &e) == nil && len(e.Reason) > 0 {
		var s string
		if json.Unmarshal(e.Reason, &s) != nil {
			s = string(e.Reason)
		}
		if len(s) > maxReason {
			cut := maxReason
			for cut > 0 && !utf8.RuneStart(s[cut]) {
				cut--
			}
			s = fmt.Sprintf("%s… (%d more bytes)", s[:cut], len(s)-cut)
		}
		return s
	}
	if len(body) > 4<<10 {
		body = body[:4<<10]
	}
	s := strings.Join(strings.Fields(string(body)), " ")
	if len(s) > 120 {
		cut := 120
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

// ParseList reads a list answer: {"type":"result","result":{"total":…,
// "records":[…]}}. total may be a string or a number, or absent. The body
// is validated once; the records are slices of it, not copies.
//
// It is longer than a screen on purpose: it is the one pass over every
// byte of every answer, and its callbacks share the parse state (type,
// reason, result, total, records); split up, that state would travel
// between functions on the hottest path of an export.
func ParseList(body []byte) (*ListPage, error) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, fmt.Errorf("expected a JSON object, got %q", jsonscan.Excerpt(trimmed))
	}
	// One pass: the envelope, the result object and the records array are
	// walked in place, each record validated once and sliced, not copied.
	var typ, total []byte
	var records []json.RawMessage
	result, list, seen := "", false, false // what result and records turned out to be
	end, err := jsonscan.WalkObject(trimmed, 0, 0, func(name []byte, start int) (int, error) {
		switch string(name) {
		case "type":
			end, err := jsonscan.ValueEnd(trimmed, start, 1)
			if err != nil {
				return 0, err
			}
			typ = trimmed[start:end]
			return end, nil
		case "result":
			if trimmed[start] != '{' {
				result = "not an object"
				return jsonscan.ValueEnd(trimmed, start, 1)
			}
			result = "object"
			return jsonscan.WalkObject(trimmed, start, 1, func(name []byte, start int) (int, error) {
				switch string(name) {
				case "total":
					end, err := jsonscan.ValueEnd(trimmed, start, 2)
					if err != nil {
						return 0, err
					}
					total = trimmed[start:end]
					return end, nil
				case "records":
					seen = true
					if trimmed[start] != '[' {
						list = false
						return jsonscan.ValueEnd(trimmed, start, 2)
					}
					list = true
					return jsonscan.WalkArray(trimmed, start, 2, func(start int) (int, error) {
						end, err := jsonscan.ValueEnd(trimmed, start, 3)
						if err != nil {
							return 0, fmt.Errorf("record %d: %w", len(records), err)
						}
						records = append(records, json.RawMessage(trimmed[start:end]))
						return end, nil
					})
				}
				return jsonscan.ValueEnd(trimmed, start, 2)
			})
		}
		return jsonscan.ValueEnd(trimmed, start, 1)
	})
	if err == nil {
		err = jsonscan.Trailing(trimmed, end)
	}
	if err != nil {
		return nil, fmt.Errorf("malformed JSON: %w", err)
	}
	switch t, _, _ := jsonscan.Text(typ); t {
	case "result":
	case "error":
		return nil, &APIError{Status: http.StatusOK, Reason: Reason(trimmed)}
	default:
		return nil, fmt.Errorf(`expected "type":"result", got %q`, t)
	}
	if result != "object" {
		return nil, errors.New("result is not a list object {total, records}")
	}
	if !list {
		if !seen {
			return nil, errors.New("result has no records array")
		}
		return nil, errors.New("result is not a list object {total, records}: records is not an array")
	}
	p := &ListPage{Total: -1, Records: records}
	if len(total) > 0 && string(total) != "null" {
		t, err := jsonscan.Int(total)
		if err != nil || t < 0 {
			return nil, fmt.Errorf("result.total %s is not a count", jsonscan.Excerpt(total))
		}
		if t > maxTotal {
			// No PBX holds this much; arithmetic on it (pages = total /
			// size) could overflow.
			return nil, fmt.Errorf("result.total %d is not a plausible count (more than %d)", t, int64(maxTotal))
		}
		if t < int64(len(p.Records)) {
			return nil, fmt.Errorf("result.total %d is smaller than the %d records on the page", t, len(p.Records))
		}
		p.Total = t
	}
	return p, nil
}
