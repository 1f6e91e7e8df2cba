// Package docs holds the project's documents. Its tests keep them honest:
// every test reliability.md cites must exist, and every code block of the
// README and of docs/*.md runs (examples_test.go) or is listed there with
// why it cannot.
package docs

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func TestReliabilityCitesExistingTests(t *testing.T) {
	doc, err := os.ReadFile("reliability.md")
	if err != nil {
		t.Fatal(err)
	}
	// `pkg › TestA`, `TestB/sub` (several tests may follow one package).
	cite := regexp.MustCompile("`([a-z/-]+) › ((?:Test|Fuzz)\\w+)(?:/[^`]*)?`((?:, `(?:Test|Fuzz)\\w+(?:/[^`]*)?`)*)")
	more := regexp.MustCompile("`((?:Test|Fuzz)\\w+)")
	n := 0
	for _, m := range cite.FindAllStringSubmatch(string(doc), -1) {
		names := []string{m[2]}
		for _, x := range more.FindAllStringSubmatch(m[3], -1) {
			names = append(names, x[1])
		}
		files, _ := filepath.Glob(filepath.Join("..", m[1], "*_test.go"))
		var src strings.Builder
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			src.Write(b)
		}
		for _, name := range names {
			n++
			if !strings.Contains(src.String(), "func "+name+"(") {
				t.Errorf("reliability.md cites %s › %s, which does not exist", m[1], name)
			}
		}
	}
	if n < 30 {
		t.Fatalf("found only %d citations; the pattern no longer matches the document", n)
	}
}
