package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/wildix-export/wildix-export/internal/notify/notifytest"
)

// strictDecode decodes body into v, refusing fields v does not declare:
// v mirrors the service's documented schema.
func strictDecode(t *testing.T, body []byte, v any) {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(body))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		t.Fatalf("payload %s does not fit the documented schema: %v", body, err)
	}
}

// The documented shapes, with only the fields the services define.
type (
	// Slack incoming webhook with Block Kit (docs.slack.dev: "Sending
	// messages using incoming webhooks", "Block Kit" header and section).
	slackMsg struct {
		Text   string `json:"text"`
		Blocks []struct {
			Type string `json:"type"`
			Text struct {
				Type  string `json:"type"`
				Text  string `json:"text"`
				Emoji *bool  `json:"emoji"`
			} `json:"text"`
		} `json:"blocks"`
	}
	// Teams workflow "Post to a channel when a webhook request is
	// received": a message with Adaptive Card attachments.
	teamsMsg struct {
		Type        string `json:"type"`
		Attachments []struct {
			ContentType string  `json:"contentType"`
			ContentURL  *string `json:"contentUrl"`
			Content     struct {
				Schema  string `json:"$schema"`
				Type    string `json:"type"`
				Version string `json:"version"`
				Body    []struct {
					Type   string `json:"type"`
					Text   string `json:"text"`
					Wrap   bool   `json:"wrap"`
					Weight string `json:"weight"`
					Size   string `json:"size"`
				} `json:"body"`
			} `json:"content"`
		} `json:"attachments"`
	}
	// Mattermost incoming webhook (developers.mattermost.com, "Incoming
	// webhooks": text, and optional channel, username, icon_url, props).
	mattermostMsg struct {
		Text     string `json:"text"`
		Channel  string `json:"channel"`
		Username string `json:"username"`
		IconURL  string `json:"icon_url"`
	}
	// Google Chat incoming webhook: a Message resource with text.
	googleChatMsg struct {
		Text string `json:"text"`
	}
)

func TestChatPayloadsFitTheServicesSchemas(t *testing.T) {
	t.Parallel()
	m := failureMessage()
	title := m.Title()
	tests := []struct {
		service Service
		check   func(t *testing.T, body []byte) string // returns the text shown
	}{
		{Slack, func(t *testing.T, body []byte) string {
			var p slackMsg
			strictDecode(t, body, &p)
			if p.Text == "" || len(p.Blocks) != 2 {
				t.Fatalf("slack payload %s: want text and two blocks", body)
			}
			h, s := p.Blocks[0], p.Blocks[1]
			if h.Type != "header" || h.Text.Type != "plain_text" || len([]rune(h.Text.Text)) > 150 {
				t.Errorf("header block %+v: want type header, plain_text of at most 150 characters", h)
			}
			if s.Type != "section" || s.Text.Type != "mrkdwn" || len([]rune(s.Text.Text)) > 3000 {
				t.Errorf("section block %+v: want type section, mrkdwn of at most 3000 characters", s)
			}
			return h.Text.Text + "\n" + s.Text.Text
		}},
		{Teams, func(t *testing.T, body []byte) string {
			var p teamsMsg
			strictDecode(t, body, &p)
			if p.Type != "message" || len(p.Attachments) != 1 {
				t.Fatalf("teams payload %s: want a message with one attachment", body)
			}
			a := p.Attachments[0]
			if a.ContentType != "application/vnd.microsoft.card.adaptive" || a.Content.Type != "AdaptiveCard" ||
				a.Content.Schema != "http://adaptivecards.io/schemas/adaptive-card.json" || a.Content.Version == "" {
				t.Errorf("attachment %+v: want an Adaptive Card", a)
			}
			var text []string
			for _, b := range a.Content.Body {
				if b.Type != "TextBlock" || !b.Wrap {
					t.Errorf("card element %+v: want a wrapping TextBlock", b)
				}
				text = append(text, b.Text)
			}
			return strings.Join(text, "\n")
		}},
		{Mattermost, func(t *testing.T, body []byte) string {
			var p mattermostMsg
			strictDecode(t, body, &p)
			return p.Text
		}},
		{GoogleChat, func(t *testing.T, body []byte) string {
			var p googleChatMsg
			strictDecode(t, body, &p)
			return p.Text
		}},
	}
	for _, tt := range tests {
		t.Run(string(tt.service), func(t *testing.T) {
			t.Parallel()
			rc := notifytest.NewReceiver(t)
			tg := parseTarget(t, string(tt.service)+"+"+rc.Server.URL+"/services/T0/B0/SECRETPATH")
			if r := sendOne(t, tg, m); r.Err != nil {
				t.Fatal(r.Err)
			}
			got := rc.Requests()
			if len(got) != 1 {
				t.Fatalf("receiver got %d requests, want 1", len(got))
			}
			if ct := got[0].Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q", ct)
			}
			if got[0].Path != "/services/T0/B0/SECRETPATH" {
				t.Errorf("posted to %q", got[0].Path)
			}
			shown := tt.check(t, got[0].Body)
			for _, want := range []string{title, "run `wildix-export authorize`", "call_history, colleagues", "invalid_grant"} {
				if !strings.Contains(shown, want) {
					t.Errorf("the message shown lacks %q:\n%s", want, shown)
				}
			}
		})
	}
}

