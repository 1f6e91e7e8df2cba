package auth

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/oauth2"
)

// AuthorizeOptions configure the authorization-code flow.
type AuthorizeOptions struct {
	Config     oauth2.Config // client id, secret, endpoint, redirect URL, scopes
	ClientAuth string        // "auto", "body" or "basic"
	HTTPClient *http.Client
	// Store keeps the token and, between the two steps, the authorization
	// in progress.
	Store PendingStore
	PBX   string

	// RedirectedTo is the address the browser landed on, or the bare code:
	// Authorize then only finishes the authorization in progress (the
	// --redirect-url flag). When empty, the paste flow reads it from Stdin.
	RedirectedTo string
	Stdin        io.Reader
	Stdout       io.Writer // the authorization URL, on a line of its own
	Stderr       io.Writer // instructions for the person
	Timeout      time.Duration
	OpenBrowser  bool
	// Ready, when set, is called with the authorization URL once the
	// loopback listener accepts the redirect (the demo plays the browser).
	Ready func(authURL string)
	// Listener, when set, is a listener already open on the loopback
	// Redirect URI's address, served instead of listening on it (closed
	// by the flow once served; by the caller otherwise). A caller that
	// picks a free port and keeps it open (the demo, the tests' fixture)
	// cannot lose it to another socket between choosing and listening.
	Listener net.Listener
	Log      *slog.Logger
}

