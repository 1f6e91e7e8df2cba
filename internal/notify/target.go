package notify

import (
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/mail"
	"net/url"
	"os"
	"regexp"
	"strings"
)

// Service is what a target is: a chat service's incoming webhook, the
// generic JSON webhook, or e-mail.
type Service string

// The services, each with its own payload.
const (
	Slack      Service = "slack"
	Teams      Service = "teams"
	Mattermost Service = "mattermost"
	GoogleChat Service = "googlechat"
	Webhook    Service = "webhook"
	Email      Service = "email"
)

var chatServices = []Service{Slack, Teams, Mattermost, GoogleChat, Webhook}

// mattermostHook is the path of a Mattermost incoming webhook: /hooks/
// and a 26-character id.
var mattermostHook = regexp.MustCompile(`/hooks/[a-z0-9]{26}$`)

// hmacParam is the query parameter of a generic webhook's URL holding the
// key its payload is signed with; it is taken out of the URL, never sent.
const hmacParam = "hmac_secret"

// Target is one place notifications go. Its URL holds secrets (a chat
// webhook's path is its credential; an SMTP password; an HMAC key):
// String, LogValue and MarshalText redact them, so a Target can be shown
// and logged as it is.
type Target struct {
	Service Service
	url     *url.URL // as sent: without the service prefix or hmac_secret
	hmacKey []byte   // generic webhook: sign the payload when set
	mail    *mailTarget
}

// ParseTargets reads targets separated by white space (spaces or new
// lines); a line starting with # is a comment, for EXPORT_NOTIFY_FILE.
// Every bad target is reported, each naming its position and what is
// expected; secrets are never part of an error.
func ParseTargets(s string) ([]*Target, error) {
	var ts []*Target
	var errs []error
	n := 0
	for line := range strings.Lines(s) {
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		for _, f := range strings.Fields(line) {
			n++
			t, err := ParseTarget(f)
			if err != nil {
				errs = append(errs, fmt.Errorf("target %d: %w", n, err))
				continue
			}
			ts = append(ts, t)
		}
	}
	return ts, errors.Join(errs...)
}

// ParseTarget reads one target URL:
//
//   - https://hooks.slack.com/services/…, a Teams workflow's URL
//     (*.logic.azure.com, *.powerplatform.com, *.powerautomate.com),
//     https://chat.googleapis.com/…, and https://host/hooks/<26 characters>
//     (Mattermost) are recognised; slack+, teams+, mattermost+,
//     googlechat+ or webhook+ before https:// names the service;
//   - any other https URL is the generic JSON webhook, signed when its
//     query has hmac_secret=KEY (taken out of the URL);
//   - smtp://[user[:password]@]host[:port]?from=…&to=…[,…] (STARTTLS,
//     port 587) or smtps://… (TLS, port 465) is e-mail.
//
// http:// is accepted for loopback hosts only.
func ParseTarget(s string) (*Target, error) {
	service, rest, explicit := strings.Cut(s, "+")
	if !explicit || strings.Contains(service, ":") {
		service, rest = "", s
	}
	u, err := url.Parse(rest)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("%s is not a URL with a host: expected https://…, smtp://… or smtps://…", redactRaw(rest))
	}
	switch u.Scheme {
	case "smtp", "smtps":
		if service != "" && Service(service) != Email {
			return nil, fmt.Errorf("%s: %s+ is for web hooks; an smtp URL needs no prefix", redactURL(u), service)
		}
		m, err := parseMail(u)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", redactURL(u), err)
		}
		return &Target{Service: Email, url: u, mail: m}, nil
	case "https":
	case "http":
		if !isLoopback(u.Hostname()) {
			return nil, fmt.Errorf("%s: http:// only for a loopback host; use https://", redactURL(u))
		}
	default:
		return nil, fmt.Errorf("%s: scheme %q: expected https, smtp or smtps", redactURL(u), u.Scheme)
	}
	return parseHook(u, Service(service))
}

