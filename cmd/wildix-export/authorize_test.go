package main

// Tests of authorization through the CLI, in process: run(ctx, args, stdin,
// stdout, stderr) with the configuration in the environment (t.Setenv, so
// these tests do not run in parallel).

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wildix-export/wildix-export/auth"
	"github.com/wildix-export/wildix-export/internal/pbxsim"
	"github.com/wildix-export/wildix-export/internal/simtest"
)

// azEnv sets the environment for an in-process run, every WILDIX_ and
// EXPORT_ variable of the machine cleared first.
func azEnv(t *testing.T, kv ...string) {
	t.Helper()
	for _, e := range os.Environ() {
		k, _, _ := strings.Cut(e, "=")
		if strings.HasPrefix(k, "WILDIX_") || strings.HasPrefix(k, "EXPORT_") {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
	for _, e := range kv {
		k, v, _ := strings.Cut(e, "=")
		t.Setenv(k, v)
	}
}

type azResult struct {
	err            error
	code           int
	stdout, stderr string
}

// azRun runs the CLI in process.
func azRun(t *testing.T, stdin string, args ...string) azResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out, errb bytes.Buffer
	err := run(ctx, args, strings.NewReader(stdin), &out, &errb)
	return azResult{err, exitCode(err), out.String(), errb.String()}
}

// azTree reads every file under dir, by relative path.
func azTree(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		files[rel] = b
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// TestRefreshLostInTheWindowExitsThree: the PBX rotates a single-use
// refresh token and the process dies before saving the new one (a fault
// hook, exactly there). The next run exits 3 with the message to run
// `wildix-export authorize`, and the data and cursors already exported are
// untouched.
func TestRefreshLostInTheWindowExitsThree(t *testing.T) {
	f := simtest.New(t, pbxsim.Options{Calls: 30, RotateRefreshTokens: true})
	f.Authorize(t)
	dir := t.TempDir()
	azEnv(t, "WILDIX_PBX_URL="+f.Server.URL, "WILDIX_CLIENT_ID="+simtest.ClientID, "WILDIX_CLIENT_SECRET="+simtest.ClientSecret,
		"WILDIX_REDIRECT_URL="+f.Redirect, "WILDIX_TOKEN_FILE="+f.TokenFile, "EXPORT_CSV_DIR="+dir,
		"WILDIX_TIMEZONE=Europe/Rome", "EXPORT_LOG_FORMAT=json")
	if r := azRun(t, "", "run", "--once"); r.err != nil {
		t.Fatalf("first run: exit %d: %v\n%s", r.code, r.err, r.stderr)
	}
	exported := azTree(t, dir)
	if len(exported) == 0 {
		t.Fatal("the first run wrote nothing")
	}

	// A process refreshing, killed right after the PBX answered.
	store, err := auth.NewFileStore(f.TokenFile, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	rec, err := store.Load(ctx, f.URL.Host)
	if err != nil {
		t.Fatal(err)
	}
	rec.Expiry = time.Now().Add(-time.Minute)
	if err := store.Save(ctx, f.URL.Host, rec); err != nil {
		t.Fatal(err)
	}
	killed := errors.New("killed (test hook)")
	src := auth.NewSource(auth.SourceOptions{Config: f.OAuthConfig(), Store: store, PBX: f.URL.Host, AfterExchange: func() error { return killed }})
	if _, err := src.Token(ctx); !errors.Is(err, killed) {
		t.Fatalf("killed refresh: %v", err)
	}

	r := azRun(t, "", "run", "--once")
	if r.code != exitAuth || !errors.Is(r.err, auth.ErrReauthorize) || !strings.Contains(r.err.Error(), "wildix-export authorize") {
		t.Fatalf("next run: exit %d (want %d): %v\n%s", r.code, exitAuth, r.err, r.stderr)
	}
	after := azTree(t, dir)
	for name, before := range exported {
		switch {
		case strings.HasSuffix(name, "runs.jsonl"): // the run ledger: the failed run appended
			if !bytes.HasPrefix(after[name], before) || len(after[name]) == len(before) {
				t.Errorf("the run ledger %s was not appended to", name)
			}
		case !bytes.Equal(after[name], before):
			t.Errorf("%s changed or vanished after the failed run", name)
		}
	}
	for name := range after {
		if _, ok := exported[name]; !ok && strings.Contains(name, "call_history") {
			t.Errorf("the failed run wrote %s", name)
		}
	}
}
