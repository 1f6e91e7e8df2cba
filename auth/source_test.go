package auth

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wildix-export/wildix-export/internal/pbxsim"
)

var errKilled = errors.New("killed right after the PBX answered (test hook)")

// TestKilledBetweenThePBXAnswerAndTheSave is the one window no client can
// close: the PBX has rotated a single-use refresh token and the process
// dies before the new one is stored. The next start must say to authorize
// again (ErrReauthorize, exit 3 in the CLI) and lose nothing else: the
// stored record is the old one, whole, and other PBXes' tokens are intact.
func TestKilledBetweenThePBXAnswerAndTheSave(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, pbxsim.Options{RotateRefreshTokens: true})
	store := fileStore(t, nil)
	f.authorize(t, store, "auto")
	other := &Record{AccessToken: "at_other", RefreshToken: "rt_other", IssuedAt: time.Now().UTC().Truncate(time.Second)}
	if err := store.Save(ctx, "other-pbx", other); err != nil {
		t.Fatal(err)
	}
	expire(t, store)
	before := mustLoad(t, store)

	killed := NewSource(SourceOptions{Config: f.cfg, Store: store, PBX: "pbx1", AfterExchange: func() error { return errKilled }})
	if _, err := killed.Token(ctx); !errors.Is(err, errKilled) {
		t.Fatalf("refresh with the hook: %v, want the hook's error", err)
	}
	if n := f.sim.Stats.Refreshes.Load(); n != 1 {
		t.Fatalf("the PBX answered %d refreshes, want 1 (the window is after its answer)", n)
	}

	_, err := NewSource(SourceOptions{Config: f.cfg, Store: store, PBX: "pbx1"}).Token(ctx)
	if !errors.Is(err, ErrReauthorize) || !strings.Contains(err.Error(), "run `wildix-export authorize` again") {
		t.Fatalf("next start: err = %v, want ErrReauthorize with the message to authorize", err)
	}
	if got := mustLoad(t, store); got.RefreshToken != before.RefreshToken || got.AccessToken != before.AccessToken {
		t.Fatal("the stored record changed")
	}
	got, err := store.Load(ctx, "other-pbx")
	if err != nil || got.RefreshToken != other.RefreshToken || got.AccessToken != other.AccessToken {
		t.Fatalf("the other PBX's token: %v, %v", got, err)
	}
	// Authorizing again is all it takes.
	f.authorize(t, store, "auto")
	if code := f.call(t, NewSource(SourceOptions{Config: f.cfg, Store: store, PBX: "pbx1"})); code != 200 {
		t.Fatalf("after authorizing again: %d", code)
	}
}

// flakyStore fails its first saves, as a database restarting would.
type flakyStore struct {
	Store
	failures atomic.Int32
	saves    atomic.Int32
}

func (s *flakyStore) Save(ctx context.Context, pbx string, r *Record) error {
	s.saves.Add(1)
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.failures.Add(-1) >= 0 {
		return errors.New("database restarting (test)")
	}
	return s.Store.Save(ctx, pbx, r)
}

// TestRotatedTokenSavedDespiteCancellation: SIGTERM (the run's context
// cancelled) right after the PBX answered a refresh, and the store failing
// twice: the rotated token is still saved, after backoff, and the next
// process refreshes with it.
func TestRotatedTokenSavedDespiteCancellation(t *testing.T) {
	t.Parallel()
	f := newFixture(t, pbxsim.Options{RotateRefreshTokens: true})
	fs := fileStore(t, nil)
	f.authorize(t, fs, "auto")
	expire(t, fs)
	store := &flakyStore{Store: fs}
	store.failures.Store(2)
	ctx, cancel := context.WithCancel(context.Background())
	src := NewSource(SourceOptions{Config: f.cfg, Store: store, PBX: "pbx1", AfterExchange: func() error { cancel(); return nil }})
	start := time.Now()
	if _, err := src.Token(ctx); err != nil {
		t.Fatalf("refresh cancelled after the PBX answered: %v", err)
	}
	if n := store.saves.Load(); n != 3 {
		t.Fatalf("saves = %d, want 3 (two failures, then success)", n)
	}
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Fatalf("three saves in %v: the retries did not back off", d)
	}
	expire(t, fs)
	if _, err := NewSource(SourceOptions{Config: f.cfg, Store: fs, PBX: "pbx1"}).Token(context.Background()); err != nil {
		t.Fatalf("next process: %v (the rotated token was lost)", err)
	}
}

// TestRefreshBoundedAndExpiryNeverWaits: a token endpoint that never
// answers holds a refresh; Expiry answers meanwhile, a second caller gives
// up with its own context, and the refresh ends at its caller's deadline.
func TestRefreshBoundedAndExpiryNeverWaits(t *testing.T) {
	t.Parallel()
	f := newFixture(t, pbxsim.Options{})
	store := fileStore(t, nil)
	rec := f.authorize(t, store, "auto")
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/authorization/oauth2Token" {
			entered <- struct{}{}
			select {
			case <-release:
			case <-r.Context().Done():
			}
			return
		}
		f.sim.ServeHTTP(w, r)
	}))
	defer front.Close()
	defer close(release)
	cfg := f.cfg
	cfg.Endpoint = Endpoint(front.URL)
	src := NewSource(SourceOptions{Config: cfg, Store: store, PBX: "pbx1"})
	if _, err := src.Token(context.Background()); err != nil { // the stored, valid token
		t.Fatal(err)
	}
	src.Invalidate(rec.AccessToken)

	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err := src.Token(ctx)
		done <- err
	}()
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the refresh never reached the token endpoint")
	}
	expiry := make(chan time.Time, 1)
	go func() { expiry <- src.Expiry() }()
	select {
	case e := <-expiry:
		if !e.Equal(rec.Expiry) {
			t.Fatalf("Expiry = %v, want %v", e, rec.Expiry)
		}
	case <-time.After(time.Second):
		t.Fatal("Expiry waited for the refresh")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := src.Token(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("a second caller with a cancelled context: %v", err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("refresh: %v, want the caller's deadline", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the refresh outlived its caller's deadline")
	}
}