func parseHook(u *url.URL, s Service) (*Target, error) {
	if s == "" {
		s = detect(u)
	} else if !knownChat(s) {
		return nil, fmt.Errorf("%s: unknown service %q: expected one of slack, teams, mattermost, googlechat, webhook", redactURL(u), s)
	}
	t := &Target{Service: s, url: u}
	q := u.Query()
	if key, ok := q[hmacParam]; ok {
		if s != Webhook {
			return nil, fmt.Errorf("%s: %s is for the generic webhook only", redactURL(u), hmacParam)
		}
		if len(key) != 1 || len(key[0]) < 16 {
			return nil, fmt.Errorf("%s: %s must be one key of 16 characters or more", redactURL(u), hmacParam)
		}
		t.hmacKey = []byte(key[0])
		q.Del(hmacParam)
		u.RawQuery = q.Encode()
	}
	return t, nil
}

func knownChat(s Service) bool {
	for _, c := range chatServices {
		if c == s {
			return true
		}
	}
	return false
}

// detect tells the service from the host, as each service's documentation
// shows its incoming webhooks' addresses.
func detect(u *url.URL) Service {
	h := strings.ToLower(u.Hostname())
	switch {
	case h == "hooks.slack.com" || h == "hooks.slack-gov.com":
		return Slack
	case strings.HasSuffix(h, ".logic.azure.com"), strings.HasSuffix(h, ".powerplatform.com"),
		strings.HasSuffix(h, ".powerautomate.com"):
		return Teams
	case h == "chat.googleapis.com":
		return GoogleChat
	case mattermostHook.MatchString(u.Path):
		return Mattermost
	}
	return Webhook
}

// mailTarget is an SMTP server and the message's envelope.
type mailTarget struct {
	implicitTLS bool   // smtps://
	startTLS    string // mandatory, opportunistic or none (smtp:// only)
	host        string
	port        int
	user        string
	password    string
	auth        string
	from        string
	to          []string
	roots       *x509.CertPool // nil: the system's
}

func parseMail(u *url.URL) (*mailTarget, error) {
	m := &mailTarget{implicitTLS: u.Scheme == "smtps", host: u.Hostname(), port: 587, startTLS: "mandatory", auth: "auto"}
	if m.implicitTLS {
		m.port = 465
	}
	if p := u.Port(); p != "" {
		if _, err := fmt.Sscan(p, &m.port); err != nil || m.port < 1 || m.port > 65535 {
			return nil, fmt.Errorf("port %q: expected 1 to 65535", p)
		}
	}
	if u.User != nil {
		m.user = u.User.Username()
		m.password, _ = u.User.Password()
	}
	q := u.Query()
	for k := range q {
		switch k {
		case "from", "to", "starttls", "auth", "ca_file":
		default:
			return nil, fmt.Errorf("unknown parameter %q: expected from, to, starttls, auth or ca_file", k)
		}
	}
	if err := m.parseEnvelope(q); err != nil {
		return nil, err
	}
	if err := m.parseSecurity(q); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *mailTarget) parseEnvelope(q url.Values) error {
	from, err := mail.ParseAddress(q.Get("from"))
	if err != nil {
		return fmt.Errorf("from=%q: expected the sender's address, e.g. from=export@example.com", q.Get("from"))
	}
	m.from = from.Address
	for _, v := range q["to"] {
		for a := range strings.SplitSeq(v, ",") {
			to, err := mail.ParseAddress(strings.TrimSpace(a))
			if err != nil {
				return fmt.Errorf("to=%q: expected addresses separated by commas", a)
			}
			m.to = append(m.to, to.Address)
		}
	}
	if len(m.to) == 0 {
		return errors.New("no recipient: add to=someone@example.com (several separated by commas)")
	}
	return nil
}