func TestGenericWebhookIsVersionedAndSigned(t *testing.T) {
	t.Parallel()
	const key = "a-key-of-sixteen-or-more"
	rc := notifytest.NewReceiver(t)
	tg := parseTarget(t, rc.Server.URL+"/hook?team=ops&hmac_secret="+key)
	m := failureMessage()
	if r := sendOne(t, tg, m); r.Err != nil {
		t.Fatal(r.Err)
	}
	got := rc.Requests()
	if len(got) != 1 {
		t.Fatalf("receiver got %d requests, want 1", len(got))
	}
	req := got[0]
	if req.Path != "/hook?team=ops" {
		t.Errorf("posted to %q, want /hook?team=ops (the key is never sent)", req.Path)
	}
	if bytes.Contains(req.Body, []byte(key)) {
		t.Error("the body holds the HMAC key")
	}
	// The receiver's check, as docs/notifications.md tells it.
	mac := hmac.New(sha256.New, []byte(key))
	mac.Write([]byte(req.Header.Get(HeaderTimestamp) + "." + string(req.Body)))
	want := "sha256=" + hex.EncodeToString(mac.Sum(nil))
	if sig := req.Header.Get(HeaderSignature); !hmac.Equal([]byte(sig), []byte(want)) {
		t.Errorf("%s = %q, want %q", HeaderSignature, sig, want)
	}
	var p Generic
	strictDecode(t, req.Body, &p)
	if p.Schema != PayloadSchema || p.Version != 1 || p.Kind != KindFailure || p.PBX != "acme.wildixin.com" || p.ID != req.Header.Get(HeaderID) {
		t.Errorf("payload head %+v", p)
	}
	if p.Failure == nil || p.Failure.ExitCode != 3 || p.Failure.Advice != "run `wildix-export authorize`" || len(p.Failure.Endpoints) != 2 {
		t.Errorf("payload failure %+v", p.Failure)
	}

	// Unsigned: no signature header.
	rc2 := notifytest.NewReceiver(t)
	if r := sendOne(t, parseTarget(t, rc2.Server.URL+"/hook"), m); r.Err != nil {
		t.Fatal(r.Err)
	}
	if h := rc2.Requests()[0].Header; h.Get(HeaderSignature) != "" || h.Get(HeaderID) == "" {
		t.Errorf("unsigned target's headers: %v", h)
	}
}

func TestDeliveryRetriesWithinItsBound(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		script       []int
		wantAttempts int
		wantErr      string
	}{
		{"500 then ok", []int{500, 503}, 3, ""},
		{"429 then ok", []int{429}, 2, ""},
		{"500 every time", []int{500, 500, 500}, 3, "500 Internal Server Error"},
		{"404 is not retried", []int{404}, 1, "404 Not Found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rc := notifytest.NewReceiver(t, tt.script...)
			r := sendOne(t, parseTarget(t, rc.Server.URL+"/hook"), failureMessage())
			if r.Attempts != tt.wantAttempts || len(rc.Requests()) != tt.wantAttempts {
				t.Errorf("attempts %d, requests %d, want %d", r.Attempts, len(rc.Requests()), tt.wantAttempts)
			}
			if tt.wantErr == "" && r.Err != nil || tt.wantErr != "" && (r.Err == nil || !strings.Contains(r.Err.Error(), tt.wantErr)) {
				t.Errorf("err = %v, want %q", r.Err, tt.wantErr)
			}
			ids := map[string]bool{}
			for _, q := range rc.Requests() {
				ids[q.Header.Get(HeaderID)] = true
			}
			if len(ids) != 1 {
				t.Errorf("the attempts carry %d delivery ids, want 1: %v", len(ids), ids)
			}
		})
	}
}

