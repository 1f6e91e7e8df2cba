package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/robfig/cron/v3"

	"github.com/wildix-export/wildix-export/config"
	"github.com/wildix-export/wildix-export/internal/notify"
	"github.com/wildix-export/wildix-export/internal/notify/notifytest"
	"github.com/wildix-export/wildix-export/internal/pbxsim"
	"github.com/wildix-export/wildix-export/internal/pgtest"
	"github.com/wildix-export/wildix-export/simtest"
)

// receivers are one test's real notification targets: a signed generic
// webhook, a Slack webhook and Mailpit (STARTTLS and a login). When the
// test ends, every message they got is searched for every secret the
// test configured (secret adds them; the targets' own are added here).
type receivers struct {
	hook, slack *notifytest.Receiver
	mail        *notifytest.Mailpit
	notify      string // EXPORT_NOTIFY's value
	stateFile   string
	secrets     []string
}

const (
	hookKey      = "hmac-key-0123456789-secret"
	smtpPassword = "smtp-pass-W0rd-secret"
)

func newReceivers(t *testing.T, hookScript ...int) *receivers {
	t.Helper()
	cert, key := notifytest.SelfSigned(t)
	users := filepath.Join(t.TempDir(), "users")
	if err := os.WriteFile(users, []byte("export:"+smtpPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := &receivers{
		hook: notifytest.NewReceiver(t, hookScript...), slack: notifytest.NewReceiver(t),
		mail:      notifytest.StartMailpit(t, "--smtp-tls-cert", cert, "--smtp-tls-key", key, "--smtp-require-starttls", "--smtp-auth-file", users),
		stateFile: filepath.Join(t.TempDir(), "notify-fallback.json"),
	}
	r.notify = strings.Join([]string{
		r.hook.Server.URL + "/hooks/generic-secret-path?hmac_secret=" + hookKey,
		"slack+" + r.slack.Server.URL + "/services/T0/B0/slack-secret-path",
		fmt.Sprintf("smtp://export:%s@127.0.0.1:%d?from=export@example.com&to=it@example.com,boss@example.com&ca_file=%s",
			smtpPassword, r.mail.SMTPPort, url.QueryEscape(cert)),
	}, "\n")
	r.secret(hookKey, smtpPassword, "generic-secret-path", "slack-secret-path")
	t.Cleanup(func() { r.noSecretSent(t) })
	return r
}

func (r *receivers) env() []string {
	return []string{"EXPORT_NOTIFY=" + r.notify, "EXPORT_NOTIFY_STATE_FILE=" + r.stateFile}
}

func (r *receivers) secret(s ...string) { r.secrets = append(r.secrets, s...) }

// noSecretSent searches every message received, as received, for every
// secret configured.
func (r *receivers) noSecretSent(t *testing.T) {
	var sent []string
	for _, q := range append(r.hook.Requests(), r.slack.Requests()...) {
		sent = append(sent, string(q.Body))
	}
	for _, m := range r.mail.Messages(t, 0) {
		sent = append(sent, r.mail.Raw(t, m.ID))
	}
	for _, s := range sent {
		for _, secret := range r.secrets {
			if secret != "" && strings.Contains(s, secret) {
				t.Errorf("a message holds the secret %q:\n%s", secret, s)
			}
		}
	}
}

// got is what each target received so far: the generic payloads, the
// Slack titles and the e-mails' subjects.
func (r *receivers) got(t *testing.T) (hook []notify.Generic, slack, mail []string) {
	t.Helper()
	for _, q := range r.hook.Requests() {
		var g notify.Generic
		if err := json.Unmarshal(q.Body, &g); err != nil {
			t.Fatal(err)
		}
		hook = append(hook, g)
	}
	for _, q := range r.slack.Requests() {
		var p struct{ Text string }
		json.Unmarshal(q.Body, &p)
		slack = append(slack, p.Text)
	}
	for _, m := range r.mail.Messages(t, 0) {
		mail = append(mail, m.Subject)
	}
	return hook, slack, mail
}

// wantEach checks that each target got n messages, the last of kind k.
func (r *receivers) wantEach(t *testing.T, n int, k notify.Kind) notify.Generic {
	t.Helper()
	hook, slack, mail := r.got(t)
	if len(hook) != n || len(slack) != n || len(mail) != n {
		t.Fatalf("webhook got %d, Slack %d, e-mail %d messages; want %d each", len(hook), len(slack), len(mail), n)
	}
	title := map[notify.Kind]string{notify.KindFailure: "FAILED", notify.KindRecovered: "recovered", notify.KindSummary: "summary of", notify.KindTest: "test message"}[k]
	last := hook[n-1]
	if last.Kind != k || !strings.Contains(slack[n-1], title) || !strings.Contains(mail[0], title) {
		t.Fatalf("last message: webhook %q, Slack %q, e-mail %q; want %s", last.Kind, slack[n-1], mail[0], k)
	}
	return last
}

// TestNotifyFailingRunsOnceThenRecovered: each failing run is a new
// process (run --once); the first sends one message per target with the
// exit code's advice, five more the same day send nothing, and the next
// success sends one recovery.
func TestNotifyFailingRunsOnceThenRecovered(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		code   int
		advice string
		// setup returns the failing environment, and fix the working one.
		setup func(t *testing.T, r *receivers) (failing []string, fix func() []string)
	}{
		{"revoked token", exitAuth, "wildix-export authorize", func(t *testing.T, r *receivers) ([]string, func() []string) {
			f := authorized(t, pbxsim.Options{Calls: 30})
			kv := append(fixtureEnv(f, t.TempDir()), r.env()...)
			r.secret(simtest.ClientSecret)
			r.secret(tokens(t, f.TokenFile)...)
			f.Sim.RevokeRefreshTokens()
			f.Sim.ExpireAccessTokens()
			return kv, func() []string {
				f.Authorize(t)
				r.secret(tokens(t, f.TokenFile)...)
				return kv
			}
		}},
		{"PBX unreachable", exitUnreachable, "WILDIX_PBX_URL", func(t *testing.T, r *receivers) ([]string, func() []string) {
			f := simtest.New(t, pbxsim.Options{Calls: 30, APIKeys: []string{"wsk-v1-api-key-secret"}})
			r.secret("wsk-v1-api-key-secret")
			base := append([]string{"WILDIX_API_KEY=wsk-v1-api-key-secret", "WILDIX_PBX_ID=acme", "EXPORT_CSV_DIR=" + t.TempDir(),
				"WILDIX_TIMEZONE=Europe/Rome", "EXPORT_LOG_FORMAT=json", "WILDIX_TOKEN_FILE=" + filepath.Join(t.TempDir(), "token.json"),
				"EXPORT_MAX_ATTEMPTS=2"}, r.env()...)
			return append(base, "WILDIX_PBX_URL=http://"+freeAddr(t)), func() []string { return append(base, "WILDIX_PBX_URL="+f.Server.URL) }
		}},
		{"database down", exitDatabase, "EXPORT_DATABASE_URL", func(t *testing.T, r *receivers) ([]string, func() []string) {
			f := simtest.New(t, pbxsim.Options{Calls: 30, APIKeys: []string{"wsk-v1-api-key-secret"}})
			schema, _ := pgtest.Schema(t)
			r.secret("wsk-v1-api-key-secret", "db-pass-secret")
			base := append([]string{"WILDIX_API_KEY=wsk-v1-api-key-secret", "WILDIX_PBX_URL=" + f.Server.URL, "EXPORT_SINK=postgres",
				"EXPORT_DB_SCHEMA=" + schema, "WILDIX_TIMEZONE=Europe/Rome", "EXPORT_LOG_FORMAT=json"}, r.env()...)
			down := "postgres://exporter:db-pass-secret@" + freeAddr(t) + "/reports"
			r.secret(down)
			return append(base, "EXPORT_DATABASE_URL="+down), func() []string { return append(base, "EXPORT_DATABASE_URL="+pgtest.URL()) }
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := newReceivers(t)
			failing, fix := tc.setup(t, r)
			for i := range 6 {
				if res := runCLI(t, failing, "run", "--once"); res.code != tc.code {
					t.Fatalf("failing run %d: exit %d, want %d: %v\n%s", i+1, res.code, tc.code, res.err, res.stderr)
				}
				if i == 0 {
					g := r.wantEach(t, 1, notify.KindFailure)
					if g.Failure.ExitCode != tc.code || !strings.Contains(g.Failure.Advice, tc.advice) || g.Failure.Error == "" {
						t.Errorf("failure sent: %+v; want exit %d and advice naming %q", g.Failure, tc.code, tc.advice)
					}
				}
			}
			r.wantEach(t, 1, notify.KindFailure)
			if res := runCLI(t, fix(), "run", "--once"); res.code != exitOK {
				t.Fatalf("run after the fix: exit %d: %v\n%s", res.code, res.err, res.stderr)
			}
			g := r.wantEach(t, 2, notify.KindRecovered)
			if g.Recovery.FailedRuns != 6 {
				t.Errorf("recovery %+v: want 6 failed runs", g.Recovery)
			}
			if res := runCLI(t, fix(), "run", "--once"); res.code != exitOK {
				t.Fatalf("second run after the fix: exit %d: %v", res.code, res.err)
			}
			r.wantEach(t, 2, notify.KindRecovered)
		})
	}
}

// tokens are the access and refresh tokens in a token file.
func tokens(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if s, ok := x.(string); ok && (k == "access_token" || k == "refresh_token") {
					out = append(out, s)
				}
				walk(x)
			}
		case string:
			var inner any
			if json.Unmarshal([]byte(v), &inner) == nil {
				walk(inner)
			}
		}
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	walk(v)
	if len(out) < 2 {
		t.Fatalf("found %d tokens in %s, want an access and a refresh token", len(out), path)
	}
	return out
}

