package notify

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wildix-export/wildix-export/internal/notify/notifytest"
)

func failureMessage() Message {
	return Message{Kind: KindFailure, PBX: "acme.wildixin.com", At: time.Date(2026, 12, 6, 2, 0, 5, 0, time.UTC), Failure: &Failure{
		RunID: "20261206T020000Z-abcdef", ExitCode: 3, Meaning: "OAuth authorization needed",
		Advice: "run `wildix-export authorize`", Endpoints: []string{"call_history", "colleagues"},
		Error: `export call_history: token refresh: oauth2: "invalid_grant"`, FailingSince: time.Date(2026, 12, 6, 2, 0, 5, 0, time.UTC), FailedRuns: 1,
	}}
}

func parseTarget(t *testing.T, rawURL string) *Target {
	t.Helper()
	tg, err := ParseTarget(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	return tg
}

func sendOne(t *testing.T, tg *Target, m Message) Result {
	t.Helper()
	n := &Notifier{Targets: []*Target{tg}}
	return n.Send(context.Background(), m)[0]
}

func TestMailToSeveralRecipients(t *testing.T) {
	t.Parallel()
	mp := notifytest.StartMailpit(t)
	tg := parseTarget(t, fmt.Sprintf("smtp://127.0.0.1:%d?from=export@example.com&to=ops@example.com,boss@example.com&starttls=none", mp.SMTPPort))
	m := failureMessage()
	if r := sendOne(t, tg, m); r.Err != nil || r.Attempts != 1 {
		t.Fatalf("send: attempts %d, err %v", r.Attempts, r.Err)
	}
	got := mp.Messages(t, 1)
	if len(got) != 1 {
		t.Fatalf("mailpit holds %d messages, want 1", len(got))
	}
	msg := got[0]
	var to []string
	for _, a := range msg.To {
		to = append(to, a.Address)
	}
	if want := []string{"ops@example.com", "boss@example.com"}; !slices.Equal(to, want) {
		t.Errorf("To = %v, want %v", to, want)
	}
	if msg.From.Address != "export@example.com" {
		t.Errorf("From = %q", msg.From.Address)
	}
	if msg.Subject != m.Title() {
		t.Errorf("Subject = %q, want %q", msg.Subject, m.Title())
	}
	for _, want := range []string{"run `wildix-export authorize`", "call_history, colleagues", "invalid_grant", "20261206T020000Z-abcdef"} {
		if !strings.Contains(msg.Text, want) {
			t.Errorf("body lacks %q:\n%s", want, msg.Text)
		}
	}
	if h := mp.Headers(t, msg.ID); !slices.Equal(h["Auto-Submitted"], []string{"auto-generated"}) {
		t.Errorf("Auto-Submitted = %v, want auto-generated", h["Auto-Submitted"])
	}
}

// mailpitAuth starts mailpit requiring TLS (STARTTLS, or TLS from the
// start with implicit) and a login as user "export" with password.
func mailpitAuth(t *testing.T, implicit bool, password string) (*notifytest.Mailpit, string) {
	t.Helper()
	cert, key := notifytest.SelfSigned(t)
	users := filepath.Join(t.TempDir(), "users")
	if err := os.WriteFile(users, []byte("export:"+password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	require := "--smtp-require-starttls"
	if implicit {
		require = "--smtp-require-tls"
	}
	return notifytest.StartMailpit(t, "--smtp-tls-cert", cert, "--smtp-tls-key", key, require, "--smtp-auth-file", users), cert
}

func TestMailTLSAndLogin(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name   string
		scheme string
	}{{"starttls", "smtp"}, {"implicit TLS", "smtps"}} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			const password = "pass-Wörd:/?#[]@!$&'()*+,;=%"
			mp, ca := mailpitAuth(t, tt.scheme == "smtps", password)
			target := func(pw string) *Target {
				return parseTarget(t, fmt.Sprintf("%s://export:%s@127.0.0.1:%d?from=export@example.com&to=ops@example.com&ca_file=%s",
					tt.scheme, url.QueryEscape(pw), mp.SMTPPort, url.QueryEscape(ca)))
			}
			r := sendOne(t, target("wrong-password"), failureMessage())
			if r.Err == nil {
				t.Fatal("a wrong password was accepted: the server does not check logins, and this test proves nothing")
			}
			if strings.Contains(r.Err.Error(), "wrong-password") {
				t.Errorf("the error shows the password: %v", r.Err)
			}
			if r := sendOne(t, target(password), failureMessage()); r.Err != nil {
				t.Fatalf("send with the right password: %v", r.Err)
			}
			if got := mp.Messages(t, 1); len(got) != 1 || got[0].Subject != titleOf(failureMessage()) {
				t.Errorf("mailpit holds %+v, want the one failure", got)
			}
		})
	}
}

func TestMailStartTLSMandatoryRefusesAServerWithoutTLS(t *testing.T) {
	t.Parallel()
	mp := notifytest.StartMailpit(t)
	tg := parseTarget(t, fmt.Sprintf("smtp://127.0.0.1:%d?from=export@example.com&to=ops@example.com", mp.SMTPPort))
	if r := sendOne(t, tg, failureMessage()); r.Err == nil {
		t.Fatal("sent without TLS although STARTTLS is mandatory by default")
	}
	tg = parseTarget(t, fmt.Sprintf("smtp://127.0.0.1:%d?from=export@example.com&to=ops@example.com&starttls=opportunistic", mp.SMTPPort))
	if r := sendOne(t, tg, failureMessage()); r.Err != nil {
		t.Fatalf("starttls=opportunistic: %v", r.Err)
	}
	if got := mp.Messages(t, 1); len(got) != 1 {
		t.Errorf("mailpit holds %d messages, want 1 (the opportunistic one)", len(got))
	}
}

func TestMailUntrustedCertificateFails(t *testing.T) {
	t.Parallel()
	mp, _ := mailpitAuth(t, true, "secret-password")
	tg := parseTarget(t, fmt.Sprintf("smtps://export:secret-password@127.0.0.1:%d?from=export@example.com&to=ops@example.com", mp.SMTPPort))
	r := sendOne(t, tg, failureMessage())
	if r.Err == nil {
		t.Fatal("a certificate no CA vouches for was accepted")
	}
	if r.Attempts != 1 {
		t.Errorf("attempts = %d, want 1: an untrusted certificate is not retried", r.Attempts)
	}
}

func titleOf(m Message) string { return m.Title() }
