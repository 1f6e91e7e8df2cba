package jsonscan

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/wildix-export/wildix-export/internal/pgtest"
)

// TestNumbersAsPHPWritesThem: exponent forms become exact decimal text
// and whole numbers where they are whole; never a float, never a silent NULL.
func TestNumbersAsPHPWritesThem(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in      string
		decimal string // "" when not a number
		bigint  string // the whole number, or the error's text
		integer string
	}{
		{"1e2", "100", "100", "100"},
		{"2.5E-3", "0.0025", `"2.5E-3" is not a whole number`, `"2.5E-3" is not a whole number`},
		{"-1.5e+3", "-1500", "-1500", "-1500"},
		{"2.50e1", "25.0", "25", "25"},
		{"1.5e-10", "0.00000000015", "not a whole number", "not a whole number"},
		{"42.0", "42.0", "42", "42"},
		{"+7", "7", "7", "7"},
		{".5", "0.5", "not a whole number", "not a whole number"},
		{"5.", "5", "5", "5"},
		{"0.0123", "0.0123", "not a whole number", "not a whole number"},
		{"007", "7", "7", "7"},
		{"1E0", "1", "1", "1"},
		{"-0e5", "0", "0", "0"},
		{"-0.00", "0.00", "0", "0"},
		{"3e9", "3000000000", "3000000000", "3e9 does not fit an integer column"},
		{"9223372036854775807", "9223372036854775807", "9223372036854775807", "does not fit an integer column"},
		{"9.3e18", "9300000000000000000", "9.3e18 does not fit a bigint column", "does not fit an integer column"},
		{"1e1000", "1" + strings.Repeat("0", 1000), "does not fit a bigint column", "does not fit an integer column"},
		{"1e1001", "", "not a whole number", "not a whole number"},
		{"1e-99999999999999999999", "", "not a whole number", "not a whole number"},
		{"1e", "", "not a whole number", "not a whole number"},
		{"e5", "", "not a whole number", "not a whole number"},
		{"1.2.3", "", "not a whole number", "not a whole number"},
		{"1,50", "", "not a whole number", "not a whole number"},
		{"NAN", "", "not a whole number", "not a whole number"},
		{"0x10", "", "not a whole number", "not a whole number"},
		{"-", "", "not a whole number", "not a whole number"},
		{".", "", "not a whole number", "not a whole number"},
	} {
		d, err := DecimalText(tc.in)
		if string(d) != tc.decimal || (err == nil) != (tc.decimal != "") {
			t.Errorf("numeric %q = %q, %v; want %q", tc.in, d, err, tc.decimal)
		}
		for _, col := range []struct {
			bits int
			want string
		}{{64, tc.bigint}, {32, tc.integer}} {
			n, err := WholeNumber(tc.in, col.bits)
			if err != nil {
				if !strings.Contains(err.Error(), col.want) {
					t.Errorf("%d-bit %q: err %v, want %q", col.bits, tc.in, err, col.want)
				}
			} else if strconv.FormatInt(n, 10) != col.want {
				t.Errorf("%d-bit %q = %d, want %s", col.bits, tc.in, n, col.want)
			}
		}
	}
}

// TestDecimalsAsPostgreSQLReadsThem: the decimal text has exactly the value
// PostgreSQL gives the number as PHP wrote it, and the same text.
func TestDecimalsAsPostgreSQLReadsThem(t *testing.T) {
	t.Parallel()
	_, pool := pgtest.Schema(t)
	ctx := context.Background()
	for _, in := range []string{"1e2", "2.5E-3", "-1.5e+3", "2.50e1", "1.5e-10", "42.0", "5.", ".5", "-0e5", "-0.00", "007", "1e1000", "1.23456789012345678901234567890e-20", "0.0123"} {
		d, err := DecimalText(in)
		if err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		var same bool
		var text string
		if err := pool.QueryRow(ctx, `SELECT $1::numeric = $2::numeric, $1::numeric::text`, in, string(d)).Scan(&same, &text); err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		if !same || text != string(d) {
			t.Errorf("%q: ours %s, PostgreSQL's %s (equal: %v)", in, d, text, same)
		}
	}
}
