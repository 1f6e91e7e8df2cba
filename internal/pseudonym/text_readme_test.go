package pseudonym

import (
	"os"
	"regexp"
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

// TestREADMEFreeTextExamples: the README's examples of how free text is
// read (Privacy) are true of Scrub: each example of "Read as a number"
// and "Where a number ends" holding minDigits digits or more gets a
// pseudonym (or Merged) and keeps no run of 5 digits readable (a count,
// a date, a time stay); each of "Not a number" holding a digit is left as
// it is.
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
	for _, h := range []string{"**Read as a number**", "**Where a number ends**"} {
		for _, ex := range readmeExamples(t, readme, h) {
			if digitCount(ex) < minDigits {
				continue
			}
			n++
			got := k.Scrub(ex, nil)
			if !sweepPseudonym.MatchString(got) && !strings.Contains(got, Merged) {
				t.Errorf("README %s: Scrub(%q) = %q: no pseudonym", h, ex, got)
			}
			if r := run.FindString(sweepPseudonym.ReplaceAllString(got, "")); r != "" {
				t.Errorf("README %s: Scrub(%q) = %q: %s readable", h, ex, got, r)
			}
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
