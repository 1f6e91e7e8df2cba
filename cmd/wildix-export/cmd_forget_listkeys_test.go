package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wildix-export/wildix-export/internal/pbxsim"
	"github.com/wildix-export/wildix-export/internal/pseudonym"
	"github.com/wildix-export/wildix-export/simtest"
)

// listKeysFixture is a CSV folder into which PBXes of their own
// simulators export: pbx returns a PBX's configuration, run runs the
// command and wants its exit code.
type listKeysFixture struct {
	t   *testing.T
	dir string
}

const listKeysCalls = 40

func (x listKeysFixture) pbx(id string, extra ...string) ([]string, *simtest.Fixture) {
	f := simtest.New(x.t, pbxsim.Options{Calls: listKeysCalls, CallGap: time.Minute, APIKeys: []string{recToken}})
	kv := fixtureEnv(f, x.dir, "WILDIX_PBX_ID="+id, "WILDIX_API_KEY="+recToken, "WILDIX_CLIENT_ID=", "WILDIX_CLIENT_SECRET=")
	return append(kv, extra...), f
}

func (x listKeysFixture) run(what string, kv []string, want int, args ...string) cliResult {
	x.t.Helper()
	r := runCLI(x.t, kv, args...)
	if r.code != want {
		x.t.Fatalf("%s: exit %d, want %d: %v\n%s%s", what, r.code, want, r.err, r.stdout, r.stderr)
	}
	return r
}

func (x listKeysFixture) keyFile(k string) string {
	p := filepath.Join(x.t.TempDir(), "key")
	if err := os.WriteFile(p, []byte(k+"\n"), 0o600); err != nil {
		x.t.Fatal(err)
	}
	return p
}

// TestListKeyedBySections (review 44, R44-1 HIGH): the check of a change
// of rule or key against the suppression list (listKeyed) looked at the
// list's first key only, PBX a's: PBX b (key B) changing only its rule,
// same key, --force, was refused naming a's key, and so was a PBX in clear
// moving to pseudonymised although the list's random key's section holds
// every number. Now a change the list can follow runs, and b's key change
// while the list holds the numbers under no key it could use is refused
// naming b's own key.
func TestListKeyedBySections(t *testing.T) {
	t.Parallel()
	const keyA, keyB, keyB2 = "key of PBX a, at least 32 bytes long", "key of PBX b, at least 32 bytes long", "key2 of PBX b, at least 32 bytes long"
	x := listKeysFixture{t: t, dir: t.TempDir()}
	kvA, fa := x.pbx("a", "EXPORT_PSEUDONYMIZE=numbers", "EXPORT_PSEUDONYM_KEY="+keyA)
	kvB, _ := x.pbx("b", "EXPORT_PSEUDONYMIZE=numbers", "EXPORT_PSEUDONYM_KEY="+keyB)
	x.run("run of a", kvA, exitOK, "run", "--once")
	x.run("run of b", kvB, exitOK, "run", "--once")
	d := simNumber(t, fa.Sim, listKeysCalls)
	fileA, fileB := x.keyFile(keyA), x.keyFile(keyB)
	x.run("forget with a's configuration", kvA, exitOK, "forget", "--number", "+"+d, "--previous-key-file", fileB)
	kB, _ := pseudonym.New([]byte(keyB))
	kB2, _ := pseudonym.New([]byte(keyB2))
	withRule := func(kv []string, kvs ...string) []string {
		out := slices.DeleteFunc(slices.Clone(kv), func(s string) bool {
			return strings.HasPrefix(s, "EXPORT_PSEUDONYM_KEY=") || strings.HasPrefix(s, "EXPORT_PSEUDONYMIZE=")
		})
		return append(out, kvs...)
	}

	// b changes its rule only, same key, forced: the list follows.
	x.run("b's rule changed, same key, forced", withRule(kvB, "EXPORT_PSEUDONYMIZE=numbers,names", "EXPORT_PSEUDONYM_KEY="+keyB), exitOK, "run", "--once", "--force")

	// b changes its key: refused, naming b's key, not a's.
	movedB := withRule(kvB, "EXPORT_PSEUDONYMIZE=numbers,names", "EXPORT_PSEUDONYM_KEY="+keyB2)
	r := x.run("b's key changed, forced", movedB, exitConfig, "run", "--once", "--force")
	if msg := fmt.Sprint(r.err); !strings.Contains(msg, "written under EXPORT_PSEUDONYM_KEY "+kB.KeyID()) || !strings.Contains(msg, "is key "+kB2.KeyID()) {
		t.Errorf("b's key changed, forced: %v; want it to name b's key %s and the new one", r.err, kB.KeyID())
	}

	// d joins in clear: forget again with its configuration adds the
	// list's random key's section; d, moving to pseudonymised, is served
	// by it, and so is b's key change now.
	kvD, _ := x.pbx("d")
	x.run("forget with d's configuration", kvD, exitOK, "forget", "--number", "+"+d, "--previous-key-file", fileA, "--previous-key-file", fileB, "--new-pbx-in-clear")
	x.run("run of d", kvD, exitOK, "run", "--once")
	x.run("d pseudonymised, forced", withRule(kvD, "EXPORT_PSEUDONYMIZE=numbers", "EXPORT_PSEUDONYM_KEY="+keyB2), exitOK, "run", "--once", "--force")
	x.run("b's key changed, forced, with the random key's section", movedB, exitOK, "run", "--once", "--force")
	for tb, rows := range csvFolder(t, x.dir) {
		for _, row := range rows {
			if strings.Contains(row, d) || strings.Contains(row, kB2.Number(d)) {
				t.Errorf("the number came back in %s: %q", tb, row)
			}
		}
	}
}

