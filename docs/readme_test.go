package docs

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"unicode"

	"github.com/wildix-export/wildix-export/config"
)

// readDocs returns README.md and docs/*.md by their path from the root.
func readDocs(t *testing.T) map[string]string {
	t.Helper()
	files, err := filepath.Glob("*.md")
	if err != nil {
		t.Fatal(err)
	}
	docs := map[string]string{}
	for _, name := range append([]string{"../README.md"}, files...) {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		key := "docs/" + name
		if name == "../README.md" {
			key = "README.md"
		}
		docs[key] = string(b)
	}
	return docs
}

// configTable is config's own table of variables: name → its row.
func configTable(t *testing.T) map[string]string {
	t.Helper()
	var b bytes.Buffer
	if err := config.Markdown(&b); err != nil {
		t.Fatal(err)
	}
	rows := map[string]string{}
	for _, m := range regexp.MustCompile("(?m)^\\| `(\\w+)` \\|(.*)$").FindAllStringSubmatch(b.String(), -1) {
		rows[m[1]] = m[2]
	}
	if len(rows) < 30 {
		t.Fatalf("config.Markdown gives %d variables; the pattern no longer reads it", len(rows))
	}
	return rows
}

// TestDocsNameReadVariables: every WILDIX_ or EXPORT_ variable the README
// and docs/*.md name is one the program reads, and a default they state
// in prose (`X` (default `v`), `X` (v by default), `X=v` (the default)) is
// the one config gives it.
func TestDocsNameReadVariables(t *testing.T) {
	t.Parallel()
	table := configTable(t)
	// Read by tests and CI, not by the program.
	notConfig := map[string]bool{"WILDIX_DUCKDB_DIR": true}
	name := regexp.MustCompile(`\b(?:WILDIX|EXPORT)_[A-Z0-9_]*[A-Z0-9]\b`)
	defaults := []*regexp.Regexp{
		regexp.MustCompile("`(\\w+)` \\(default `([^`]+)`"),
		regexp.MustCompile("`(\\w+)` \\(default ([^,;)`:]+)[,;)]"),
		regexp.MustCompile("`(\\w+)`,? \\(?([^(),`]+?) by default"),
		regexp.MustCompile("`(\\w+)=([^`N]+)`,? \\(the default\\)"),
		regexp.MustCompile("the default `(\\w+)=([^`]+)`"),
	}
	space := strings.NewReplacer(" ", "")
	checked := 0
	for file, text := range readDocs(t) {
		for _, v := range name.FindAllString(text, -1) {
			if table[v] == "" && !notConfig[v] {
				t.Errorf("%s names %s, which the program does not read (config.Markdown has no such variable)", file, v)
			}
		}
		for _, re := range defaults {
			for _, m := range re.FindAllStringSubmatch(text, -1) {
				row, ok := table[m[1]]
				if !ok {
					continue
				}
				checked++
				if !strings.Contains(space.Replace(row), space.Replace(m[2])) {
					t.Errorf("%s says %s defaults to %q; config's row: %s", file, m[1], m[2], row)
				}
			}
		}
	}
	t.Logf("%d stated defaults checked", checked)
	if checked < 5 {
		t.Errorf("checked %d stated defaults; the patterns no longer find them", checked)
	}
}