// servesLocally reports whether this process can receive the redirect
// itself: http on 127.0.0.1, [::1] or localhost with a port, and not the
// PBX's own host and port (a Redirect URI such as https://{PBX}/api/v1/doc/
// lands on the PBX, even when the PBX is on a loopback address).
func servesLocally(redirect, pbx string) bool {
	u, err := url.Parse(redirect)
	if err != nil || u.Scheme != "http" || u.Port() == "" {
		return false
	}
	if p, err := url.Parse(pbx); err == nil && strings.EqualFold(p.Hostname(), u.Hostname()) && hostPort(p) == u.Port() {
		return false
	}
	h := u.Hostname()
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

func hostPort(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	if strings.EqualFold(u.Scheme, "https") {
		return "443"
	}
	return "80"
}

// Authorize runs the whole authorization-code flow (random state, PKCE)
// and stores the token for the PBX. With a loopback redirect URI it
// listens for the redirect itself; otherwise the person pastes the address
// the browser landed on. With RedirectedTo set it only finishes the
// authorization in progress (FinishAuthorize), which may have been started
// by another process or machine sharing the store.
func Authorize(ctx context.Context, o AuthorizeOptions) (*Record, error) {
	if o.RedirectedTo != "" {
		return FinishAuthorize(ctx, o, o.RedirectedTo)
	}
	if o.Timeout == 0 {
		o.Timeout = 5 * time.Minute
	}
	if o.Stderr == nil {
		o.Stderr = io.Discard
	}
	p, authURL, err := BeginAuthorize(ctx, o)
	if err != nil {
		return nil, err
	}
	var back landing
	if servesLocally(o.Config.RedirectURL, o.Config.Endpoint.AuthURL) {
		back, err = loopback(ctx, o, authURL, p.State)
	} else {
		back, err = paste(o, authURL)
	}
	if err != nil {
		return nil, err
	}
	return finish(ctx, o, p, back)
}

// landing is what came back from the consent page.
type landing struct {
	q url.Values
	// bare: the person gave only the code, so there is no state to
	// compare. It comes from how the input was given (parseLanded: not an
	// address at all), never from anything in an address, which whoever
	// made the browser land there controls.
	bare bool
}

// BeginAuthorize starts an authorization: a fresh state and PKCE
// verifier, a check that the PBX accepts the request, and the authorization
// in progress saved in the store for PendingTTL, replacing any earlier one
// of the PBX. It returns what was saved and the address the person opens;
// FinishAuthorize, in this process or another sharing the store, completes
// it with the address the browser lands on.
func BeginAuthorize(ctx context.Context, o AuthorizeOptions) (*Pending, string, error) {
	authEndpoint, err := url.Parse(o.Config.Endpoint.AuthURL)
	if err != nil {
		return nil, "", fmt.Errorf("authorization endpoint: %w", err)
	}
	now := time.Now()
	p := &Pending{
		State: randomString(24), Verifier: oauth2.GenerateVerifier(), RedirectURI: o.Config.RedirectURL,
		Origin: origin(authEndpoint), ClientID: o.Config.ClientID, Started: now, Expires: now.Add(PendingTTL),
	}
	authURL := o.Config.AuthCodeURL(p.State, oauth2.S256ChallengeOption(p.Verifier))
	if err := probe(ctx, o.HTTPClient, authURL, o.Config.RedirectURL); err != nil {
		return nil, "", err
	}
	unlock, err := o.Store.Lock(ctx, o.PBX)
	if err != nil {
		return nil, "", err
	}
	defer unlock()
	if err := o.Store.SavePending(ctx, o.PBX, p); err != nil {
		return nil, "", err
	}
	return p, authURL, nil
}

// FinishAuthorize completes the authorization in progress for o.PBX with
// landed, the address the browser landed on (or the bare code): it checks
// that the authorization is this PBX's and this application's, not
// expired, and that the redirect's state matches, exchanges the code with
// the saved PKCE verifier, stores the token and ends the authorization in
// progress.
func FinishAuthorize(ctx context.Context, o AuthorizeOptions, landed string) (*Record, error) {
	p, err := o.Store.LoadPending(ctx, o.PBX)
	if errors.Is(err, ErrNoPending) {
		return nil, fmt.Errorf("%w: start one with `wildix-export authorize` (or `authorize --print-url`), approve it in the browser, then pass the address the browser landed on", err)
	}
	if err != nil {
		return nil, err
	}
	back, err := parseLanded(landed)
	if err != nil {
		return nil, err
	}
	return finish(ctx, o, p, back)
}

func finish(ctx context.Context, o AuthorizeOptions, p *Pending, back landing) (*Record, error) {
	if authEndpoint, err := url.Parse(o.Config.Endpoint.AuthURL); err != nil || origin(authEndpoint) != p.Origin {
		return nil, fmt.Errorf("the authorization in progress for PBX %s was started against %s, not this WILDIX_PBX_URL: run `wildix-export authorize` again", o.PBX, p.Origin)
	}
	if p.ClientID != o.Config.ClientID {
		return nil, fmt.Errorf("the authorization in progress for PBX %s was started for another application (WILDIX_CLIENT_ID %s): run `wildix-export authorize` again", o.PBX, p.ClientID)
	}
	if err := p.usable(o.PBX, time.Now()); err != nil {
		return nil, err
	}
	// The state first: an error= without the right state is as forged as
	// a code= without it.
	if !back.bare && !sameState(back.q.Get("state"), p.State) {
		return nil, errors.New("the state in the redirect does not match the authorization in progress: it came from another attempt (only the latest counts) or was forged; run authorize again")
	}
	if e := back.q.Get("error"); e != "" {
		if e == "access_denied" {
			return nil, errors.New("access was denied on the PBX's consent page: run authorize again and approve the application")
		}
		return nil, fmt.Errorf("the PBX refused the authorization: %s %s", e, back.q.Get("error_description"))
	}
	code := back.q.Get("code")
	if code == "" {
		return nil, errors.New("the redirect carries no code: paste the whole address the browser landed on, which contains code=")
	}
	cfg := o.Config
	cfg.RedirectURL = p.RedirectURI // the exchange must repeat the authorization request's
	tok, style, err := exchange(ctx, o.HTTPClient, cfg, o.ClientAuth, "",
		func(ctx context.Context, cfg *oauth2.Config) (*oauth2.Token, error) {
			return cfg.Exchange(ctx, code, oauth2.VerifierOption(p.Verifier))
		})
	if err != nil {
		var te *TokenError
		if errors.As(err, &te) && te.Code == "invalid_grant" {
			return nil, fmt.Errorf("exchange code: %v; codes are single use and short-lived, and redirect_uri must be exactly the registered %s: run authorize again", err, p.RedirectURI)
		}
		return nil, fmt.Errorf("exchange code: %w", err)
	}
	rec := recordFrom(tok, style, o.Config.ClientID)
	// The code is spent: store its token even if the person presses Ctrl-C.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), saveTimeout)
	defer cancel()
	unlock, err := o.Store.Lock(sctx, o.PBX)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if err := o.Store.Save(sctx, o.PBX, rec); err != nil {
		return nil, fmt.Errorf("store token: %w", err)
	}
	// End this authorization in progress, not a newer one started since.
	if cur, err := o.Store.LoadPending(sctx, o.PBX); err == nil && cur.State == p.State {
		if err := o.Store.DeletePending(sctx, o.PBX); err != nil {
			return nil, fmt.Errorf("token stored; end the authorization in progress: %w", err)
		}
	}
	return rec, nil
}

// probe asks for the consent page without following it, to turn a
// misconfiguration into a message before a person opens a browser.
func probe(ctx context.Context, hc *http.Client, authURL, redirect string) error {
	c := *hc
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, authURL, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("reach the PBX's authorization page: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 400 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 2048))
		text := strings.TrimSpace(string(b))
		hint := "check WILDIX_PBX_URL and WILDIX_CLIENT_ID"
		if strings.Contains(strings.ToLower(text), "redirect") {
			hint = fmt.Sprintf("register %s as a Redirect URI of the application in WMS (Settings > PBX > Integrations > Applications), or set WILDIX_REDIRECT_URL to one that is", redirect)
		}
		return fmt.Errorf("the PBX refused the authorization request (%d: %.200s): %s", resp.StatusCode, text, hint)
	}
	return nil
}

// loopback listens on the loopback Redirect URI until the redirect of
// the authorization whose state is state arrives, and returns it. Any
// other request to the address (a wrong or missing state, a code without
// one, an error= without one: a local process or a web page open in the
// browser can send them) is answered 400, logged without its code, and
// ignored: only the timeout, ctx or the right redirect end the wait.
func loopback(ctx context.Context, o AuthorizeOptions, authURL, state string) (landing, error) {
	u, _ := url.Parse(o.Config.RedirectURL)
	ln := o.Listener
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", u.Host); err != nil {
			return landing{}, fmt.Errorf("listen on %s for the redirect (WILDIX_REDIRECT_URL): %w; free the port or register another loopback Redirect URI", u.Host, err)
		}
	}
	got := make(chan url.Values, 1)
	// Whoever reaches the address (any local process) must not be able to
	// hold connections, and with them the file descriptors the code
	// exchange and the store need: the redirect is one request, so each
	// connection is closed once answered, and within the timeouts if it
	// never finishes its request. A flood of connections can still delay
	// the person's redirect (docs/security.md), never plant one.
	srv := &http.Server{ReadHeaderTimeout: loopbackHeaderTimeout, ReadTimeout: loopbackHeaderTimeout, WriteTimeout: loopbackHeaderTimeout,
		MaxHeaderBytes: 64 << 10, ErrorLog: slog.NewLogLogger(o.logger().Handler(), slog.LevelWarn),
		Handler: &redirectHandler{path: u.Path, state: state, got: got, log: o.logger()}}
	srv.SetKeepAlivesEnabled(false)
	go srv.Serve(ln)
	defer func() {
		// Let the browser receive its page before the listener goes.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Second)
		defer cancel()
		if srv.Shutdown(sctx) != nil {
			srv.Close()
		}
	}()

	fmt.Fprintln(o.Stderr, "Open this address in a browser and approve the application:")
	fmt.Fprintln(o.Stdout, authURL)
	if o.OpenBrowser {
		openBrowser(authURL)
	}
	if o.Ready != nil {
		go o.Ready(authURL)
	}
	t := time.NewTimer(o.Timeout)
	defer t.Stop()
	select {
	case q := <-got:
		return landing{q: q}, nil
	case <-t.C:
		return landing{}, fmt.Errorf("no redirect reached %s within %s: open the address above, and check that it is registered as the Redirect URI", o.Config.RedirectURL, o.Timeout)
	case <-ctx.Done():
		return landing{}, ctx.Err()
	}
}

