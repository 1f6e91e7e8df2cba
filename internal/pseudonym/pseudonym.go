// Package pseudonym replaces personal data, phone numbers and names, by
// keyed pseudonyms: the same number always gives the same pseudonym under
// one key, whatever form the PBX wrote it in (+39 02…, 003902…, 3902…,
// with spaces or dashes), so joins, call-back detection and per-caller
// counts still work on pseudonymised data, and no one without the key can
// go back from a pseudonym to the number (HMAC-SHA-256).
//
// It knows nothing of endpoints or sinks: which values are personal is the
// caller's to say (issue 30's writers). A pseudonym is still personal data
// under the GDPR while the key is kept: erasing a number needs its rows
// gone too, not only its pseudonym.
//
// Like every package in this module, it is not a supported Go API.
package pseudonym

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base32"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// MinKeyLen is the shortest key accepted, in bytes.
const MinKeyLen = 32

// Prefixes mark a value as a pseudonym, so that a reader (and Scrub) tells
// it from a value in clear.
const (
	NumberPrefix = "p:"
	NamePrefix   = "n:"
)

// minDigits is the fewest digits Scrub takes for a phone number inside
// free text: fewer are an extension, a count or a port.
const minDigits = 7

var enc = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// Keyed makes pseudonyms under one key. It is safe for concurrent use.
type Keyed struct {
	key []byte
}

// New returns pseudonyms under key, which must be at least MinKeyLen
// bytes. The key is copied.
func New(key []byte) (*Keyed, error) {
	if len(key) < MinKeyLen {
		return nil, fmt.Errorf("the pseudonym key is %d bytes, fewer than %d: make one with `openssl rand -base64 32`", len(key), MinKeyLen)
	}
	return &Keyed{key: append([]byte(nil), key...)}, nil
}

// mac is the keyed hash of v in domain d, 80 bits as 16 letters and
// digits: enough that two numbers of one PBX never share a pseudonym.
func (k *Keyed) mac(d, v string) string {
	h := hmac.New(sha256.New, k.key)
	h.Write([]byte(d))
	h.Write([]byte{0})
	h.Write([]byte(v))
	return enc.EncodeToString(h.Sum(nil)[:10])
}

// KeyID names the key without revealing it or anything hashed with it:
// the run ledger records it, so that a key changed on an existing database
// is seen (mixing two keys breaks every join).
func (k *Keyed) KeyID() string { return "k:" + k.mac("key-id", "")[:8] }

// Number returns the pseudonym of the phone number s ("p:" and 16 letters
// and digits), the same for every form of one number (Canonical). A value
// that holds no digit, or is already a pseudonym, is returned as it is.
func (k *Keyed) Number(s string) string {
	c, ok := Canonical(s)
	if !ok {
		return s
	}
	return NumberPrefix + k.mac("number", c)
}

// Name returns the pseudonym of the person's name s ("n:…"), the same
// whatever its case, spacing and Unicode normalisation (José written with
// one é or with e and a combining accent). An empty name, or a pseudonym, stays.
func (k *Keyed) Name(s string) string {
	n := strings.ToLower(strings.Join(strings.Fields(norm.NFC.String(s)), " "))
	if n == "" || strings.HasPrefix(s, NamePrefix) || strings.HasPrefix(s, NumberPrefix) {
		return s
	}
	return NamePrefix + k.mac("name", n)
}

// Canonical returns the digits of phone number s as the number's one form:
// a leading "+" or "00" (international) dropped, spaces, dashes, dots,
// slashes and brackets ignored. It reports false for a value with a letter
// or other character a phone number does not have, no digit, or a
// pseudonym. A national number ("02 1234 5678") keeps its own form: which
// country it is in is not in the value.
func Canonical(s string) (string, bool) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, NumberPrefix) || strings.HasPrefix(s, NamePrefix) {
		return "", false
	}
	s = strings.TrimPrefix(s, "+")
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= '0' && r <= '9':
			b.WriteRune(r)
		case strings.ContainsRune(" \t-./()\u00a0", r):
		default:
			return "", false
		}
	}
	d := strings.TrimPrefix(b.String(), "00")
	return d, d != ""
}

// Display returns a form of the international number s that shows what a
// report may need and no more: its country calling code and last two
// digits ("+39 ••• ••• 12"). A number not written internationally shows its
// last two digits only; one of fewer than six digits shows nothing.
func Display(s string) string {
	t := strings.TrimSpace(s)
	intl := strings.HasPrefix(t, "+") || strings.HasPrefix(t, "00")
	d, ok := Canonical(t)
	if !ok || len(d) < 6 {
		return "•••"
	}
	last := d[len(d)-2:]
	if !intl {
		return "••• ••• " + last
	}
	return "+" + d[:countryCodeLen(d)] + " ••• ••• " + last
}

// countryCodeLen is the length of the ITU-T E.164 country calling code
// that international digits d begin with: codes are prefix-free, one digit
// in zones 1 and 7, two for the codes listed, three for the rest.
func countryCodeLen(d string) int {
	switch d[0] {
	case '1', '7':
		return 1
	}
	if strings.Contains(twoDigitCodes, " "+d[:2]+" ") {
		return 2
	}
	return 3
}

const twoDigitCodes = " 20 27 30 31 32 33 34 36 39 40 41 43 44 45 46 47 48 49 51 52 53 54 55 56 57 58 60 61 62 63 64 65 66 81 82 84 86 90 91 92 93 94 95 98 "

// Scrub replaces every phone number of at least seven digits inside the
// free text s (an Asterisk channel or dial string, a recording's file
// name, a JSON string, a note) by its pseudonym, unless keep (which may be
// nil) claims its canonical digits: an internal number the caller knows.
// A number is a run of digit groups (numberRun), replaced whole, never in
// fragments: "cb 0039-352-851-2784", "+39.352.851.2784",
// "PJSIP/sip:0039-352-8512784@trunk" and "SIP/0039021234567-0000002a"
// each lose the whole number. Left as they are: numbers of fewer digits
// (short codes, extensions), dates, times and IPv4 addresses written with
// separators ("2026-12-07", "2026.01.01-05.20.27", "10.0.0.1"), a word of
// hex digits (Asterisk's "0000002a"), and pseudonyms. In doubt it
// replaces: a number glued to letters ("ext0039021234567") is replaced all
// the same.
func (k *Keyed) Scrub(orig string, keep func(canonical string) bool) string {
	s, at := fold(orig) // matched on s; replaced in orig at at[i]
	var b strings.Builder
	last, replaced := 0, false
	for i := 0; i < len(s); {
		if n := pseudonymLen(s[i:]); n > 0 {
			i += n
			continue
		}
		if !(s[i] == '+' || isDigit(s[i])) || isDigit(s[i]) && i > 0 && isDigit(s[i-1]) {
			i++
			continue
		}
		end, number := numberRun(s, i)
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
		if channelCounter(s, i, end) {
			i = end
			continue
		}
		c, ok := Canonical(s[i:end])
		if number && ok && digits(s[i:end]) >= minDigits && (keep == nil || !keep(c)) {
			b.WriteString(orig[last:at[i]])
			b.WriteString(NumberPrefix + k.mac("number", c))
			last, replaced = at[end], true
		}
		i = end
	}
	if !replaced {
		return orig
	}
	b.WriteString(orig[last:])
	return b.String()
}

