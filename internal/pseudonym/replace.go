package pseudonym

import "strings"

// Replace returns s with each phone number and each pseudonym in it that
// match claims replaced by with, and how many were replaced. Numbers are
// found as Scrub finds them (at least seven digits, "+" allowed, up to two
// spaces or brackets between groups, inside free text too); a whole value
// that is one number in a form free text does not allow ("+39-02-1234-5678")
// is taken whole. match is given a number's canonical digits (Canonical)
// or a pseudonym as written ("p:…", "n:…"), which never look alike.
//
// Erasure uses it (issue 30): a number asked to be forgotten, in clear in
// any form or as its pseudonym, becomes a fixed marker wherever it is.
func Replace(s string, match func(v string) bool, with string) (string, int) {
	long := digits(s) >= minDigits
	if !long && strings.IndexByte(s, ':') < 0 {
		return s, 0 // no number, no pseudonym: the common case, at once
	}
	if long {
		if c, ok := canonical(s); ok && match(c) {
			return with, 1
		}
	}
	var b strings.Builder
	last, n := 0, 0
	for i := 0; i < len(s); {
		if l := pseudonymLen(s[i:]); l > 0 {
			if match(s[i : i+l]) {
				b.WriteString(s[last:i])
				b.WriteString(with)
				last, n = i+l, n+1
			}
			i += l
			continue
		}
		if !(s[i] == '+' || isDigit(s[i])) || i > 0 && isDigit(s[i-1]) {
			i++
			continue
		}
		end := numberEnd(s, i)
		if end == i {
			i++
			continue
		}
		wl, wr := i, end
		for wl > 0 && isWord(s[wl-1]) {
			wl--
		}
		for wr < len(s) && isWord(s[wr]) {
			wr++
		}
		if (wl < i || wr > end) && isHex(s[wl:wr]) {
			i = wr
			continue
		}
		if digits(s[i:end]) < minDigits {
			i = end
			continue
		}
		if c, ok := canonical(s[i:end]); ok && match(c) {
			b.WriteString(s[last:i])
			b.WriteString(with)
			last, n = end, n+1
		}
		i = end
	}
	if n == 0 {
		return s, 0
	}
	b.WriteString(s[last:])
	return b.String(), n
}

// canonical is Canonical, without an allocation for the common form: a
// "+" or nothing, then digits only.
func canonical(s string) (string, bool) {
	d := strings.TrimPrefix(s, "+")
	for i := 0; i < len(d); i++ {
		if !isDigit(d[i]) {
			return Canonical(s)
		}
	}
	d = strings.TrimPrefix(d, "00")
	return d, d != ""
}
