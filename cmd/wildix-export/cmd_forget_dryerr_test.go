package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wildix-export/wildix-export/internal/pbxsim"
	"github.com/wildix-export/wildix-export/simtest"
)

// TestForgetDryRunCheckFailing (review 30, R30-2): a dry run whose check
// of the suppression list fails for another reason than a refusal (here
// a forget stamp the check cannot read: a folder under its name)
// does not say that the erasure would be refused: it would not, it only
// could not check. The refusal's words stay for a refusal
// (TestForgetDryRunChecksList).
func TestForgetDryRunCheckFailing(t *testing.T) {
	t.Parallel()
	const calls = 20
	f := simtest.New(t, pbxsim.Options{Calls: calls, CallGap: time.Minute})
	f.Authorize(t)
	dir := t.TempDir()
	kv := fixtureEnv(f, dir)
	if r := runCLI(t, kv, "run", "--once"); r.code != exitOK {
		t.Fatalf("run: exit %d: %v\n%s", r.code, r.err, r.stderr)
	}
	if err := os.Mkdir(filepath.Join(dir, ".suppressed.stamp.json"), 0o700); err != nil {
		t.Fatal(err)
	}
	r := runCLI(t, kv, "forget", "--number", "+393471100046", "--dry-run")
	t.Logf("exit %d: %v", r.code, r.err)
	if r.err == nil {
		t.Fatalf("forget --dry-run with an unreadable forget stamp: exit %d, no error: the test proves nothing\n%s", r.code, r.stdout)
	}
	if strings.Contains(r.err.Error(), "would be refused") {
		t.Errorf("forget --dry-run whose check could not read the forget stamp says the erasure would be refused: %v", r.err)
	}
}
