package pseudonym

import (
	"cmp"
	"slices"
	"strings"
)

// Replace returns s with each phone number and each pseudonym in it that
// match claims replaced by with, and how many were replaced. match is
// given a number's canonical digits (Canonical), with a "+" before them
// when the number was written internationally (a "+" before it or "00"
// at its start), or a pseudonym as written ("p:…", "n:…"), which never
// look alike. The "+" lets match tell a national form ("352 8512784" in
// Italy) from another country's international number with the same
// digits ("+352 8512784", Luxembourg).
//
// Numbers are looked for on the text as Scrub reads it (fold: digits of
// every script, Unicode dashes and spaces, "_", line breaks, "%2B" and
// the URL-encoded separators), each number Scrub replaces is a candidate
// whole, and more widely than Scrub does, as erasure must miss no form
// (issue 30): a whole value that is one number
// ("+39-02-1234-5678") is taken whole; inside free text, digit groups
// joined by up to maxGap separators (spaces, tabs, no-break spaces,
// dashes, dots, slashes, brackets) form a run, and every span of whole
// groups of a run holding minDigits to maxSpanDigits digits is a
// candidate, the longest first from each group on: "cb +39-352-8512784
// asap", "called +39 352 8512784 3 times" (the span before the "3"), two
// numbers with one space between them. No digit is ever next to a span
// (groups are whole), so a number one digit longer or shorter is another
// number. A group inside a hex id (hexID: "0000002a") joins no run. The
// "+" before a span, and a bracket it opens or closes, go with it. A
// group of more digits than a number has (after "00", more than E.164's
// 15), where Scrub writes Merged, is replaced whole when a number match
// claims is glued inside it (gluedMatch).
//
// Erasure uses it (issue 30): a number asked to be forgotten, in clear in
// any form or as its pseudonym, becomes a fixed marker wherever it is.
func Replace(s string, match func(v string) bool, with string) (string, int) {
	t := newText(s) // matched on t.s; replaced in s
	f := t.s
	long := digits(f) >= minDigits
	if !long && strings.IndexByte(f, ':') < 0 {
		return s, 0 // no number, no pseudonym: the common case, at once
	}
	if long && widestGap(f) <= maxWholeGap && !(isDigit(f[0]) && asteriskID(f, 0) == len(f)) {
		if c, ok := canonical(f); ok && match(intlMark(international(f), c)) {
			return with, 1
		}
	}
	spans := t.matches(match)
	if len(spans) == 0 {
		return s, 0
	}
	var b strings.Builder
	last := 0
	for _, sp := range spans {
		b.WriteString(s[t.origAt(last):t.origAt(sp.from)])
		b.WriteString(with)
		last = sp.to
	}
	b.WriteString(s[t.origAt(last):])
	return b.String(), len(spans)
}

// span is a part of a text to replace, s[from:to].
type span struct{ from, to int }

// matches returns the parts of t that Replace replaces, in order, none
// overlapping: each number Scrub replaces (text.numbers) that match
// claims, and what wideSpans finds.
func (t *text) matches(match func(v string) bool) []span {
	var spans, merged []span
	t.numbers(func(n number) {
		if match(intlMark(n.intl, n.canonical)) {
			spans = append(spans, span{n.from, n.to})
		} else if n.merged() {
			merged = append(merged, span{n.from, n.to})
		}
	})
	wide := wideSpans(t, match)
	// In a run Scrub writes Merged for, each stretch that whole groups
	// found nothing in and that cannot be one number either
	// ("-0000000039 771 553594": a number glued to zeros) is searched
	// digit by digit (gluedMatch) and replaced whole. A stretch that may
	// be one number is not: a number one digit longer is another number.
	w := 0
	for _, m := range merged {
		for w < len(wide) && wide[w].to <= m.from {
			w++
		}
		from := m.from
		for k := w; from < m.to; k++ {
			to := m.to
			if k < len(wide) && wide[k].from < m.to {
				to = wide[k].from
			}
			if sp, ok := t.glued(from, to, match); ok {
				spans = append(spans, sp)
			}
			if k >= len(wide) || wide[k].from >= m.to {
				break
			}
			from = wide[k].to
		}
	}
	spans = append(spans, wide...)
	slices.SortFunc(spans, func(a, b span) int { return cmp.Compare(a.from, b.from) })
	out := spans[:0]
	for _, sp := range spans {
		if l := len(out) - 1; l >= 0 && sp.from < out[l].to {
			out[l].to = max(out[l].to, sp.to)
			continue
		}
		out = append(out, sp)
	}
	return out
}

