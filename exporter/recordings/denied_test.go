package recordings

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/wildix-export/wildix-export/internal/pbxsim"
	"github.com/wildix-export/wildix-export/sinks/recstore"
)

// TestEraseDenied (review 32, R32-1, R32-3): an S3 key without a
// permission Erase needs (s3:DeleteObject to remove a file, s3:GetObject
// to read one: the server answers 403 AccessDenied) is Erase's error
// matching recstore.ErrDenied and naming the permission to give, never
// "check that the store is up": the store is up, and every run would meet
// it again. Nothing is counted removed or kept, the file stays, and once
// the key has the permission Erase removes it. The read cases reach both
// places a file is read: eraseOne's, after the store's listing, and
// found's, for a store that cannot list (noListing).
func TestEraseDenied(t *testing.T) {
	t.Parallel()
	object := func(r *http.Request) bool { return strings.HasSuffix(r.URL.Path, ".wav") }
	for _, tc := range []struct {
		name      string
		refuse    func(*http.Request) bool
		noListing bool
		want      []string
	}{
		{"delete", func(r *http.Request) bool { return r.Method == http.MethodDelete }, false, []string{"could not remove", "s3:DeleteObject"}},
		{"read", func(r *http.Request) bool { return r.Method != http.MethodDelete && object(r) }, false, []string{"could not read", "s3:GetObject"}},
		{"read/no-listing", func(r *http.Request) bool { return r.Method != http.MethodDelete && object(r) }, true, []string{"could not read", "s3:GetObject"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			e := recSetup(t, pbxsim.Options{Seed: 5, Calls: 60}, noCloud)
			f := newStore(t, "s3")
			cp := &Copier{Spool: e.spool(t), Store: f.st, PBX: "pbx-test"}
			r := usable(t, e, e.recordings(false))[0]
			if _, _, err := cp.Copy(ctx, []Recording{r}); err != nil {
				t.Fatal(err)
			}
			name, _ := cp.name(r)
			before := f.contents(t)
			if before[name] == "" {
				t.Fatalf("%s not stored", name)
			}
			o := f.s3opt
			o.Endpoint = f.s3.Refusing(t, tc.refuse)
			st, err := recstore.OpenS3(ctx, o)
			if err != nil {
				t.Fatal(err)
			}
			cp.Store = st
			if tc.noListing {
				cp.Store = noListing{st, st}
			}
			none := func(context.Context, []string) (map[string]bool, error) { return map[string]bool{}, nil }
			out, err := cp.Erase(ctx, []Recording{r}, none, nil)
			if !errors.Is(err, recstore.ErrDenied) || strings.Contains(err.Error(), "is up") {
				t.Errorf("Erase, the key refused: %v; want an error matching recstore.ErrDenied, not saying to check the store is up", err)
			}
			for _, w := range tc.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("Erase, the key refused: %v; want it to say %q", err, w)
				}
			}
			if out.Removed != 0 || len(out.Kept) != 0 {
				t.Errorf("Erase, the key refused: %d removed, kept %+v; want nothing counted", out.Removed, out.Kept)
			}
			if got := f.contents(t); got[name] != before[name] {
				t.Fatalf("%s after Erase refused: %q; want it as it was", name, got[name])
			}
			cp.Store = f.st
			if out, err := cp.Erase(ctx, []Recording{r}, none, nil); err != nil || out.Removed != 1 || len(out.Kept) != 0 {
				t.Fatalf("Erase, the key given the permission: %+v, %v; want %s removed", out, err, name)
			}
			if got := f.contents(t); got[name] != "" {
				t.Fatalf("%s still stored", name)
			}
		})
	}
}

// noListing is a store that cannot list its folders (no Present), and
// can discard: Erase asks each name alone.
type noListing struct {
	Store
	discarder
}

func (n noListing) String() string { return fmt.Sprint(n.Store) }