// TestREADMECommandsAndExitCodes: the README's commands are the ones
// `wildix-export -h` lists, each flag it shows is one `<command> -h`
// shows, and its exit codes are those cmd/wildix-export defines.
func TestREADMECommandsAndExitCodes(t *testing.T) {
	t.Parallel()
	readme := readDocs(t)["README.md"]
	bin := filepath.Join(t.TempDir(), "wildix-export")
	build := exec.Command("go", "build", "-o", bin, "./cmd/wildix-export")
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	help := func(args ...string) string {
		out, _ := exec.Command(bin, args...).CombinedOutput() // -h exits 0 or 2 as flag's does; its text is what counts
		return string(out)
	}

	usage := help("-h")
	_, list, ok := strings.Cut(usage, "Commands:\n")
	if !ok {
		t.Fatalf("wildix-export -h has no Commands:\n%s", usage)
	}
	var want []string
	for _, l := range strings.Split(list, "\n") {
		if !strings.HasPrefix(l, "  ") {
			break
		}
		want = append(want, strings.Fields(l)[0])
	}
	section := between(t, readme, "## Commands\n", "\n### Exit codes")
	var got []string
	flags := 0
	for _, m := range regexp.MustCompile("(?m)^\\| `([a-z]+)([^`]*)` \\|").FindAllStringSubmatch(section, -1) {
		got = append(got, m[1])
		cmdHelp := help(m[1], "-h")
		for _, f := range regexp.MustCompile(`(?:^|[\s\[])--?([a-z][a-z-]*)`).FindAllStringSubmatch(m[2], -1) {
			flags++
			if !regexp.MustCompile(`(?m)^\s+--?` + regexp.QuoteMeta(f[1]) + `\b`).MatchString(cmdHelp) {
				t.Errorf("README: %s --%s, which `wildix-export %s -h` does not show:\n%s", m[1], f[1], m[1], cmdHelp)
			}
		}
	}
	sort.Strings(want)
	sort.Strings(got)
	got = slices.Compact(got) // run has two rows: --once and the worker
	if flags < 8 {
		t.Errorf("checked %d flags of the README's commands; the pattern no longer reads the table", flags)
	}
	if len(want) < 8 || !slices.Equal(got, want) {
		t.Errorf("README's commands %v; wildix-export -h lists %v", got, want)
	}

	src, err := os.ReadFile("../cmd/wildix-export/app.go")
	if err != nil {
		t.Fatal(err)
	}
	var codes, documented []int
	for _, m := range regexp.MustCompile(`(?m)^\s+exit[A-Z]\w*\s+= (\d+)`).FindAllStringSubmatch(string(src), -1) {
		n, _ := strconv.Atoi(m[1])
		codes = append(codes, n)
	}
	for _, m := range regexp.MustCompile(`(?m)^\| (\d+) \|`).FindAllStringSubmatch(between(t, readme, "### Exit codes\n", "\n## "), -1) {
		n, _ := strconv.Atoi(m[1])
		documented = append(documented, n)
	}
	slices.Sort(codes)
	slices.Sort(documented)
	if len(codes) < 8 || !slices.Equal(codes, documented) {
		t.Errorf("README's exit codes %v; cmd/wildix-export/app.go defines %v", documented, codes)
	}
}

// between returns the text of s from the first begin to the next end.
func between(t *testing.T, s, begin, end string) string {
	t.Helper()
	_, rest, ok := strings.Cut(s, begin)
	if !ok {
		t.Fatalf("README.md has no %q", begin)
	}
	part, _, ok := strings.Cut(rest, end)
	if !ok {
		t.Fatalf("README.md has no %q after %q", end, begin)
	}
	return part
}

// TestDocLinksResolve: every relative link of README.md and docs/*.md
// names a file of the repository and, with #anchor, a heading of that
// document (GitHub's anchors: lower case, punctuation dropped, spaces as
// hyphens, -1, -2 … for repeats).
func TestDocLinksResolve(t *testing.T) {
	t.Parallel()
	docs := readDocs(t)
	anchors := map[string]map[string]bool{}
	for file, text := range docs {
		anchors[file] = headingAnchors(text)
	}
	link := regexp.MustCompile(`\]\(([^)\s]+)\)`)
	fences := regexp.MustCompile("(?s)```.*?```")
	n := 0
	for file, text := range docs {
		for _, m := range link.FindAllStringSubmatch(fences.ReplaceAllString(text, ""), -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			n++
			path, anchor, _ := strings.Cut(target, "#")
			dest := file
			if path != "" {
				dest = filepath.ToSlash(filepath.Join(filepath.Dir(file), path))
				if _, err := os.Stat(filepath.Join("..", dest)); err != nil {
					t.Errorf("%s links to %s, which does not exist", file, target)
					continue
				}
			}
			if anchor == "" || !strings.HasSuffix(dest, ".md") {
				continue
			}
			a, ok := anchors[dest]
			if !ok {
				b, err := os.ReadFile(filepath.Join("..", dest))
				if err != nil {
					t.Fatal(err)
				}
				a = headingAnchors(string(b))
			}
			if !a[anchor] {
				t.Errorf("%s links to %s: %s has no heading with the anchor #%s", file, target, dest, anchor)
			}
		}
	}
	if n < 20 {
		t.Errorf("checked %d links; the pattern no longer finds them", n)
	}
}

// headingAnchors are the anchors GitHub gives a document's headings.
func headingAnchors(text string) map[string]bool {
	out := map[string]bool{}
	seen := map[string]int{}
	inFence := false
	for l := range strings.Lines(text) {
		if strings.HasPrefix(strings.TrimSpace(l), "```") {
			inFence = !inFence
		}
		if inFence || !strings.HasPrefix(l, "#") {
			continue
		}
		h := strings.ToLower(strings.TrimSpace(strings.TrimLeft(l, "#")))
		var b strings.Builder
		for _, r := range h {
			switch {
			case r == ' ':
				b.WriteRune('-')
			case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
				b.WriteRune(r)
			}
		}
		a := b.String()
		if k := seen[a]; k > 0 {
			out[a+"-"+strconv.Itoa(k)] = true
		} else {
			out[a] = true
		}
		seen[a]++
	}
	return out
}