// wideSpans returns the pseudonyms in t that match claims, and the spans
// of whole digit groups it claims, looked for more widely than Scrub does
// (Replace).
// It stays one function (64 lines): one pass over the text's digit groups,
// whose candidate spans (pseudonyms, glued runs, group sequences) share the
// same cursor; split, each part would need that cursor handed back and forth.
func wideSpans(t *text, match func(v string) bool) []span {
	s := t.s
	var spans []span
	var run []group // the digit groups of the current run
	flush := func() {
		for i := 0; i < len(run); {
			j := t.spanMatch(run, i, match)
			if j < 0 {
				i++
				continue
			}
			from, to := spanBounds(s, run[i].start, run[j].end)
			spans = append(spans, span{from, to})
			i = j + 1
		}
		run = run[:0]
	}
	for i := 0; i < len(s); {
		if l := pseudonymShape(s[i:]); l > 0 {
			// A SIP user of that shape (pseudonymLen) is read as text
			// unless match claims it: a real pseudonym may be one.
			if m := match(s[i : i+l]); m || pseudonymLen(s, i) > 0 {
				flush()
				if m {
					spans = append(spans, span{i, i + l})
				}
				i += l
				continue
			}
		}
		if !isDigit(s[i]) {
			i++
			continue
		}
		if n := asteriskID(s, i); n > 0 {
			flush()
			i += n // no one's number, and none inside it
			continue
		}
		if minutesAt(s, i) {
			flush() // a time's minutes or seconds: no number's digits
			i += 2
			continue
		}
		g := group{start: i}
		for i < len(s) && isDigit(s[i]) {
			i++
		}
		g.end = i
		if t.hexID(g.start, g.end) {
			flush()
			continue
		}
		if len(strings.TrimPrefix(s[g.start:g.end], "00")) > maxE164 {
			flush() // no span of whole groups holds it: too long for a number
			if t.gluedMatch(g.start, g.end, match) {
				from, to := spanBounds(s, g.start, g.end)
				spans = append(spans, span{from, to})
			}
			continue
		}
		if len(run) > 0 && !isGap(s[run[len(run)-1].end:g.start]) {
			flush()
		}
		run = append(run, g)
	}
	flush()
	return spans
}

// maxGap is the most separator characters between two digit groups of one
// number in free text ("+39 (0) 2", "+39   352"); maxSpanDigits the most
// digits of a span: E.164's 15 after "00".
const (
	maxGap        = 4
	maxSpanDigits = 17
)

// maxWholeGap is the most characters between two digits of a whole value
// taken as one number: what forget's PostgreSQL filter lets through
// (sinks, Forgotten.pattern), so that forget finds what the suppression
// list erases.
const maxWholeGap = 6

// widestGap is the most characters between two digits of s.
func widestGap(s string) int {
	widest, gap, seen := 0, 0, false
	for _, r := range s {
		if r >= '0' && r <= '9' {
			if seen && gap > widest {
				widest = gap
			}
			seen, gap = true, 0
			continue
		}
		gap++
	}
	return widest
}

// group is a maximal run of ASCII digits, s[start:end].
type group struct{ start, end int }

