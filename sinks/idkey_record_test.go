package sinks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wildix-export/wildix-export/internal/pseudonym"
)

// idKeySink is what these tests ask of a sink.
type idKeySink interface {
	Suppression(ctx context.Context) (*Suppression, error)
	Suppress(ctx context.Context, f *Forgotten, pk *pseudonym.Keyed) (string, bool, error)
	SuppressionKey(ctx context.Context, o IDKeyOptions) (*pseudonym.Keyed, error)
}

// idKeySinks runs fn on a new sink of each kind, with how to write its
// suppression list as an earlier release would (raw JSON) and how to
// delete it.
func idKeySinks(t *testing.T, fn func(t *testing.T, s idKeySink, writeList func([]byte), dropList func())) {
	for _, kind := range []string{"csv", "postgres"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			if kind == "csv" {
				c, _ := NewCSV(CSVOptions{Dir: t.TempDir()})
				fn(t, c, func(b []byte) {
					if _, err := c.mkdir(".state"); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(c.suppressionFile(), b, 0o600); err != nil {
						t.Fatal(err)
					}
				}, func() {
					if err := os.Remove(c.suppressionFile()); err != nil {
						t.Fatal(err)
					}
				})
				return
			}
			p, pool := newPostgres(t)
			table := p.ident("export_state")
			fn(t, p, func(b []byte) {
				if _, err := pool.Exec(ctx, "INSERT INTO "+table+" (pbx, key, state) VALUES ('', $1, $2) ON CONFLICT (pbx, key) DO UPDATE SET state = EXCLUDED.state", suppressionKey, b); err != nil {
					t.Fatal(err)
				}
			}, func() {
				if _, err := pool.Exec(ctx, "DELETE FROM "+table+" WHERE pbx = '' AND key = $1", suppressionKey); err != nil {
					t.Fatal(err)
				}
			})
		})
	}
}

// TestRecordingsKeyRecordOfItsOwn: the keys of recordings' ids a list of
// an earlier release holds (one by PBX, the schema's one key) move into
// a record of their own at the next start, the list then holding none;
// the list lost after, every PBX keeps its key (review 6, R6-4); a key an
// earlier release added to the list after the move (a downgrade; R5-8)
// is moved too; a record of a later format is refused. Both sinks.
func TestRecordingsKeyRecordOfItsOwn(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	idKeySinks(t, func(t *testing.T, s idKeySink, writeList func([]byte), dropList func()) {
		a, schema, b := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32), bytes.Repeat([]byte{3}, 32)
		old, _ := json.Marshal(Suppression{IDKey: schema, IDKeys: map[string]*PBXKey{"a": {ID: keyID(t, a), Key: a}}, Numbers: []SuppressedNumber{}})
		writeList(old)
		pbxState(t, s)
		want := map[string]string{"a": keyID(t, a), "s": keyID(t, schema)}
		check := func(step string, marked bool) {
			t.Helper()
			for pbx, id := range want {
				k, err := s.SuppressionKey(ctx, IDKeyOptions{PBX: pbx, Ruled: true})
				if err != nil || k.KeyID() != id {
					t.Fatalf("%s: PBX %s: %v, %v; want key %s: every k- recording copied again", step, pbx, k, err, id)
				}
			}
			l, err := s.Suppression(ctx)
			if err != nil || l.IDKeys != nil || l.IDKey != nil || l.IDKeySealed != nil || l.IDKeysApart != marked {
				t.Fatalf("%s: list %+v, %v: want it without keys, marked %v (no list is made to be marked)", step, l, err, marked)
			}
		}
		check("moved", true)
		dropList()
		check("the list lost", false)
		// An earlier release rewrote the list with a new PBX's key.
		old, _ = json.Marshal(Suppression{IDKeys: map[string]*PBXKey{"b": {ID: keyID(t, b), Key: b}}, Numbers: []SuppressedNumber{}})
		writeList(old)
		want["b"] = keyID(t, b)
		check("a key added by an earlier release", true)
		if r := storedIDKeys(t, s); r.Format != idKeyFormat || len(r.Keys) != 3 || !bytes.Equal(r.SchemaKey, schema) {
			t.Fatalf("record %+v: want format %d, the keys of a, b, s, and the schema's key", r, idKeyFormat)
		}
	})
	t.Run("later format", func(t *testing.T) {
		t.Parallel()
		_, err := decodeIDKeys([]byte(`{"format":2,"keys":{}}`), "here")
		if !errors.Is(err, ErrRecordingsKey) || !strings.Contains(err.Error(), "later release") {
			t.Fatalf("%v: want ErrRecordingsKey naming a later release", err)
		}
	})
}