// TestNotifyNeverDelaysTheRun: receivers that hang or answer 500 change
// neither a run's exit code nor, beyond the notifier's bound, its exit;
// and the worker's next run does not wait for them at all.
func TestNotifyNeverDelaysTheRun(t *testing.T) {
	t.Parallel()
	hang, fail := notifytest.NewReceiver(t, 0, 0, 0, 0, 0, 0), notifytest.NewReceiver(t, 500, 500, 500, 500, 500, 500)
	targets := "EXPORT_NOTIFY=" + hang.Server.URL + "/hook " + fail.Server.URL + "/hook"
	f := simtest.New(t, pbxsim.Options{Calls: 30, APIKeys: []string{"wsk-v1-key"}})
	base := []string{"WILDIX_API_KEY=wsk-v1-key", "WILDIX_PBX_ID=acme", "EXPORT_CSV_DIR=" + t.TempDir(), "EXPORT_MAX_ATTEMPTS=2",
		"WILDIX_TIMEZONE=Europe/Rome", "WILDIX_TOKEN_FILE=" + filepath.Join(t.TempDir(), "token.json")}
	down := append(base, "WILDIX_PBX_URL=http://"+freeAddr(t))
	timed := func(kv []string) (cliResult, time.Duration) {
		began := time.Now()
		r := runCLI(t, kv, "run", "--once")
		return r, time.Since(began)
	}
	plain, plainTook := timed(down)
	notified, notifiedTook := timed(append(down, targets))
	if plain.code != exitUnreachable || notified.code != exitUnreachable {
		t.Fatalf("exit %d without notifications, %d with; want %d both", plain.code, notified.code, exitUnreachable)
	}
	if extra := notifiedTook - plainTook; extra > 10*time.Second {
		t.Errorf("the notifications delayed the run's exit by %v, more than 10 s", extra)
	}
	if len(hang.Requests()) == 0 || len(fail.Requests()) != 3 {
		t.Errorf("requests: %d to the hanging receiver, %d to the failing one (want 3 attempts)", len(hang.Requests()), len(fail.Requests()))
	}
	if r, took := timed(append(base, "WILDIX_PBX_URL="+f.Server.URL, targets)); r.code != exitOK || took-plainTook > 10*time.Second {
		t.Errorf("the recovered run: exit %d in %v", r.code, took)
	}
}

