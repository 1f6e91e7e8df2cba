package jsonscan

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// MaxExponent bounds the exponent of a number in exponent form, as
// PostgreSQL's numeric input does, so that "1e999999999" cannot become a
// gigabyte of digits.
const MaxExponent = 1000

// DecimalText returns s, a decimal number in plain or exponent form (as PHP
// prints floats: "1e2", "2.5E-3", "-1.5e+3"), as plain decimal text of
// exactly the same value: "100", "0.0025", "-1500". No float is involved.
func DecimalText(s string) (string, error) {
	bad := func() (string, error) { return "", fmt.Errorf("%q is not a number", Excerpt([]byte(s))) }
	m, neg := s, false
	if m != "" && (m[0] == '-' || m[0] == '+') {
		neg, m = m[0] == '-', m[1:]
	}
	exp := 0
	if i := strings.IndexAny(m, "eE"); i >= 0 {
		e := m[i+1:]
		m = m[:i]
		if e != "" && (e[0] == '-' || e[0] == '+') {
			if !allDigits(e[1:]) {
				return bad()
			}
		} else if !allDigits(e) {
			return bad()
		}
		if len(strings.TrimLeft(strings.TrimLeft(e, "+-"), "0")) > 4 {
			return "", fmt.Errorf("%q: exponent beyond ±%d", Excerpt([]byte(s)), MaxExponent)
		}
		n, err := strconv.Atoi(e)
		if err != nil {
			return bad()
		}
		if n > MaxExponent || n < -MaxExponent {
			return "", fmt.Errorf("%q: exponent beyond ±%d", Excerpt([]byte(s)), MaxExponent)
		}
		exp = n
	}
	whole, frac, _ := strings.Cut(m, ".")
	if whole == "" && frac == "" || !allDigits(whole) || !allDigits(frac) {
		return bad()
	}
	digits := whole + frac
	point := len(whole) + exp // where the decimal point goes in digits
	switch {
	case point <= 0:
		whole, frac = "0", strings.Repeat("0", -point)+digits
	case point >= len(digits):
		whole, frac = digits+strings.Repeat("0", point-len(digits)), ""
	default:
		whole, frac = digits[:point], digits[point:]
	}
	whole = strings.TrimLeft(whole, "0")
	if whole == "" {
		whole = "0"
	}
	out := whole
	if frac != "" {
		out += "." + frac
	}
	if neg && strings.Trim(digits, "0") != "" {
		out = "-" + out
	}
	return out, nil
}

// allDigits reports whether s holds only ASCII digits (true when empty).
func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// WholeNumber reads s as a whole number that fits bits (32 or 64) signed
// bits: plain ("42") or as PHP may print it ("1e2", "42.0").
func WholeNumber(s string, bits int) (int64, error) {
	if n, err := strconv.ParseInt(s, 10, bits); err == nil {
		return n, nil
	}
	d, err := DecimalText(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a whole number", Excerpt([]byte(s)))
	}
	whole, frac, _ := strings.Cut(string(d), ".")
	if strings.Trim(frac, "0") != "" {
		return 0, fmt.Errorf("%q is not a whole number", Excerpt([]byte(s)))
	}
	n, err := strconv.ParseInt(whole, 10, bits)
	if err != nil {
		kind := "a bigint"
		if bits == 32 {
			kind = "an integer"
		}
		return 0, fmt.Errorf("%s does not fit %s column", Excerpt([]byte(s)), kind)
	}
	return n, nil
}

// Int reads a whole number sent as a JSON number or a JSON string,
// in exponent form too ("1e3"), as PHP may write it.
func Int(raw json.RawMessage) (int64, error) {
	s := string(raw)
	if len(s) > 0 && s[0] == '"' {
		if err := json.Unmarshal(raw, &s); err != nil {
			return 0, err
		}
	}
	return WholeNumber(strings.TrimSpace(s), 64)
}