func TestHangingReceiverCostsAtMostTheBudget(t *testing.T) {
	t.Parallel()
	hang := notifytest.NewReceiver(t, 0, 0, 0)
	ok := notifytest.NewReceiver(t)
	n := &Notifier{
		Targets:        []*Target{parseTarget(t, hang.Server.URL+"/services/SECRETPATH"), parseTarget(t, ok.Server.URL+"/hook")},
		AttemptTimeout: 300 * time.Millisecond, Budget: time.Second,
	}
	done := make(chan []Result, 1)
	go func() { done <- n.Send(context.Background(), failureMessage()) }()
	var rs []Result
	select {
	case rs = <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("Send did not return: a hanging receiver blocks it")
	}
	if rs[0].Err == nil || !errors.Is(rs[0].Err, context.DeadlineExceeded) {
		t.Errorf("hanging target: err = %v, want a deadline", rs[0].Err)
	}
	if strings.Contains(rs[0].Err.Error(), "SECRETPATH") {
		t.Errorf("the error shows the webhook's path: %v", rs[0].Err)
	}
	if rs[1].Err != nil || len(ok.Requests()) != 1 {
		t.Errorf("the other target: err %v, %d requests; want it delivered once", rs[1].Err, len(ok.Requests()))
	}
}

func TestMessagesScrubSecrets(t *testing.T) {
	t.Parallel()
	rc := notifytest.NewReceiver(t)
	n := &Notifier{Targets: []*Target{parseTarget(t, rc.Server.URL+"/hook")}, Scrub: []string{"postgres://u:dbpass@db/x", "dbpass", "abc"}}
	m := failureMessage()
	m.Failure.Error = "connect postgres://u:dbpass@db/x: refused; password dbpass; abc stays"
	n.Send(context.Background(), m)
	body := string(rc.Requests()[0].Body)
	if strings.Contains(body, "dbpass") {
		t.Errorf("the payload holds a secret: %s", body)
	}
	if !strings.Contains(body, "abc stays") {
		t.Errorf("a 3-character 'secret' was scrubbed from ordinary words: %s", body)
	}
}

func TestSlackBlocksKeepTheirLimits(t *testing.T) {
	t.Parallel()
	rc := notifytest.NewReceiver(t)
	m := failureMessage()
	m.PBX = strings.Repeat("p", 200)
	m.Failure.Error = strings.Repeat("<e&> ", 1000)
	if r := sendOne(t, parseTarget(t, "slack+"+rc.Server.URL+"/services/x"), m); r.Err != nil {
		t.Fatal(r.Err)
	}
	var p slackMsg
	strictDecode(t, rc.Requests()[0].Body, &p)
	if n := len([]rune(p.Blocks[0].Text.Text)); n > 150 {
		t.Errorf("header of %d characters, Slack takes 150 at most", n)
	}
	if n := len([]rune(p.Blocks[1].Text.Text)); n > 3000 {
		t.Errorf("section of %d characters, Slack takes 3000 at most", n)
	}
	if strings.ContainsAny(p.Blocks[1].Text.Text, "<>") {
		t.Error("mrkdwn text holds < or >, which Slack reads as links and mentions")
	}
}

// An unreachable receiver's error (a *url.Error holds the whole URL)
// shows the webhook's path, its credential, redacted.
func TestDeliveryErrorHidesTheWebhookPath(t *testing.T) {
	t.Parallel()
	port := notifytest.FreePort(t) // closed again: nothing listens there
	tg := parseTarget(t, fmt.Sprintf("slack+http://127.0.0.1:%d/services/T0/B0/SECRETPATH", port))
	r := sendOne(t, tg, failureMessage())
	if r.Err == nil {
		t.Fatal("delivered to a closed port")
	}
	if strings.Contains(r.Err.Error(), "SECRETPATH") {
		t.Errorf("the error shows the webhook's path: %v", r.Err)
	}
	if !strings.Contains(r.Err.Error(), "connection refused") {
		t.Errorf("the error %v does not say why", r.Err)
	}
}