func TestNotifyWorkerNeverWaits(t *testing.T) {
	t.Parallel()
	hang, fail, good := notifytest.NewReceiver(t, 0, 0, 0, 0, 0, 0), notifytest.NewReceiver(t, 500, 500, 500, 500, 500, 500), notifytest.NewReceiver(t)
	f := authorized(t, pbxsim.Options{Calls: 30})
	a, _, errb := cliApp(fixtureEnv(f, t.TempDir(), "EXPORT_SCHEDULE=0 0 1 1 *",
		"EXPORT_NOTIFY="+hang.Server.URL+"/hook "+fail.Server.URL+"/hook "+good.Server.URL+"/hook"))
	if err := a.load(config.Need{PBX: true, Sink: true}); err != nil {
		t.Fatal(err)
	}
	cat, err := a.catalog()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := a.start(ctx, cat)
	if err != nil {
		t.Fatal(err)
	}
	defer st.sink.close()
	m := newMetrics()
	w, err := a.newWorker(ctx, st, cat.All(), m)
	if err != nil {
		t.Fatal(err)
	}
	w.n = a.newNotices(m, nil)
	f.Sim.RevokeRefreshTokens()
	f.Sim.ExpireAccessTokens()
	began := time.Now()
	w.trigger()
	w.trigger()
	if took := time.Since(began); took >= notify.DefaultBudget {
		t.Errorf("two scheduled runs took %v: they waited for the hanging receiver (a delivery's bound is %v)", took, notify.DefaultBudget)
	}
	if got := testutil.ToFloat64(m.runs.WithLabelValues("failed")); got != 2 {
		t.Fatalf("failed runs = %v, want 2\n%s", got, errb.String())
	}
	w.n.wait()
	sent, failed := testutil.ToFloat64(m.notices.WithLabelValues("webhook", "sent")), testutil.ToFloat64(m.notices.WithLabelValues("webhook", "failed"))
	if sent != 1 || failed != 2 || len(good.Requests()) != 1 {
		t.Errorf("notifications sent %v, failed %v, good receiver got %d; want 1, 2 (hanging, 500) and 1 (the second run's failure is the same)",
			sent, failed, len(good.Requests()))
	}
}

