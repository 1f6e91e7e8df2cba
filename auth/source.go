package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/sethvargo/go-retry"
	"golang.org/x/oauth2"
)

// Endpoint returns the PBX's OAuth 2.0 endpoints for a base URL such as
// https://acme.wildixin.com.
func Endpoint(pbxURL string) oauth2.Endpoint {
	return oauth2.Endpoint{AuthURL: pbxURL + "/authorization/oauth2", TokenURL: pbxURL + "/authorization/oauth2Token"}
}

// SourceOptions configure a Source.
type SourceOptions struct {
	Config     oauth2.Config // client id, secret, endpoint; Endpoint.AuthStyle is ignored
	ClientAuth string        // "auto" (default), "body" or "basic"
	Store      Store
	PBX        string
	HTTPClient *http.Client // for the token endpoint
	Log        *slog.Logger

	// AfterExchange, when set, is called once the PBX has answered a
	// refresh and before the new token is saved; an error abandons the new
	// token there, as a process killed at that moment would. It exists for
	// tests of that window (docs/reliability.md).
	AfterExchange func() error
}

// Source is a TokenSource that refreshes the PBX token before it expires
// and stores every new token, a rotated refresh token above all, before
// handing it out. Refreshes are serialised in the process and, through the
// store's lock, across processes; a process that finds a fresher token in
// the store takes it instead of refreshing again. Safe for concurrent use.
type Source struct {
	opt SourceOptions
	log *slog.Logger

	// sem serialises refreshes; a channel rather than a mutex, so that a
	// caller waiting for another's refresh gives up with its context.
	sem   chan struct{}
	cur   atomic.Pointer[Record] // read without sem: Expiry never waits
	stale atomic.Pointer[string] // an access token the PBX refused
}

// NewSource returns a Source. It keeps no context: each Token call's
// context bounds the refresh it makes.
func NewSource(o SourceOptions) *Source {
	if o.ClientAuth == "" {
		o.ClientAuth = "auto"
	}
	if o.HTTPClient == nil {
		o.HTTPClient = http.DefaultClient
	}
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Source{opt: o, log: log.With("pbx", o.PBX), sem: make(chan struct{}, 1)}
}

// margin is how long before expiry a token is refreshed: a fifth of its
// lifetime, at most a minute.
func margin(r *Record) time.Duration {
	life := r.Expiry.Sub(r.IssuedAt)
	return max(0, min(time.Minute, life/5))
}

func usable(r *Record, stale *string) bool {
	if r == nil || r.AccessToken == "" || (stale != nil && r.AccessToken == *stale) {
		return false
	}
	return r.Expiry.IsZero() || time.Until(r.Expiry) > margin(r)
}

// Token implements TokenSource. A refresh is bounded by ctx's deadline;
// once the PBX has been asked, cancelling ctx no longer abandons the
// answer, so that a rotated refresh token is saved (see refresh).
func (s *Source) Token(ctx context.Context) (*oauth2.Token, error) {
	if r := s.cur.Load(); usable(r, s.stale.Load()) {
		return r.Token(), nil
	}
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("wait for a token refresh: %w", ctx.Err())
	}
	defer func() { <-s.sem }()
	if r := s.cur.Load(); usable(r, s.stale.Load()) {
		return r.Token(), nil // refreshed while we waited
	}
	r, err := s.refresh(ctx)
	if err != nil {
		return nil, err
	}
	s.cur.Store(r)
	return r.Token(), nil
}

// Invalidate marks an access token as refused by the PBX (a 401), so the
// next Token call refreshes instead of returning it.
func (s *Source) Invalidate(accessToken string) {
	s.stale.Store(&accessToken)
}

// Expiry returns the expiry of the token in use, zero if none or unknown.
// It never waits for a refresh in progress.
func (s *Source) Expiry() time.Time {
	if r := s.cur.Load(); r != nil {
		return r.Expiry
	}
	return time.Time{}
}

// Timeouts of the steps of a refresh that must outlive a cancelled run.
const (
	exchangeTimeout = time.Minute      // the token request, when ctx has no deadline
	saveTimeout     = 30 * time.Second // saving a rotated token, retries included
)

func (s *Source) refresh(ctx context.Context) (*Record, error) {
	unlock, err := s.opt.Store.Lock(ctx, s.opt.PBX)
	if err != nil {
		return nil, err
	}
	defer unlock()
	stored, err := s.opt.Store.Load(ctx, s.opt.PBX)
	if errors.Is(err, ErrNoToken) {
		return nil, fmt.Errorf("%w: %v", ErrReauthorize, err)
	}
	if err != nil {
		return nil, err
	}
	if usable(stored, s.stale.Load()) {
		// Another process refreshed while we waited for the lock.
		s.log.Debug("token taken from store", "expiry", stored.Expiry)
		return stored, nil
	}
	if stored.RefreshToken == "" {
		return nil, fmt.Errorf("%w: the stored token has expired and has no refresh token", ErrReauthorize)
	}
	// From here on the PBX may rotate the refresh token: a cancellation
	// (SIGTERM) must not abandon its answer, while the run's deadline
	// still bounds the request.
	xctx, cancel := keepDeadline(ctx, exchangeTimeout)
	defer cancel()
	tok, style, err := exchange(xctx, s.opt.HTTPClient, s.opt.Config, s.opt.ClientAuth, stored.ClientAuth,
		func(ctx context.Context, cfg *oauth2.Config) (*oauth2.Token, error) {
			return cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: stored.RefreshToken}).Token()
		})
	if err != nil {
		return nil, fmt.Errorf("refresh token: %w", err)
	}
	next := recordFrom(tok, style, s.opt.Config.ClientID)
	if next.RefreshToken == "" {
		next.RefreshToken = stored.RefreshToken // the PBX kept the old one
	}
	if s.opt.AfterExchange != nil {
		if err := s.opt.AfterExchange(); err != nil {
			return nil, fmt.Errorf("refresh token: %w", err)
		}
	}
	// The PBX may already have invalidated the old refresh token: the new
	// one must be durable before anything uses the new access token.
	if err := s.save(ctx, next); err != nil {
		return nil, fmt.Errorf("store refreshed token (the PBX may have rotated the refresh token; if the next run fails, run `wildix-export authorize`): %w", err)
	}
	s.log.Debug("token refreshed and stored", "expiry", next.Expiry)
	return next, nil
}

