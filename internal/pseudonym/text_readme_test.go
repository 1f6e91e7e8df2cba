package pseudonym

import (
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode"
)

// readmeExamples returns the examples (the text in backquotes) of the
// README's list that begins with the line starting with heading, up to
// the next paragraph of its own (a line starting with "**" or a heading).
func readmeExamples(t *testing.T, readme, heading string) []string {
	t.Helper()
	i := strings.Index(readme, "\n"+heading)
	if i < 0 {
		t.Fatalf("README has no list %q", heading)
	}
	list := readme[i+1:]
	if j := regexp.MustCompile(`\n(\*\*|#|What )`).FindStringIndex(list[len(heading):]); j != nil {
		list = list[:len(heading)+j[0]]
	}
	var out []string
	for _, m := range regexp.MustCompile("`([^`]+)`").FindAllStringSubmatch(strings.ReplaceAll(list, "\n  ", " "), -1) {
		out = append(out, m[1])
	}
	return out
}

func digitCount(s string) int {
	n := 0
	for _, r := range s {
		if unicode.IsDigit(r) {
			n++
		}
	}
	return n
}

type readmeEnd struct {
	in, want string
	numbers  []string
}

// readmeEnds is what Scrub makes of each example of the README's list
// "Where a number ends" ({i}: the pseudonym of numbers[i]): which
// digits are the number's, which a count's, a date's or another
// number's, as the README says of each.
var readmeEnds = []readmeEnd{
	{"00 39 352 851 2784", "{0}", []string{"+393528512784"}},
	{"+39 352 851 0164 2 missed", "{0} 2 missed", []string{"+393528510164"}},
	{"+393528510164 2026-12-01", "{0} 2026-12-01", []string{"+393528510164"}},
	{"+44 20 7946 0958 393528512784", "{0} {1}", []string{"+442079460958", "+393528512784"}},
	{"+43 800 123 4 missed", "{0} missed", []string{"+438001234"}},
	{"+33 1 23 45 67 89 appel", "{0} appel", []string{"+33123456789"}},
	{"+39 2 1234567 0039 352 851 2784", "{0} {1}", []string{"+3921234567", "+393528512784"}},
	{"+43 1 452 0037", "{0}", []string{"+4314520037"}},
	{"+49 89 1234 0056", "{0}", []string{"+498912340056"}},
	{"+44 7911 123 004", "{0}", []string{"+447911123004"}},
	{"352 851 0164 0039 352 851 2784", "{0} {1}", []string{"3528510164", "+393528512784"}},
	{"044 8082 714/0031.2002.02.94.0", "{0}/{1}", []string{"0448082714", "+31200202940"}},
	{"347 111 0007", "{0}", []string{"3471110007"}},
	{"02 1234 0009", "{0}", []string{"0212340009"}},
	{"020 7946 0018", "{0}", []string{"02079460018"}},
	{"347 001 2345", "{0}", []string{"3470012345"}},
	{"201-0039021234567", Merged, nil},
	{"+43 664 1234567 2 missed", "{0} 2 missed", []string{"+436641234567"}},
	{"+43 664 1234567 10 min", "{0} 10 min", []string{"+436641234567"}},
	{"352 851 0164 2 missed", "{0} 2 missed", []string{"3528510164"}},
	{"+46 8 12 34 56 2 missed", "{0} 2 missed", []string{"+468123456"}},
	{"+49 89 1234 567 calls", "{0} calls", []string{"+49891234567"}},
	{"callback 0664 123 4567 3 volte", "callback {0} 3 volte", []string{"06641234567"}},
	{"called +49 89 1234567 12 times", "called {0} 12 times", []string{"+49891234567"}},
	{"+49 89 1234 56 calls", "{0} calls", []string{"+4989123456"}},
	// After a trunk-0 number whose last group has five digits or more,
	// a count only where no country of trunkCountries needs the group
	// (review 12, R12-5).
	{"0171 2345678 3 Anrufe", "{0} 3 Anrufe", []string{"01712345678"}},
	{"Rückruf 089 12345 67 Anrufe", "Rückruf {0} Anrufe", []string{"0891234567"}},
	{"0171 234567 8 Anrufe", "{0} Anrufe", []string{"01712345678"}},
	{"+44 800 1234 5 10:00", "{0} 5 10:00", []string{"+448001234"}},
	// The group is the number's.
	{"cb +49 489 518 6 ok", "cb {0} ok", []string{"+494895186"}},
	{"+43 664 1234567 2 10:00", "{0} 10:00", []string{"+4366412345672"}},
	{"+43 664 1234567 2 persönlich", "{0} persönlich", []string{"+4366412345672"}},
	{"+49 89 1234 567 called back", "{0} called back", []string{"+49891234567"}},
	{"00 39 022 7425 902 on 01.12.2026", "{0} on 01.12.2026", []string{"+390227425902"}},
	{"cb 44 738 3797 446 asap", "cb {0} asap", []string{"447383797446"}},
	// No count after a bare code's number not yet whole, nor before a
	// verb.
	{"Customer 0171 2345 678 called twice", "Customer {0} called twice", []string{"01712345678"}},
	{"Bitte 089 123 456 78 mal anrufen", "Bitte {0} mal anrufen", []string{"08912345678"}},
	{"39 347 1234 56 calls", "{0} calls", []string{"39347123456"}},
	{"+1 212 555 0123 10:00", "{0} 10:00", []string{"+12125550123"}},
	{"cb 10:00 3528510164", "cb 10:00 {0}", []string{"3528510164"}},
	{"2026.12.06-17.01.09-217-393216606904-d1548fcd-2.wav", "2026.12.06-17.01.09-217-{0}-d1548fcd-2.wav", []string{"393216606904"}},
}

// readmeLimits is what Scrub makes of examples of the README's "What it
// cannot do" about where a number ends ({i}: the pseudonym of
// numbers[i]): a count read with the number, or a number's last digits
// read as a count and left readable, exactly as the README says.
var readmeLimits = []readmeEnd{
	{"+49 89 1234 5 calls", "{0} 5 calls", []string{"+49891234"}},
	{"0171 2345 67 8 Anrufe", "{0} 8 Anrufe", []string{"0171234567"}},
	{"called 030 1234567 2 times", "called {0} times", []string{"03012345672"}},
	{"089 1234567 12 Anrufe", "{0} 12 Anrufe", []string{"0891234567"}},
	{"20 33 700 192 80", "{0} 80", []string{"+2033700192"}},
	{"44 20 7946 0958 12", "{0} 12", []string{"+442079460958"}},
}

// TestREADMELimitExamples: each of readmeLimits is an example of the
// README's "What it cannot do", and Scrub makes of it what readmeLimits
// says (review 12, R12-5: the shapes after a trunk-0 number).
func TestREADMELimitExamples(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	i := strings.Index(readme, "\n**What it cannot do**")
	if i < 0 {
		t.Fatal("README has no list What it cannot do")
	}
	list := readme[i+1:]
	if j := regexp.MustCompile(`\n(\*\*|#)`).FindStringIndex(list[2:]); j != nil {
		list = list[:2+j[0]]
	}
	list = strings.ReplaceAll(list, "\n  ", " ")
	k := keyed(t, testKey)
	for _, tc := range readmeLimits {
		if !strings.Contains(list, "`"+tc.in+"`") {
			t.Errorf("README What it cannot do has no example %q", tc.in)
		}
		want := tc.want
		for i, c := range tc.numbers {
			want = strings.ReplaceAll(want, "{"+strconv.Itoa(i)+"}", k.Number(c))
		}
		if got := k.Scrub(tc.in, nil); got != want {
			t.Errorf("README What it cannot do: Scrub(%q) = %q, want %q", tc.in, got, want)
		}
	}
}