func TestNotifyTestCommand(t *testing.T) {
	t.Parallel()
	r := newReceivers(t)
	refused := notifytest.NewReceiver(t, 404)
	kv := append(r.env(), "WILDIX_PBX_ID=acme")
	res := runCLI(t, kv, "notify", "--test")
	if res.code != exitOK || strings.Count(res.stdout, "ok  ") != 3 || strings.Contains(res.stdout, "secret") {
		t.Fatalf("notify --test: exit %d %v\n%s%s", res.code, res.err, res.stdout, res.stderr)
	}
	r.wantEach(t, 1, notify.KindTest)
	kv = []string{"EXPORT_NOTIFY=" + refused.Server.URL + "/hooks/refused-secret " + r.slack.Server.URL + "/ok", "EXPORT_NOTIFY_STATE_FILE=" + r.stateFile}
	r.secret("refused-secret")
	res = runCLI(t, kv, "notify", "--test")
	if res.code != exitFailed || !strings.Contains(res.stdout, "FAIL  notify        webhook "+refused.Server.URL+"/[redacted]") ||
		!strings.Contains(res.stdout, "404") || strings.Contains(res.stdout, "refused-secret") {
		t.Fatalf("notify --test with a refusing target: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	if res := runCLI(t, nil, "notify", "--test"); res.code != exitConfig || !strings.Contains(res.err.Error(), "EXPORT_NOTIFY is not set") {
		t.Fatalf("notify --test without targets: exit %d %v", res.code, res.err)
	}
	if res := runCLI(t, kv, "notify"); res.code != exitConfig {
		t.Fatalf("notify without --test: exit %d %v", res.code, res.err)
	}
}

// TestNotifyTargetsShownRedacted: check lists the targets, config prints
// them and reports a bad one, never showing a URL's secret.
func TestNotifyTargetsShownRedacted(t *testing.T) {
	t.Parallel()
	f := authorized(t, pbxsim.Options{Calls: 10})
	notifyVar := "EXPORT_NOTIFY=https://hooks.slack.com/services/T0/B0/slack-secret smtps://me:mail-secret@mail.example.com?from=a@example.com&to=b@example.com"
	kv := fixtureEnv(f, t.TempDir(), notifyVar)
	res := runCLI(t, kv, "check")
	for _, want := range []string{"ok    notify        slack https://hooks.slack.com/[redacted]",
		"ok    notify        email smtps://me:[redacted]@mail.example.com from a@example.com to b@example.com"} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("check does not list %q:\n%s", want, res.stdout)
		}
	}
	res = runCLI(t, kv, "config")
	if !strings.Contains(res.stdout, "slack https://hooks.slack.com/[redacted]; email smtps://me:[redacted]@") {
		t.Errorf("config does not show the targets:\n%s", res.stdout)
	}
	bad := fixtureEnv(f, t.TempDir(), "EXPORT_NOTIFY=https://hooks.slack.com/services/T/B/slack-secret http://chat.example.com/hooks/bad-secret",
		"EXPORT_NOTIFY_SUMMARY_AT=25:00")
	res = runCLI(t, bad, "config")
	out := res.stdout + res.stderr + fmt.Sprint(res.err)
	if res.code != exitConfig || !strings.Contains(out, "EXPORT_NOTIFY: target 2: http://chat.example.com/[redacted]: http:// only for a loopback host") ||
		!strings.Contains(out, `EXPORT_NOTIFY_SUMMARY_AT="25:00"`) {
		t.Errorf("config with a bad target: exit %d\n%s", res.code, out)
	}
	for _, s := range []string{"slack-secret", "mail-secret", "bad-secret"} {
		if strings.Contains(out+res.stdout, s) {
			t.Errorf("a secret shows: %q", s)
		}
	}
}