// save stores a refreshed token, retrying with backoff, on a context that
// a cancelled run does not cancel: losing it may lose the authorization.
func (s *Source) save(ctx context.Context, r *Record) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), saveTimeout)
	defer cancel()
	// A fresh backoff per save: go-retry backoffs keep state.
	b := retry.WithMaxRetries(6, retry.WithCappedDuration(5*time.Second, retry.WithJitterPercent(20, retry.NewExponential(100*time.Millisecond))))
	attempt := 0
	return retry.Do(ctx, b, func(ctx context.Context) error {
		attempt++
		err := s.opt.Store.Save(ctx, s.opt.PBX, r)
		if err != nil {
			s.log.Warn("storing refreshed token failed, retrying", "err", err, "attempt", attempt)
			return retry.RetryableError(err)
		}
		return nil
	})
}

// keepDeadline returns a context that ctx's cancellation does not cancel
// but that ends at ctx's deadline, or after fallback when it has none.
func keepDeadline(ctx context.Context, fallback time.Duration) (context.Context, context.CancelFunc) {
	detached := context.WithoutCancel(ctx)
	if d, ok := ctx.Deadline(); ok {
		return context.WithDeadline(detached, d)
	}
	return context.WithTimeout(detached, fallback)
}

func recordFrom(tok *oauth2.Token, style, clientID string) *Record {
	return &Record{
		AccessToken: tok.AccessToken, TokenType: tok.TokenType, RefreshToken: tok.RefreshToken,
		Expiry: tok.Expiry, ClientAuth: style, ClientID: clientID, IssuedAt: time.Now(),
	}
}

// exchange calls the token endpoint with the client credentials in the
// form body or in HTTP Basic. The PBX is reported to refuse Basic while the
// Wildix Postman guide uses it, so "auto" tries the remembered style, else
// the body first, and falls back to the other on invalid_client. Client
// authentication fails before a code or refresh token is looked at, so the
// retry does not spend them.
func exchange(ctx context.Context, hc *http.Client, cfg oauth2.Config, setting, remembered string,
	call func(context.Context, *oauth2.Config) (*oauth2.Token, error)) (*oauth2.Token, string, error) {
	// The client secret, codes and refresh tokens go in the request: a
	// redirect may lead only within the token endpoint's (the PBX's) origin.
	ctx = context.WithValue(ctx, oauth2.HTTPClient, originClient(hc, cfg.Endpoint.TokenURL))
	styles := []string{setting}
	if setting == "auto" || setting == "" {
		styles = []string{"body", "basic"}
		if remembered == "basic" {
			styles = []string{"basic", "body"}
		}
	}
	var firstErr error
	for _, style := range styles {
		c := cfg
		c.Endpoint.AuthStyle = oauth2.AuthStyleInParams
		if style == "basic" {
			c.Endpoint.AuthStyle = oauth2.AuthStyleInHeader
		}
		tok, err := call(ctx, &c)
		if err == nil {
			return tok, style, nil
		}
		if re := (*RedirectError)(nil); errors.As(err, &re) {
			// Not a network error to retry (the url.Error around it would
			// look like one to the caller): the PBX sends us elsewhere.
			return nil, "", fmt.Errorf("token endpoint: %w", re)
		}
		err = explainTokenError(err)
		if firstErr == nil {
			firstErr = err
		}
		var re *oauth2.RetrieveError
		if !errors.As(err, &re) || re.ErrorCode != "invalid_client" {
			return nil, "", err
		}
	}
	return nil, "", firstErr
}

// TokenError is a refusal from the token endpoint, described without the
// response body (which a PBX could fill with anything).
type TokenError struct {
	Code, Description string
	Status            int
	err               *oauth2.RetrieveError
}

func (e *TokenError) Error() string {
	msg := fmt.Sprintf("the PBX's token endpoint answered %d %s", e.Status, e.Code)
	if e.Description != "" {
		msg += fmt.Sprintf(" (%s)", e.Description)
	}
	switch e.Code {
	case "invalid_client":
		msg += ": check WILDIX_CLIENT_ID and WILDIX_CLIENT_SECRET against the OAuth 2.0 application in WMS"
	case "invalid_grant":
		msg += ": the authorization was revoked, expired or already used; run `wildix-export authorize` again"
	}
	return msg
}

func (e *TokenError) Unwrap() []error {
	errs := []error{e.err}
	if e.Code == "invalid_grant" {
		errs = append(errs, ErrReauthorize)
	}
	return errs
}

func explainTokenError(err error) error {
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) {
		return err
	}
	te := &TokenError{Code: re.ErrorCode, Description: re.ErrorDescription, err: re}
	if re.Response != nil {
		te.Status = re.Response.StatusCode
	}
	if te.Code == "" {
		te.Code = "an unexpected answer"
	}
	return te
}