// spanMatch returns the last group j of the longest span run[i..j] that
// match claims, or -1.
func (t *text) spanMatch(run []group, i int, match func(string) bool) int {
	s := t.s
	first := s[run[0].start:run[0].end]
	runIntl := run[0].start > 0 && s[run[0].start-1] == '+' || strings.HasPrefix(first, "00")
	own00 := strings.HasPrefix(s[run[i].start:run[i].end], "00")
	if i > 0 && runIntl && !own00 && t.digitsBefore(run, i) < minIntlDigits {
		// The tail of an international number: it has too few digits
		// yet to be complete, so group i cannot begin a number of its own
		// (+49 30 1234567 holds no +30 1234567). Past that, a group may
		// begin the next number (+44 20 7946 0958 3528512784: review
		// 30-last 1).
		return -1
	}
	total, j := 0, i
	for ; j < len(run); j++ {
		if total+run[j].end-run[j].start > maxSpanDigits {
			break
		}
		total += run[j].end - run[j].start
	}
	zero := -1 // a trunk prefix "(0)" after the country code: no digit of the number
	if i == 0 && runIntl {
		zero = t.trunkZeroGroup(run)
	}
	for j--; j >= i; j-- {
		var d strings.Builder
		for k, g := range run[i : j+1] {
			if i+k != zero {
				d.WriteString(s[g.start:g.end])
			}
		}
		c, intl := strings.CutPrefix(d.String(), "00")
		intl = intl || i == 0 && runIntl
		if len(c) >= minDigits && match(intlMark(intl, c)) {
			return j
		}
	}
	return -1
}

// trunkZeroGroup returns 1 when the second group of run, written
// internationally, is the 0 of a trunk prefix "(0)" right after its
// country code (trunkZero), which Canonical and numberRun drop, or -1.
// Counted as a digit here, "+49 (0)89 2382893 2 missed" held no span of
// the number's digits, and the suppression list, which runs on clear rows,
// let it through (attack 2, F3).
func (t *text) trunkZeroGroup(run []group) int {
	s := t.s
	if len(run) < 2 || run[1].end-run[1].start != 1 || run[1].end >= len(s) {
		return -1
	}
	from := run[0].start
	if from > 0 && s[from-1] == '+' {
		from--
	}
	if z := trunkZero(s[from:]); z < 0 || from+z != run[1].start {
		return -1
	}
	return 1
}

// glued returns the digits of s[from:to] and what is between them, when
// they cannot be one number (cannotBeOne) and match claims a number glued
// inside them (gluedMatch).
func (t *text) glued(from, to int, match func(string) bool) (span, bool) {
	s := t.s
	for from < to && !isDigit(s[from]) && !(s[from] == '+' && from+1 < to && isDigit(s[from+1])) {
		from++
	}
	for to > from && !isDigit(s[to-1]) {
		to--
	}
	if to-from < minDigits {
		return span{}, false
	}
	var d strings.Builder
	for i := from; i < to; i++ {
		if isDigit(s[i]) {
			d.WriteByte(s[i])
		}
	}
	if g := strings.TrimPrefix(s[from:to], "+"); len(g) == d.Len() && len(strings.TrimPrefix(g, "00")) > maxE164 {
		return span{}, false // one group: wideSpans searched it
	}
	intl := s[from] == '+' || from > 0 && s[from-1] == '+' || strings.HasPrefix(d.String(), "00")
	if !cannotBeOne(d.String(), intl) || !t.gluedMatch(from, to, match) {
		return span{}, false
	}
	return span{from, to}, true
}