// loopbackHeaderTimeout is how long the loopback listener waits for a
// request's headers.
const loopbackHeaderTimeout = 5 * time.Second

// redirectHandler receives the redirect on the loopback address and hands
// the first one carrying the authorization's state to got.
type redirectHandler struct {
	path, state string
	got         chan<- url.Values
	log         *slog.Logger
	ignored     atomic.Int64 // requests ignored so far
}

func (h *redirectHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != h.path && !(h.path == "" && r.URL.Path == "/") {
		http.NotFound(w, r)
		return
	}
	q := r.URL.Query()
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if !sameState(q.Get("state"), h.state) {
		h.logIgnored(r, q)
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, "<!doctype html><title>wildix-export</title><h1>Ignored</h1><p>This address is not the authorization wildix-export is waiting for: open the address the terminal shows.</p>")
		return
	}
	if q.Get("code") != "" && q.Get("error") == "" {
		fmt.Fprint(w, "<!doctype html><title>wildix-export</title><h1>Authorized</h1><p>wildix-export received the authorization. You can close this window.</p>")
	} else {
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, "<!doctype html><title>wildix-export</title><h1>Not authorized</h1><p>%s</p><p>See the terminal for what to do.</p>",
			html.EscapeString(q.Get("error")+" "+q.Get("error_description")))
	}
	select {
	case h.got <- q:
	default:
	}
}

