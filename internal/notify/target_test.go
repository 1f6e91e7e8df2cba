package notify

import (
	"strings"
	"testing"
)

func TestParseTargetDetectsService(t *testing.T) {
	t.Parallel()
	tests := []struct {
		url  string
		want Service
	}{
		{"https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXXXXXX", Slack},
		{"https://prod-12.westeurope.logic.azure.com:443/workflows/abc/triggers/manual/paths/invoke?api-version=2016-06-01&sig=SIGSIGSIG", Teams},
		{"https://default1234.56.environment.api.powerplatform.com:443/powerautomate/automations/direct/workflows/abc/triggers/manual/paths/invoke?sig=SIGSIGSIG", Teams},
		{"https://chat.googleapis.com/v1/spaces/AAAA/messages?key=KEYKEYKEY&token=TOKTOKTOK", GoogleChat},
		{"https://mm.example.com/hooks/xi4ki8y6xbrwdxonexm7fk9h1c", Mattermost},
		{"https://receiver.example.com/wildix", Webhook},
		{"slack+https://chat.example.com/services/T/B/X", Slack},
		{"teams+https://flows.example.com/invoke?sig=x", Teams},
		{"mattermost+https://mm.example.com/hooks/short", Mattermost},
		{"googlechat+https://proxy.example.com/v1/spaces/A/messages", GoogleChat},
		{"webhook+https://hooks.slack.com/services/T/B/X", Webhook},
		{"webhook+http://127.0.0.1:8080/hook", Webhook},
		{"smtp://mail.example.com?from=a@example.com&to=b@example.com", Email},
		{"smtps://u:p@mail.example.com?from=a@example.com&to=b@example.com,c@example.com", Email},
	}
	for _, tt := range tests {
		got, err := ParseTarget(tt.url)
		if err != nil {
			t.Errorf("ParseTarget(%q): %v", tt.url, err)
			continue
		}
		if got.Service != tt.want {
			t.Errorf("ParseTarget(%q).Service = %s, want %s", tt.url, got.Service, tt.want)
		}
	}
}

func TestParseTargetRefusesWithoutShowingSecrets(t *testing.T) {
	t.Parallel()
	tests := []struct {
		url, wantErr string
	}{
		{"http://hooks.example.com/services/SECRETPATH", "http:// only for a loopback host"},
		{"ftp://example.com/SECRETPATH", `scheme "ftp"`},
		{"discord+https://example.com/SECRETPATH", `unknown service "discord"`},
		{"hooks.slack.com/services/SECRETPATH", "not a URL with a host"},
		{"https://hooks.example.com:bad?token=SECRETTOKEN", "not a URL with a host"},
		{"https://hooks.example.com:bad#SECRETTOKEN", "not a URL with a host"},
		{"https://u:SECRETPASS@ho%zzst/x", "not a URL with a host"},
		{"slack+https://example.com/x?hmac_secret=SECRETSECRETSECRET", "generic webhook only"},
		{"https://example.com/x?hmac_secret=SHORTSECRET", "16 characters or more"},
		{"smtp://mail.example.com?to=b@example.com", "from="},
		{"smtp://mail.example.com?from=a@example.com", "no recipient"},
		{"smtp://mail.example.com?from=a@example.com&to=not-an-address", `to="not-an-address"`},
		{"smtp://u:SECRETPASS@mail.example.com?from=a@example.com&to=b@example.com&starttls=none", "password in clear"},
		{"smtp://mail.example.com?from=a@example.com&to=b@example.com&starttls=maybe", `starttls="maybe"`},
		{"smtps://mail.example.com?from=a@example.com&to=b@example.com&starttls=none", "smtps:// is TLS from the start"},
		{"smtp://mail.example.com:99999?from=a@example.com&to=b@example.com", `port "99999"`},
		{"smtp://mail.example.com?from=a@example.com&to=b@example.com&password=SECRETPASS", `unknown parameter "password"`},
		{"smtp://mail.example.com?from=a@example.com&to=b@example.com&auth=magic", `auth="magic"`},
		{"smtp://mail.example.com?from=a@example.com&to=b@example.com&ca_file=/nonexistent/ca.pem", "ca_file"},
	}
	for _, tt := range tests {
		_, err := ParseTarget(tt.url)
		if err == nil {
			t.Errorf("ParseTarget(%q) = nil error, want one with %q", tt.url, tt.wantErr)
			continue
		}
		if !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("ParseTarget(%q) = %q, want it to say %q", tt.url, err, tt.wantErr)
		}
		if strings.Contains(err.Error(), "SECRET") {
			t.Errorf("ParseTarget(%q) = %q, which shows a secret", tt.url, err)
		}
	}
}

func TestTargetStringRedactsSecrets(t *testing.T) {
	t.Parallel()
	tests := []struct{ url, want string }{
		{"https://hooks.slack.com/services/T0/B0/SECRETSECRET", "slack https://hooks.slack.com/[redacted]"},
		{"https://chat.googleapis.com/v1/spaces/A/messages?key=SECRETKEY&token=SECRETTOKEN", "googlechat https://chat.googleapis.com/[redacted]"},
		{"https://receiver.example.com?hmac_secret=SECRETSECRETSECRETSECRET", "webhook https://receiver.example.com (signed)"},
		{"https://receiver.example.com/SECRETPATH?hmac_secret=SECRETSECRETSECRETSECRET", "webhook https://receiver.example.com/[redacted] (signed)"},
		{"smtp://me%40example.com:SECRETPASS@mail.example.com:587?from=a@example.com&to=b@example.com,c@example.com",
			"email smtp://me%40example.com:[redacted]@mail.example.com:587 from a@example.com to b@example.com, c@example.com"},
		// Postmark's SMTP takes the server token as user name and password.
		{"smtp://SECRETTOKEN:SECRETTOKEN@smtp.postmarkapp.com?from=a@example.com&to=b@example.com",
			"email smtp://[redacted]:[redacted]@smtp.postmarkapp.com from a@example.com to b@example.com"},
	}
	for _, tt := range tests {
		tg, err := ParseTarget(tt.url)
		if err != nil {
			t.Fatalf("ParseTarget(%q): %v", tt.url, err)
		}
		if got := tg.String(); got != tt.want {
			t.Errorf("String() = %q\n                want %q", got, tt.want)
		}
		b, _ := tg.MarshalText()
		for _, s := range []string{tg.String(), string(b), tg.LogValue().String()} {
			if strings.Contains(s, "SECRET") {
				t.Errorf("%q shows a secret", s)
			}
		}
	}
}

func TestParseTargetsListsEveryProblem(t *testing.T) {
	t.Parallel()
	ts, err := ParseTargets(`# the team's channel
https://hooks.slack.com/services/T/B/X
  smtp://mail.example.com?from=a@example.com&to=b@example.com   ftp://x/SECRET
# a comment with https://not.a.target
https://example.com/hook nonsense`)
	if len(ts) != 3 {
		t.Errorf("got %d targets, want 3: %v", len(ts), ts)
	}
	if err == nil || !strings.Contains(err.Error(), "target 3:") || !strings.Contains(err.Error(), "target 5:") {
		t.Fatalf("err = %v, want problems with targets 3 and 5", err)
	}
	if strings.Contains(err.Error(), "SECRET") {
		t.Errorf("err = %q shows a secret", err)
	}
}
