package recordings

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wildix-export/wildix-export/internal/pbxsim"
	"github.com/wildix-export/wildix-export/sinks/recstore"
)

// TestErase: on both stores, with sizes announced and not (then the
// PBX's file is hashed to compare), Erase removes a recording's file
// stored under its name and under its clash name, and the leftovers of
// the names (a folder's partial copies); keeps another recording's file
// under its name (another size and sha256); is no error for a recording
// with nothing stored, nor when run again; counts each file.
func TestErase(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		store  string
		noSize bool
	}{{"dir", false}, {"dir", true}, {"s3", false}} {
		t.Run(fmt.Sprintf("%s/nosize=%v", c.store, c.noSize), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			e := recSetup(t, pbxsim.Options{Seed: 5, Calls: 60}, noCloud)
			f := newStore(t, c.store)
			cp := &Copier{Spool: e.spool(t), Store: f.st, PBX: testPBX, Concurrency: 2}
			recs := e.recordings(c.noSize)
			if len(recs) < 4 {
				t.Fatalf("%d recordings: the test needs 4", len(recs))
			}
			stored, clashed, other, never := recs[0], recs[1], recs[2], recs[3]
			if _, _, err := cp.Copy(ctx, []Recording{stored}); err != nil {
				t.Fatal(err)
			}
			// clashed stored under its AltID's name (another file held
			// its own name then, since gone); other's name holds another
			// recording's file.
			alt := clashed
			alt.Key = AltID(clashed)
			if _, _, err := cp.Copy(ctx, []Recording{alt}); err != nil {
				t.Fatal(err)
			}
			otherName, _ := cp.name(other)
			foreign := bytes.Repeat([]byte("R"), int(max(other.Size, 1))+7)
			if _, err := f.st.Put(ctx, otherName, bytes.NewReader(foreign), recstore.Want{}); err != nil {
				t.Fatal(err)
			}
			want := 2
			if c.store == "dir" {
				for _, r := range []Recording{stored, never} {
					name, _ := cp.name(r)
					p := filepath.Join(f.dir, filepath.FromSlash(name))
					os.MkdirAll(filepath.Dir(p), 0o700)
					if err := os.WriteFile(filepath.Join(filepath.Dir(p), "."+filepath.Base(p)+".partial-5"), []byte("RI"), 0o600); err != nil {
						t.Fatal(err)
					}
					want++
				}
			}
			n, err := cp.Erase(ctx, []Recording{stored, clashed, other, never})
			if err != nil || n != want {
				t.Fatalf("Erase: %d files removed, %v; want %d", n, err, want)
			}
			got := f.contents(t)
			if len(got) != 1 || got[otherName] == "" {
				t.Fatalf("left in the store: %v; want only the other recording's file under %s", got, otherName)
			}
			if left := f.leftovers(t); len(left) > 0 {
				t.Fatalf("leftovers: %q", left)
			}
			if n, err := cp.Erase(ctx, []Recording{stored, clashed, other, never}); err != nil || n != 0 {
				t.Fatalf("Erase again: %d, %v; want nothing to remove", n, err)
			}
		})
	}
}

// TestEraseFailureNamesRecordingAndStore: a removal that fails (a
// symbolic link under the name, which the folder store refuses) fails
// Erase with the id the recording is stored under and the store named.
func TestEraseFailureNamesRecordingAndStore(t *testing.T) {
	t.Parallel()
	e := recSetup(t, pbxsim.Options{Seed: 5, Calls: 60}, noCloud)
	f := newStore(t, "dir")
	cp := &Copier{Spool: e.spool(t), Store: f.st, PBX: testPBX}
	r := e.recordings(false)[0]
	name, _ := cp.name(r)
	p := filepath.Join(f.dir, filepath.FromSlash(name))
	os.MkdirAll(filepath.Dir(p), 0o700)
	if err := os.Symlink(filepath.Join(t.TempDir(), "x.wav"), p); err != nil {
		t.Fatal(err)
	}
	_, err := cp.Erase(context.Background(), []Recording{r})
	if err == nil || !strings.Contains(err.Error(), "erase recording "+storedKey(r)+" ") || !strings.Contains(err.Error(), "folder "+f.dir) {
		t.Fatalf("err %v; want one naming recording %s and the folder %s", err, storedKey(r), f.dir)
	}
}