// TestRecordingsKeyCSVKilledMidMove: a CSV folder's start killed between
// writing the record and stripping the list (the record written, the
// list as it was) loses nothing: the next start finds every key, and
// strips the list then.
func TestRecordingsKeyCSVKilledMidMove(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, _ := NewCSV(CSVOptions{Dir: t.TempDir()})
	a := bytes.Repeat([]byte{1}, 32)
	old, _ := json.Marshal(Suppression{IDKeys: map[string]*PBXKey{"a": {ID: keyID(t, a), Key: a}}, Numbers: []SuppressedNumber{}})
	if _, err := c.mkdir(".state"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(c.suppressionFile(), old, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := c.SuppressionKey(ctx, IDKeyOptions{PBX: "a", Ruled: true}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(c.suppressionFile(), old, 0o600); err != nil { // as if killed before the list's write
		t.Fatal(err)
	}
	for range 2 {
		if k, err := c.SuppressionKey(ctx, IDKeyOptions{PBX: "a", Ruled: true}); err != nil || k.KeyID() != keyID(t, a) {
			t.Fatalf("%v, %v; want key %s", k, err, keyID(t, a))
		}
	}
	if l, err := c.Suppression(ctx); err != nil || l.IDKeys != nil || !l.IDKeysApart {
		t.Fatalf("list %+v, %v: want it stripped", l, err)
	}
}

// TestRecordingsKeyNeverTheList: on a sink made by this release, forget
// first (the list takes a key of its own, or the pseudonym key), then a
// PBX's first run without a recordings store, then runs with one: the
// PBX takes a new random key, never the list's own key kept in clear nor
// the pseudonym key (review 7, R7-2, R7-3: it took the list's key, and
// kept it in clear when pseudonymised later). Both sinks.
func TestRecordingsKeyNeverTheList(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, withPK := range []bool{false, true} {
		idKeySinks(t, func(t *testing.T, s idKeySink, _ func([]byte), _ func()) {
			var pk *pseudonym.Keyed
			var o IDKeyOptions
			if withPK {
				pk, _ = pseudonym.New(idK1)
				o.Key = idK1
			}
			f, err := NewForgotten("+393528510009", pk)
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := s.Suppress(ctx, f, pk); err != nil {
				t.Fatal(err)
			}
			l, err := s.Suppression(ctx)
			if err != nil || l.KeyID == "" {
				t.Fatalf("list %+v, %v: want it keyed", l, err)
			}
			carry := o
			carry.PBX, carry.CarryOnly = "a", true
			first, err := s.SuppressionKey(ctx, carry)
			if err != nil {
				t.Fatal(err)
			}
			o.PBX, o.Ruled = "a", true
			for i := range 2 {
				k, err := s.SuppressionKey(ctx, o)
				if err != nil || k.KeyID() == l.KeyID || first == nil || k.KeyID() != first.KeyID() {
					t.Fatalf("run %d with recordings: key %s, %v (the first run's %s): want the key the first run made, never the list's %s", i, idOf(k), err, idOf(first), l.KeyID)
				}
			}
		})
	}
}

// idOf is k's id, "none" for nil: a test never shows a key.
func idOf(k *pseudonym.Keyed) string {
	if k == nil {
		return "none"
	}
	return k.KeyID()
}

// TestRecordingsKeyRefusedWhenHeld: a PBX whose key of recordings' ids
// the configured keys cannot open, or whose key the sink lost, is
// refused (ErrRecordingsKey, naming a recording, and the record to
// restore when lost) while the sink holds a recording of it stored under
// a keyed id; holding none, it takes a new key (nothing is named with
// the old one; a PBX that never stored recordings is never refused for
// its key). Both sinks.
func TestRecordingsKeyRefusedWhenHeld(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	k1 := keyID(t, idK1)
	for _, kind := range []string{"csv", "postgres"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			var s idKeySink
			var hold, release, lose func()
			if kind == "csv" {
				c, _ := NewCSV(CSVOptions{Dir: t.TempDir()})
				s = c
				dir := filepath.Join(c.opt.Dir, "recordings")
				data := filepath.Join(dir, "p_20261207T101010Z-0a1b2c_0001.csv")
				hold = func() {
					if err := os.MkdirAll(dir, 0o700); err != nil {
						t.Fatal(err)
					}
					for p, b := range map[string]string{data: "recording,extra\nk-0123abcd,\n", manifestPath(data): `{"pbx":"p","file":"p_20261207T101010Z-0a1b2c_0001.csv"}`} {
						if err := os.WriteFile(p, []byte(b), 0o600); err != nil {
							t.Fatal(err)
						}
					}
				}
				release = func() { os.Remove(data); os.Remove(manifestPath(data)) }
				lose = func() { os.Remove(c.idKeysFile()) }
			} else {
				p, pool := newPostgres(t)
				s = p
				exec := func(sql string) {
					if _, err := pool.Exec(ctx, sql); err != nil {
						t.Fatal(err)
					}
				}
				hold = func() {
					exec("INSERT INTO " + p.ident("recordings") + " (pbx, recording, raw, run_id) VALUES ('p', 'k-0123abcd', '{}', 'r')")
				}
				release = func() { exec("DELETE FROM " + p.ident("recordings")) }
				lose = func() {
					exec("DELETE FROM " + p.ident("export_state") + " WHERE pbx = '' AND key = 'recordings id keys'")
				}
			}
			on := IDKeyOptions{PBX: "p", Pseudonymize: true, Key: idK1, Ruled: true, WrittenUnder: k1}
			first, err := s.SuppressionKey(ctx, on)
			if err != nil {
				t.Fatal(err)
			}
			hold()
			changed := IDKeyOptions{PBX: "p", Pseudonymize: true, Key: idK2, Ruled: true, WrittenUnder: k1}
			advice := s.(interface{ NewExportAdvice() string }).NewExportAdvice()
			if _, err := s.SuppressionKey(ctx, changed); !errors.Is(err, ErrRecordingsKey) || !strings.Contains(err.Error(), "EXPORT_PSEUDONYM_PREVIOUS_KEY") || !strings.Contains(err.Error(), advice) {
				t.Fatalf("a key change without the earlier key, a k- recording held: %v; want ErrRecordingsKey naming EXPORT_PSEUDONYM_PREVIOUS_KEY, and the way out into a new schema or folder carrying the suppression list (review 10, R10-4)", err)
			}
			lose()
			if _, err := s.SuppressionKey(ctx, on); !errors.Is(err, ErrRecordingsKey) || !strings.Contains(err.Error(), "k-0123abcd") || !strings.Contains(err.Error(), "restore") ||
				!strings.Contains(err.Error(), "With no backup holding it: delete") || !strings.Contains(err.Error(), advice) {
				t.Fatalf("the record lost, a k- recording held: %v; want ErrRecordingsKey naming the recording, to restore, and the ways out without a backup (review 9, R9-4), the new schema or folder carrying the suppression list (R10-4)", err)
			}
			release()
			k, err := s.SuppressionKey(ctx, changed)
			if err != nil || k.KeyID() == first.KeyID() {
				t.Fatalf("no k- recording held: %s, %v; want a new key", idOf(k), err)
			}
			if again, err := s.SuppressionKey(ctx, IDKeyOptions{PBX: "p", Pseudonymize: true, Key: idK2, Ruled: true, WrittenUnder: keyID(t, idK2)}); err != nil || again.KeyID() != k.KeyID() {
				t.Fatalf("then: %s, %v; want %s kept", idOf(again), err, k.KeyID())
			}
		})
	}
}

// TestRecordingsKeyMarkOfThePBX: PostgreSQL keeps the mark of a PBX's
// key of recordings' ids in the PBX's own rows, so that every row of no
// PBX lost (the list, the record, and the marks kept there before) while
// the PBX's rule stays, a pseudonymised PBX holding a k- recording is
// refused rather than handed its pseudonym key (review 9, R9-2: every k-
// recording copied again, exit 0); a mark an earlier release kept in a
// row pbx ” still counts, and the start writes the PBX's own; the mark
// is not the PBX's state (PrivacyRule: a first run that never committed
// is not checked against rule none), nor state of the schema (a record
// made again over marks alone takes no key of before).
func TestRecordingsKeyMarkOfThePBX(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	k1 := keyID(t, idK1)
	first := IDKeyOptions{PBX: "p", Pseudonymize: true, Key: idK1}
	later := IDKeyOptions{PBX: "p", Pseudonymize: true, Key: idK1, Ruled: true, WrittenUnder: k1}
	setup := func(t *testing.T) (*Postgres, func(string), *pseudonym.Keyed) {
		p, pool := newPostgres(t)
		exec := func(sql string) {
			t.Helper()
			if _, err := pool.Exec(ctx, strings.ReplaceAll(sql, "{state}", p.ident("export_state"))); err != nil {
				t.Fatal(err)
			}
		}
		k, err := p.SuppressionKey(ctx, first)
		if err != nil || k.KeyID() == k1 {
			t.Fatalf("first start: %s, %v; want a new key", idOf(k), err)
		}
		if _, found, err := p.PrivacyRule(ctx, "p"); err != nil || found {
			t.Fatalf("after a first start only: state found %v, %v; want none (the mark is not the PBX's state)", found, err)
		}
		exec("INSERT INTO " + p.ident("recordings") + " (pbx, recording, raw, run_id) VALUES ('p', 'k-0123abcd', '{}', 'r')")
		exec(`INSERT INTO {state} (pbx, key, state) VALUES ('p', 'pseudonymisation rule', '{"rule":"numbers","key_id":"` + k1 + `"}')`)
		return p, exec, k
	}
	refused := func(t *testing.T, p *Postgres, step string) {
		t.Helper()
		k, err := p.SuppressionKey(ctx, later)
		if !errors.Is(err, ErrRecordingsKey) || !strings.Contains(err.Error(), "restore") || !strings.Contains(err.Error(), "k-0123abcd") {
			t.Fatalf("%s: key %s, %v; want ErrRecordingsKey naming the recording and to restore (the pseudonym key %s would name every k- recording anew)", step, idOf(k), err, k1)
		}
	}
	t.Run("every row of no PBX lost", func(t *testing.T) {
		t.Parallel()
		p, exec, _ := setup(t)
		exec("DELETE FROM {state} WHERE pbx = ''")
		refused(t, p, "every row pbx '' lost")
	})
	t.Run("a mark of an earlier release", func(t *testing.T) {
		t.Parallel()
		p, exec, k := setup(t)
		toEarlier := "UPDATE {state} SET pbx = '', key = 'recordings id key p' WHERE pbx = 'p' AND key = 'recordings id key'"
		exec(toEarlier)
		if got, err := p.SuppressionKey(ctx, later); err != nil || got.KeyID() != k.KeyID() {
			t.Fatalf("the mark in a row pbx '': %s, %v; want %s", idOf(got), err, k.KeyID())
		}
		var own int
		if err := p.pool.QueryRow(ctx, "SELECT count(*) FROM "+p.ident("export_state")+" WHERE pbx = 'p' AND key = 'recordings id key'").Scan(&own); err != nil || own != 1 {
			t.Fatalf("the PBX's own mark: %d rows, %v; want the start to write it", own, err)
		}
		exec("DELETE FROM {state} WHERE pbx = 'p' AND key = 'recordings id key'")
		exec("DELETE FROM {state} WHERE pbx = '' AND key IN ('recordings id keys', 'suppressed numbers')")
		refused(t, p, "the record lost, the mark in a row pbx '' only")
	})
	t.Run("marks alone are no state", func(t *testing.T) {
		t.Parallel()
		p, exec, _ := setup(t)
		exec("DELETE FROM {state} WHERE NOT (pbx = 'p' AND key = 'recordings id key')")
		exec("DELETE FROM " + p.ident("recordings"))
		exec("DELETE FROM {state} WHERE pbx = ''")
		k, err := p.SuppressionKey(ctx, IDKeyOptions{PBX: "q", Pseudonymize: true, Key: idK1, Ruled: true, WrittenUnder: k1})
		if err != nil || k.KeyID() == k1 {
			t.Fatalf("another PBX's start over marks alone: %s, %v; want a new key, never the pseudonym key", idOf(k), err)
		}
	})
}