// A receiver that redirects elsewhere does not get the message forwarded:
// following would post the message, its signature and (in Referer) the
// webhook's URL, its credential, to a host nobody configured.
func TestWebhookRedirectIsNotFollowed(t *testing.T) {
	t.Parallel()
	elsewhere := notifytest.NewReceiver(t)
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, elsewhere.Server.URL+"/x", http.StatusTemporaryRedirect)
	}))
	t.Cleanup(redirector.Close)
	r := sendOne(t, parseTarget(t, redirector.URL+"/SECRETPATH?hmac_secret=SECRETSECRETSECRET"), failureMessage())
	if n := len(elsewhere.Requests()); n != 0 {
		t.Errorf("the redirect was followed: the other host got %d requests, Referer %q", n, elsewhere.Requests()[0].Header.Get("Referer"))
	}
	if r.Err == nil || !strings.Contains(r.Err.Error(), "307") || r.Attempts != 1 {
		t.Fatalf("err = %v after %d attempts, want one refused 307", r.Err, r.Attempts)
	}
	if strings.Contains(r.Err.Error(), "SECRET") {
		t.Errorf("the error shows a secret: %v", r.Err)
	}
}

// A receiver whose refusal echoes the request's URL (its credential)
// does not put it in the error that is logged.
func TestRefusalEchoingTheURLIsRedacted(t *testing.T) {
	t.Parallel()
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no hook at "+r.URL.RequestURI(), http.StatusNotFound)
	}))
	t.Cleanup(echo.Close)
	r := sendOne(t, parseTarget(t, "mattermost+"+echo.URL+"/hooks/SECRETPATH?token=SECRETTOKEN"), failureMessage())
	if r.Err == nil || !strings.Contains(r.Err.Error(), "404") {
		t.Fatalf("err = %v, want the 404", r.Err)
	}
	if strings.Contains(r.Err.Error(), "SECRET") {
		t.Errorf("the error shows a secret: %v", r.Err)
	}
}

// TestMessagesRedacted (attack 30 L5): with Redact set (pseudonymisation
// on), every free text of a failure, a recovery and a summary goes
// through it before it is sent, after the secrets are scrubbed (a
// secret's digits redacted first would no longer be found whole).
func TestMessagesRedacted(t *testing.T) {
	t.Parallel()
	rc := notifytest.NewReceiver(t)
	redact := strings.NewReplacer("Mario Rossi", "(left out)", "3331234567", "p:x").Replace
	n := &Notifier{Targets: []*Target{parseTarget(t, rc.Server.URL+"/hook")}, Scrub: []string{"pw-3331234567"}, Redact: redact}
	failure := failureMessage()
	failure.Failure.Error = `400 Bad Request: "no caller Mario Rossi +393331234567"; password pw-3331234567`
	failure.Failure.Advice, failure.Failure.Meaning = "call Mario Rossi", "Mario Rossi failed"
	recovery := Message{Kind: KindRecovered, PBX: "acme", At: failure.At, Recovery: &Recovery{LastMeaning: "Mario Rossi failed"}}
	summary := Message{Kind: KindSummary, PBX: "acme", At: failure.At, Summary: &Summary{Day: "2026-12-06", Failing: "Mario Rossi failed"}}
	for _, m := range []Message{failure, recovery, summary} {
		n.Send(context.Background(), m)
	}
	reqs := rc.Requests()
	if len(reqs) != 3 {
		t.Fatalf("%d messages received, want 3", len(reqs))
	}
	for _, q := range reqs {
		body := string(q.Body)
		if strings.Contains(body, "Rossi") || strings.Contains(body, "3331234567") || !strings.Contains(body, "(left out)") {
			t.Errorf("the payload is not redacted: %s", body)
		}
	}
	if !strings.Contains(string(reqs[0].Body), "password [redacted]") {
		t.Errorf("the secret was redacted before it was scrubbed: %s", reqs[0].Body)
	}
}
