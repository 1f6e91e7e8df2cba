// Package notify tells people about wildix-export's runs: a failure, the
// recovery after failures, a daily summary, sent to chat webhooks (Slack,
// Microsoft Teams workflows, Mattermost, Google Chat), a generic JSON
// webhook (versioned, optionally signed with HMAC-SHA-256) and e-mail over
// SMTP.
//
// Sending never stands in the way of an export: every delivery is bounded
// in time (a receiver that hangs costs at most Budget), retried with
// backoff within that bound, and its failure is logged and reported,
// never returned as the run's error. Tracker decides what to send, so that
// a failure repeated at every run is sent once and then at most once a
// day, also across processes, with its state kept beside the token.
// docs/notifications.md is the manual.
package notify

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/sethvargo/go-retry"
)

// Defaults of Notifier's bounds.
const (
	DefaultAttemptTimeout = 4 * time.Second
	DefaultBudget         = 7 * time.Second
	maxAttempts           = 3
)

// Notifier sends messages to targets. It is safe for concurrent use; it
// keeps no state between calls (Tracker does).
type Notifier struct {
	Targets []*Target
	// HTTP sends the web hooks; nil means a client of its own.
	HTTP *http.Client
	Log  *slog.Logger
	// Scrub are secrets (token, keys, passwords, the database URL) replaced
	// by [redacted] in a message's free text before it is sent.
	Scrub []string
	// Redact, when set (pseudonymisation on: exporter/privacy's
	// Redactor.Text), is applied to a message's free text after Scrub, as
	// to the program's errors and logs: a failure's error may hold a
	// number or, from the PBX's own text, a name.
	Redact func(string) string
	// AttemptTimeout bounds one attempt, Budget a target's delivery with
	// its retries; zero means the defaults.
	AttemptTimeout, Budget time.Duration
	// Observe, when set, is called once per target and message with the
	// delivery's outcome (for the metrics).
	Observe func(t *Target, err error)
}

// Result is one target's delivery.
type Result struct {
	Target   *Target
	Attempts int
	Err      error // nil when delivered
}

// Send delivers m to every target at once and returns when each has been
// delivered or has given up, within Budget of the call. Failures are
// logged here and returned for the caller to show (`notify --test`).
func (n *Notifier) Send(ctx context.Context, m Message) []Result {
	m = m.scrubbed(n.Scrub).redacted(n.Redact)
	id := newID(m.At)
	results := make([]Result, len(n.Targets))
	var wg sync.WaitGroup
	for i, t := range n.Targets {
		wg.Go(func() {
			results[i] = n.deliver(ctx, t, &m, id)
		})
	}
	wg.Wait()
	for _, r := range results {
		if n.Observe != nil {
			n.Observe(r.Target, r.Err)
		}
		if r.Err != nil {
			n.log().Warn("notification not delivered", "target", r.Target, "kind", m.Kind, "attempts", r.Attempts, "err", r.Err)
		} else {
			n.log().Info("notification sent", "target", r.Target, "kind", m.Kind, "attempts", r.Attempts)
		}
	}
	return results
}

// errPermanent marks an answer that a retry cannot change (a 4xx, a
// refused login).
var errPermanent = errors.New("permanent")

func (n *Notifier) deliver(ctx context.Context, t *Target, m *Message, id string) Result {
	ctx, cancel := context.WithTimeout(ctx, orDefault(n.Budget, DefaultBudget))
	defer cancel()
	b := retry.WithMaxRetries(maxAttempts-1, retry.WithCappedDuration(2*time.Second, retry.NewExponential(250*time.Millisecond)))
	r := Result{Target: t}
	err := retry.Do(ctx, b, func(ctx context.Context) error {
		r.Attempts++
		actx, cancel := context.WithTimeout(ctx, orDefault(n.AttemptTimeout, DefaultAttemptTimeout))
		defer cancel()
		err := n.attempt(actx, t, m, id)
		if err == nil || errors.Is(err, errPermanent) {
			return err
		}
		return retry.RetryableError(err)
	})
	if err != nil {
		r.Err = fmt.Errorf("send %s to %s: %w", m.Kind, t, err)
	}
	return r
}

func (n *Notifier) attempt(ctx context.Context, t *Target, m *Message, id string) error {
	if t.Service == Email {
		return sendMail(ctx, t.mail, m, id)
	}
	body, err := payload(t.Service, m, id)
	if err != nil {
		return fmt.Errorf("%w: encode the payload: %v", errPermanent, err)
	}
	return n.post(ctx, t, body, id)
}

func (n *Notifier) log() *slog.Logger {
	if n.Log != nil {
		return n.Log
	}
	return slog.New(slog.DiscardHandler)
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// newID is a delivery's id: the same on each attempt, so that a receiver
// can drop a repeat.
func newID(at time.Time) string {
	b := make([]byte, 6)
	rand.Read(b)
	return at.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b)
}
