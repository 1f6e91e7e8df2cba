package recordings

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/wildix-export/wildix-export/internal/pseudonym"
	"github.com/wildix-export/wildix-export/sinks/recstore"
)

func testIDKey(t testing.TB, key string) *pseudonym.Keyed {
	t.Helper()
	k, err := pseudonym.New([]byte(key))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestStoredIDHoldsNoNumber: an id holding a phone number in any form,
// one starting with a hashed id's mark, and one that is no usable name,
// are stored under "k-" and a keyed hash holding no digit of the number;
// the others as they are (attack 1, A4: "rec-258-393761714455" was
// stored as it is, "+393216606904" under an unkeyed sha256 of it).
func TestStoredIDHoldsNoNumber(t *testing.T) {
	t.Parallel()
	k := testIDKey(t, "stored-id-test-key-0123456789abcdef")
	for _, c := range []struct {
		id   string
		kept bool
	}{
		{"1", true}, {"22", true}, {"a-B_9", true}, {"rec-258", true}, {"3f9a2c1e-77d0", true},
		{"rec-258-393761714455", false}, {"+393216606904", false}, {"00393216606904", false},
		{"393216606904", false}, {"rec_0039-352-851-2784", false}, {"h-1", false}, {"k-1", false},
		{strings.Repeat("x", 65), false}, {"a.b", false}, {"a b", false}, {"é", false}, {"a/b", false},
	} {
		got := StoredID(Recording{ID: c.id, Path: "/spoolview/recordings/x.wav", IDKey: k})
		if kept := got == c.id; kept != c.kept {
			t.Errorf("StoredID(%q) = %q; want it kept: %v", c.id, got, c.kept)
			continue
		}
		if c.kept {
			continue
		}
		if !strings.HasPrefix(got, "k-") || len(got) != 18 || got == LegacyID(Recording{ID: c.id}) {
			t.Errorf("StoredID(%q) = %q; want k- and a keyed hash", c.id, got)
		}
		if _, n := pseudonym.Replace(got, func(string) bool { return true }, ""); n > 0 {
			t.Errorf("StoredID(%q) = %q holds a number", c.id, got)
		}
		if _, err := recstore.Name("pbx", time.Now(), got); err != nil {
			t.Errorf("StoredID(%q) = %q: no stored name: %v", c.id, got, err)
		}
		other := StoredID(Recording{ID: c.id, IDKey: testIDKey(t, "another-key-0123456789abcdef0123456")})
		if other == got {
			t.Errorf("StoredID(%q) is %q under two keys", c.id, got)
		}
	}
}

// TestPathIDConfirmsNothingWithoutKey: a recording known by its path
// alone is stored under a keyed hash of the path, which holds the
// caller's number: rebuilding the path for every extension 0 to 999
// (the date, time, hash and index are in the row's file name) and
// hashing it as the stored id was made before (sha256, attack 1, A1) or
// under another key finds neither its key nor its stored name; under its
// own key it does (the key is what guards it).
func TestPathIDConfirmsNothingWithoutKey(t *testing.T) {
	t.Parallel()
	k := testIDKey(t, "path-id-test-key-0123456789abcdefgh")
	wrong := testIDKey(t, "a-guessed-key-0123456789abcdefghijk")
	const number = "393761714455"
	path := func(ext int) string {
		return fmt.Sprintf("/spoolview/recordings/2026/01/01/2026.01.01-03.25.54-%d-%s-d1548fcd-2.wav", ext, number)
	}
	start := time.Date(2026, 1, 1, 2, 25, 54, 0, time.UTC)
	r := Recording{Path: path(258), Start: start, IDKey: k}
	id := StoredID(r)
	name, err := recstore.Name("pbx", start, id)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{id, name} {
		if strings.Contains(s, number) || strings.Contains(s, "d1548fcd") {
			t.Errorf("%q holds the path's number or hash", s)
		}
	}
	found := 0
	for ext := 0; ext < 1000; ext++ {
		for _, guess := range []string{
			LegacyID(Recording{Path: path(ext)}),
			StoredID(Recording{Path: path(ext), IDKey: wrong}),
			StoredID(Recording{Path: path(ext), IDKey: k}),
		} {
			if guess == id || strings.Contains(name, guess) {
				found++
			}
		}
	}
	if found != 1 {
		t.Errorf("guessing the extension confirmed the path %d times, want once (with the key)", found)
	}
	if id == LegacyID(r) || AltID(r) == LegacyAltID(r) || strings.HasPrefix(AltID(Recording{ID: "7", Path: r.Path, IDKey: k}), "h-") {
		t.Errorf("ids %q, %q are the unkeyed ones of before", id, AltID(r))
	}
}

// TestLegacyID: the ids stores were written with before ids were keyed,
// as they were, so that the exporter recognises them.
func TestLegacyID(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		r    Recording
		want string
	}{
		{Recording{ID: "22"}, "22"},
		{Recording{ID: "rec-258-393761714455"}, "rec-258-393761714455"},
		{Recording{ID: "+393216606904"}, "h-3b9aa19c"},
		{Recording{Path: "/spoolview/recordings/2026/01/01/2026.01.01-03.25.54-258-393761714455-d1548fcd-2.wav"}, "h-6552bcb0"},
	} {
		if got := LegacyID(c.r); !strings.HasPrefix(got, c.want) || len(got) != len(c.want) && len(got) != 42 {
			t.Errorf("LegacyID(%+v) = %q, want %s…", c.r, got, c.want)
		}
	}
}
