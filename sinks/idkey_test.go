package sinks

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/wildix-export/wildix-export/internal/pseudonym"
)

// Pseudonym keys of these tests, and their ids.
var (
	idK1 = []byte("id-key-test-first-0123456789abcdefgh")
	idK2 = []byte("id-key-test-second-0123456789abcdefg")
	idK3 = []byte("id-key-test-third-0123456789abcdefgh")
)

func keyID(t *testing.T, b []byte) string {
	t.Helper()
	k, err := pseudonym.New(b)
	if err != nil {
		t.Fatal(err)
	}
	return k.KeyID()
}

// idStep is one start of a run: its options, and what it must give: the
// key named (want, by what it is: "R" the random key the first step made,
// "L" the list's own key, or a pseudonym key's id), or an error.
type idStep struct {
	o    IDKeyOptions
	want string // "R", "L", or a pseudonym key's id; "" with err
	err  error
}

// TestRecordingsKeyCarriedOver: the key of recordings' ids stays the same
// through every change of rule and key a run accepts (issue 30, R1: a
// new key named every keyed recording anew, so each was copied again),
// and through a run killed after its start stored the change but before
// its first commit stored the rule (the next start sees the earlier
// WrittenUnder again). Under pseudonymisation the list holds it sealed,
// never in clear (bytes, hex, base64). A key the configured ones cannot
// open, or a damaged one, is an error wrapping ErrRecordingsKey naming
// the keys by id only. Pure: the list as the sinks keep it.
func TestRecordingsKeyCarriedOver(t *testing.T) {
	t.Parallel()
	k1, k2 := keyID(t, idK1), keyID(t, idK2)
	on := func(key, prev []byte, under string) IDKeyOptions {
		return IDKeyOptions{Pseudonymize: true, Key: key, Previous: prev, WrittenUnder: under}
	}
	none := func(key []byte, under string) IDKeyOptions { return IDKeyOptions{Key: key, WrittenUnder: under} }
	ownKey := bytes.Repeat([]byte{7}, 32)
	for _, tc := range []struct {
		name  string
		list  Suppression
		steps []idStep
	}{
		{"none, on (killed, again, reverted), none", Suppression{}, []idStep{
			{o: none(nil, "")}, // makes R
			{o: on(idK1, nil, ""), want: "R"},
			{o: on(idK1, nil, ""), want: "R"}, // the first commit never came
			{o: none(idK1, ""), want: "R"},    // reverted to none: stays sealed
			{o: none(nil, ""), err: ErrRecordingsKey},
			{o: on(idK1, nil, ""), want: "R"},
			{o: on(idK2, idK1, k1), want: "R"},
			{o: on(idK2, nil, k1), want: "R"}, // killed: WrittenUnder still k1
			{o: on(idK2, nil, k2), want: "R"},
			{o: none(idK2, k2), want: "R"}, // to none: in clear too
			{o: none(idK2, k2), want: "R"}, // killed: again
			{o: none(nil, k2), want: "R"},  // killed, and the key unset: the copy in clear
			{o: on(idK2, nil, k2), want: "R"},
			{o: none(idK2, k2), want: "R"},
			{o: none(nil, ""), want: "R"}, // the key unset at last
		}},
		{"on before the key was kept, key change, none", Suppression{}, []idStep{
			{o: on(idK1, nil, k1), want: k1},
			{o: on(idK2, nil, k1), err: ErrRecordingsKey},
			{o: on(idK2, idK3, k1), err: ErrRecordingsKey},
			{o: on(idK2, idK1, k1), want: k1},
			{o: on(idK2, nil, k2), want: k1},
			{o: none(nil, k2), err: ErrRecordingsKey},
			{o: none(idK2, k2), want: k1}, // a pseudonym key: never in clear
			{o: none(idK2, ""), want: k1},
			{o: none(nil, ""), err: ErrRecordingsKey},
		}},
		{"a key change on a sink never run since the upgrade", Suppression{}, []idStep{
			{o: on(idK2, idK1, k1), want: k1},
			{o: on(idK2, nil, k2), want: k1},
		}},
		{"on before the key was kept, with an id key unused", Suppression{IDKey: ownKey}, []idStep{
			{o: on(idK1, nil, k1), want: k1},
			{o: none(idK1, k1), want: k1},
		}},
		{"a list with its own key", Suppression{Key: ownKey, KeyID: "k:own"}, []idStep{
			{o: none(nil, ""), want: "L"},
			{o: on(idK1, nil, ""), want: "L"},
			{o: on(idK2, idK1, k1), want: "L"},
			{o: none(idK2, k2), want: "L"},
			{o: none(nil, ""), want: "L"},
		}},
		{"a list made with the pseudonym key", Suppression{KeyID: k1, Numbers: []SuppressedNumber{{Hash: "p:x"}}}, []idStep{
			{o: none(idK1, ""), want: k1},
			{o: none(nil, ""), err: ErrSuppressionKey},
			{o: on(idK1, nil, ""), want: k1},
			{o: on(idK1, nil, k1), want: k1},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := tc.list
			var random []byte
			for i, st := range tc.steps {
				k, changed, err := l.recordingsKey(st.o)
				stored, _ := json.Marshal(l)
				if st.err != nil || err != nil {
					if !errors.Is(err, st.err) || changed {
						t.Fatalf("step %d: %v (changed %v), want %v", i, err, changed, st.err)
					}
					for _, b := range [][]byte{idK1, idK2, idK3, random, ownKey} {
						if len(b) > 0 && strings.Contains(err.Error(), string(b)) {
							t.Fatalf("step %d: the error shows a key: %v", i, err)
						}
					}
					continue
				}
				if i == 0 && st.want == "" {
					random = l.IDKey
					if len(random) != pseudonym.MinKeyLen || !changed {
						t.Fatalf("step 0: list %s, changed %v: want a random key made", stored, changed)
					}
					continue
				}
				want := st.want
				switch want {
				case "R":
					want = keyID(t, random)
				case "L":
					want = keyID(t, ownKey)
				}
				if k.KeyID() != want {
					t.Fatalf("step %d (%+v): key %s, want %s: every keyed recording would be copied again", i, st.o, k.KeyID(), want)
				}
				if st.o.Pseudonymize {
					for _, b := range [][]byte{random, idK1, idK2, idK3} {
						if len(b) > 0 && inClear(stored, b) {
							t.Fatalf("step %d: the list holds a key in clear under pseudonymisation: %s", i, stored)
						}
					}
				}
			}
		})
	}
	t.Run("damaged", func(t *testing.T) {
		l := Suppression{IDKey: bytes.Repeat([]byte{9}, 32)}
		if _, _, err := l.recordingsKey(on(idK1, nil, "")); err != nil || l.IDKeySealed == nil || len(l.IDKeySealed.Box) == 0 {
			t.Fatalf("sealing: %v, %+v", err, l.IDKeySealed)
		}
		l.IDKeySealed.Box[len(l.IDKeySealed.Box)-1] ^= 1
		if k, _, err := l.recordingsKey(on(idK1, nil, k1)); !errors.Is(err, ErrRecordingsKey) || !strings.Contains(err.Error(), "damaged") {
			t.Fatalf("a damaged box: %v, %v; want ErrRecordingsKey saying so", k, err)
		}
	})
}

// inClear reports whether stored holds key as its bytes, hex or base64.
func inClear(stored, key []byte) bool {
	for _, f := range []string{string(key), hex.EncodeToString(key), strings.ToUpper(hex.EncodeToString(key)), base64.StdEncoding.EncodeToString(key),
		base64.RawStdEncoding.EncodeToString(key), base64.URLEncoding.EncodeToString(key), base64.RawURLEncoding.EncodeToString(key)} {
		if bytes.Contains(stored, []byte(f)) {
			return true
		}
	}
	return false
}

// TestRecordingsKeyKeptBySinks: each sink keeps the key of recordings'
// ids through none → on → a key change → none, read back by a new
// start each time, and holds it only sealed while pseudonymised (the
// stored list, as a reader sees it). Both sinks.
func TestRecordingsKeyKeptBySinks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	k1, k2 := keyID(t, idK1), keyID(t, idK2)
	type keeper interface {
		SuppressionKey(ctx context.Context, o IDKeyOptions) (*pseudonym.Keyed, error)
	}
	for _, kind := range []string{"csv", "postgres"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			var s keeper
			var stored func() []byte
			if kind == "csv" {
				c, _ := NewCSV(CSVOptions{Dir: t.TempDir()})
				s, stored = c, func() []byte { b, _ := os.ReadFile(c.suppressionFile()); return b }
			} else {
				p, pool := newPostgres(t)
				s, stored = p, func() []byte {
					var b []byte
					if err := pool.QueryRow(ctx, "SELECT state::text FROM "+p.ident("export_state")+" WHERE pbx = '' AND key = $1", suppressionKey).Scan(&b); err != nil {
						t.Fatal(err)
					}
					return b
				}
			}
			first, err := s.SuppressionKey(ctx, IDKeyOptions{})
			if err != nil {
				t.Fatal(err)
			}
			var l Suppression
			if err := json.Unmarshal(stored(), &l); err != nil || len(l.IDKey) == 0 {
				t.Fatalf("stored %s, %v: want the key in clear", stored(), err)
			}
			raw := l.IDKey
			for i, o := range []IDKeyOptions{
				{Pseudonymize: true, Key: idK1},
				{Pseudonymize: true, Key: idK1, WrittenUnder: k1},
				{Pseudonymize: true, Key: idK2, Previous: idK1, WrittenUnder: k1},
				{Pseudonymize: true, Key: idK2, WrittenUnder: k2},
				{Key: idK2, WrittenUnder: k2},
				{},
			} {
				k, err := s.SuppressionKey(ctx, o)
				if err != nil || k.KeyID() != first.KeyID() {
					t.Fatalf("step %d: %v, %v; want key %s", i, k, err, first.KeyID())
				}
				if got := inClear(stored(), raw); got == o.Pseudonymize {
					t.Fatalf("step %d (pseudonymised %v): the key in clear in the sink: %v\n%s", i, o.Pseudonymize, got, stored())
				}
			}
		})
	}
}