// TestForgetWithoutKeyOnPseudonymisedSink (review 44, R44-2 HIGH): forget
// run without EXPORT_PSEUDONYM_KEY (the key given by --previous-key-file)
// on a sink whose every PBX writes pseudonymised took itself for a PBX in
// clear and kept the number under a random key stored in clear beside the
// list, with which the forgotten number could be found by trying
// candidates. It is refused (exit 2) with the list unchanged, and forget
// with the key keeps no key in the list.
func TestForgetWithoutKeyOnPseudonymisedSink(t *testing.T) {
	t.Parallel()
	const keyA = "key of PBX a, at least 32 bytes long"
	x := listKeysFixture{t: t, dir: t.TempDir()}
	base, fa := x.pbx("a")
	kvA := append(slices.Clone(base), "EXPORT_PSEUDONYMIZE=numbers", "EXPORT_PSEUDONYM_KEY="+keyA)
	x.run("run of a", kvA, exitOK, "run", "--once")
	d := simNumber(t, fa.Sim, listKeysCalls)
	list := filepath.Join(x.dir, ".state", ".suppressed.json")
	before, _ := os.ReadFile(list)
	r := x.run("forget without EXPORT_PSEUDONYM_KEY", base, exitConfig, "forget", "--number", "+"+d, "--previous-key-file", x.keyFile(keyA))
	if !strings.Contains(fmt.Sprint(r.err), "EXPORT_PSEUDONYM_KEY is not set") {
		t.Errorf("forget without EXPORT_PSEUDONYM_KEY: %v; want it to say to set it", r.err)
	}
	if after, _ := os.ReadFile(list); !bytes.Equal(before, after) {
		t.Errorf("the refused forget changed the list: %s", after)
	}
	x.run("forget with the key", kvA, exitOK, "forget", "--number", "+"+d)
	b, err := os.ReadFile(list)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte(`"key"`)) {
		t.Errorf("the list of a sink pseudonymised whole keeps a key: %s", b)
	}
	x.run("run of a after forget", kvA, exitOK, "run", "--once")
}

