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

	"github.com/jackc/pgx/v5"

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
	// Every step but the first of a PBX has written rows: its rule is
	// stored (Ruled).
	on := func(key, prev []byte, under string) IDKeyOptions {
		return IDKeyOptions{Pseudonymize: true, Key: key, Previous: prev, WrittenUnder: under, Ruled: true}
	}
	none := func(key []byte, under string) IDKeyOptions {
		return IDKeyOptions{Key: key, WrittenUnder: under, Ruled: true}
	}
	ownKey := bytes.Repeat([]byte{7}, 32)
	for _, tc := range []struct {
		name  string
		list  idKeyRecord
		steps []idStep
	}{
		{"none, on (killed, again, reverted), none", idKeyRecord{}, []idStep{
			{o: none(nil, "")}, // makes R
			{o: on(idK1, nil, ""), want: "R"},
			{o: on(idK1, nil, ""), want: "R"}, // the first commit never came
			{o: none(idK1, ""), want: "R"},    // reverted to none, the rows in clear: in clear again
			{o: none(nil, ""), want: "R"},
			{o: on(idK1, nil, ""), want: "R"},
			{o: on(idK2, idK1, k1), want: "R"},
			{o: on(idK2, nil, k1), want: "R"}, // killed: WrittenUnder still k1
			{o: on(idK2, nil, k2), want: "R"},
			{o: none(idK2, k2), want: "R"},            // to none: sealed until committed (R7-4)
			{o: none(idK2, k2), want: "R"},            // killed: again
			{o: none(nil, k2), err: ErrRecordingsKey}, // killed, and the key unset: still needed
			{o: on(idK2, nil, k2), want: "R"},
			{o: none(idK2, k2), want: "R"},
			{o: none(idK2, ""), want: "R"}, // committed: in clear too
			{o: none(nil, ""), want: "R"},  // the key unset at last
		}},
		{"on before the key was kept, key change, none", idKeyRecord{}, []idStep{
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
		{"a key change on a sink never run since the upgrade", idKeyRecord{}, []idStep{
			{o: on(idK2, idK1, k1), want: k1},
			{o: on(idK2, nil, k2), want: k1},
		}},
		// A sink of before keys were kept by PBX: a PBX in clear named
		// its recordings with the schema's key, a pseudonymised one with
		// its pseudonym key.
		{"pseudonymised before keys were kept by PBX, beside a PBX in clear", idKeyRecord{SchemaKey: ownKey}, []idStep{
			{o: on(idK1, nil, k1), want: k1},
			{o: none(idK1, k1), want: k1},
		}},
		// A PBX in clear that named recordings with the list's own key
		// (before the id key was kept apart) keeps it: the list keeps
		// it in clear, as it needs it (README, Privacy).
		{"a list with its own key", idKeyRecord{list: &Suppression{Key: ownKey, KeyID: "k:own"}}, []idStep{
			{o: none(nil, ""), want: "L"},
			{o: on(idK1, nil, ""), want: "L"},
			{o: on(idK2, idK1, k1), want: "L"},
			{o: none(idK2, k2), want: "L"},
			{o: none(idK2, ""), want: "L"},
			{o: none(nil, ""), want: "L"},
		}},
		{"a list made with the pseudonym key", idKeyRecord{list: &Suppression{KeyID: k1, Numbers: []SuppressedNumber{{Hash: "p:x"}}}}, []idStep{
			{o: none(idK1, ""), want: k1},
			{o: none(nil, ""), err: ErrRecordingsKey},
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
					random = l.Keys[""].Key
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
				// Nor after a forced change to none, before it is
				// committed (review 7, R7-4).
				if st.o.Pseudonymize || st.o.WrittenUnder != "" {
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
		l := idKeyRecord{SchemaKey: bytes.Repeat([]byte{9}, 32)}
		if _, _, err := l.recordingsKey(on(idK1, nil, "")); err != nil || l.Keys[""] == nil || l.Keys[""].Sealed == nil || len(l.Keys[""].Sealed.Box) == 0 {
			t.Fatalf("sealing: %v, %+v", err, l.Keys[""])
		}
		box := l.Keys[""].Sealed.Box
		box[len(box)-1] ^= 1
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
			var read func(key string) []byte // the record (idKeysKey) or the list
			if kind == "csv" {
				c, _ := NewCSV(CSVOptions{Dir: t.TempDir()})
				s, read = c, func(key string) []byte {
					f := c.idKeysFile()
					if key == suppressionKey {
						f = c.suppressionFile()
					}
					b, _ := os.ReadFile(f)
					return b
				}
			} else {
				p, pool := newPostgres(t)
				s, read = p, func(key string) []byte {
					var b []byte
					if err := pool.QueryRow(ctx, "SELECT state::text FROM "+p.ident("export_state")+" WHERE pbx = '' AND key = $1", key).Scan(&b); err != nil && !errors.Is(err, pgx.ErrNoRows) {
						t.Fatal(err)
					}
					return b
				}
			}
			stored := func() []byte { return append(read(idKeysKey), read(suppressionKey)...) }
			first, err := s.SuppressionKey(ctx, IDKeyOptions{})
			if err != nil {
				t.Fatal(err)
			}
			var l idKeyRecord
			if err := json.Unmarshal(read(idKeysKey), &l); err != nil || l.Keys[""] == nil || len(l.Keys[""].Key) == 0 {
				t.Fatalf("stored %s, %v: want the key in clear", stored(), err)
			}
			raw := l.Keys[""].Key
			for i, o := range []IDKeyOptions{
				{Pseudonymize: true, Key: idK1},
				{Pseudonymize: true, Key: idK1, WrittenUnder: k1},
				{Pseudonymize: true, Key: idK2, Previous: idK1, WrittenUnder: k1},
				{Pseudonymize: true, Key: idK2, WrittenUnder: k2},
				{Key: idK2, WrittenUnder: k2},
				{Key: idK2},
				{},
			} {
				k, err := s.SuppressionKey(ctx, o)
				if err != nil || k.KeyID() != first.KeyID() {
					t.Fatalf("step %d: %v, %v; want key %s", i, k, err, first.KeyID())
				}
				// In clear only once the PBX's rows are (R7-4: not by the
				// start of a forced change to none, before its commit).
				if got := inClear(stored(), raw); got != (!o.Pseudonymize && o.WrittenUnder == "") {
					t.Fatalf("step %d (pseudonymised %v): the key in clear in the sink: %v\n%s", i, o.Pseudonymize, got, stored())
				}
			}
		})
	}
}

// TestRecordingsKeyByPBX: each PBX of a schema keeps the key its
// recordings were named with, whatever the rule and key of the others,
// never refused for theirs, and its key is never in clear while it or a
// PBX sharing it is pseudonymised (review 5: R5-1, R5-2, R5-3, R5-9; the
// reviewer's TestR5ForcedChangeWithoutRecordings, TestR5LegacyTwoPBXes,
// TestR5ForgetThenPseudonymise, TestR5TwoKeys, TestR5TwoPBXes and
// TestR5OneOfTwoToNone, all failing before). Pure: the list as the sinks
// keep it.
func TestRecordingsKeyByPBX(t *testing.T) {
	t.Parallel()
	k1, k2 := keyID(t, idK1), keyID(t, idK2)
	// opts is PBX pbx's start: pseudonymised with key (nil: in clear),
	// the rule stored (ruled) under key id under ("" in clear).
	opts := func(pbx string, key, prev []byte, ruled bool, under string) IDKeyOptions {
		return IDKeyOptions{PBX: pbx, Pseudonymize: key != nil, Key: key, Previous: prev, Ruled: ruled, WrittenUnder: under}
	}
	clear := func(pbx string, key []byte, ruled bool, under string) IDKeyOptions {
		return IDKeyOptions{PBX: pbx, Key: key, Ruled: ruled, WrittenUnder: under}
	}
	step := func(t *testing.T, l *idKeyRecord, o IDKeyOptions) *pseudonym.Keyed {
		t.Helper()
		k, _, err := l.recordingsKey(o)
		if err != nil || k == nil {
			t.Fatalf("PBX %q (pseudonymised %v, ruled %v, under %q): %v, %v\nlist %s", o.PBX, o.Pseudonymize, o.Ruled, o.WrittenUnder, k, err, mustJSON(t, l))
		}
		return k
	}
	noneInClear := func(t *testing.T, l *idKeyRecord, keys ...[]byte) {
		t.Helper()
		for _, b := range keys {
			if inClear(mustJSON(t, l), b) {
				t.Fatalf("a key in clear under pseudonymisation: %s", mustJSON(t, l))
			}
		}
	}
	// R5-1 a: a PBX in clear, forced to numbers by a run without a
	// recordings store (which carried nothing over then), then a run
	// with one: the key stays, sealed.
	t.Run("forced change without recordings", func(t *testing.T) {
		var l idKeyRecord
		r := step(t, &l, clear("a", nil, false, ""))
		if l.Keys["a"] == nil || l.Keys["a"].Key == nil {
			t.Fatalf("list %s: want A's key in clear", mustJSON(t, &l))
		}
		raw := l.Keys["a"].Key
		if k := step(t, &l, opts("a", idK1, nil, true, k1)); k.KeyID() != r.KeyID() {
			t.Fatalf("key %s, was %s: every k- recording copied again", k.KeyID(), r.KeyID())
		}
		noneInClear(t, &l, raw)
		if k := step(t, &l, clear("a", idK1, true, k1)); k.KeyID() != r.KeyID() {
			t.Fatalf("back to none: key %s, was %s", k.KeyID(), r.KeyID())
		}
	})
	// R5-1 b: a schema of before keys were kept by PBX, A in clear (the
	// schema's key R), B pseudonymised (its recordings hashed with K1).
	t.Run("legacy two PBXes", func(t *testing.T) {
		R := bytes.Repeat([]byte{5}, 32)
		l := idKeyRecord{SchemaKey: R}
		if k := step(t, &l, opts("b", idK1, nil, true, k1)); k.KeyID() != k1 {
			t.Fatalf("B: key %s, want its pseudonym key %s", k.KeyID(), k1)
		}
		for range 2 {
			if k := step(t, &l, clear("a", idK1, true, "")); k.KeyID() != keyID(t, R) {
				t.Fatalf("A: key %s, want R %s: A's recordings copied again", k.KeyID(), keyID(t, R))
			}
		}
		if k := step(t, &l, opts("b", idK1, nil, true, k1)); k.KeyID() != k1 {
			t.Fatalf("B again: key %s, want %s", k.KeyID(), k1)
		}
	})
	// R5-3: two PBXes, two pseudonym keys, each run many nights.
	t.Run("two keys", func(t *testing.T) {
		var l idKeyRecord
		ka := step(t, &l, opts("a", idK1, nil, false, ""))
		kb := step(t, &l, opts("b", idK2, nil, false, ""))
		for range 3 {
			if k := step(t, &l, opts("a", idK1, nil, true, k1)); k.KeyID() != ka.KeyID() {
				t.Fatalf("A: %s, was %s", k.KeyID(), ka.KeyID())
			}
			if k := step(t, &l, opts("b", idK2, nil, true, k2)); k.KeyID() != kb.KeyID() {
				t.Fatalf("B: %s, was %s", k.KeyID(), kb.KeyID())
			}
		}
		noneInClear(t, &l, idK1, idK2)
		for _, r := range l.Keys {
			if r.Key != nil {
				t.Fatalf("a key in clear: %s", mustJSON(t, &l))
			}
		}
	})
	// A PBX in clear and a new pseudonymised one: neither refused.
	t.Run("two PBXes", func(t *testing.T) {
		var l idKeyRecord
		ka := step(t, &l, clear("a", nil, false, ""))
		step(t, &l, opts("b", idK1, nil, false, ""))
		if k := step(t, &l, clear("a", nil, true, "")); k.KeyID() != ka.KeyID() {
			t.Fatalf("A: %s, was %s", k.KeyID(), ka.KeyID())
		}
		m, err := l.Keys["b"].Sealed.open(opts("b", idK1, nil, true, k1))
		if err != nil || len(m.raw) != pseudonym.MinKeyLen {
			t.Fatalf("B's key: %v, %d bytes", err, len(m.raw))
		}
		noneInClear(t, &l, m.raw)
	})
	// R5-2: forget without a pseudonym key gave the list a key of its
	// own, in clear; then the PBX's first run, pseudonymised.
	t.Run("forget then pseudonymise", func(t *testing.T) {
		L := bytes.Repeat([]byte{7}, 32)
		l := idKeyRecord{list: &Suppression{Key: L, KeyID: keyID(t, L), Numbers: []SuppressedNumber{{Hash: "p:x"}}}}
		k := step(t, &l, opts("a", idK1, nil, false, ""))
		if k.KeyID() == keyID(t, L) || k.KeyID() == k1 {
			t.Fatalf("key %s: the list's key in clear, or the pseudonym key", k.KeyID())
		}
		if r := l.Keys["a"]; r == nil || r.Key != nil || r.Sealed == nil || len(r.Sealed.Box) == 0 {
			t.Fatalf("list %s: want a new key, sealed only", mustJSON(t, &l))
		}
	})
	// R5-9: A and B pseudonymised under K1 named recordings with the
	// schema's one key R (the release before: sealed); B forced to
	// none keeps it sealed while A is pseudonymised.
	t.Run("one of two to none", func(t *testing.T) {
		R := bytes.Repeat([]byte{3}, 32)
		s, err := seal(idK1, idMaterial{raw: R})
		if err != nil {
			t.Fatal(err)
		}
		l := idKeyRecord{SchemaKeySealed: s}
		for _, pbx := range []string{"a", "b"} {
			if k := step(t, &l, opts(pbx, idK1, nil, true, k1)); k.KeyID() != keyID(t, R) {
				t.Fatalf("%s: key %s, want R", pbx, k.KeyID())
			}
		}
		if k := step(t, &l, clear("b", idK1, true, k1)); k.KeyID() != keyID(t, R) {
			t.Fatalf("B to none: key %s, want R", k.KeyID())
		}
		noneInClear(t, &l, R)
		if _, _, err := l.recordingsKey(clear("b", nil, true, "")); !errors.Is(err, ErrRecordingsKey) {
			t.Fatalf("B without the key: %v, want ErrRecordingsKey", err)
		}
	})
	// A run without a recordings store makes a key as a run with one
	// does (review 7, R7-2), and carries it over a change.
	t.Run("carry only", func(t *testing.T) {
		var l idKeyRecord
		r, changed, err := l.recordingsKey(IDKeyOptions{PBX: "a", CarryOnly: true, Ruled: true})
		if r == nil || !changed || err != nil || l.Keys["a"] == nil || l.Keys["a"].ID != r.KeyID() {
			t.Fatalf("first: %v, %v, %v; record %s: want a new key kept", r, changed, err, mustJSON(t, &l))
		}
		if k := step(t, &l, clear("a", nil, true, "")); k.KeyID() != r.KeyID() {
			t.Fatalf("then with recordings: %s, was %s", k.KeyID(), r.KeyID())
		}
		o := opts("a", idK1, nil, true, "")
		o.CarryOnly = true
		if k := step(t, &l, o); k.KeyID() != r.KeyID() || l.Keys["a"].Key != nil {
			t.Fatalf("carried: %s, was %s; list %s", k.KeyID(), r.KeyID(), mustJSON(t, &l))
		}
	})
}

func mustJSON(t *testing.T, l *idKeyRecord) []byte {
	t.Helper()
	b, err := json.Marshal(l)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
