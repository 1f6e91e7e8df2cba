package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The generic webhook's headers (docs/notifications.md).
const (
	HeaderID        = "X-Wildix-Export-Id"
	HeaderTimestamp = "X-Wildix-Export-Timestamp"
	HeaderSignature = "X-Wildix-Export-Signature"
)

var defaultHTTP = &http.Client{}

// noRedirect refuses to follow a redirect: following would post the
// message and its signature to a host nobody configured, with the
// webhook's URL (its credential) in the Referer header.
func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

func (n *Notifier) post(ctx context.Context, t *Target, body []byte, id string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.url.String(), bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%w: %v", errPermanent, redactErr(err, t))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "wildix-export")
	if t.Service == Webhook {
		ts := strconv.FormatInt(time.Now().Unix(), 10)
		req.Header.Set(HeaderID, id)
		req.Header.Set(HeaderTimestamp, ts)
		if t.hmacKey != nil {
			req.Header.Set(HeaderSignature, Sign(t.hmacKey, ts, body))
		}
	}
	c := *defaultHTTP
	if n.HTTP != nil {
		c = *n.HTTP
	}
	c.CheckRedirect = noRedirect
	resp, err := c.Do(req)
	if err != nil {
		// A url.Error holds the whole URL, whose path is the credential.
		return redactErr(err, t)
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
	if resp.StatusCode/100 == 2 {
		return nil
	}
	// A refusal may echo the request's URL: its credential.
	err = fmt.Errorf("answered %s: %q", resp.Status, redactText(strings.TrimSpace(string(snippet)), t))
	if resp.StatusCode/100 == 3 {
		err = fmt.Errorf("answered %s (redirects are not followed: configure the URL it points to)", resp.Status)
	}
	switch c := resp.StatusCode; {
	case c == http.StatusRequestTimeout, c == http.StatusTooEarly, c == http.StatusTooManyRequests, c >= 500:
		return err
	}
	return fmt.Errorf("%w: %w", errPermanent, err)
}

// Sign is the generic webhook's signature: "sha256=" and the hex
// HMAC-SHA-256, keyed with the target's hmac_secret, of the timestamp
// header's value, a dot, and the body as sent.
func Sign(key []byte, timestamp string, body []byte) string {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(timestamp))
	h.Write([]byte("."))
	h.Write(body)
	return "sha256=" + hex.EncodeToString(h.Sum(nil))
}

// redactErr replaces the target's URL in an error's text by its redacted
// form.
func redactErr(err error, t *Target) error {
	return &redactedError{msg: redactText(err.Error(), t), err: err}
}

func redactText(s string, t *Target) string {
	s = strings.ReplaceAll(s, t.url.String(), redactURL(t.url))
	for _, sec := range t.Secrets() {
		s = strings.ReplaceAll(s, sec, redacted)
	}
	return s
}

// redactedError keeps the cause for errors.Is (a deadline) while its text
// hides the URL.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }
