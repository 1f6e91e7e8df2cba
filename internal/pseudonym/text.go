package pseudonym

import (
	"math/bits"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// This file is the one reading of free text that Scrub and Replace share:
// fold (what counts as a digit and as a separator), the numbers Scrub
// replaces (text.numbers: numberRun, dates, times, hex ids, channel
// counters, and where a number written internationally ends: its
// country's lengths, possibleLengths in lengths.go), and the hex id rule
// (hexID). Replace looks wider than Scrub, but on the
// same folded text and for every number Scrub replaces, so that a form
// Scrub pseudonymises is a form forget finds in clear (issue 30).

// maxE164 is the most digits of a phone number, country code included
// (ITU-T E.164), after a "+" or "00".
const maxE164 = 15

// Merged is what Scrub writes for a run of digits too long to be one
// number (more than maxE164 after a "+" or "00"): two numbers glued
// together, a number glued to a date or an id. It is keyed on nothing,
// so it links to no number: a pseudonym of the whole run would be a
// trace of each number in it that forget of either could not find. The
// "-" after "p:" keeps it from ever reading as a pseudonym, and it holds
// no digit, so a second Scrub leaves it.
const Merged = "p:-redacted-"

// text is a value as Scrub and Replace read it: s, the value folded
// (fold), and the way back to the value's own bytes. It remembers the
// last word and channel name it looked at, so that reading a value is
// linear in its length whatever its words (a 200 KB word of digits and
// letters was read once per digit group). Not safe for concurrent use;
// one text per value.
type text struct {
	orig   string
	s      string
	at     []int    // at[i] is the offset in orig of s[i]; nil when s is orig
	w      word     // the last word looked at
	f      fragment // the last part of a word between its numbers looked at
	tok    token    // how far the channel names were read
	done   []span   // the numbers text.numbers gave so far, in order
	stamp  int      // where the last date with its time (a recording name's) numberRun read ends, or -1
	noCode bool     // numberRun reads no first group as a country code (codeAlone): its fallback
	steps  int      // bytes read by the word and channel name scans (tests)
}

func newText(orig string) *text {
	s, at := fold(orig)
	return &text{orig: orig, s: s, at: at}
}

// origAt is the offset in the value of the byte i of the folded text.
func (t *text) origAt(i int) int {
	if t.at == nil {
		return i
	}
	return t.at[i]
}

// fold returns s for matching only, with at[i] the offset in s of the
// byte i of the result (at[len] = len(s)), or s itself and nil when it
// holds nothing to fold: digits of every script (fullwidth, Arabic-Indic,
// …) become ASCII digits; what people and word processors put between
// digit groups becomes the separator numberRun knows (separator); and
// URL encoding's "%2B" (either case) becomes "+", as
// its "%20", "%2D", "%2E", "%2F", "%28", "%29" become the space, dash,
// dot, slash and brackets they encode. The rest is kept byte for byte.
func fold(s string) (string, []int) {
	if !needsFold(s) {
		return s, nil
	}
	b := make([]byte, 0, len(s))
	at := make([]int, 0, len(s)+1)
	for i := 0; i < len(s); {
		if c := percent(s[i:]); c != 0 {
			b, at = append(b, c), append(at, i)
			i += 3
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		var c byte
		switch {
		case r < utf8.RuneSelf && r != '_' && r != '\n' && r != '\r':
		case unicode.IsDigit(r):
			c = byte('0' + digitValue(r))
		default:
			c = separator(r)
		}
		if c != 0 {
			b, at = append(b, c), append(at, i)
			i += n
			continue
		}
		for j := 0; j < n; j++ {
			b, at = append(b, s[i+j]), append(at, i+j)
		}
		i += n
	}
	return string(b), append(at, len(s))
}

// separator returns the separator numberRun knows that the character r
// (not ASCII, or "_", a line break) stands for between digit groups, or 0.
// By Unicode category where one fits, so the next such character is
// covered too: every dash (Pd) and the minus sign to "-"; every space
// and line or paragraph separator (Z) but the no-break space (gap knows
// it), and every format character (Cf: zero-width space and joiners,
// soft hyphen, BOM, word joiner, direction marks) to " "; the dot-like
// characters (no category holds them: middle dots, the hyphenation point,
// the dot operator, leaders, fullwidth and small full stops) to "."; and
// the fullwidth forms of "+", "/", "(" and ")" to those.
func separator(r rune) byte {
	switch {
	case r == '_' || r == '\u2212' || unicode.Is(unicode.Pd, r):
		return '-'
	case r == '\n' || r == '\r' || r != '\u00a0' && unicode.In(r, unicode.Z, unicode.Cf):
		return ' '
	case strings.ContainsRune(dotLike, r):
		return '.'
	case r >= '\uff01' && r <= '\uff5e' && strings.ContainsRune("+/()", r-0xfee0):
		return byte(r - 0xfee0)
	}
	return 0
}

// dotLike are the characters written as a dot between digit groups:
// middle dot, Greek ano teleia, one dot leader, hyphenation point, bullet,
// bullet operator, dot operator, katakana middle dot (and its halfwidth
// form), small and fullwidth full stop.
const dotLike = "\u00b7\u0387\u2024\u2027\u2022\u2219\u22c5\u30fb\uff65\ufe52\uff0e"

// needsFold reports whether fold would change s: the common value, plain
// ASCII, is read as it is, with no copy.
func needsFold(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= utf8.RuneSelf, c == '_', c == '\n', c == '\r', c == '%' && percent(s[i:]) != 0:
			return true
		}
	}
	return false
}

// percent returns the character the URL encoding s begins with stands
// for, when it is one a number may be written with ("%2B" for "+"), or 0.
func percent(s string) byte {
	if len(s) < 3 || s[0] != '%' || s[1] != '2' {
		return 0
	}
	switch s[2] {
	case 'B', 'b':
		return '+'
	case '0':
		return ' '
	case 'D', 'd':
		return '-'
	case 'E', 'e':
		return '.'
	case 'F', 'f':
		return '/'
	case '8':
		return '('
	case '9':
		return ')'
	}
	return 0
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

// number is one number Scrub replaces: s[from:to] of the folded text,
// its canonical digits (Canonical), and whether it is written
// internationally (a "+" or "00" first).
type number struct {
	from, to  int
	canonical string
	intl      bool
}

// merged reports whether n cannot be one number: more digits than one
// number has (maxE164 after "+" or "00"), or written internationally
// with a 0 where the country code begins, which none does: numbers glued
// to each other, to a date, or to zeros ("-00000039333717540").
func (n number) merged() bool { return cannotBeOne(n.canonical, n.intl) }

// cannotBeOne reports whether the digits d, written internationally or
// not, cannot be one number (number.merged).
func cannotBeOne(d string, intl bool) bool {
	c := strings.TrimPrefix(d, "00")
	return len(c) > maxE164 || intl && strings.HasPrefix(c, "0")
}

// numbers calls yield with each number of at least minDigits digits in
// t, in order, as Scrub replaces them: a run of digit groups
// (numberRun) beginning at a "+" or at a digit after no digit; pseudonyms,
// dates, times and addresses, hex ids (hexID) and channel counters
// (channelCounter) are skipped.
func (t *text) numbers(yield func(number)) {
	s := t.s
	after := -1 // the end of the last pseudonym: a digit there begins a number
	t.done, t.stamp = t.done[:0], -1
	for i := 0; i < len(s); {
		if n := pseudonymLen(s, i); n > 0 {
			i += n
			after = i
			continue
		}
		if !(s[i] == '+' || isDigit(s[i])) || isDigit(s[i]) && i > 0 && isDigit(s[i-1]) && i != after {
			i++
			continue
		}
		if minutesAt(s, i) {
			i += 2 // a time's minutes or seconds: no number begins there
			continue
		}
		if n := asteriskID(s, i); n > 0 {
			i += n // no one's number (asteriskID)
			continue
		}
		g := i // the first digit group
		if s[g] == '+' {
			g++
		}
		e := g
		for e < len(s) && isDigit(s[e]) {
			e++
		}
		if e > g && (t.hexID(g, e) || recordingID(s, g, e)) {
			i = e
			continue
		}
		end, isNumber := t.numberRun(i)
		if end == i {
			i++
			continue
		}
		if isNumber && !t.channelCounter(i, end) && digits(s[i:end]) >= minDigits {
			if c, ok := Canonical(s[i:end]); ok {
				t.done = append(t.done, span{i, end})
				yield(number{from: i, to: end, canonical: c, intl: s[i] == '+' || strings.HasPrefix(s[i:], "00")})
			}
		}
		i = end
	}
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
// A group beginning "00" begins a number of its own only when it is
// itself the start of a whole international number (beginsWhole) and
// the digits before it are a number too: after a number written
// internationally that may be whole or is too long ("+39 2 1234567 0039
// 352…"), or after 7 digits or more ("352 851 0164 0039 352 851 2784");
// otherwise it is the number's last digits ("347 111 0007", "020 7946
// 0018", "+43 1 452 0037"), and a run of fewer digits before one that
// begins a whole number is read with it ("201-0039021234567" is Merged):
// no digit is left readable (attack 4, F1). A group
// of one or two digits before ":" and two digits is an hour (timeAt), and
// a group inside a hex id (hexID: "-9f3a1c", "-0000002a") joins no run.
// A number written internationally ends where its country's numbers
// beginning so end (e164.ends, libphonenumber's lengths: "+39 352 851
// 0164 2 missed", "+44 20 7946 0958 393528512784" is two numbers), and
// once whole before a date ("+49 30 1234567 2026-12-01": dateAt).
//
// A run written with no "+" or "00" whose first group is a country
// calling code of one or two digits (codeAlone: "39 347 111 0007", "44
// 7911 123 004", "1 212 555 0123") is read as written internationally
// once its groups make a whole number of that country: it ends where the
// country's numbers end, a count after it is none of its digits
// (countAfter). It got the pseudonym of its first groups, shared by
// every number beginning so, and its tail was left (attack 4, F2). When
// the code reading gives no whole number of minDigits digits or more, or
// ends before groups a national run would take that are too few to be
// replaced by themselves (shortTail: "20 33 700 192 80 12"), the run is
// read again as a national one (numberRunNoCode: "43 1187 0235"); one
// short group alone after its whole number stays apart, as after the "+"
// form ("44 20 7946 0958 12": review 14, R14-1).
// A group written with no "+" or "00" that is by itself a whole
// international number (wholeAlone: "393216606904") is read as one: it
// begins a number of its own unless the groups before it make a whole
// number with it ("217-393216606904" is an extension and a number, "39
// 3528510164" and "44 2079460958" stay one), and it ends where its
// country's numbers end ("393216606904-12345678-2"). In a recording's
// name (a date with its time, then "-<extension>-<number>-…": Wildix's
// YYYY.MM.DD-HH.MM.SS-217-393216606904-d1548fcd-2.wav) the group after
// the time is a field of its own whatever the lengths say
// ("…-234-393216606904-…", 234 being Nigeria's code, "…-2000217-2000245-…").
// Scrub glued the extension onto the number, and forget of the number
// found its pseudonym nowhere (attack 1, A2).
// Otherwise a run is not cut at a length: two numbers one space apart
// whose lengths say nothing ("39 352 8512784 333 1234567") are replaced
// together rather than one left in part (more than maxE164 digits:
// Merged), and a short group after a number of a country whose numbers
// vary in length joins it ("+39 02 1234 5678 2", "352 851 0164 2").
//
// It reads no further than the first date's groups: the run after a
// date is read again from there, so reading a value stays linear.
// It stays one function (84 lines): one loop over the groups, each step
// reading and changing the run, its digits' country (e164) and how it is
// written (intl, evident); split, each part would take them all.
func (t *text) numberRun(i int) (int, bool) {
	s := t.s
	j := i
	intl := s[j] == '+'
	if intl {
		j++
	}
	if j >= len(s) || !isDigit(s[j]) {
		return i, false
	}
	var r run
	var d e164 // when intl or evident
	// evident: written with no "+" or "00", but its first group is a
	// whole international number by itself (wholeAlone).
	evident := false
	code := false // codeAlone: evident once its groups make a whole number
	// field: the run begins right after a recording name's date and time
	// and a "-": its first group is the extension.
	field := i > 0 && i-1 == t.stamp && s[i-1] == '-' && isDigit(s[i])
	for {
		from := j
		for j < len(s) && isDigit(s[j]) {
			j++
		}
		t.steps += j - from + 1
		if len(r.groups) == 0 {
			intl = intl || j-from >= 3 && strings.HasPrefix(s[from:], "00") || spacedIntl(s, from, j)
		}
		r.groups, r.ends = append(r.groups, s[from:j]), append(r.ends, j)
		switch {
		case len(r.groups) == 1 && intl && s[i] != '+':
			d.add(s[from+2 : j]) // after its "00"
		case len(r.groups) > 3 || !intl || trunkZero(s[i:]) != from-i:
			d.add(s[from:j]) // a trunk prefix "(0)" is none of the number's digits
		}
		if !intl && len(r.groups)-r.checked >= maxDateGroups {
			if end, isNumber, ok := r.date(false); ok {
				return t.dated(&r, end), isNumber
			}
		}
		if len(r.groups) == 1 && !intl && j < len(s) && s[j] == '/' && digitTech(s, from, j) {
			break // a channel's TECH (IAX2/, H323/): no number's digits
		}
		if len(r.groups) == 1 && field && j < len(s) && s[j] == '-' {
			break // a recording name's extension
		}
		if len(r.groups) == 1 && !intl {
			evident, code = wholeAlone(s[from:j]), !t.noCode && codeAlone(s[from:j])
		}
		evident = evident || code && d.wholeWith("")
		k, sep, ok := gap(s, j, intl)
		if !ok {
			break
		}
		e := k
		for e < len(s) && isDigit(s[e]) {
			e++
		}
		// A count is never split off a bare country code's number not
		// yet whole (code): the code says the number is not whole
		// without it, and a count read with the number leaves no digit
		// readable (review 8, R8-1).
		counts := intl || evident || !code
		if !t.joins(k, e, intl || evident, &d) || sep == 0 && counts && t.countAfter(k, e, j-from, &d, intl || evident) {
			if code && evident && t.shortTail(k, e, sep, j-from, d) {
				// The code was a guess, and it leaves the number's
				// tail readable: one national run.
				return t.numberRunNoCode(i)
			}
			break
		}
		r.seps = append(r.seps, sep)
		j = k
	}
	if !intl {
		if end, isNumber, ok := r.date(true); ok {
			return t.dated(&r, end), isNumber
		}
	}
	if code && evident && !(d.n >= minDigits && d.wholeWith("")) {
		return t.numberRunNoCode(i)
	}
	return r.ends[len(r.ends)-1], true
}

// shortTail reports whether the digit groups from s[k:e] on (sep before
// it: numberRun's gap), where the reading of a run as a bare country
// code's number ends (codeAlone; its digits d, its last group last
// digits long), would be read with the run as one national run and hold
// fewer than minDigits digits: left out, they would stay readable beside
// the number's pseudonym, too few to be replaced by themselves. The code
// was then a guess the groups belie: a national number whose first group
// is also a country code ("20 33 700 192 80": Egypt's +20 33… numbers
// end after 8 digits, and the 80 was left readable, a limit the README
// listed). A group that is a count as after a number of no known
// country (countAfter: "39 352 851 0164 2 missed"), a date, an address
// or an hour is no tail. One group alone before the end or a word
// (groupAlone) is no tail either: "44 20 7946 0958 12" is an
// international number written without "+" and an extension or a count
// as often, and read as one national run forget of the number found
// nothing (review 14, R14-1); "20 33 700 192 80" keeps its 80 readable
// again, README What it cannot do. It reads at most minDigits digits.
func (t *text) shortTail(k, e int, sep byte, last int, d e164) bool {
	s := t.s
	n, groups, k0 := 0, 0, k
	for {
		t.steps += e - k + 1
		if !t.joins(k, e, false, &d) || sep == 0 && t.countAfter(k, e, last, &d, false) || t.dateAt(k) {
			return n > 0
		}
		if n += e - k; n >= minDigits {
			return false
		}
		groups++
		d.add(s[k:e])
		last = e - k
		var ok bool
		if k, sep, ok = gap(s, e, false); !ok {
			// One group alone before the end or a word: the code's
			// whole number, then a count, an extension or a reference
			// (review 14, R14-1).
			return groups > 1 || !groupAlone(s, k0, e)
		}
		for e = k; e < len(s) && isDigit(s[e]) && e-k < minDigits; e++ {
		}
	}
}

// groupAlone reports whether the digit group s[k:e] stands apart: a
// space before it, and no digit after it past spaces and punctuation
// (not a date's or an address's last group: "01.12.2026").
func groupAlone(s string, k, e int) bool {
	if k == 0 || s[k-1] != ' ' {
		return false
	}
	for e < len(s) && strings.IndexByte(" ,.;:!?)/-", s[e]) >= 0 {
		e++
	}
	return e == len(s) || !isDigit(s[e])
}

// numberRunNoCode is numberRun reading no first group as a country code
// (codeAlone): the reading of a run whose code reading gives no whole
// number of that country of minDigits digits or more ("43 1187 0235":
// Austria's numbers beginning 1 1 are 4 digits long, so the code
// reading ended at "43 1187", too short to replace, and left the whole
// number readable: review 5, R5-5). Read as before b4eaba9, no digit
// of it stays readable.
func (t *text) numberRunNoCode(i int) (int, bool) {
	was := t.noCode
	t.noCode = true
	defer func() { t.noCode = was }()
	return t.numberRun(i)
}

// spacedIntl reports whether the digit group s[from:j] is a "00" written
// apart from the country code after it, with spaces or brackets: "00 39
// 352 851 2784", "00 (44) 20 7946 0958". Canonical reads that as written
// internationally, and so does numberRun then: the number ends where its
// country's numbers end, and a count after it is none of its digits.
func spacedIntl(s string, from, j int) bool {
	if j-from != 2 || s[from:j] != "00" {
		return false
	}
	k, sep, ok := gap(s, j, false)
	return ok && sep == 0 && s[k] != '0'
}

// joins reports whether the digit group s[k:e] after a gap joins the run
// numberRun reads (intl: written internationally, or evident: its first
// group a whole international number, or a country code and a whole
// number after it; its digits so far d): not inside a hex id,
// not an hour, not where a number of its own or (once the number is
// whole) a date begins, nor past its country's lengths, nor an Asterisk
// channel's counter (channelCounter: "SIP/201-00000013"). A group that is
// by itself a whole international number begins one, unless the run's
// digits and it are one (numberRun); one beginning "00" begins one only
// after at least minDigits digits, and, written internationally, only
// when the number before is longer than its country's or the group begins
// a whole number (beginsWhole), otherwise only when it does.
func (t *text) joins(k, e int, intl bool, d *e164) bool {
	s := t.s
	begins00 := e-k >= 3 && strings.HasPrefix(s[k:e], "00")
	switch {
	case t.hexID(k, e), recordingID(s, k, e), e-k <= 2 && timeAt(s, e), t.channelCounter(k, e):
		return false
	case intl:
		switch {
		case d.ends(e - k), d.whole() && t.dateAt(k):
			return false
		case begins00 && d.n >= minDigits:
			// A group beginning "00" begins a number of its own only
			// after one longer than its country's (e164.past), or when
			// it is a whole international number (beginsWhole).
			return !(d.past() || d.whole() && t.beginsWhole(k))
		}
		return true
	case wholeAlone(s[k:e]) && !d.wholeWith(s[k:e]):
		return false
	case begins00:
		// Not written internationally, a group beginning "00" is the
		// number's last digits ("347 111 0007", "020 7946 0018",
		// "347 001 2345") unless it begins a whole international number
		// by itself (beginsWhole) and the digits before are a number of
		// their own, replaced too ("352 851 0164 0039 352 851 2784").
		// Read as a number of its own whatever followed, it left the
		// number in clear or its tail readable (attack 4, F1); before
		// fewer digits, joined, no digit stays readable.
		// Nor when the groups from it on hold a number's digits after
		// its "00" (longFrom: "044 8082 714/0031.2002.02.94.0", whose
		// groups look like a date to beginsWhole): joined, the second
		// number's digits were the first's pseudonym's, a 14-digit
		// number's, which forget of either did not find (review 5, R5-6).
		return d.n < minDigits || !t.beginsWhole(k) && !t.longFrom(k)
	}
	return true
}

// longFrom reports whether the digit groups from s[k] on, the first
// beginning "00", joined as in a number written internationally (gap),
// hold minDigits digits or more after the "00", read up to an hour or a
// date after a space: a number of their own, not the last digits of the
// one before ("020 7946 0018" joins, "0018 2" and "001 5 01.12.2026"
// too; the dotted groups of "0031.2002.02.94.0" are the number's).
func (t *text) longFrom(k int) bool {
	s := t.s
	n := -2 // the "00"
	for j := k; ; {
		e := j
		for e < len(s) && isDigit(s[e]) && n+e-j < minDigits {
			e++
		}
		t.steps += e - j + 1
		if e-j <= 2 && timeAt(s, e) {
			return false
		}
		if n += e - j; n >= minDigits {
			return true
		}
		next, sep, ok := gap(s, e, true)
		if !ok || asteriskID(s, next) > 0 || sep == 0 && t.dateAt(next) {
			return false
		}
		j = next
	}
}

// countAfter reports whether the group s[k:e], after spaces, is a count
// or an extension after the number read (its digits d, its last group
// last digits long; lengths: its country is known, written
// internationally or evident) rather than its last digits. It is one
// only when it is 1 to 3 digits not beginning with 0, shorter than the
// number's last group and, after a last group of 2, one digit (a group as
// long as the ones before is the number's: "+43 1 234 56 78 missed"); and
// followed, maybe after a bracket, by
//   - a word that counts (countWord: "+43 664 1234567 2 missed", "+49 170
//     6920065 3 calls", "+43 664 1234567 10 min", "352 851 0164 2
//     missed"), after a number of a length its country's numbers beginning
//     so have when its country is known: a number not yet whole takes the
//     group ("+43 800 123 4 missed", "+33 1 23 45 67 89 appel"). A
//     country's numbers may be a digit or three longer (Austria's,
//     Germany's), and Scrub took the count for the number's, so forget of
//     the number found nothing (attack 2, F4; issue 30 notes). When the
//     group may be the number's last (its country unknown, a national
//     number written with its trunk prefix 0 too, or the number with it
//     whole too) it is a count only where no one groups a number's digits
//     so, one digit alone or two after a last group of minCountAfter or
//     more ("callback 0664 123 4567 3 volte", "called +49 89 1234567 12
//     times"): "+49 89 1234 56 calls" and "+49 89 1234 567 calls" are one
//     number each. Two digits after two to four were a count, left
//     readable beside the pseudonym of the number's first digits, and no
//     count followed a trunk 0, so "0664 123 4567 3" got one pseudonym,
//     which forget --national-forms of 0664 123 4567 did not find.
//     After a national number written with its trunk 0 whose last group
//     has minCountAfter digits or more (written whole, or the German five
//     and two: "Rückruf 089 12345 67 Anrufe"), a group that makes it whole
//     in a country of trunkCountries where it is not whole without is the
//     number's (needsGroup): its country unknown, "0171 234567 8 Anrufe"
//     and "089 12345 67" kept their 8 and 67 readable beside the pseudonym
//     of the first digits, which forget of the number did not find
//     (review 12, R12-5); "0171 2345678 3 Anrufe" keeps its count.
//     numberRun asks for no count after a bare country code's number not
//     yet whole: a count there is read with the number (review 8, R8-1);
//   - any other word, a date or a time, only when its country is known,
//     the number whole and the number with the group no whole number
//     ("+44 800 1234 5 10:00": the UK's numbers beginning 8 have 7, 9 or 10
//     digits, never 8; "+49 30 1234567 2 10:00" is one number, Germany's
//     beginning 3 have 5 to 15 digits): when the group
//     may be the number's tail ("cb +49 489 518 6 ok", "+43 662 8044 123
//     10:00", "cb 44 738 3797 446 asap") it is read with the number, as
//     leaving a number's last digits readable beside the pseudonym of its
//     first ones, shared by every number beginning so, is the worse error
//     (review 5, R5-7). A 1 or 2 digit group before any word was a count
//     after a number written with "+" or "00", and the last digits of
//     "cb +49 489 518 6 ok" stayed beside the pseudonym of "+49 489518".
//
// A group with nothing or another group after it ("+43 664 123456 201")
// stays the number's.
func (t *text) countAfter(k, e, last int, d *e164, lengths bool) bool {
	s := t.s
	g := e - k
	if g > 3 || s[k] == '0' {
		return false
	}
	// shape: shorter than the number's groups, which a group of its
	// tail is not ("+43 1 234 56 78 missed").
	shape := last == 1 || g < last && (last != 2 || g == 1)
	whole := false
	if n, mask := d.lengths(); lengths {
		whole = n > 0 && mask&(1<<n) != 0
	}
	if lengths && !whole || !lengths && d.n < minDigits {
		return false
	}
	w := e
	for w < len(s) && w-e < 2 && s[w] == ' ' {
		w++
	}
	if w == e || w == len(s) {
		return false
	}
	if s[w] == '(' && w+1 < len(s) && !isDigit(s[w+1]) {
		w++
	}
	if !lengths || d.wholeWith(s[k:e]) {
		// It may be the number's last group: a count only where no one
		// groups a number's digits so, one digit alone or two after a
		// group of five or more ("called +49 89 1234567 12 times");
		// two after a group of two to four are the number's ("+49 89
		// 1234 56 calls", "+49 89 1234 567 calls").
		return shape && (g == 1 || g == 2 && last >= minCountAfter) && !(!lengths && last >= minCountAfter && d.needsGroup(g)) && countWord(s[w:])
	}
	if s[w]|0x20 >= 'a' && s[w]|0x20 <= 'z' || s[w] >= utf8.RuneSelf {
		return true
	}
	if s[w] == '(' {
		w++
	}
	return t.dateAt(w) || w+1 < len(s) && isDigit(s[w]) && (timeAt(s, w+1) || isDigit(s[w+1]) && timeAt(s, w+2))
}

// minCountAfter is the fewest digits of a number's last group after
// which a group of two digits before a word that counts is a count when
// it may also be the number's last group (countAfter): a number's digits
// are written in groups of two to four, so two after five or more are
// no group of it.
const minCountAfter = 5

// countWords are the words that say what a number before them counts,
// lower case, in the languages of Wildix's customers: calls, missed
// calls, times, attempts, rings, minutes, seconds; nouns and their
// adjectives only, whole words. Not a verb ("called", "chiamato",
// "anrufen"), nor a word that merely begins so ("mal" of "mal anrufen",
// "persönlich", "secretary", "minor", "ringing"): matched by their
// beginnings, the number's last digits before them were taken for a
// count and left readable beside the pseudonym of its first ones, which
// forget of the number did not find (review 8, R8-1).
var countWords = []string{
	"missed", "calls", "times", "attempts", "tries", "rings", "min", "mins", "minutes", "sec", "secs", "seconds", "x",
	"anrufe", "verpasste", "verpasst", "versuche", "minuten", "sek", "sekunden",
	"chiamate", "perse", "volte", "tentativi", "squilli", "minuti", "secondi",
	"appels", "manqués", "manques", "fois", "tentatives", "sonneries",
	"llamadas", "perdidas", "veces", "intentos", "minutos", "segundos",
	"oproepen", "gemist", "gemiste", "keer", "pogingen", "seconden",
	"chamadas", "vezes", "tentativas",
}

// countWord reports whether s begins with a word that counts (countWords,
// any case, the word whole): "2 missed", "3 calls", "10 min", "2 Anrufe",
// "2 appels", "3 volte", "3 x". It reads no more than maxCountWord bytes,
// so that reading a text stays linear; a longer word counts nothing.
func countWord(s string) bool {
	const maxCountWord = 16
	n := 0
	for n < len(s) && n <= maxCountWord && (isWord(s[n]) && !isDigit(s[n])) {
		n++
	}
	return n <= maxCountWord && slices.Contains(countWords, strings.ToLower(s[:n]))
}

// beginsWhole reports whether the digit groups from s[k] on, the first
// beginning "00", begin a whole international number by themselves: after
// the "00", a country calling code and a length its numbers beginning so
// have, at the end of one of the groups ("0039 352 851 2784"), read up to
// maxE164 digits and not into a date or an hour. A run written
// internationally is cut before such a group only (joins): "+43 1 452
// 0037" and "+49 89 1234 0056" are one number each, the group "0037" no
// country's number. Cut before any group beginning "00" once the number
// might be whole, they were left in clear (AT and DE numbers may be 4
// digits) or split, the tail readable (attack 2, F1 and F2).
func (t *text) beginsWhole(k int) bool {
	s := t.s
	var d e164
	j := k + 2
	for {
		e := j
		for e < len(s) && isDigit(s[e]) && d.n+e-j <= maxE164 {
			e++
		}
		t.steps += e - j + 1
		if d.n+e-j > maxE164 || e-j <= 2 && timeAt(s, e) {
			return false
		}
		d.add(s[j:e])
		if n, mask := d.lengths(); n > 0 && mask&(1<<n) != 0 {
			return true
		}
		next, sep, ok := gap(s, e, true)
		if !ok || asteriskID(s, next) > 0 || sep == 0 && t.dateAt(next) {
			return false
		}
		j = next
	}
}

// codeAlone reports whether the digit group g, the first of a run written
// with no "+" or "00", is a country calling code of one or two digits
// ("39 347 111 0007", "44 7911 123 004"): once the groups read make a
// whole number of that country, numberRun reads the run on by its lengths
// as with a "+" (attack 4, F2). Three-digit codes are left out: Italian
// mobiles begin 35…, 37…, 38… as Luxembourg's, Latvia's, Belarus's
// numbers do, and would be cut where those countries' numbers end.
func codeAlone(g string) bool {
	if len(g) > 2 || g[0] == '0' {
		return false
	}
	cc, _ := nationalLengths(g)
	return cc == len(g)
}

// minWholeAlone is the fewest digits of a group written with no "+" or
// "00" that is read as an international number by itself (wholeAlone):
// fewer are as likely a national number.
const minWholeAlone = 10

// wholeAlone reports whether the digit group g, written with no "+" or
// "00", is by itself a whole international number: minWholeAlone digits
// or more, a country calling code first and a length its numbers
// beginning so have ("393216606904").
func wholeAlone(g string) bool {
	return len(g) >= minWholeAlone && len(g) <= maxE164 && (e164{}).wholeWith(g)
}

// wholeWith reports whether the digits read and the group g after them
// are a whole number: of a length its country's numbers beginning so
// have.
func (d e164) wholeWith(g string) bool {
	d.add(g)
	n, mask := d.lengths()
	return n > 0 && mask&(1<<n) != 0
}

// e164 is what numberRun has read of a number written internationally:
// how many digits (its country calling code's included, its "00" and a
// trunk prefix "(0)" not), and the first of them, enough to find its
// country's lengths (nationalLengths).
type e164 struct {
	n    int
	lead [3 + maxLengthsPrefix]byte
}

// add reads the digits g, the number's next group.
func (d *e164) add(g string) {
	copy(d.lead[min(d.n, len(d.lead)):], g)
	d.n += len(g)
}

// lengths returns how many of the digits read are its national number's
// and the lengths its country's numbers beginning so may have (0 for no
// known country: nationalLengths).
func (d *e164) lengths() (int, uint32) {
	cc, mask := nationalLengths(string(d.lead[:min(d.n, len(d.lead))]))
	return d.n - cc, mask
}

// ends reports whether the digits read are a whole number that a group
// of g more digits would make longer than its country's longest number
// beginning so: "+39 352 851 0164" is one, its "10" of "10:00" or "2" of
// "2 missed" no part of it.
func (d *e164) ends(g int) bool {
	n, mask := d.lengths()
	return n > 0 && mask&(1<<n) != 0 && n+g > longestLength(mask)
}

// whole reports whether the digits read may be a whole number: of a
// length its country's numbers beginning so have, or longer than any of
// them; for no known country, of minDigits digits after two of a code. A
// date begins no part of it then ("+49 30 1234567 2026-12-01" is a
// number and a date), nor a group beginning "00" that is itself the start
// of a whole number (beginsWhole: "+39 2 1234567 0039 352 851 2784" is
// two numbers, "+43 1 452 0037" one).
func (d *e164) whole() bool {
	n, mask := d.lengths()
	if mask == 0 {
		return d.n-2 >= minDigits
	}
	return n > 0 && (mask&(1<<n) != 0 || n > longestLength(mask))
}

// past reports whether the digits read are more than its country's
// longest number beginning so has.
func (d *e164) past() bool {
	n, mask := d.lengths()
	return mask != 0 && n > longestLength(mask)
}

// needsGroup reports whether the digits read, a number written with
// no "+" or "00" whose first digit is a trunk prefix 0 (or an Italian
// fixed line's own 0), read as a number of a country of trunkCountries,
// are of no length its numbers beginning so have and would be with g
// more: in that country the group is the number's last digits, not a
// count ("0171 234567 8 Anrufe": Germany's 17… have 10 or 11 digits;
// "Rückruf 089 12345 67 Anrufe": France's 89… have 9). Its country is
// unknown, and left readable beside the pseudonym of its first digits,
// which forget of the number does not find, a group that is the number's
// is the worse error than a count read with it (review 12, R12-5).
func (d *e164) needsGroup(g int) bool {
	if d.n < 2 || d.lead[0] != '0' {
		return false
	}
	lead := string(d.lead[:min(d.n, len(d.lead))])
	for _, cc := range trunkCountries {
		n, digits := d.n-1, cc+lead[1:]
		if cc == "39" {
			n, digits = d.n, cc+lead
		}
		c, mask := nationalLengths(digits)
		if c == len(cc) && mask&(1<<n) == 0 && mask&(1<<(n+g)) != 0 {
			return true
		}
	}
	return false
}

// trunkCountries are the country calling codes of the countries of
// Wildix's customers whose numbers are written nationally with a trunk
// prefix 0 (Italy's fixed lines keep theirs as their first digit),
// which needsGroup reads a national number as.
var trunkCountries = []string{"31", "32", "33", "39", "41", "43", "44", "46", "49"}

// longestLength is the longest of the lengths mask (bit l for l digits).
func longestLength(mask uint32) int { return bits.Len32(mask) - 1 }

// maxLengthsPrefix is the most digits of a national number possibleLengths
// is keyed on, after the country calling code.
const maxLengthsPrefix = 2

// nationalLengths returns, for the digits d of a number written
// internationally (country calling code first, as many digits as are
// known), the length of its country calling code and the lengths its
// national number may have (possibleLengths: bit l for l digits), or 0
// and 0 when d begins with no country calling code.
func nationalLengths(d string) (int, uint32) {
	cc, mask := 0, uint32(0)
	for l := 1; l <= len(d) && (cc == 0 && l <= 3 || cc > 0 && l <= cc+maxLengthsPrefix); l++ {
		if m, ok := possibleLengths[d[:l]]; ok {
			if cc == 0 {
				cc = l
			}
			mask = m
		}
	}
	return cc, mask
}

// timeAt reports whether s[e:] begins with a time's minutes after its hour
// (":" and two digits): the group of one or two digits before is an hour,
// no part of a number ("+39 352 851 0164 10:00").
func timeAt(s string, e int) bool {
	return e+3 <= len(s) && s[e] == ':' && isDigit(s[e+1]) && isDigit(s[e+2]) && (e+3 == len(s) || !isDigit(s[e+3]))
}

// minutesAt reports whether s[i:] is a time's minutes or seconds: two
// digits and no third, after ":" and one or two digits (its hour, or its
// minutes): "10:00", "10:00:00". No number begins there: "00 01000" of
// "00:00 01000" was read as one, and a second Scrub, no longer seeing a
// time, joined the hour to the digits before it (FuzzScrub); "10:00
// 3528510164" was the pseudonym of +3528510164.
func minutesAt(s string, i int) bool {
	if i < 2 || s[i-1] != ':' || !timeAt(s, i-1) {
		return false
	}
	n := 0 // digits before the ":", up to 3
	for n < 3 && i-2-n >= 0 && isDigit(s[i-2-n]) {
		n++
	}
	return n == 1 || n == 2
}

// dateAt reports whether a date or an IPv4 address (dateOrAddress) begins
// at s[k], reading no more of s than one takes.
func (t *text) dateAt(k int) bool {
	s := t.s
	var prev byte // the dot joining a digit group before it
	if k >= 2 && s[k-1] == '.' && isDigit(s[k-2]) {
		prev = '.'
	}
	var groups [5]string // a date's three, an address's four and the group that makes it none
	var seps [5]byte
	g := 0
	for g < len(groups) {
		e := k
		for e < len(s) && isDigit(s[e]) && e-k <= 4 {
			e++
		}
		t.steps += e - k + 1
		if e-k > 4 {
			break // more digits than any part of a date or address
		}
		groups[g] = s[k:e]
		g++
		next, sep, ok := gap(s, e, false)
		if !ok || sep == 0 {
			break
		}
		seps[g-1] = sep
		k = next
	}
	return dateOrAddress(groups[:g], seps[:max(g-1, 0)], prev) > 0
}

// digitTechs are the Asterisk channel technologies whose names end in
// digits, upper case.
var digitTechs = []string{"IAX2", "H323", "OOH323"}

// digitTech reports whether the digits s[from:j] end the name of a
// channel technology with digits (digitTechs, any case) written as a word
// of its own: "IAX2/", "h323/". Only those: a word's digits before a
// slash are a number's otherwise ("Tel089/1234567" is 0891234567;
// review 30, MEDIUM-1).
func digitTech(s string, from, j int) bool {
	w := from
	for w > 0 && isWord(s[w-1]) {
		w--
	}
	return slices.ContainsFunc(digitTechs, func(t string) bool { return strings.EqualFold(s[w:j], t) })
}

// dated returns end, where the run r ends at a date, and remembers it
// as a recording name's date and time when r began with one (run.stamp).
func (t *text) dated(r *run, end int) int {
	if r.stamp {
		t.stamp = end
	}
	return end
}

// run is the digit groups numberRun has read.
type run struct {
	groups  []string // the digits of each group
	seps    []byte   // the dash, dot or slash before each group but the first, 0 for none
	ends    []int    // where each group ends
	checked int      // groups before this one begin no date
	stamp   bool     // it began with a date and its time to the second (run.date)
}

// date returns where the run ends when a date or address is in it (the
// date's end and false when the run begins with it, else the end of the
// groups before it and true), and whether one is. A date beginning at a
// group is known once the groups it may take (maxDateGroups) are read,
// or, when final, the run is.
func (r *run) date(final bool) (int, bool, bool) {
	for g := r.checked; g < len(r.groups); g++ {
		if !final && len(r.groups)-g < maxDateGroups {
			r.checked = g
			break
		}
		var prev byte
		if g > 0 {
			prev = r.seps[g-1]
		}
		if d := dateOrAddress(r.groups[g:], r.seps[g:], prev); d > 0 && g == 0 {
			r.stamp = d == maxDateGroups
			return r.ends[d-1], false, true
		} else if d > 0 {
			return r.ends[g-1], true, true
		}
	}
	return 0, false, false
}

// maxDateGroups is the most groups dateOrAddress takes: a date and its
// time.
const maxDateGroups = 6

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
		if chars > 4 {
			return j, 0, false // more than any gap takes
		}
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
// are neither. It reads at most maxDateGroups groups. prev is the
// separator joining the groups to a digit group before them, 0 for none.
//
// An address is four groups of 1 to 3 digits, each at most 255, joined
// by dots, as software prints one: no dotted group before or after them
// (a national number in dotted pairs has five: 06.82.32.02.25) and no
// group of two or three digits beginning with 0 (069.22.239.56: no
// program prints an address so; a number written so keeps its trunk 0).
// Each was left in clear as an address (issue 30). A date has a month
// of 1 to 12 and a day of 1 to 31 (day and month either way round: 07/12
// and 12/07): "43-2026-18-76", "32/51/2002/54", "43.58.2078.8" were
// dates, the number around them left in clear.
func dateOrAddress(groups []string, seps []byte, prev byte) int {
	if len(groups) < 3 || len(seps) < 2 || seps[0] == 0 || seps[1] == 0 {
		return 0
	}
	year := func(g string) bool { return len(g) == 4 && (g[:2] == "19" || g[:2] == "20") }
	short := func(g string) bool { return len(g) >= 1 && len(g) <= 2 }
	// upTo: a month (12) or a day (31), never 0.
	upTo := func(g string, most int) bool { v, err := strconv.Atoi(g); return err == nil && v >= 1 && v <= most }
	switch {
	case year(groups[0]) && short(groups[1]) && short(groups[2]) && upTo(groups[1], 12) && upTo(groups[2], 31):
		n := 3
		for n < len(groups) && n < maxDateGroups && short(groups[n]) && seps[n-1] != 0 {
			n++
		}
		return n
	case short(groups[0]) && short(groups[1]) && year(groups[2]) && upTo(groups[0], 31) && upTo(groups[1], 31) && (upTo(groups[0], 12) || upTo(groups[1], 12)):
		return 3
	case len(groups) >= 4 && seps[0] == '.' && seps[1] == '.' && seps[2] == '.':
		if prev == '.' || len(groups) > 4 && seps[3] == '.' {
			return 0
		}
		for _, g := range groups[:4] {
			if v, err := strconv.Atoi(g); err != nil || len(g) > 3 || v > 255 || len(g) > 1 && g[0] == '0' {
				return 0
			}
		}
		return 4
	}
	return 0
}

// word is a maximal run of word bytes (isWord) of a text, s[from:to]:
// whether it is all hex digits with a letter, and its longest run of
// digits.
type word struct {
	from, to int
	hex      bool
	longest  int
}

// wordAt returns the word holding s[from:to] (word bytes), reading it
// only when it is not the last word read. A pseudonym (and Merged) is a
// word of its own: Scrub writes one glued to the letters around the number it
// replaces ("cbp:…"), which must read on a second Scrub as they did on
// the first ("A0000000+0000000" keeps its hex id "A0000000").
func (t *text) wordAt(from, to int) word {
	if t.w.to > 0 && from >= t.w.from && to <= t.w.to {
		return t.w
	}
	s := t.s
	wl, wr := from, to
	for wl > 0 && isWord(s[wl-1]) && !(wl >= pseudonymChars && s[wl-pseudonymChars+1] == ':' && pseudonymLen(s, wl-pseudonymChars) > 0) {
		wl--
	}
	for wr < len(s) && isWord(s[wr]) && !(wr+1 < len(s) && s[wr+1] == ':' && (pseudonymLen(s, wr) > 0 || strings.HasPrefix(s[wr:], Merged))) {
		wr++
	}
	t.steps += wr - wl
	t.w = word{from: wl, to: wr, hex: isHex(t.s[wl:wr]), longest: longestDigits(t.s[wl:wr])}
	return t.w
}

// hexID reports whether the digits s[from:to] are part of a hex id (kept
// as they are) rather than a number glued to letters (replaced). The
// rule, shared by Scrub and Replace: the word holding them must be all
// hex digits with at least one letter, and
//   - have exactly 8 hex digits: a 32-bit counter as Asterisk writes it
//     in a channel's name ("SIP/201-0000002a") and the PBX in a
//     recording's file name ("4ea1beeb"), or
//   - have at least minHexHash: a hash or an id written without dashes
//     (MD5 and a UUID's 32, SHA-1's 40, SHA-256's 64), whose digits run
//     to 7 and more in a row in a good share of them, or
//   - hold no minDigits digits in a row: too few for a number.
//
// Any other word of hex digits holding 7 digits in a row is a number
// glued to letters ("cb393528512784", "fe393528512784", "393528512784a",
// "393528512784abcd"): in doubt, replaced (review 30-fixes 5). A 64-bit
// id of 16 hex digits with 7 digits in a row loses them too. In a word
// holding runs of 7 digits that are no id, fewer digits than that are
// read as a second Scrub will read them, once those runs are pseudonyms
// (words of their own: wordAt): the part of the word between the runs is
// their word ("0A" of "0A0000000" and of "0A0000000X" is a hex id).
func (t *text) hexID(from, to int) bool {
	if from == to {
		return false
	}
	w := t.wordAt(from, to)
	if w.from == from && w.to == to {
		return false
	}
	n := w.to - w.from
	if w.hex && (n == 8 || n >= minHexHash || w.longest < minDigits) {
		return true
	}
	return w.longest >= minDigits && to-from < minDigits && t.fragmentID(w, from, to)
}

// fragment is the part of a word between its runs of minDigits digits,
// and whether it is all hex digits with a letter.
type fragment struct {
	from, to int
	hex      bool
}

// fragmentID reports whether the part of the word w between its runs of
// minDigits digits that holds s[from:to] is all hex digits with a letter:
// a hex id once those runs are replaced. It reads that part only when it
// is not the last one read.
func (t *text) fragmentID(w word, from, to int) bool {
	if f := t.f; f.to > 0 && from >= f.from && to <= f.to {
		return f.hex
	}
	s := t.s
	fl, fr := from, to
	for fl > w.from && !(isDigit(s[fl-1]) && digitRunAt(s[w.from:fl], true) >= minDigits) {
		fl--
	}
	for fr < w.to && !(isDigit(s[fr]) && digitRunAt(s[fr:w.to], false) >= minDigits) {
		fr++
	}
	t.steps += fr - fl
	t.f = fragment{from: fl, to: fr, hex: isHex(s[fl:fr])}
	return t.f.hex
}

// digitRunAt is the length of the run of digits w ends with (end) or
// begins with, up to minDigits.
func digitRunAt(w string, end bool) int {
	n := 0
	for n < len(w) && n < minDigits {
		c := w[n]
		if end {
			c = w[len(w)-1-n]
		}
		if !isDigit(c) {
			break
		}
		n++
	}
	return n
}

// recordingID reports whether the digits s[from:to] are the PBX's file
// id of a recording's name that happens to be all digits, kept as a hex
// id is (hexID): 8 of them in their place in a name of the PBX's shape,
// YYYY.MM.DD-HH.MM.SS-<extension>-<number>-<id>-<index>, the index of 1
// or 2 digits and then the end, a dot and a letter (".wav") or a
// character that joins no digits (a quote). They are no part of the
// number before them only when the two cannot be one (more than maxE164
// digits: the number has 8 or more, after its "+" or "00"), or the number
// is one Scrub replaced (a pseudonym, Merged), so that a second Scrub
// reads the name as the first did; after a shorter number (an extension:
// "-217-245-12345678-1.wav") the two may be one number, and are read as
// ever. The extension is digits or their pseudonym. Scrub pseudonymised
// the id with its index (attack 4, F5). Replace does not use it: a
// number in that place in a text of that shape is still erased in clear.
func recordingID(s string, from, to int) bool {
	const idDigits = 8
	if to-from != idDigits || from < 1 || s[from-1] != '-' || to+2 > len(s) || s[to] != '-' {
		return false
	}
	x := to + 1 // the index
	for x < len(s) && isDigit(s[x]) && x-to <= 3 {
		x++
	}
	switch n := x - (to + 1); {
	case n < 1 || n > 2:
		return false
	case x == len(s):
	case s[x] == '.':
		if x+1 >= len(s) || !(s[x+1]|0x20 >= 'a' && s[x+1]|0x20 <= 'z') {
			return false
		}
	case isWord(s[x]) || strings.IndexByte(" -/()\t+", s[x]) >= 0:
		return false
	}
	num, numFrom, ok := fieldBefore(s, from-1)
	if !ok {
		return false
	}
	if d, plus := strings.CutPrefix(num, "+"); num != "" && digits(d) == len(d) {
		if c := strings.TrimPrefix(d, "00"); len(c)+idDigits <= maxE164 || plus && c != d {
			return false
		}
	} else if num != Merged && !(len(num) == pseudonymChars && pseudonymShape(num) > 0) {
		return false
	}
	ext, extFrom, ok := fieldBefore(s, numFrom-1)
	if !ok || ext == "" || ext != Merged && pseudonymShape(ext) != len(ext) && digits(ext) != len(ext) {
		return false
	}
	return recordingStamp(s, extFrom-1)
}

// fieldBefore returns the field of a recording's name that ends at s[end],
// a "-": what lies between it and the "-" before, Merged (which holds
// dashes) taken whole, where it begins, and whether a "-" is before it.
func fieldBefore(s string, end int) (string, int, bool) {
	if strings.HasSuffix(s[:end], Merged) {
		from := end - len(Merged)
		return Merged, from, from > 0 && s[from-1] == '-'
	}
	from := end
	for from > 0 && s[from-1] != '-' && end-from <= maxE164+2 {
		from--
	}
	return s[from:end], from, from > 0 && s[from-1] == '-'
}

// recordingStamp reports whether s[:end] ends with a recording name's date
// and time as the PBX writes them, YYYY.MM.DD-HH.MM.SS, with no digit
// before, and s[end] is the "-" after them.
func recordingStamp(s string, end int) bool {
	const shape = "dddd.dd.dd-dd.dd.dd"
	from := end - len(shape)
	if from < 0 || s[end] != '-' || from > 0 && isDigit(s[from-1]) {
		return false
	}
	for i := 0; i < len(shape); i++ {
		if c := s[from+i]; shape[i] == 'd' && !isDigit(c) || shape[i] != 'd' && c != shape[i] {
			return false
		}
	}
	return dateOrAddress([]string{s[from : from+4], s[from+5 : from+7], s[from+8 : from+10]}, []byte{'.', '.'}, 0) == 3
}

// minHexHash is the fewest hex digits of a word taken for a hash or an id
// whatever digits it holds: an MD5's or a UUID's 32.
const minHexHash = 32

// token is how far channelCounter has read: the channel name holding
// s[pos-1] begins at start.
type token struct{ pos, start int }

// channelNameEnds are the bytes a channel's name ends at.
const channelNameEnds = " \t\r\n\"'<>(),;|="

// tokenStart returns where the channel name holding s[i-1] begins: after
// a space, a quote or a list separator. It reads on from where it last
// stopped, so a text is read once however many counters it holds.
func (t *text) tokenStart(i int) int {
	if i < t.tok.pos {
		t.tok = token{}
	}
	for ; t.tok.pos < i; t.tok.pos++ {
		t.steps++
		if strings.IndexByte(channelNameEnds, t.s[t.tok.pos]) >= 0 {
			t.tok.start = t.tok.pos + 1
		}
	}
	return t.tok.start
}

// channelCounter reports whether s[i:end] is an Asterisk channel's
// counter that happens to be all digits: the 8 hex digits Asterisk puts
// after the last - of a channel's name (TECH/name-XXXXXXXX, ";1" may
// follow as in Local channels), of a counter below 0x01000000, so
// beginning with 00, which no national number does. Scrub leaves it: it
// is no one's number, and a pseudonym of it only hid which legs belong
// together. A counter from 0x01000000 on is replaced, in doubt, and so is
// one whose TECH/ holds a number replaced before it.
func (t *text) channelCounter(i, end int) bool {
	s := t.s
	if end-i != 8 || s[i] != '0' || s[i+1] != '0' || i < 3 || s[i-1] != '-' || digits(s[i:end]) != 8 || end < len(s) && isWord(s[end]) {
		return false
	}
	start := t.tokenStart(i - 1)
	tech := start // TECH: a letter, then letters and digits, then /
	for tech < i && (isDigit(s[tech]) || s[tech]|0x20 >= 'a' && s[tech]|0x20 <= 'z') {
		tech++
	}
	if !(tech > start && !isDigit(s[start]) && tech < i-1 && s[tech] == '/') {
		return false
	}
	// A number replaced inside TECH/ ("X1234567/a-00000001") leaves no
	// TECH/ for a second Scrub to see: no counter then either.
	d := sort.Search(len(t.done), func(k int) bool { return t.done[k].to > start })
	return d == len(t.done) || t.done[d].from > tech
}

// asteriskID returns the length of the Asterisk uniqueid or linkedid s
// begins at i with, or 0: the epoch seconds of the channel's creation (10
// digits, 2001 to 2033, so beginning with 1), a dot and the channel's
// sequence (1 to 9 digits), as "1767225600.123456", with no digit or "+"
// before or after it. It is no one's number, and no number is written
// so (a 10-digit national number beginning with 1 is no country's): Scrub
// leaves it and Replace finds no number inside it. Read as a number, one
// whose sequence has passed 99999 was Merged, and every call of the PBX
// keyed on its uniqueid the same (attack 30, F11).
func asteriskID(s string, i int) int {
	const secs = 10
	if i > 0 && (isDigit(s[i-1]) || s[i-1] == '+') || len(s)-i < secs+2 || s[i] != '1' || s[i+secs] != '.' {
		return 0
	}
	for k := i; k < i+secs; k++ {
		if !isDigit(s[k]) {
			return 0
		}
	}
	e := i + secs + 1
	for e < len(s) && isDigit(s[e]) {
		e++
	}
	if n := e - (i + secs + 1); n < 1 || n > 9 {
		return 0
	}
	return e - i
}

// pseudonymChars is the length of a pseudonym: "p:" or "n:" and 16
// letters and digits.
const pseudonymChars = 2 + 16

// pseudonymLen is the length of the pseudonym s[i:] begins with, or 0:
// "p:" or "n:" and 16 characters of base32 (pseudonymShape), unless they
// are the user part of a "sip:" URI holding minDigits digits in a row
// ("sip:trunk33623456723@pbx": 33623456723 has only the digits 2 to 7,
// as many French, Spanish and UK numbers; review 30, HIGH-2), a number
// Scrub replaces and Replace finds. Scrub writes no pseudonym so: a number
// after "sip:" becomes "sip:p:…". Only a number glued to the word "si"
// ("si393528512784") whose pseudonym holds such a run (about one in
// 12,000: 6 of base32's 32 letters are digits) is read so on a second
// Scrub, and Replace still finds that pseudonym (wideSpans).
func pseudonymLen(s string, i int) int {
	n := pseudonymShape(s[i:])
	if n > 0 && sipScheme(s, i) && longestDigits(s[i+2:i+n]) >= minDigits {
		return 0
	}
	return n
}

// sipScheme reports whether the "p" at s[i] ends the word "sip" (any
// case) of a URI scheme.
func sipScheme(s string, i int) bool {
	return i >= 2 && strings.EqualFold(s[i-2:i], "si") && (i == 2 || !isWord(s[i-3]))
}

// pseudonymShape is the length of the pseudonym-shaped text s begins
// with ("p:" or "n:" and 16 characters of base32: a to z, 2 to 7), or 0.
func pseudonymShape(s string) int {
	if len(s) < pseudonymChars || s[1] != ':' || s[0] != NumberPrefix[0] && s[0] != NamePrefix[0] {
		return 0
	}
	for i := 2; i < pseudonymChars; i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c >= '2' && c <= '7') {
			return 0
		}
	}
	return pseudonymChars
}

// isHex reports whether w is a word of hex digits with at least one
// letter.
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

// longestDigits is the length of the longest run of digits in w.
func longestDigits(w string) int {
	longest, run := 0, 0
	for i := 0; i < len(w); i++ {
		if isDigit(w[i]) {
			run++
			longest = max(longest, run)
		} else {
			run = 0
		}
	}
	return longest
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

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isWord(c byte) bool {
	return isDigit(c) || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c >= 0x80
}

// Pattern returns a regular expression, in the syntax PostgreSQL and Go
// share (bracket classes, (?:…), counts), that every text in which
// Replace may find the number d (canonical ASCII digits) in clear
// matches: its digits in any script (fold), with at most maxWholeGap
// units between two of them, a unit being a character that is no digit,
// a URL-encoded character ("%20") or a JSON escape as a row's text shows
// it ("\n", "\\t", "\u00ad", "\\u2028", "\u002B" for a "+"), and a digit
// may be written as its escape ("\u0033"); a trunk prefix "(0)" is a unit
// too (Canonical drops it after a country code): a text column holding JSON
// (export_quarantine.record) holds them so. It is a cheap filter of the rows worth reading (a
// database searching for a number to erase); Replace decides.
func Pattern(d string) string {
	var b strings.Builder
	gap := "(?:[^" + digitRanges() + "]|%2[0-9A-Fa-f]|\\\\+[nrt]|\\\\+u[0-9A-Fa-f]{4}|\\([0０]\\)){0," + strconv.Itoa(maxWholeGap) + "}"
	for i, c := range d {
		if i > 0 {
			b.WriteString(gap)
		}
		b.WriteString("(?:[" + digitsOf(int(c-'0')) + "]|\\\\+u003" + string(c) + ")")
	}
	return b.String()
}

// digitZeros calls yield with the zero of each script's decimal digits
// (Unicode's Nd, each script's zero to nine in a row).
func digitZeros(yield func(rune)) {
	for _, t := range []*unicode.RangeTable{unicode.Nd} {
		for _, r := range t.R16 {
			for z := rune(r.Lo); z <= rune(r.Hi); z += 10 {
				yield(z)
			}
		}
		for _, r := range t.R32 {
			for z := rune(r.Lo); z <= rune(r.Hi); z += 10 {
				yield(z)
			}
		}
	}
}

// digitRanges is every script's digits as bracket ranges ("0-9٠-٩…").
func digitRanges() string {
	var b strings.Builder
	digitZeros(func(z rune) { b.WriteRune(z); b.WriteByte('-'); b.WriteRune(z + 9) })
	return b.String()
}

// digitsOf is the digit of value v in every script ("3３٣…").
func digitsOf(v int) string {
	var b strings.Builder
	digitZeros(func(z rune) { b.WriteRune(z + rune(v)) })
	return b.String()
}