// fold returns s for matching only, with at[i] the offset in s of the
// byte i of the result (at[len] = len(s)): digits of every script
// (fullwidth, Arabic-Indic, …) become ASCII digits and a fullwidth plus a
// "+"; what people and word processors put between digit groups becomes
// the separator Scrub knows: every dash (en dash, non-breaking hyphen,
// minus sign), "_" to "-", a middle dot to ".", a line break, a zero-width
// space or joiner, a word joiner and other spaces to " " (a no-break
// space stays: gap knows it). The rest is kept byte for byte.
func fold(s string) (string, []int) {
	b := make([]byte, 0, len(s))
	at := make([]int, 0, len(s)+1)
	for i, r := range s {
		var c byte
		switch {
		case r < utf8.RuneSelf && r != '_' && r != '\n' && r != '\r':
		case unicode.IsDigit(r):
			c = byte('0' + digitValue(r))
		case r == '\uff0b':
			c = '+'
		case r == '_' || r == '\u2212' || unicode.Is(unicode.Pd, r):
			c = '-'
		case r == '\u00b7':
			c = '.'
		case r == '\n' || r == '\r' || r >= '\u200b' && r <= '\u200d' || r == '\u2060' || r != '\u00a0' && unicode.Is(unicode.Zs, r):
			c = ' '
		}
		if c != 0 {
			b, at = append(b, c), append(at, i)
			continue
		}
		_, n := utf8.DecodeRuneInString(s[i:])
		for j := 0; j < n; j++ {
			b, at = append(b, s[i+j]), append(at, i+j)
		}
	}
	return string(b), append(at, len(s))
}

// digitValue is the value of the decimal digit r of any script: Unicode
// puts each script's digits zero to nine in a row.
func digitValue(r rune) int {
	z := r
	for z > 0 && unicode.IsDigit(z-1) {
		z--
	}
	return int(r-z) % 10
}

// numberRun returns the end of the number that may begin at s[i] (a "+"
// or a digit), i when none does, and whether it is a number rather than a
// date, a time or an address. Its digit groups are joined by gaps:
//   - written internationally (a "+" or a first group beginning "00"), by
//     up to three spaces, tabs, no-break spaces or brackets with at most
//     one dash, dot or slash among them ("+39 - 352 - 8512784",
//     "0039-352-851-2784", "+39 (02) 1234 5678");
//   - otherwise by one dash, dot or slash, or up to two spaces or
//     brackets ("352-851-2784", "02/1234 5678"); and a run
//     beginning with a date (2026-12-07, 07.12.2026, with its time after
//     it) or an IPv4 address is not a number, and one holding such a
//     date further on ends before it.
//
// A group written internationally ("201-0039…", and after a whole number
// "+39 2 1234567 0039…") begins a number of its own, and a group inside a
// hex word ("-9f3a1c", "-0000002a") joins no run. A run is not cut at a
// length: two numbers one space apart are replaced together rather than
// one left in part.
func numberRun(s string, i int) (int, bool) {
	j := i
	intl := s[j] == '+'
	if intl {
		j++
	}
	if j >= len(s) || !isDigit(s[j]) {
		return i, false
	}
	var groups []string // the digits of each group
	var seps []byte     // the dash, dot or slash before each group but the first, 0 for none
	ends := []int{}
	n := 0
	for {
		from := j
		for j < len(s) && isDigit(s[j]) {
			j++
		}
		if len(groups) == 0 {
			intl = intl || j-from >= 3 && strings.HasPrefix(s[from:], "00")
		}
		groups, ends = append(groups, s[from:j]), append(ends, j)
		n += j - from
		k, sep, ok := gap(s, j, intl)
		if !ok {
			break
		}
		e := k
		for e < len(s) && isDigit(s[e]) {
			e++
		}
		if hexWord(s, k, e) || e-k >= 3 && strings.HasPrefix(s[k:], "00") && (!intl || n-2 >= minDigits) {
			break
		}
		seps = append(seps, sep)
		j = k
	}
	if !intl {
		for g := range groups {
			if d := dateOrAddress(groups[g:], seps[g:]); d > 0 && g == 0 {
				return ends[d-1], false
			} else if d > 0 {
				return ends[g-1], true // the groups before the date
			}
		}
	}
	return ends[len(ends)-1], true
}

