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
	"strings"

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
// slashes and brackets ignored, and a trunk prefix written "(0)" right
// after the country code ("+39 (0)352 851 0001", "0044 (0)20…": E.164
// never has it; trunkZero) dropped. It reports false for a value with a letter
// or other character a phone number does not have, no digit, or a
// pseudonym. A national number ("02 1234 5678") keeps its own form: which
// country it is in is not in the value.
func Canonical(s string) (string, bool) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, NumberPrefix) || strings.HasPrefix(s, NamePrefix) {
		return "", false
	}
	if z := trunkZero(s); z >= 0 {
		s = s[:z] + s[z+1:]
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

// trunkZero returns the offset of the 0 of a "(0)" written right after
// the country code of the international number s begins with (a "+" or
// "00" and up to two spaces, 1 to 3 digits, up to two spaces: "+39 (0)352
// 851 0001", "+44(0)20 7946 0958", "00 44 (0)20…"), the national trunk prefix business cards show
// beside the country code; or -1. Written so, the number is the one
// without it (attack 30, F2: forget never found it). Italy, San Marino
// and the Vatican keep their 0 in international form (+39 02…, +378
// 0549…): there "(0)" is a digit of the number (attack 2, F6: "+39 (0)2
// 1234 5678" got the pseudonym of 39212345678, which forget of +39 02
// 12345678 never found), but before an Italian mobile (a 3 next), which
// is never written with a 0, it is a trunk prefix as elsewhere. Reading
// no further than the digit after "(0)", it reads "+39 (0)35…", a number
// of Bergamo, as a mobile too.
func trunkZero(s string) int {
	i := 0
	switch {
	case strings.HasPrefix(s, "+"):
		i = 1
	case strings.HasPrefix(s, "00"):
		i = 2
		for k := 0; k < 2 && i < len(s) && s[i] == ' '; k++ {
			i++ // "00 44 (0)20 7946 0958"
		}
	default:
		return -1
	}
	j := i
	for j < len(s) && isDigit(s[j]) {
		j++
	}
	if j == i || j-i > 3 {
		return -1
	}
	cc := j
	for k := 0; k < 2 && j < len(s) && s[j] == ' '; k++ {
		j++
	}
	if !strings.HasPrefix(s[j:], "(0)") || keepsZero(s[i:cc], strings.TrimLeft(s[j+3:], " ")) {
		return -1
	}
	return j + 1
}

// keepsZero reports whether the country calling code cc keeps the 0 its
// numbers begin with in international form, for a number whose digits
// after the 0 begin rest (trunkZero).
func keepsZero(cc, rest string) bool {
	switch cc {
	case "39":
		return !strings.HasPrefix(rest, "3")
	case "378", "379":
		return true
	}
	return false
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
// A number is a run of digit groups (text.numbers, numberRun, on the
// text folded: fold), replaced whole, never in fragments: "cb
// 0039-352-851-2784", "+39.352.851.2784", "%2B39%20352%208512784",
// "PJSIP/sip:0039-352-8512784@trunk" and "SIP/0039021234567-0000002a"
// each lose the whole number. Left as they are: numbers of fewer digits
// (short codes, extensions), dates, times and IPv4 addresses written with
// separators ("2026-12-07", "2026.01.01-05.20.27", "10.0.0.1"), hex ids
// (hexID: Asterisk's "0000002a", an MD5 or SHA-256 in hex), and
// pseudonyms. In doubt it replaces: a number glued to letters
// ("ext0039021234567", "cb393528512784") is replaced all the same. A
// run of more digits than one number has (E.164's 15 after "+" or "00":
// two numbers glued, "393528512784393528512785", or a number glued to a
// date, "20261207393528512784") becomes Merged, keyed on nothing: a
// pseudonym of the whole would keep a trace of each number in it that
// forget of either could not find.
// Replace finds every number Scrub replaces, in clear and as its pseudonym.
func (k *Keyed) Scrub(orig string, keep func(canonical string) bool) string {
	return k.scrub(newText(orig), keep) // matched on t.s; replaced in orig
}

// scrub is Scrub of the text t.
func (k *Keyed) scrub(t *text, keep func(canonical string) bool) string {
	orig := t.orig
	var b strings.Builder
	last := 0
	t.numbers(func(n number) {
		if keep != nil && keep(n.canonical) {
			return
		}
		b.WriteString(orig[last:t.origAt(n.from)])
		if n.merged() {
			b.WriteString(Merged)
		} else {
			b.WriteString(NumberPrefix + k.mac("number", n.canonical))
		}
		last = t.origAt(n.to)
	})
	if b.Len() == 0 {
		return orig
	}
	b.WriteString(orig[last:])
	return b.String()
}

// HoldsNumber reports whether the text s holds a phone number, or a
// pseudonym of one or of a name (Merged too): what a message naming s, a
// record's key, would carry in clear or as the pseudonym of a number
// that forget may erase everywhere else. A number is what Replace finds
// (forget's reading, wider than Scrub's: every span of whole digit
// groups of minDigits digits or more), so that a key Scrub reads
// otherwise is not named either (review 5, R5-10: "43 1187 0235" was
// left in clear by Scrub, and named).
func HoldsNumber(s string) bool {
	t := newText(s)
	for i := 0; i+pseudonymChars <= len(t.s); i++ {
		if pseudonymShape(t.s[i:]) > 0 {
			return true
		}
	}
	if strings.Contains(t.s, Merged) {
		return true
	}
	_, n := Replace(s, func(string) bool { return true }, "")
	return n > 0
}

// KeyNotNamed is what ShownKey writes for a key holding a number.
const KeyNotNamed = "not named: it holds a number"

// ShownKey is a record's key as a message, a log line or a note names it
// ("key 204"): the key's values (a key of several columns is written with
// tabs between them) joined by ",", or KeyNotNamed when it holds a number
// (HoldsNumber: a custom endpoint keyed by a phone number). Keys are never
// pseudonymised, so the message carried the number in clear, or through
// the redactor its pseudonym, into the run ledger, a log or a
// notification, where forget of the number cannot erase it (attack 4,
// F4); the record stays found by its key in export_quarantine or on the
// PBX's page the message names.
func ShownKey(key string) string {
	if HoldsNumber(key) {
		return KeyNotNamed
	}
	return strings.ReplaceAll(key, "\t", ",")
}
