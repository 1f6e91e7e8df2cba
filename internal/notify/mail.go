package notify

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/wneessen/go-mail"
)

var authTypes = map[string]mail.SMTPAuthType{
	"auto":          mail.SMTPAuthAutoDiscover,
	"plain":         mail.SMTPAuthPlain,
	"login":         mail.SMTPAuthLogin,
	"cram-md5":      mail.SMTPAuthCramMD5,
	"scram-sha-256": mail.SMTPAuthSCRAMSHA256,
}

// sendMail sends m as one plain-text e-mail to every recipient of the
// target, over one connection that lasts at most until ctx's deadline.
func sendMail(ctx context.Context, t *mailTarget, m *Message, id string) error {
	msg := mail.NewMsg()
	if err := msg.From(t.from); err != nil {
		return fmt.Errorf("%w: from %s: %v", errPermanent, t.from, err)
	}
	if err := msg.To(t.to...); err != nil {
		return fmt.Errorf("%w: to: %v", errPermanent, err)
	}
	msg.Subject(m.Title())
	msg.SetBodyString(mail.TypeTextPlain, m.Text())
	msg.SetMessageIDWithValue(id + "@wildix-export")
	msg.SetDateWithValue(m.At)
	// RFC 3834: automatic replies must not answer it.
	msg.SetGenHeader("Auto-Submitted", "auto-generated")

	c, err := mail.NewClient(t.host, t.options(ctx)...)
	if err != nil {
		return fmt.Errorf("%w: %v", errPermanent, err)
	}
	err = c.DialAndSendWithContext(ctx, msg)
	if err == nil {
		return nil
	}
	err = fmt.Errorf("smtp %s:%d: %w", t.host, t.port, scrubPassword(err, t.password))
	if permanentMail(err) {
		return fmt.Errorf("%w: %w", errPermanent, err)
	}
	return err
}

func (t *mailTarget) options(ctx context.Context) []mail.Option {
	timeout := 30 * time.Second
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
	}
	opts := []mail.Option{
		mail.WithPort(t.port),
		mail.WithTimeout(timeout),
		mail.WithTLSConfig(&tls.Config{ServerName: t.host, RootCAs: t.roots, MinVersion: tls.VersionTLS12}),
	}
	switch {
	case t.implicitTLS:
		opts = append(opts, mail.WithSSL())
	case t.startTLS == "opportunistic":
		opts = append(opts, mail.WithTLSPolicy(mail.TLSOpportunistic))
	case t.startTLS == "none":
		opts = append(opts, mail.WithTLSPolicy(mail.NoTLS))
	default:
		opts = append(opts, mail.WithTLSPolicy(mail.TLSMandatory))
	}
	if t.user != "" {
		opts = append(opts, mail.WithSMTPAuth(authTypes[t.auth]), mail.WithUsername(t.user), mail.WithPassword(t.password))
	}
	return opts
}

// permanentMail tells a refusal a retry cannot change: a 5xx SMTP answer
// (an unknown recipient, a refused login) or a certificate not trusted.
func permanentMail(err error) bool {
	var se *mail.SendError
	if errors.As(err, &se) {
		return !se.IsTemp()
	}
	var ce *tls.CertificateVerificationError
	return errors.As(err, &ce)
}

func scrubPassword(err error, password string) error {
	if password == "" || !strings.Contains(err.Error(), password) {
		return err
	}
	return &redactedError{msg: strings.ReplaceAll(err.Error(), password, redacted), err: err}
}