func (m *mailTarget) parseSecurity(q url.Values) error {
	if v := q.Get("starttls"); v != "" {
		if m.implicitTLS {
			return errors.New("starttls is for smtp://; smtps:// is TLS from the start")
		}
		switch v {
		case "mandatory", "opportunistic", "none":
		default:
			return fmt.Errorf("starttls=%q: expected mandatory (the default), opportunistic or none", v)
		}
		m.startTLS = v
	}
	if m.startTLS != "mandatory" && !m.implicitTLS && m.password != "" && !isLoopback(m.host) {
		return fmt.Errorf("starttls=%s would send the password in clear: use starttls=mandatory or smtps://", m.startTLS)
	}
	if v := q.Get("auth"); v != "" {
		switch v {
		case "auto", "plain", "login", "cram-md5", "scram-sha-256":
		default:
			return fmt.Errorf("auth=%q: expected auto (the default), plain, login, cram-md5 or scram-sha-256", v)
		}
		m.auth = v
	}
	if f := q.Get("ca_file"); f != "" {
		pem, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("ca_file: %w", err)
		}
		m.roots = x509.NewCertPool()
		if !m.roots.AppendCertsFromPEM(pem) {
			return fmt.Errorf("ca_file %s holds no PEM certificate", f)
		}
	}
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

const redacted = "[redacted]"

// String is the target with its secrets redacted: a web hook's path and
// query (its credential), an SMTP password.
func (t *Target) String() string {
	if t.Service == Email {
		return fmt.Sprintf("email %s from %s to %s", redactURL(t.url), t.mail.from, strings.Join(t.mail.to, ", "))
	}
	s := string(t.Service) + " " + redactURL(t.url)
	if t.hmacKey != nil {
		s += " (signed)"
	}
	return s
}

// LogValue implements slog.LogValuer.
func (t *Target) LogValue() slog.Value { return slog.StringValue(t.String()) }

// MarshalText implements encoding.TextMarshaler, redacted.
func (t *Target) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

// Secrets are the target's secret parts, for a test or a caller that
// checks no message carries them.
func (t *Target) Secrets() []string {
	var s []string
	if t.Service == Email {
		if t.mail.password != "" {
			s = append(s, t.mail.password)
		}
		return s
	}
	if p := strings.Trim(t.url.Path, "/"); p != "" {
		s = append(s, p)
	}
	if t.url.RawQuery != "" {
		s = append(s, t.url.RawQuery)
	}
	if t.hmacKey != nil {
		s = append(s, string(t.hmacKey))
	}
	return s
}

// redactURL shows where a URL points and hides what may be a credential:
// for a web hook, the path and the query; for SMTP, the password and the
// query (an unknown parameter might be one).
func redactURL(u *url.URL) string {
	if u.Scheme == "smtp" || u.Scheme == "smtps" {
		c := url.URL{Scheme: u.Scheme, Host: u.Host, User: u.User}
		if p, ok := c.User.Password(); ok {
			user := c.User.Username()
			if user == p {
				// A token as user name and password (Postmark).
				user = "REDACTED"
			}
			c.User = url.UserPassword(user, "REDACTED")
		}
		return strings.ReplaceAll(c.String(), "REDACTED", redacted)
	}
	s := u.Scheme + "://" + u.Host
	if strings.Trim(u.Path, "/") != "" || u.RawQuery != "" {
		s += "/" + redacted
	}
	return s
}

// redactRaw shows a string that is not even a URL: its first characters
// up to "://" and the host-looking part, never the rest.
func redactRaw(s string) string {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return "a value"
	}
	host := rest
	if i := strings.IndexAny(host, "/?#"); i >= 0 {
		host = host[:i]
	}
	if i := strings.LastIndex(host, "@"); i >= 0 {
		host = host[i+1:]
	}
	return scheme + "://" + host + "/" + redacted
}

// Targets is a list of targets; it prints redacted, one after another.
type Targets []*Target

func (ts Targets) String() string {
	if len(ts) == 0 {
		return "(none)"
	}
	s := make([]string, len(ts))
	for i, t := range ts {
		s[i] = t.String()
	}
	return strings.Join(s, "; ")
}

// Secrets are every target's secret parts.
func (ts Targets) Secrets() []string {
	var s []string
	for _, t := range ts {
		s = append(s, t.Secrets()...)
	}
	return s
}