// loggedIgnored is how many ignored redirects are logged: whoever sends
// them without end must not bury the terminal, and the address the person
// opens, under warnings.
const loggedIgnored = 10

// logIgnored logs an ignored redirect, the first loggedIgnored of them.
// Neither the code nor the error's text is logged: the first is a
// credential, the second whatever the sender chose.
func (h *redirectHandler) logIgnored(r *http.Request, q url.Values) {
	switch n := h.ignored.Add(1); {
	case n <= loggedIgnored:
		h.log.Warn("redirect ignored: its state is not the authorization in progress's",
			"remote_addr", r.RemoteAddr, "has_state", q.Has("state"), "has_code", q.Has("code"), "has_error", q.Has("error"))
	case n == loggedIgnored+1:
		h.log.Warn("further forged redirects are not logged: something keeps sending requests to the loopback address",
			"remote_addr", r.RemoteAddr)
	}
}

// sameState compares states in constant time; an empty one never matches.
func sameState(got, want string) bool {
	return want != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

func (o AuthorizeOptions) logger() *slog.Logger {
	if o.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return o.Log
}

func paste(o AuthorizeOptions, authURL string) (landing, error) {
	landed := o.RedirectedTo
	if landed == "" {
		fmt.Fprintln(o.Stderr, "Open this address in a browser and approve the application:")
		fmt.Fprintln(o.Stdout, authURL)
		fmt.Fprintf(o.Stderr, "The browser then lands on %s?code=...\nPaste that whole address (or just the code) here and press Enter:\n", o.Config.RedirectURL)
		if o.Stdin == nil {
			return landing{}, fmt.Errorf("no standard input to read the redirect from: finish within %s with `wildix-export authorize --redirect-url '<the address>'`", PendingTTL)
		}
		line, err := bufio.NewReader(o.Stdin).ReadString('\n')
		if err != nil && line == "" {
			return landing{}, fmt.Errorf("nothing was pasted: the authorization stays in progress for %s; finish it, from any machine sharing the token store, with `wildix-export authorize --redirect-url '<the address the browser landed on>'`", PendingTTL)
		}
		landed = strings.TrimSpace(line)
	}
	return parseLanded(landed)
}

// parseLanded reads the address the browser landed on, or a bare code:
// input that is not an address at all (no scheme://, query, fragment or
// key=value), which only the person typing it can make so. Anything that
// looks like an address is read as one, and must carry the state.
func parseLanded(s string) (landing, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return landing{}, errors.New("the pasted address is empty")
	}
	if !strings.ContainsAny(s, "=?&# \t") && !strings.Contains(s, "://") {
		return landing{q: url.Values{"code": {s}}, bare: true}, nil
	}
	if i := strings.IndexByte(s, '?'); i >= 0 {
		s = s[i+1:]
	}
	if i := strings.IndexByte(s, '#'); i >= 0 {
		s = s[:i]
	}
	q, err := url.ParseQuery(s)
	if err != nil {
		return landing{}, fmt.Errorf("the pasted address cannot be read: %w", err)
	}
	return landing{q: q}, nil
}

func openBrowser(u string) {
	if os.Getenv("DISPLAY") == "" && os.Getenv("WAYLAND_DISPLAY") == "" {
		return
	}
	for _, cmd := range []string{"xdg-open", "sensible-browser"} {
		if p, err := exec.LookPath(cmd); err == nil {
			c := exec.Command(p, u)
			if c.Start() == nil {
				go c.Wait()
			}
			return
		}
	}
}

func randomString(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return base64.RawURLEncoding.EncodeToString(b)
}