// TestREADMEFreeTextExamples: the README's examples of how free text is
// read (Privacy) are true of Scrub: each example of "Read as a number"
// holding minDigits digits or more gets a pseudonym (or Merged) and
// keeps no run of 5 digits readable (a count, a date, a time stay); each
// of "Where a number ends" is what readmeEnds says, exactly: the
// pseudonym that of the whole number (forget finds it, in clear and as
// that pseudonym) and no digit of it left readable where the README says
// a group is the number's (review 8, R8-4: a last group of 1 to 3 digits
// left readable passed before); each of "Not a number" holding a digit
// is left as it is.
func TestREADMEFreeTextExamples(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	k := keyed(t, testKey)
	run := regexp.MustCompile(`[0-9]{5,}`)
	n := 0
	for _, ex := range readmeExamples(t, readme, "**Read as a number**") {
		if digitCount(ex) < minDigits {
			continue
		}
		n++
		got := k.Scrub(ex, nil)
		if !sweepPseudonym.MatchString(got) && !strings.Contains(got, Merged) {
			t.Errorf("README Read as a number: Scrub(%q) = %q: no pseudonym", ex, got)
		}
		if r := run.FindString(sweepPseudonym.ReplaceAllString(got, "")); r != "" {
			t.Errorf("README Read as a number: Scrub(%q) = %q: %s readable", ex, got, r)
		}
	}
	ends := readmeExamples(t, readme, "**Where a number ends**")
	for _, ex := range ends {
		if digitCount(ex) < minDigits {
			continue
		}
		n++
		i := slices.IndexFunc(readmeEnds, func(e readmeEnd) bool { return e.in == ex })
		if i < 0 {
			t.Errorf("README Where a number ends: %q is not in readmeEnds: say there what Scrub makes of it", ex)
			continue
		}
		tc := readmeEnds[i]
		want, erasedWant := tc.want, tc.want
		for i, c := range tc.numbers {
			want = strings.ReplaceAll(want, "{"+strconv.Itoa(i)+"}", k.Number(c))
			erasedWant = strings.ReplaceAll(erasedWant, "{"+strconv.Itoa(i)+"}", "X")
		}
		got := k.Scrub(ex, nil)
		if got != want {
			t.Errorf("README Where a number ends: Scrub(%q) = %q, want %q", ex, got, want)
		}
		for _, c := range tc.numbers {
			p := k.Number(c)
			clear := func(v string) bool { return strings.TrimPrefix(v, "+") == strings.TrimPrefix(c, "+") }
			if erased, _ := Replace(got, func(v string) bool { return v == p }, "X"); strings.Contains(erased, p) {
				t.Errorf("README Where a number ends: forget of %s in %q leaves %q", c, got, erased)
			}
			if _, found := Replace(ex, clear, "X"); found == 0 {
				t.Errorf("README Where a number ends: forget of %s finds nothing in %q", c, ex)
			}
		}
		if len(tc.numbers) > 0 {
			all := func(v string) bool {
				return slices.ContainsFunc(tc.numbers, func(c string) bool { return strings.TrimPrefix(v, "+") == strings.TrimPrefix(c, "+") })
			}
			if erased, _ := Replace(ex, all, "X"); erased != erasedWant {
				t.Errorf("README Where a number ends: Replace(%q) for %q = %q, want %q", ex, tc.numbers, erased, erasedWant)
			}
		}
	}
	// The words that count, as the README lists them: countWords.
	list := readme[strings.Index(readme, "the whole word one of"):]
	list = list[:strings.Index(list, "(any case")]
	var words []string
	for _, m := range regexp.MustCompile("`([^`]+)`").FindAllStringSubmatch(list, -1) {
		words = append(words, strings.ToLower(m[1]))
	}
	slices.Sort(words)
	cw := slices.Sorted(slices.Values(countWords))
	if !slices.Equal(words, cw) {
		t.Errorf("README's words that count %q, countWords %q", words, cw)
	}
	for _, tc := range readmeEnds {
		if !slices.Contains(ends, tc.in) {
			t.Errorf("readmeEnds: %q is no example of the README's Where a number ends", tc.in)
		}
	}
	for _, ex := range readmeExamples(t, readme, "**Not a number**") {
		if digitCount(ex) == 0 {
			continue
		}
		n++
		if got := k.Scrub(ex, nil); got != ex {
			t.Errorf("README Not a number: Scrub(%q) = %q, want it as it is", ex, got)
		}
	}
	if n < 40 {
		t.Errorf("%d README examples read: the lists were not found whole", n)
	}
	t.Logf("%d README examples", n)
}