// TestForgetUnknownPBXWithoutKey (review 46, R46-2 HIGH): forget without
// EXPORT_PSEUDONYM_KEY under a WILDIX_PBX_ID that is none of the sink's
// PBXes (a typo, an administrator's configuration of its own) took itself
// for a PBX joining in clear: on a sink pseudonymised whole it exited 0
// and kept a random key in clear beside the list. It is refused (exit 2),
// naming the sink's PBXes and --new-pbx-in-clear, with the list unchanged;
// with --new-pbx-in-clear it runs and the list keeps the random key.
func TestForgetUnknownPBXWithoutKey(t *testing.T) {
	t.Parallel()
	const keyA = "key of PBX a, at least 32 bytes long"
	x := listKeysFixture{t: t, dir: t.TempDir()}
	base, fa := x.pbx("a")
	kvA := append(slices.Clone(base), "EXPORT_PSEUDONYMIZE=numbers", "EXPORT_PSEUDONYM_KEY="+keyA)
	x.run("run of a", kvA, exitOK, "run", "--once")
	d := simNumber(t, fa.Sim, listKeysCalls)
	list := filepath.Join(x.dir, ".state", ".suppressed.json")
	before, _ := os.ReadFile(list)
	kvZ := append(slices.Clone(base), "WILDIX_PBX_ID=z")
	fileA := x.keyFile(keyA)
	r := x.run("forget as PBX z without EXPORT_PSEUDONYM_KEY", kvZ, exitConfig, "forget", "--number", "+"+d, "--previous-key-file", fileA)
	if msg := fmt.Sprint(r.err); !strings.Contains(msg, "WILDIX_PBX_ID=z is none of the sink's PBXes (a)") || !strings.Contains(msg, "--new-pbx-in-clear") {
		t.Errorf("forget as PBX z: %v; want it to name the sink's PBXes and --new-pbx-in-clear", r.err)
	}
	if after, _ := os.ReadFile(list); !bytes.Equal(before, after) {
		t.Errorf("the refused forget changed the list: %s", after)
	}
	x.run("--new-pbx-in-clear with EXPORT_PSEUDONYM_KEY", append(slices.Clone(kvA), "WILDIX_PBX_ID=z"), exitConfig, "forget", "--number", "+"+d, "--new-pbx-in-clear")
	x.run("forget as new PBX z in clear", kvZ, exitOK, "forget", "--number", "+"+d, "--previous-key-file", fileA, "--new-pbx-in-clear")
	if b, _ := os.ReadFile(list); !bytes.Contains(b, []byte(`"key"`)) {
		t.Errorf("the list of a sink a PBX joins in clear keeps no random key: %s", b)
	}
}

// TestForgetSaysNewKey (review 46, R46-10): forget of a number listed
// already, run as listKeyed advises under a PBX's new key, adds the
// number under that key, and said "Already in the suppression list.". It
// now names the key it was added under, and the key change then runs.
func TestForgetSaysNewKey(t *testing.T) {
	t.Parallel()
	const keyA, keyB, keyB2 = "key of PBX a, at least 32 bytes long", "key of PBX b, at least 32 bytes long", "key2 of PBX b, at least 32 bytes long"
	x := listKeysFixture{t: t, dir: t.TempDir()}
	kvA, fa := x.pbx("a", "EXPORT_PSEUDONYMIZE=numbers", "EXPORT_PSEUDONYM_KEY="+keyA)
	kvB0, _ := x.pbx("b")
	kvB := append(slices.Clone(kvB0), "EXPORT_PSEUDONYMIZE=numbers", "EXPORT_PSEUDONYM_KEY="+keyB)
	kvB2 := append(slices.Clone(kvB0), "EXPORT_PSEUDONYMIZE=numbers", "EXPORT_PSEUDONYM_KEY="+keyB2)
	x.run("run of a", kvA, exitOK, "run", "--once")
	x.run("run of b", kvB, exitOK, "run", "--once")
	d := simNumber(t, fa.Sim, listKeysCalls)
	fileA, fileB := x.keyFile(keyA), x.keyFile(keyB)
	x.run("forget", kvA, exitOK, "forget", "--number", "+"+d, "--previous-key-file", fileB)
	x.run("b's key changed", kvB2, exitConfig, "run", "--once", "--force")
	r := x.run("forget under b's new key", kvB2, exitOK, "forget", "--number", "+"+d, "--previous-key-file", fileA, "--previous-key-file", fileB)
	kB2, _ := pseudonym.New([]byte(keyB2))
	if strings.Contains(r.stdout, "Already in the suppression list") || !strings.Contains(r.stdout, "Added to the suppression list under key(s) "+kB2.KeyID()) {
		t.Errorf("forget under b's new key said:\n%s\nwant it to name the key %s it added the number under", r.stdout, kB2.KeyID())
	}
	x.run("b's key changed, after forget", kvB2, exitOK, "run", "--once", "--force")
	r = x.run("forget again", kvB2, exitOK, "forget", "--number", "+"+d, "--previous-key-file", fileA, "--previous-key-file", fileB)
	if !strings.Contains(r.stdout, "Already in the suppression list.") {
		t.Errorf("forget again said:\n%s\nwant \"Already in the suppression list.\"", r.stdout)
	}
}
