package jsonscan

import (
	"math/big"
	"regexp"
	"testing"
)

// FuzzDecimalText: whatever the PBX sends for a number, DecimalText either
// refuses it or returns plain decimal text of exactly the same value
// (math/big as the oracle), and WholeNumber agrees with it; never a panic.
func FuzzDecimalText(f *testing.F) {
	for _, s := range []string{"1e2", "2.5E-3", "-1.5e+3", "0.0123", ".5", "5.", "+7", "-0e5", "1e1000", "1e-1000", "9223372036854775807", "9.3e18", "1.5e", "0x10", "NAN"} {
		f.Add(s)
	}
	plain := regexp.MustCompile(`^-?[0-9]+(\.[0-9]+)?$`)
	f.Fuzz(func(t *testing.T, s string) {
		d, err := DecimalText(s)
		n, werr := WholeNumber(s, 64)
		if err != nil {
			if werr == nil {
				t.Fatalf("%q: a whole number %d but not a decimal: %v", s, n, err)
			}
			return
		}
		if !plain.MatchString(string(d)) {
			t.Fatalf("%q → %q: not plain decimal text", s, d)
		}
		want, ok := new(big.Rat).SetString(s)
		got, ok2 := new(big.Rat).SetString(string(d))
		if !ok || !ok2 || want.Cmp(got) != 0 {
			t.Fatalf("%q → %q: value changed (oracle ok %v)", s, d, ok)
		}
		switch {
		case werr == nil && (!got.IsInt() || got.Num().Cmp(big.NewInt(n)) != 0):
			t.Fatalf("%q: whole number %d, decimal %s", s, n, d)
		case werr != nil && got.IsInt() && got.Num().IsInt64():
			t.Fatalf("%q: whole and in range (%s) but refused: %v", s, d, werr)
		}
	})
}