// TestNotifySummaryFiguresAreTheViews: with the PostgreSQL sink, the
// first run after EXPORT_NOTIFY_SUMMARY_AT sends one summary whose
// figures of yesterday's calls are the reporting views' on the same data;
// the next run sends none.
func TestNotifySummaryFiguresAreTheViews(t *testing.T) {
	t.Parallel()
	rome, _ := time.LoadLocation("Europe/Rome")
	y, mo, d := time.Now().In(rome).Date()
	yesterday := time.Date(y, mo, d-1, 0, 0, 0, 0, rome)
	// 700 calls 5 minutes apart from the evening before yesterday: all of
	// yesterday and part of today.
	f := authorized(t, pbxsim.Options{Calls: 700, CallsStart: yesterday.Add(-3 * time.Hour), CallGap: 5 * time.Minute})
	r := newReceivers(t)
	r.secret(simtest.ClientSecret)
	r.secret(tokens(t, f.TokenFile)...)
	schema, pool := pgtest.Schema(t)
	kv := append(fixtureEnv(f, t.TempDir(), "EXPORT_SINK=postgres", "EXPORT_DATABASE_URL="+pgtest.URL(), "EXPORT_DB_SCHEMA="+schema,
		"EXPORT_NOTIFY_SUMMARY_AT=00:00"), r.env()...)
	if res := runCLI(t, kv, "run", "--once"); res.code != exitOK {
		t.Fatalf("run: exit %d %v\n%s", res.code, res.err, res.stderr)
	}
	g := r.wantEach(t, 1, notify.KindSummary)
	s := g.Summary
	if s == nil || s.Day != yesterday.Format(time.DateOnly) || s.Calls == nil {
		t.Fatalf("summary %+v: want yesterday's (%s), with calls", s, yesterday.Format(time.DateOnly))
	}
	// The views' figures, asked as a report would.
	var want notify.CallFigures
	ctx := context.Background()
	err := pool.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE answered),
  count(*) FILTER (WHERE direction = 'inbound' AND NOT answered AND type IS DISTINCT FROM 'fax')