// gluedMatch reports whether match claims a number glued inside the
// digits of s[from:to], too many for one number (Scrub writes Merged for
// them): two numbers, a date and a number ("20261207393528512784").
// Every window of minDigits to maxE164 digits is asked, marked
// international at the start after a "+" or "00"; Replace then replaces
// the whole, as no one number's bounds in it are known.
func (t *text) gluedMatch(from, to int, match func(string) bool) bool {
	d := t.s[from:to]
	if from > 0 && t.s[from-1] == '+' && d[0] != '+' {
		d = "+" + d
	}
	var b []byte
	for i := 0; i < len(d); i++ {
		if isDigit(d[i]) || i == 0 && d[i] == '+' {
			b = append(b, d[i])
		}
	}
	intlAt := -1
	if digits := string(b); strings.HasPrefix(digits, "+") {
		b, intlAt = b[1:], 0
	} else if strings.HasPrefix(digits, "00") {
		intlAt = 2
	}
	for i := 0; i+minDigits <= len(b); i++ {
		for l := minDigits; l <= maxE164 && i+l <= len(b); l++ {
			t.steps++
			if match(intlMark(i == intlAt, string(b[i:i+l]))) {
				return true
			}
		}
	}
	return false
}

// minIntlDigits is the fewest digits, country code included, of a number
// written internationally: the groups that follow its first eight digits
// may begin another number.
const minIntlDigits = 8

// digitsBefore is the count of digits in run's groups before group i, up
// to minIntlDigits: counting on would read a long run once per group.
func (t *text) digitsBefore(run []group, i int) int {
	n := 0
	for _, g := range run[:i] {
		t.steps++
		if n += g.end - g.start; n >= minIntlDigits {
			break
		}
	}
	return n
}

// intlMark returns the canonical digits c as Replace gives them to match:
// with a "+" before them when written internationally.
func intlMark(intl bool, c string) string {
	if intl {
		return "+" + c
	}
	return c
}

// international reports whether the whole value s is written
// internationally: a "+" or "00" first, after spaces and brackets.
func international(s string) bool {
	t := strings.TrimLeft(s, " \t\u00a0(")
	return strings.HasPrefix(t, "+") || strings.HasPrefix(t, "00")
}

// spanBounds widens the span s[from:to] of whole digit groups by the "+"
// before it and the bracket it leaves open or closes unopened.
func spanBounds(s string, from, to int) (int, int) {
	if from > 0 && s[from-1] == '+' {
		from--
	}
	opens, closes := strings.Count(s[from:to], "("), strings.Count(s[from:to], ")")
	if closes > opens && from > 0 && s[from-1] == '(' {
		from--
	}
	if opens > closes && to < len(s) && s[to] == ')' {
		to++
	}
	return from, to
}

// isGap reports whether the text between two digit groups joins them
// into one run: 1 to maxGap separators.
func isGap(t string) bool {
	k := 0
	for _, r := range t {
		if !strings.ContainsRune(" \t\u00a0-./()", r) {
			return false
		}
		k++
	}
	return k >= 1 && k <= maxGap
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

// NationalForms returns the forms the international number d (canonical
// digits, country code first) may be written in within its own country,
// each of at least minDigits digits: without the country code, and with
// the trunk prefix before it ("0" in most countries, "8" in zone 7; zone
// 1 dials "1" and the national number, its international digits). Italy
// keeps its "0" inside the national number (+39 02… is 02…, +39 352… is
// 352…), so there the form without the code is the only national one.
// Replace gives such a form to match only for a span written without "+"
// or "00": written so, it is another country's number. Erasure looks for these too
// (issue 30): a person asking to be forgotten gives one form, the PBX may
// have written the other.
func NationalForms(d string) []string {
	if len(d) < 2 {
		return nil
	}
	rest := d[countryCodeLen(d):]
	forms := []string{rest}
	switch d[0] {
	case '1':
	case '7':
		forms = append(forms, "8"+rest)
	default:
		if !strings.HasPrefix(rest, "0") && !strings.HasPrefix(d, "39") {
			forms = append(forms, "0"+rest)
		}
	}
	out := forms[:0]
	for _, f := range forms {
		if len(f) >= minDigits {
			out = append(out, f)
		}
	}
	return out
}