// gap returns where the digits after the separators at s[j] begin, the
// dash, dot or slash among them (0 for none), and whether they join two
// groups of one number (numberRun): intl says it is written
// internationally.
func gap(s string, j int, intl bool) (int, byte, bool) {
	var sep byte
	chars := 0
	k := j
	for k < len(s) {
		switch {
		case s[k] == '-' || s[k] == '.' || s[k] == '/':
			if sep != 0 {
				return j, 0, false
			}
			sep = s[k]
			k++
		case s[k] == ' ' || s[k] == '(' || s[k] == ')' || intl && s[k] == '\t':
			k++
		case intl && strings.HasPrefix(s[k:], "\u00a0"):
			k += len("\u00a0")
		default:
			goto end
		}
		chars++
	}
end:
	if k == j || k >= len(s) || !isDigit(s[k]) {
		return j, 0, false
	}
	if intl {
		return k, sep, chars <= 3
	}
	if sep != 0 {
		return k, sep, chars == 1
	}
	return k, 0, chars <= 2
}

// dateOrAddress returns how many of a run's first groups, joined by the
// separators seps, are a date (2026-12-07, 2026.01.01-05.20.27 with its
// time, 07/12/2026) or an IPv4 address (192.168.100.200); 0 when they
// are neither.
func dateOrAddress(groups []string, seps []byte) int {
	if len(groups) < 3 || len(seps) < 2 || seps[0] == 0 || seps[1] == 0 {
		return 0
	}
	year := func(g string) bool { return len(g) == 4 && (g[:2] == "19" || g[:2] == "20") }
	short := func(g string) bool { return len(g) >= 1 && len(g) <= 2 }
	switch {
	case year(groups[0]) && short(groups[1]) && short(groups[2]):
		n := 3
		for n < len(groups) && n < 6 && short(groups[n]) && seps[n-1] != 0 {
			n++
		}
		return n
	case short(groups[0]) && short(groups[1]) && year(groups[2]):
		return 3
	case len(groups) >= 4 && seps[0] == '.' && seps[1] == '.' && seps[2] == '.':
		for _, g := range groups[:4] {
			if v, err := strconv.Atoi(g); err != nil || len(g) > 3 || v > 255 {
				return 0
			}
		}
		return 4
	}
	return 0
}

// pseudonymLen is the length of the pseudonym s begins with, or 0.
func pseudonymLen(s string) int {
	for _, p := range []string{NumberPrefix, NamePrefix} {
		if len(s) >= len(p)+16 && strings.HasPrefix(s, p) && strings.Trim(s[len(p):len(p)+16], "abcdefghijklmnopqrstuvwxyz234567") == "" {
			return len(p) + 16
		}
	}
	return 0
}

// isHex reports whether w is a word of hex digits with at least one
// letter: an id, not a number.
func isHex(w string) bool {
	letter := false
	for i := 0; i < len(w); i++ {
		switch c := w[i] | 0x20; {
		case isDigit(w[i]):
		case c >= 'a' && c <= 'f':
			letter = true
		default:
			return false
		}
	}
	return letter
}

func digits(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		if isDigit(s[i]) {
			n++
		}
	}
	return n
}

// channelCounter reports whether s[i:end] is an Asterisk channel's
// counter that happens to be all digits: the 8 hex digits Asterisk puts
// after the last - of a channel's name (TECH/name-XXXXXXXX, ";1" may
// follow as in Local channels), of a counter below 0x01000000, so
// beginning with 00, which no national number does. Scrub leaves it: it
// is no one's number, and a pseudonym of it only hid which legs belong
// together. A counter from 0x01000000 on is replaced, in doubt.
func channelCounter(s string, i, end int) bool {
	if end-i != 8 || s[i] != '0' || s[i+1] != '0' || i < 3 || s[i-1] != '-' || digits(s[i:end]) != 8 || end < len(s) && isWord(s[end]) {
		return false
	}
	start := i - 1 // the channel's name begins after a space, quote or list separator
	for start > 0 && !strings.ContainsRune(" \t\r\n\"'<>(),;|=", rune(s[start-1])) {
		start--
	}
	tech := start // TECH: a letter, then letters and digits, then /
	for tech < i && (isDigit(s[tech]) || s[tech]|0x20 >= 'a' && s[tech]|0x20 <= 'z') {
		tech++
	}
	return tech > start && !isDigit(s[start]) && tech < i-1 && s[tech] == '/'
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isWord(c byte) bool {
	return isDigit(c) || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c >= 0x80
}