FROM calls WHERE local_day = $1`, yesterday.Format(time.DateOnly)).Scan(&want.Calls, &want.Answered, &want.Missed)
	if err != nil {
		t.Fatal(err)
	}
	err = pool.QueryRow(ctx, `SELECT count(*) FROM missed_calls WHERE local_start::date = $1 AND next_call_id IS NULL`,
		yesterday.Format(time.DateOnly)).Scan(&want.NotCalledBack)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("yesterday: %+v", want)
	if *s.Calls != want {
		t.Errorf("summary's calls %+v, the views' %+v", *s.Calls, want)
	}
	if want.Calls < 200 || want.Answered == 0 || want.Missed == 0 || want.NotCalledBack == 0 || want.NotCalledBack == want.Missed {
		t.Errorf("the data do not test much: %+v", want)
	}
	if res := runCLI(t, kv, "run", "--once"); res.code != exitOK {
		t.Fatalf("second run: exit %d %v", res.code, res.err)
	}
	r.wantEach(t, 1, notify.KindSummary)
}

// TestNotifySummaryScheduledInTheWorker: the worker's schedule holds the
// summary at EXPORT_NOTIFY_SUMMARY_AT in the schedule's zone.
func TestNotifySummaryScheduledInTheWorker(t *testing.T) {
	t.Parallel()
	a, _, _ := cliApp([]string{"EXPORT_NOTIFY=https://hooks.slack.com/services/T/B/X", "EXPORT_NOTIFY_SUMMARY_AT=07:30", "EXPORT_TIMEZONE=America/New_York"})
	if err := a.load(config.Need{}); err != nil {
		t.Fatal(err)
	}
	c := cron.New(cron.WithLocation(a.cfg.ScheduleTimezone))
	a.newNotices(newMetrics(), nil).schedule(context.Background(), c)
	entries := c.Entries()
	if len(entries) != 1 {
		t.Fatalf("%d entries scheduled, want the summary's", len(entries))
	}
	ny, _ := time.LoadLocation("America/New_York")
	from := time.Date(2026, 12, 6, 13, 0, 0, 0, time.UTC) // 08:00 in New York
	if got, want := entries[0].Schedule.Next(from), time.Date(2026, 12, 7, 7, 30, 0, 0, ny); !got.Equal(want) {
		t.Errorf("next summary after %v: %v, want %v", from, got, want)
	}
}

// A hanging receiver, a failed run and a summary due: the failure and the
// summary together still delay the run's exit by 10 s at most (each alone
// took the notifier's whole budget, one after the other).
func TestNotifyFailureAndSummaryBoundTheRunTogether(t *testing.T) {
	t.Parallel()
	hang := notifytest.NewReceiver(t, 0, 0, 0, 0, 0, 0, 0, 0)
	base := []string{"WILDIX_API_KEY=wsk-v1-key", "WILDIX_PBX_ID=acme", "EXPORT_CSV_DIR=" + t.TempDir(), "EXPORT_MAX_ATTEMPTS=2",
		"WILDIX_TIMEZONE=Europe/Rome", "WILDIX_TOKEN_FILE=" + filepath.Join(t.TempDir(), "token.json"),
		"WILDIX_PBX_URL=http://" + freeAddr(t)}
	began := time.Now()
	plain := runCLI(t, base, "run", "--once")
	plainTook := time.Since(began)
	began = time.Now()
	notified := runCLI(t, append(base, "EXPORT_NOTIFY="+hang.Server.URL+"/hook", "EXPORT_NOTIFY_SUMMARY_AT=00:00"), "run", "--once")
	notifiedTook := time.Since(began)
	if plain.code != exitUnreachable || notified.code != exitUnreachable {
		t.Fatalf("exit %d without notifications, %d with; want %d both", plain.code, notified.code, exitUnreachable)
	}
	if extra := notifiedTook - plainTook; extra > 10*time.Second {
		t.Errorf("the failure and the summary delayed the run's exit by %v, more than 10 s", extra)
	}
	if len(hang.Requests()) == 0 {
		t.Error("nothing was sent to the receiver")
	}
}

// TestNotifyFailureRedacted (attack 30 L5): under numbers,names every
// failure sent to a webhook is redacted as the program's errors are: one
// of a run's endpoints (the PBX's status kept, its text, which named a
// person, left out) and one of a run that could not start, which no run
// redacted before (the export folder's path holding a number).
func TestNotifyFailureRedacted(t *testing.T) {
	t.Parallel()
	f := authorized(t, pbxsim.Options{Calls: 20, Rewrite: func(r *http.Request, status int, body []byte) (int, []byte) {
		if strings.Contains(r.URL.Path, "CallHistory") {
			return http.StatusBadRequest, []byte(`{"type":"error","reason":"no caller Mario Rossi, +39 333 1234567"}`)
		}
		return status, body
	}})
	blocked := filepath.Join(t.TempDir(), "not-a-folder")
	if err := os.WriteFile(blocked, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, dir, want string }{
		{"endpoint", t.TempDir(), "400 Bad Request"},
		{"start", filepath.Join(blocked, "export for +39 333 1234567"), "not a directory"},
	} {
		hook := notifytest.NewReceiver(t)
		r := runCLI(t, fixtureEnv(f, tc.dir, "EXPORT_ENDPOINTS=call_history", "EXPORT_PSEUDONYMIZE=numbers,names",
			"EXPORT_PSEUDONYM_KEY="+testKey1, "EXPORT_NOTIFY="+hook.Server.URL+"/hook", "EXPORT_NOTIFY_STATE_FILE="+filepath.Join(t.TempDir(), "n.json")),
			"run", "--once")
		if r.code == exitOK {
			t.Fatalf("%s: exit 0, want a failure", tc.name)
		}
		reqs := hook.Requests()
		if len(reqs) != 1 {
			t.Fatalf("%s: %d messages sent, want the failure (exit %d, %v)", tc.name, len(reqs), r.code, r.err)
		}
		body := string(reqs[0].Body)
		if strings.Contains(body, "Rossi") || strings.Contains(body, "1234567") || !strings.Contains(body, tc.want) {
			t.Errorf("%s: the failure sent holds the PBX's text or a number, or lacks %q:\n%s", tc.name, tc.want, body)
		}
	}
}
