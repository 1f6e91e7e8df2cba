package pseudonym

import (
	"bytes"
	"flag"
	"fmt"
	"go/format"
	"maps"
	"os"
	"regexp/syntax"
	"slices"
	"strconv"
	"testing"

	"github.com/nyaruka/phonenumbers"
)

var update = flag.Bool("update", false, "rewrite lengths.go from github.com/nyaruka/phonenumbers")

// TestPossibleLengths: the table of lengths numberRun reads
// (possibleLengths, lengths.go) is what libphonenumber's metadata says,
// as github.com/nyaruka/phonenumbers holds it: made again from the
// library's patterns and compared. `go test ./internal/pseudonym/ -run
// TestPossibleLengths -update` rewrites it after the library is updated.
func TestPossibleLengths(t *testing.T) {
	t.Parallel()
	want, err := lengthsFromLibrary()
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile("lengths.go", lengthsSource(t, want), 0o644); err != nil {
			t.Fatal(err)
		}
		return // the table compiled in is the one before
	}
	for _, k := range slices.Sorted(maps.Keys(want)) {
		if got, ok := possibleLengths[k]; !ok || got != want[k] {
			t.Errorf("possibleLengths[%q] = %#x (%v), the library says %#x", k, got, ok, want[k])
		}
	}
	for k := range possibleLengths {
		if _, ok := want[k]; !ok {
			t.Errorf("possibleLengths[%q]: the library has no such entry", k)
		}
	}
}

// TestPossibleLengthsHoldExamples: every example number of the library,
// of each country and each kind of number the table takes, has a length
// the table gives for its first digits (nationalLengths), and none is
// longer than the table's longest; the table is made from the library's
// patterns, and this asks the library's own numbers instead.
func TestPossibleLengthsHoldExamples(t *testing.T) {
	t.Parallel()
	coll, err := phonenumbers.MetadataCollection()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, m := range coll.Metadata {
		cc := strconv.Itoa(int(m.GetCountryCode()))
		for _, d := range lengthsDescs(m) {
			ex := d.GetExampleNumber()
			if ex == "" {
				continue
			}
			n++
			ccLen, mask := nationalLengths(cc + ex)
			if ccLen != len(cc) || mask&(1<<len(ex)) == 0 {
				t.Errorf("+%s %s (%s): country code of %d digits, lengths %#x: not its own", cc, ex, m.GetId(), ccLen, mask)
			}
		}
	}
	if n < 1000 {
		t.Errorf("%d example numbers checked: the library holds more", n)
	}
	// Italy's mobiles: 9 or 10 digits, so that what follows one of 10
	// is no part of it (issue 30, N1).
	if _, m := nationalLengths("393528510164"); m != 1<<9|1<<10 {
		t.Errorf("+39 35…: lengths %#x, want 9 and 10", m)
	}
	if c, m := nationalLengths("999"); c != 0 || m != 0 {
		t.Errorf("+999 (no country): %d, %#x", c, m)
	}
}

// lengthsDescs are the kinds of number of m the table takes: all but
// voicemail access numbers, which are a mobile's number with one or two
// digits after it (Italy's 3… of 11 and 12 digits): the number a caller
// has is the mobile's.
func lengthsDescs(m *phonenumbers.PhoneMetadata) []*phonenumbers.PhoneNumberDesc {
	var out []*phonenumbers.PhoneNumberDesc
	for _, d := range []*phonenumbers.PhoneNumberDesc{
		m.FixedLine, m.Mobile, m.TollFree, m.PremiumRate, m.SharedCost,
		m.PersonalNumber, m.Voip, m.Pager, m.Uan,
	} {
		if p := d.GetNationalNumberPattern(); p != "" && p != "NA" {
			out = append(out, d)
		}
	}
	return out
}

