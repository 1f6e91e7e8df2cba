package sinks

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/wildix-export/wildix-export/internal/pseudonym"
)

// TestSuppressionSections (attack 9, F4 HIGH), both sinks: the list
// keeps each forgotten number under every key forget is told the sink's
// PBXes write under (Forgotten.ListUnder), and under its own random key
// when one writes in clear, so that a run under each of them applies it
// (a run under a key of no section applies the random key's, when there
// is one: any number's tag can be made under it); a run under a key it
// has no section of, or one missing numbers (made by a later forget), is
// refused saying what to do; a forget not given a
// key of the list is refused, the list unchanged. No number, and no
// pseudonym, is in the list.
func TestSuppressionSections(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	kA, _ := pseudonym.New([]byte(strings.Repeat("a", 32)))
	kB, _ := pseudonym.New([]byte(strings.Repeat("b", 32)))
	kC, _ := pseudonym.New([]byte(strings.Repeat("c", 32)))
	p, _ := newPostgres(t)
	c, err := NewCSV(CSVOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	forgotten := func(number string, clear bool, keys ...*pseudonym.Keyed) *Forgotten {
		f, err := NewForgotten(number, keys...)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, k := range keys {
			ids = append(ids, k.KeyID())
		}
		f.ListUnder(ids, clear)
		return f
	}
	for _, tc := range []struct {
		name  string
		store suppressStore
	}{{"postgres", p}, {"csv", c}} {
		// Forget run with a's configuration, key B given too.
		if _, added, err := tc.store.Suppress(ctx, forgotten("+390123456789", false, kA, kB), kA); err != nil || !added {
			t.Fatalf("%s: Suppress = %v, %v", tc.name, added, err)
		}
		l, err := tc.store.Suppression(ctx)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(l)
		if strings.Contains(string(b), "0123456789") || strings.Contains(string(b), pseudonym.NumberPrefix) || len(l.More) != 1 {
			t.Fatalf("%s: list %s", tc.name, b)
		}
		for _, k := range []*pseudonym.Keyed{kA, kB} {
			s, err := l.Suppressor(k)
			if err != nil || s.Len() != 1 || !s.match("+390123456789") || s.match("+390123456788") || !s.match(k.Number("390123456789")) {
				t.Errorf("%s: Suppressor(%v) = %v, %v; want the number and its pseudonym matched", tc.name, k, s, err)
			}
		}
		// A key of no section, or none (in clear): refused, saying to run forget again.
		for _, k := range []*pseudonym.Keyed{kC, nil} {
			if _, err := l.Suppressor(k); !errors.Is(err, ErrSuppressionKey) || !strings.Contains(err.Error(), "wildix-export forget") || !strings.Contains(err.Error(), "forgotten numbers (1)") {
				t.Errorf("%s: Suppressor(%v), no section of its key = %v; want %v saying to run forget", tc.name, k, err, ErrSuppressionKey)
			}
		}
		// A forget not given key B, the list's: refused, the list unchanged.
		if _, _, err := tc.store.Suppress(ctx, forgotten("+390123456780", true, kA), kA); !errors.Is(err, ErrSuppressionKey) || !strings.Contains(err.Error(), kB.KeyID()) {
			t.Errorf("%s: Suppress without key B = %v; want %v naming it", tc.name, err, ErrSuppressionKey)
		}
		if again, _ := tc.store.Suppression(ctx); !sameList(l, again) {
			t.Errorf("%s: a refused Suppress changed the list", tc.name)
		}
		// A second number forgotten with key C too, a PBX in clear
		// beside: C's section and the random key's hold it alone, and
		// runs under C and in clear are refused, until the first one is
		// forgotten again so.
		if _, added, err := tc.store.Suppress(ctx, forgotten("+390123456780", true, kA, kB, kC), kA); err != nil || !added {
			t.Fatalf("%s: Suppress with key C = %v, %v", tc.name, added, err)
		}
		l, _ = tc.store.Suppression(ctx)
		for _, k := range []*pseudonym.Keyed{kC, nil} {
			if _, err := l.Suppressor(k); !errors.Is(err, ErrSuppressionKey) || !strings.Contains(err.Error(), "holds only 1 of them") {
				t.Errorf("%s: Suppressor(%v), its section missing a number = %v; want %v", tc.name, k, err, ErrSuppressionKey)
			}
		}
		if _, added, err := tc.store.Suppress(ctx, forgotten("+390123456789", true, kA, kB, kC), kA); err != nil || added {
			t.Fatalf("%s: Suppress of the first number with key C = %v, %v; want not added (the list's numbers)", tc.name, added, err)
		}
		l, _ = tc.store.Suppression(ctx)
		for _, k := range []*pseudonym.Keyed{kA, kB, kC, nil} {
			if s, err := l.Suppressor(k); err != nil || s.Len() != 2 {
				t.Errorf("%s: Suppressor(%v) after both forgets = %v, %v", tc.name, k, s, err)
			}
		}
		if n := l.numbers(); n != 2 {
			t.Errorf("%s: the list counts %d numbers, want 2", tc.name, n)
		}
	}
}

// TestSuppressionSectionsStamp (attack 9, F4): the folder's list kept
// under two keys, restored from a copy taken before a forget, is refused
// as lacking one number (not one per key), the other key's entries said
// apart; the list restored whole passes.
func TestSuppressionSectionsStamp(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	kA, _ := pseudonym.New([]byte(strings.Repeat("a", 32)))
	kB, _ := pseudonym.New([]byte(strings.Repeat("b", 32)))
	f := newStampFolder(t, []int{1, 2})
	forget := func(number string) {
		n, err := NewForgotten(number, kA, kB)
		if err != nil {
			t.Fatal(err)
		}
		n.ListUnder([]string{kA.KeyID(), kB.KeyID()}, false)
		if _, added, err := f.s.Suppress(ctx, n, kA); err != nil || !added {
			t.Fatalf("Suppress(%s) = %v, %v", number, added, err)
		}
	}
	forget("+390123456789")
	before := f.copyState()
	forget("+390123456780")
	after := f.copyState()
	f.restoreState(before)
	wantLost(t, "the list of two keys restored from before a forget", f.s.CheckSuppression(ctx),
		"held 2 number(s)", "1 of them missing", "entries under its other keys")
	f.restoreState(after)
	if err := f.s.CheckSuppression(ctx); err != nil {
		t.Fatalf("the list restored whole: %v", err)
	}

	// A list that lost a section only, every number kept (review 44,
	// R44-3: told lost, "1 of them missing", the erasures said undone, and
	// every PBX refused): not lost; the key of the section missing is
	// refused at its run (sectionFor), the other served.
	kC, _ := pseudonym.New([]byte(strings.Repeat("c", 32)))
	n, err := NewForgotten("+390123456789", kA, kB, kC)
	if err != nil {
		t.Fatal(err)
	}
	n.ListUnder([]string{kA.KeyID(), kB.KeyID(), kC.KeyID()}, false)
	if _, added, err := f.s.Suppress(ctx, n, kA); err != nil || added {
		t.Fatalf("Suppress adding a section = %v, %v", added, err)
	}
	f.restoreState(after)
	if err := f.s.CheckSuppression(ctx); err != nil {
		t.Fatalf("the list restored from before a section was added: %v", err)
	}
	l, err := f.s.Suppression(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Suppressor(kC); !errors.Is(err, ErrSuppressionKey) {
		t.Errorf("a run under the key of the section lost: %v, want ErrSuppressionKey", err)
	}
	if _, err := l.Suppressor(kB); err != nil {
		t.Errorf("a run under a key of a section kept: %v", err)
	}
}