// lengthsFromLibrary makes possibleLengths from the library's patterns:
// for each country calling code, and under it each national prefix of up
// to maxLengthsPrefix digits whose numbers' lengths differ from its
// parent's (a longest or a shortest of their own), the lengths of the numbers of any kind
// (lengthsDescs) beginning with it.
func lengthsFromLibrary() (map[string]uint32, error) {
	coll, err := phonenumbers.MetadataCollection()
	if err != nil {
		return nil, err
	}
	progs := map[string][]*syntax.Prog{}
	for _, m := range coll.Metadata {
		cc := strconv.Itoa(int(m.GetCountryCode()))
		if _, ok := progs[cc]; !ok {
			progs[cc] = nil
		}
		for _, d := range lengthsDescs(m) {
			re, err := syntax.Parse(d.GetNationalNumberPattern(), syntax.Perl)
			if err != nil {
				return nil, fmt.Errorf("+%s: %w", cc, err)
			}
			p, err := syntax.Compile(re.Simplify())
			if err != nil {
				return nil, fmt.Errorf("+%s: %w", cc, err)
			}
			progs[cc] = append(progs[cc], p)
		}
	}
	table := map[string]uint32{}
	var walk func(cc, prefix string, parent uint32) error
	walk = func(cc, prefix string, parent uint32) error {
		var m uint32
		for _, p := range progs[cc] {
			l, err := lengthsOf(p, prefix)
			if err != nil {
				return fmt.Errorf("+%s: %w", cc, err)
			}
			m |= l
		}
		if m == 0 && prefix != "" {
			return nil // no number begins so: its parent's lengths stand
		}
		if prefix == "" || m != parent {
			table[cc+prefix], parent = m, m
		}
		if len(prefix) < maxLengthsPrefix {
			for c := '0'; c <= '9'; c++ {
				if err := walk(cc, prefix+string(c), parent); err != nil {
					return err
				}
			}
		}
		return nil
	}
	for cc := range progs {
		if err := walk(cc, "", 0); err != nil {
			return nil, err
		}
	}
	return table, nil
}

// lengthsOf returns the lengths (bit l for l digits, up to maxE164) of
// the strings of digits beginning with prefix that p matches whole: the
// program's states reachable after each digit, over every digit at once,
// hold its match exactly when some number of that length matches.
func lengthsOf(p *syntax.Prog, prefix string) (uint32, error) {
	var closure func(set map[uint32]bool, pc uint32) error
	closure = func(set map[uint32]bool, pc uint32) error {
		if set[pc] {
			return nil
		}
		set[pc] = true
		switch i := p.Inst[pc]; i.Op {
		case syntax.InstAlt, syntax.InstAltMatch:
			if err := closure(set, i.Out); err != nil {
				return err
			}
			return closure(set, i.Arg)
		case syntax.InstCapture, syntax.InstNop:
			return closure(set, i.Out)
		case syntax.InstEmptyWidth:
			return fmt.Errorf("a pattern with an anchor or a word boundary: %v", p)
		}
		return nil
	}
	step := func(set map[uint32]bool, digits string) (map[uint32]bool, error) {
		next := map[uint32]bool{}
		for pc := range set {
			i := p.Inst[pc]
			switch i.Op {
			case syntax.InstRune, syntax.InstRune1, syntax.InstRuneAny, syntax.InstRuneAnyNotNL:
				for _, c := range digits {
					if i.MatchRune(c) {
						if err := closure(next, i.Out); err != nil {
							return nil, err
						}
						break
					}
				}
			}
		}
		return next, nil
	}
	set := map[uint32]bool{}
	if err := closure(set, uint32(p.Start)); err != nil {
		return 0, err
	}
	var err error
	for _, c := range prefix {
		if set, err = step(set, string(c)); err != nil {
			return 0, err
		}
	}
	var m uint32
	for l := len(prefix); l <= maxE164 && len(set) > 0; l++ {
		for pc := range set {
			if p.Inst[pc].Op == syntax.InstMatch {
				m |= 1 << l
				break
			}
		}
		if set, err = step(set, "0123456789"); err != nil {
			return 0, err
		}
	}
	return m, nil
}

// lengthsSource is lengths.go holding table.
func lengthsSource(t *testing.T, table map[string]uint32) []byte {
	var b bytes.Buffer
	b.WriteString(`// Code generated by go test ./internal/pseudonym/ -run TestPossibleLengths -update; DO NOT EDIT.

package pseudonym

// possibleLengths is libphonenumber's lengths of national numbers (bit l
// for l digits), made from github.com/nyaruka/phonenumbers' metadata by
// TestPossibleLengths: keyed by a country calling code, the lengths of
// all its numbers; keyed by a country calling code and the first digits
// of a national number (up to maxLengthsPrefix), those of its numbers
// beginning so, where they differ from those under the key one digit
// shorter (Italy's 3… are 9 or 10 digits, its 0… 6 to 12; the UK's 7…
// 10 where its numbers are 7, 9 or 10; Austria's 66… 6 to 13 where its
// 1… may have 4).
// Voicemail access numbers are left out (lengthsDescs). nationalLengths
// reads it.
var possibleLengths = map[string]uint32{
`)
	keys := slices.Sorted(maps.Keys(table))
	for i, k := range keys {
		if i%6 == 0 {
			b.WriteString("\t")
		}
		fmt.Fprintf(&b, "%q: %#x,", k, table[k])
		if i%6 == 5 || i == len(keys)-1 {
			b.WriteString("\n")
		} else {
			b.WriteString(" ")
		}
	}
	b.WriteString("}\n")
	src, err := format.Source(b.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	return src
}
