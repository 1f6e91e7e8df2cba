package docs

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wildix-export/wildix-export/exporter/record"
	"github.com/wildix-export/wildix-export/internal/notify"
	"github.com/wildix-export/wildix-export/internal/pbxsim"
	"github.com/wildix-export/wildix-export/internal/pgtest"
)

// A block is one fenced code block of a document.
type block struct {
	file    string // from the repository's root: README.md, docs/x.md
	line    int    // of the opening fence
	lang    string // after the fence: sh, sql, json, or ""
	section string // the "## " heading the block lies under
	text    string // the lines between the fences, the fence's indentation removed
}

func (b block) String() string { return fmt.Sprintf("%s:%d", b.file, b.line) }

// first is the block's first line that is not blank.
func (b block) first() string {
	for l := range strings.Lines(b.text) {
		if s := strings.TrimSpace(l); s != "" {
			return s
		}
	}
	return ""
}

// An example says what happens to the blocks it matches: run, or the
// reason it cannot run in a test. The first example that matches a block
// takes it; a block none matches fails the test, and so does an example
// that matches nothing (a block it named was changed or removed).
type example struct {
	file    string
	lang    string // "" matches a block without a language only
	section string // when set, the block's "## " heading must be this
	first   string // when set, the block's first line must start with it
	run     func(t *testing.T, f *fixture, b block)
	skip    string // why the block cannot run here (run is nil)
}

func (e example) matches(b block) bool {
	return e.file == b.file && e.lang == b.lang &&
		(e.section == "" || e.section == b.section) && strings.HasPrefix(b.first(), e.first)
}

// examples is every code block of README.md and docs/*.md.
var examples = []example{
	{file: "README.md", lang: "sh", first: "go run ./cmd/wildix-export demo", run: runQuickStart},
	{file: "README.md", lang: "sh", first: "export WILDIX_PBX_URL=", run: runRealPBX},

	{file: "docs/dataflow.md", lang: "", first: "PBX ──HTTP──▶", skip: "a picture of the data's path, not a command or a query"},
	{file: "docs/dataflow.md", lang: "", first: "cmd/wildix-export ─▶", run: runImportGraph},
	{file: "docs/dataflow.md", lang: "json", first: `[{"name": "departments"`, run: runCustomEndpoints},
	{file: "docs/dataflow.md", lang: "json", first: `[{"name": "tickets"`, run: runCustomEndpoints},

	{file: "docs/deployment.md", lang: "sh", first: "docker compose run", skip: "needs Docker and a real PBX's consent page; .ci/image runs the image, deploy › TestCompose checks docker-compose.yml"},
	{file: "docs/deployment.md", lang: "sh", first: "authorize() {", skip: "needs a Kubernetes cluster and a real PBX; deploy › TestKubernetesManifestsStrict checks the manifests it names"},
	{file: "docs/deployment.md", lang: "sh", first: "docker compose --profile demo up", skip: "needs Docker; .ci/image builds the image and runs demo and run --once in it"},
	{file: "docs/deployment.md", lang: "sh", first: "go install github.com/goreleaser/goreleaser", skip: "downloads goreleaser and tags the repository; .ci/release runs goreleaser check and a snapshot of every archive"},
	{file: "docs/deployment.md", lang: "sh", first: "helm install nightly", skip: "needs a Kubernetes cluster; deploy › TestHelmChartRendersThreePBXes renders the chart with deploy/testdata/three-pbxes.yaml"},

	{file: "docs/development.md", lang: "sh", first: "(yes >/dev/null", skip: "runs the whole suite, this test included, under load"},
	{file: "docs/development.md", lang: "sh", first: "go run ./bench", skip: "takes about 8 minutes; .ci/run runs it at a tiny size"},

	{file: "docs/notifications.md", lang: "sh", first: "EXPORT_NOTIFY=", run: runNotifyConfig},
	{file: "docs/notifications.md", lang: "json", first: `{"recovery"`, run: runJSONAs(func() any { return new(notifyMembers) })},
	{file: "docs/notifications.md", lang: "json", first: "{", run: runJSONAs(func() any { return new(notify.Generic) })},
	{file: "docs/notifications.md", lang: "python", first: "import hmac", run: runSignatureCheck},

	{file: "docs/reporting.md", lang: "sql", section: "## The same questions over the CSV files", run: collectDuckDB},
	{file: "docs/reporting.md", lang: "sql", run: runPostgres(false)},

	{file: "docs/sinks.md", lang: "sql", first: "-- Did last night's export run", run: runPostgres(true)},
}

// TestDocExamples runs every code block of README.md and docs/*.md, or
// names it in examples with the reason it cannot run: commands of the
// quick start and of a real PBX with the built binary against the
// simulator, SQL in the real PostgreSQL after a demo export, the DuckDB
// script over the CSV files a demo export wrote, configuration through
// the binary's `config`, JSON decoded strictly into the types the program
// writes.
func TestDocExamples(t *testing.T) {
	t.Parallel()
	blocks := readBlocks(t)
	f := newFixture(t)
	used := make([]bool, len(examples))
	for _, b := range blocks {
		i := slices.IndexFunc(examples, func(e example) bool { return e.matches(b) })
		if i < 0 {
			t.Errorf("%s: a %q block starting %q that no test runs: run it in examples (docs/examples_test.go), or list it there with why it cannot run", b, b.lang, b.first())
			continue
		}
		used[i] = true
		e := examples[i]
		if e.run == nil {
			t.Logf("%s: not run: %s", b, e.skip)
			continue
		}
		t.Run(strings.NewReplacer("/", "_", ".md", "").Replace(b.file)+"_"+strconv.Itoa(b.line), func(t *testing.T) {
			e.run(t, f, b)
		})
	}
	for i, e := range examples {
		if !used[i] {
			t.Errorf("examples names a %q block of %s starting %q under %q, which is not there any more", e.lang, e.file, e.first, e.section)
		}
	}
	if len(f.duckdb) > 0 {
		t.Run("duckdb_script", func(t *testing.T) { runDuckDBScript(t, f) })
	}
}

// readBlocks returns the fenced blocks of README.md and docs/*.md.
func readBlocks(t *testing.T) []block {
	t.Helper()
	files, err := filepath.Glob("*.md")
	if err != nil {
		t.Fatal(err)
	}
	for i := range files {
		files[i] = "docs/" + files[i]
	}
	files = append([]string{"README.md"}, files...)
	fence := regexp.MustCompile("^( *)```(\\S*)\\s*$")
	var blocks []block
	for _, name := range files {
		src, err := os.ReadFile(filepath.Join("..", name))
		if err != nil {
			t.Fatal(err)
		}
		var cur *block
		var indent int
		section := ""
		for i, line := range strings.Split(string(src), "\n") {
			m := fence.FindStringSubmatch(line)
			switch {
			case cur == nil && m != nil:
				cur = &block{file: name, line: i + 1, lang: m[2], section: section}
				indent = len(m[1])
			case cur != nil && m != nil && m[2] == "":
				blocks = append(blocks, *cur)
				cur = nil
			case cur != nil:
				cur.text += strings.TrimPrefix(line, strings.Repeat(" ", indent)) + "\n"
			case strings.HasPrefix(line, "## "):
				section = line
			}
		}
		if cur != nil {
			t.Fatalf("%s: the block opened here is never closed", cur)
		}
	}
	if len(blocks) < 15 {
		t.Fatalf("found %d code blocks; the fence pattern no longer matches the documents", len(blocks))
	}
	return blocks
}

// fixture holds what the examples share: the built binary, a demo export
// to CSV and one to PostgreSQL, made once.
type fixture struct {
	root   string // the repository
	binary string
	env    []string // the environment the binary runs in: the machine's, without WILDIX_, EXPORT_ or a display

	csvDir    string // where `demo` ran with the CSV sink: it holds export/
	pgSchema  string
	pgPool    *pgxpool.Pool
	duckdb    []block // the DuckDB script's blocks, in order
	demoCalls int64
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{root: root, binary: filepath.Join(t.TempDir(), "wildix-export")}
	build := exec.Command("go", "build", "-o", f.binary, "./cmd/wildix-export")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "WILDIX_") && !strings.HasPrefix(kv, "EXPORT_") &&
			!strings.HasPrefix(kv, "DISPLAY=") && !strings.HasPrefix(kv, "WAYLAND_DISPLAY=") {
			f.env = append(f.env, kv)
		}
	}

	// The demo's default 20,000 calls make the reporting views take a
	// minute on a busy machine; 2,000 still give every view rows.
	f.csvDir = t.TempDir()
	if r := f.run(t, f.csvDir, nil, "demo", "--calls", "2000"); r.code != 0 {
		t.Fatalf("demo to CSV: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	f.pgSchema, f.pgPool = pgtest.Schema(t)
	r := f.run(t, t.TempDir(), []string{"EXPORT_SINK=postgres", "EXPORT_DATABASE_URL=" + pgtest.URL(), "EXPORT_DB_SCHEMA=" + f.pgSchema}, "demo", "--calls", "2000")
	if r.code != 0 {
		t.Fatalf("demo to PostgreSQL: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if err := f.pgPool.QueryRow(context.Background(), "SELECT count(*) FROM call_history").Scan(&f.demoCalls); err != nil || f.demoCalls == 0 {
		t.Fatalf("demo to PostgreSQL: %d calls (%v)", f.demoCalls, err)
	}
	return f
}

type result struct {
	stdout, stderr string
	code           int
}

// run runs the binary in dir with f.env and extra.
func (f *fixture) run(t *testing.T, dir string, extra []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, f.binary, args...)
	cmd.Dir = dir
	cmd.Env = append(slices.Clip(f.env), extra...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	code := 0
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("wildix-export %s: %v", strings.Join(args, " "), err)
	}
	return result{out.String(), errb.String(), code}
}

// shellWords splits the little shell the documents write into commands of
// words: blanks separate words, a newline or a comment ends a command,
// single quotes hold anything (newlines too). Anything else a shell would
// interpret is refused, so that a block this cannot read fails loudly.
func shellWords(text string) ([][]string, error) {
	var cmds [][]string
	var words []string
	var w strings.Builder
	inWord := false
	end := func() {
		if inWord {
			words = append(words, w.String())
			w.Reset()
			inWord = false
		}
	}
	for i := 0; i < len(text); i++ {
		c := text[i]
		switch {
		case c == '\'':
			j := strings.IndexByte(text[i+1:], '\'')
			if j < 0 {
				return nil, errors.New("a quote is not closed")
			}
			w.WriteString(text[i+1 : i+1+j])
			inWord = true
			i += j + 1
		case c == '#' && !inWord:
			for i < len(text) && text[i] != '\n' {
				i++
			}
			i--
		case c == '\n':
			end()
			if len(words) > 0 {
				cmds = append(cmds, words)
				words = nil
			}
		case c == ' ' || c == '\t':
			end()
		case strings.IndexByte("\"\\$|;&()<>`*?", c) >= 0:
			return nil, fmt.Errorf("%q at %q: beyond what this test reads of the shell", c, text[max(0, i-20):min(len(text), i+20)])
		default:
			w.WriteByte(c)
			inWord = true
		}
	}
	end()
	if len(words) > 0 {
		cmds = append(cmds, words)
	}
	return cmds, nil
}

// assignment reads NAME=value.
func assignment(word string) (name, value string, ok bool) {
	name, value, ok = strings.Cut(word, "=")
	return name, value, ok && regexp.MustCompile(`^[A-Z][A-Z0-9_]*$`).MatchString(name)
}

// runQuickStart: `go run ./cmd/wildix-export demo` runs the built binary
// with the same arguments in an empty directory, which must then hold a
// CSV file of every built-in endpoint; the test command must be the one
// `.ci/run` ends with (this test cannot run the suite it is part of).
func runQuickStart(t *testing.T, f *fixture, b block) {
	cmds, err := shellWords(b.text)
	if err != nil {
		t.Fatal(err)
	}
	ran := 0
	for _, c := range cmds {
		switch {
		case len(c) >= 3 && c[0] == "go" && c[1] == "run" && c[2] == "./cmd/wildix-export":
			dir := t.TempDir()
			r := f.run(t, dir, nil, c[3:]...)
			if r.code != 0 {
				t.Fatalf("%s: exit %d\n%s%s", strings.Join(c, " "), r.code, r.stdout, r.stderr)
			}
			eps := f.run(t, dir, nil, "endpoints")
			if eps.code != 0 {
				t.Fatalf("endpoints: exit %d\n%s", eps.code, eps.stderr)
			}
			names := endpointNames(eps.stdout)
			if len(names) < 5 {
				t.Fatalf("endpoints lists %v", names)
			}
			for _, name := range names {
				if optIn(name) {
					continue // exported only when asked for (recordings needs a store of its own)
				}
				files, _ := filepath.Glob(filepath.Join(dir, "export", name, "*.csv"))
				if len(files) == 0 {
					t.Errorf("%s wrote no CSV file of %s under ./export", strings.Join(c, " "), name)
				}
			}
			ran++
		case len(c) >= 2 && c[0] == "go" && c[1] == "test":
			ci, err := os.ReadFile(filepath.Join(f.root, ".ci", "run"))
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimSpace(string(ci)), "\n")
			if last := lines[len(lines)-1]; last != strings.Join(c, " ") {
				t.Errorf(".ci/run ends with %q; the README's test command is %q", last, strings.Join(c, " "))
			}
			ran++
		default:
			t.Errorf("the quick start's %q: this test knows how to run go run ./cmd/wildix-export and go test only", strings.Join(c, " "))
		}
	}
	if ran != 2 {
		t.Errorf("the quick start has %d commands, want the two (demo, tests)", ran)
	}
}

// endpointNames reads the first column of `wildix-export endpoints`.
func endpointNames(out string) []string {
	var names []string
	for i, l := range strings.Split(strings.TrimSpace(out), "\n") {
		fs := strings.Fields(l)
		if i == 0 || len(fs) == 0 || strings.HasPrefix(l, " ") {
			continue // the header, and -v's column lines
		}
		names = append(names, fs[0])
	}
	return names
}

// runRealPBX runs the README's set-up for a real PBX against the
// simulator, as written, but for three things the test must choose: the
// PBX's address is the simulator's, the secret file is a temporary file,
// and the Redirect URI (registered on the simulator like the one WMS
// holds) takes a free loopback port instead of the default 8765, which
// another process may hold. authorize is answered by playing the browser
// on the address it prints; every command must exit 0, and run --once must
// write every call exactly once.
func runRealPBX(t *testing.T, f *fixture, b block) {
	cmds, err := shellWords(b.text)
	if err != nil {
		t.Fatal(err)
	}
	var env []string
	vars := map[string]string{}
	var runs [][]string
	for _, c := range cmds {
		if c[0] == "export" {
			for _, w := range c[1:] {
				name, value, ok := assignment(w)
				if !ok {
					t.Fatalf("export %q: not NAME=value", w)
				}
				vars[name] = value
			}
			continue
		}
		if c[0] != "wildix-export" {
			t.Fatalf("%q: this test runs export and wildix-export lines only", strings.Join(c, " "))
		}
		runs = append(runs, c[1:])
	}
	for _, need := range []string{"WILDIX_PBX_URL", "WILDIX_CLIENT_ID", "WILDIX_CLIENT_SECRET_FILE"} {
		if vars[need] == "" {
			t.Fatalf("the block sets no %s", need)
		}
	}
	dir := t.TempDir()
	redirect := "http://" + freeAddr(t) + "/callback"
	const secret = "docs-example-secret-7Qx"
	const calls = 700
	zone, err := time.LoadLocation(orDefault(vars["WILDIX_TIMEZONE"], "UTC"))
	if err != nil {
		t.Fatal(err)
	}
	sim := pbxsim.New(pbxsim.Options{Seed: 25, Calls: calls, Location: zone,
		Clients: []pbxsim.Client{{ID: vars["WILDIX_CLIENT_ID"], Secret: secret, RedirectURIs: []string{redirect}}}})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	secretFile := filepath.Join(t.TempDir(), "wildix_client_secret")
	if err := os.WriteFile(secretFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, value := range vars {
		switch name {
		case "WILDIX_PBX_URL":
			value = srv.URL
		case "WILDIX_CLIENT_SECRET_FILE":
			value = secretFile
		}
		env = append(env, name+"="+value)
	}
	env = append(env, "WILDIX_REDIRECT_URL="+redirect)

	for _, args := range runs {
		if len(args) == 1 && args[0] == "authorize" {
			authorizeAsBrowser(t, f, dir, env, srv.URL)
			continue
		}
		r := f.run(t, dir, env, args...)
		if r.code != 0 {
			t.Fatalf("wildix-export %s: exit %d\n%s%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
		}
	}
	if !slices.ContainsFunc(runs, func(a []string) bool { return slices.Equal(a, []string{"run", "--once"}) }) {
		t.Fatal("the block no longer runs run --once: what should this test check?")
	}
	ids := csvIDs(t, filepath.Join(dir, "export", "call_history"))
	if len(ids) != calls {
		t.Errorf("run --once wrote %d distinct calls, the PBX has %d", len(ids), calls)
	}
	for id, n := range ids {
		if n != 1 {
			t.Errorf("call %d written %d times", id, n)
		}
	}
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// authorizeAsBrowser runs `wildix-export authorize` and opens the address
// it prints, as the user's browser would.
func authorizeAsBrowser(t *testing.T, f *fixture, dir string, env []string, pbxURL string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, f.binary, "authorize")
	cmd.Dir = dir
	cmd.Env = append(slices.Clip(f.env), env...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, pbxURL+"/") {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("authorize printed %q first, not the PBX's address (%v)\n%s", line, err, stderr.String())
	}
	resp, err := http.Get(strings.TrimSpace(line))
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("authorize: %v\n%s\n%s", err, stderr.String(), page)
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// csvIDs counts the ids of the CSV files of one endpoint's folder.
func csvIDs(t *testing.T, dir string) map[int64]int {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.csv"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no CSV file in %s (%v)", dir, err)
	}
	ids := map[int64]int{}
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		recs, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		for _, r := range recs[1:] {
			id, err := strconv.ParseInt(r[0], 10, 64)
			if err != nil {
				t.Fatalf("%s: id %q: %v", p, r[0], err)
			}
			ids[id]++
		}
	}
	return ids
}

// runImportGraph: each line `pkg ─▶ a, b (what it uses), c` must list
// exactly the packages of this module pkg imports (internal/ ones aside),
// and every package importing another (internal/ aside) has its line.
func runImportGraph(t *testing.T, f *fixture, b block) {
	cmd := exec.Command("go", "list", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", "./...")
	cmd.Dir = f.root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	const module = "github.com/wildix-export/wildix-export/"
	actual := map[string][]string{}
	for l := range strings.Lines(string(out)) {
		fs := strings.Fields(l)
		pkg := strings.TrimPrefix(fs[0], module)
		if strings.HasPrefix(pkg, "internal/") {
			continue
		}
		for _, imp := range fs[1:] {
			if p, ok := strings.CutPrefix(imp, module); ok && !strings.HasPrefix(p, "internal/") {
				actual[pkg] = append(actual[pkg], p)
			}
		}
	}
	parens := regexp.MustCompile(`\([^)]*\)`)
	listed := map[string][]string{}
	for l := range strings.Lines(b.text) {
		from, to, ok := strings.Cut(l, "▶")
		if !ok {
			t.Fatalf("%q: not `package ─▶ imports`", l)
		}
		pkg := strings.TrimRight(strings.TrimSpace(from), "─ ")
		for _, p := range strings.Split(parens.ReplaceAllString(to, ""), ",") {
			listed[pkg] = append(listed[pkg], strings.TrimSpace(p))
		}
	}
	for pkg, imps := range actual {
		sort.Strings(imps)
		sort.Strings(listed[pkg])
		if !slices.Equal(imps, listed[pkg]) {
			t.Errorf("%s imports %v; the picture says %v", pkg, imps, listed[pkg])
		}
	}
	for pkg := range listed {
		if actual[pkg] == nil {
			t.Errorf("the picture has %s importing %v, which go list does not show", pkg, listed[pkg])
		}
	}
}

// runCustomEndpoints: the JSON, as EXPORT_ENDPOINTS_FILE, is accepted by
// `endpoints -v` and `config`, and its endpoint is listed.
func runCustomEndpoints(t *testing.T, f *fixture, b block) {
	var eps []struct{ Name, Path string }
	if err := json.Unmarshal([]byte(b.text), &eps); err != nil || len(eps) == 0 {
		t.Fatalf("not a list of endpoints: %v", err)
	}
	file := filepath.Join(t.TempDir(), "endpoints.json")
	if err := os.WriteFile(file, []byte(b.text), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"EXPORT_ENDPOINTS_FILE=" + file}
	r := f.run(t, t.TempDir(), env, "endpoints", "-v")
	if r.code != 0 {
		t.Fatalf("endpoints -v: exit %d\n%s", r.code, r.stderr)
	}
	names := endpointNames(r.stdout)
	for _, ep := range eps {
		if !slices.Contains(names, ep.Name) || !strings.Contains(r.stdout, ep.Path) {
			t.Errorf("endpoints -v does not list %s (%s):\n%s", ep.Name, ep.Path, r.stdout)
		}
	}
	r = f.run(t, t.TempDir(), append(env, "WILDIX_PBX_URL=https://acme.wildixin.com", "WILDIX_API_KEY=wsk-v1-docs-example"), "config")
	if r.code != 0 {
		t.Errorf("config: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// runNotifyConfig: the assignments, with a PBX and a key, make a
// configuration `config` accepts, and it shows each URL redacted as the
// page says, none of the secrets.
func runNotifyConfig(t *testing.T, f *fixture, b block) {
	cmds, err := shellWords(b.text)
	if err != nil {
		t.Fatal(err)
	}
	env := []string{"WILDIX_PBX_URL=https://acme.wildixin.com", "WILDIX_API_KEY=wsk-v1-docs-example"}
	for _, c := range cmds {
		for _, w := range c {
			name, value, ok := assignment(w)
			if !ok {
				t.Fatalf("%q: this block should only assign variables", w)
			}
			env = append(env, name+"="+value)
		}
	}
	secrets := []string{"XXXX", "app-password", "0123456789abcdef0123"}
	r := f.run(t, t.TempDir(), env, "config")
	if r.code != 0 {
		t.Fatalf("config: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{"slack https://hooks.slack.com/[redacted]", "email smtp://alerts%40acme.example:[redacted]@smtp.acme.example:587 from ", "webhook https://ops.acme.example/[redacted] (signed)"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("config does not show %q:\n%s", want, r.stdout)
		}
	}
	for _, s := range secrets {
		if strings.Contains(r.stdout+r.stderr, s) {
			t.Errorf("config shows the secret %q", s)
		}
	}
}

// notifyMembers are the objects of the generic payload other than
// failure, as the page shows them together.
type notifyMembers struct {
	Recovery *notify.Recovery `json:"recovery"`
	Summary  *notify.Summary  `json:"summary"`
}

// runJSONAs: the example is decoded strictly into the value the program
// writes (new's), and holds every field the program would write for it:
// encoding the decoded value gives back the same fields, at every level.
func runJSONAs(newValue func() any) func(t *testing.T, f *fixture, b block) {
	return func(t *testing.T, f *fixture, b block) {
		v := newValue()
		dec := json.NewDecoder(strings.NewReader(b.text))
		dec.DisallowUnknownFields()
		if err := dec.Decode(v); err != nil {
			t.Fatalf("the example is not what the program writes (%T): %v", v, err)
		}
		if dec.More() {
			t.Fatal("the example holds more than one JSON value")
		}
		again, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		var doc, enc any
		if err := json.Unmarshal([]byte(b.text), &doc); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(again, &enc); err != nil {
			t.Fatal(err)
		}
		if d, e := fieldPaths(doc, ""), fieldPaths(enc, ""); !slices.Equal(d, e) {
			t.Errorf("the example's fields:\n%v\nthe program writes, for these values:\n%v", d, e)
		}
		if p, ok := v.(*notify.Generic); ok && (p.Schema != notify.PayloadSchema || p.Version != notify.PayloadVersion) {
			t.Errorf("the example is %s version %d; the program sends %s version %d", p.Schema, p.Version, notify.PayloadSchema, notify.PayloadVersion)
		}
	}
}

// fieldPaths lists the object keys of v, as paths.
func fieldPaths(v any, at string) []string {
	var out []string
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			out = append(out, at+"."+k)
			out = append(out, fieldPaths(e, at+"."+k)...)
		}
	case []any:
		for _, e := range x {
			out = append(out, fieldPaths(e, at+"[]")...)
		}
	}
	sort.Strings(out)
	return slices.Compact(out)
}

// runSignatureCheck runs the page's Python check (python3) on a message
// the real webhook sender signed and posted: it must accept it, and
// refuse the same body altered by one byte.
func runSignatureCheck(t *testing.T, f *fixture, b block) {
	py, err := exec.LookPath("python3")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("python3 is not installed: the signature check of docs/notifications.md cannot run")
		}
		t.Skip("python3 is not installed: the signature check of docs/notifications.md is not run")
	}
	const key = "docs-example-hmac-key-0123"
	type request struct {
		header http.Header
		body   []byte
	}
	got := make(chan request, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got <- request{r.Header.Clone(), body}
	}))
	defer srv.Close()
	target, err := notify.ParseTarget(srv.URL + "/hook?hmac_secret=" + key)
	if err != nil {
		t.Fatal(err)
	}
	n := notify.Notifier{Targets: []*notify.Target{target}}
	at := time.Date(2026, 12, 6, 2, 0, 5, 0, time.UTC)
	res := n.Send(context.Background(), notify.Message{Kind: notify.KindFailure, PBX: "acme.wildixin.com", At: at,
		Failure: &notify.Failure{ExitCode: 3, Meaning: "OAuth authorization needed", Advice: "run `wildix-export authorize`",
			Error: "export call_history: token refused", FailingSince: at, FailedRuns: 1}})
	if len(res) != 1 || res[0].Err != nil {
		t.Fatalf("send: %+v", res)
	}
	var req request
	select {
	case req = <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("the receiver got nothing")
	}
	dir := t.TempDir()
	headers, _ := json.Marshal(map[string]string{
		notify.HeaderTimestamp: req.header.Get(notify.HeaderTimestamp),
		notify.HeaderSignature: req.header.Get(notify.HeaderSignature),
	})
	if req.header.Get(notify.HeaderSignature) == "" {
		t.Fatal("the message came unsigned")
	}
	tampered := slices.Clone(req.body)
	tampered[len(tampered)/2] ^= 1
	for name, data := range map[string][]byte{"check.py": []byte(b.text), "headers.json": headers, "body": req.body, "tampered": tampered} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	harness := `import json, sys
exec(open("check.py").read())
headers = json.load(open("headers.json"))
key = sys.argv[1].encode()
print(valid(key, headers, open("body", "rb").read()), valid(key, headers, open("tampered", "rb").read()))
`
	cmd := exec.Command(py, "-c", harness, key)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("python3: %v\n%s", err, out)
	}
	if strings.TrimSpace(string(out)) != "True False" {
		t.Errorf("the check gives %q for the message as signed and as altered, want True False", strings.TrimSpace(string(out)))
	}
}

// runPostgres runs each statement of the block in the schema a demo
// export loaded (the documents' schema `wildix` replaced by it, as they
// tell the reader to do). With rows, every query must return rows; the
// reporting examples need not on the demo's calls (their dates are fixed):
// sinks › TestReportingDocExamples requires rows of each on fixtures made
// for it.
func runPostgres(rows bool) func(t *testing.T, f *fixture, b block) {
	return func(t *testing.T, f *fixture, b block) {
		ctx := context.Background()
		stmts := statements(b.text)
		if len(stmts) == 0 {
			t.Fatal("no statement")
		}
		total := 0
		for _, s := range stmts {
			s = strings.ReplaceAll(s, "wildix.", f.pgSchema+".")
			r, err := f.pgPool.Query(ctx, s)
			if err != nil {
				t.Errorf("%v\n%s", err, s)
				continue
			}
			n := 0
			for r.Next() {
				n++
			}
			if err := r.Err(); err != nil {
				t.Errorf("%v\n%s", err, s)
				continue
			}
			if rows && n == 0 {
				t.Errorf("no rows after a demo export:\n%s", s)
			}
			t.Logf("%d rows: %s", n, firstLine(s))
			total += n
		}
		if total == 0 {
			t.Error("no query of the block returned a row after a demo export")
		}
	}
}

// statements splits SQL at a semicolon ending a line (with a comment
// after it or not), as the documents write it.
func statements(sql string) []string {
	var out []string
	var cur strings.Builder
	for l := range strings.Lines(sql) {
		cur.WriteString(l)
		code, _, _ := strings.Cut(l, "--")
		if strings.HasSuffix(strings.TrimSpace(code), ";") {
			if s := strings.TrimSpace(cur.String()); s != "" {
				out = append(out, s)
			}
			cur.Reset()
		}
	}
	if s := strings.TrimSpace(cur.String()); s != "" {
		out = append(out, s)
	}
	return out
}

func firstLine(s string) string {
	for l := range strings.Lines(s) {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "--") {
			return l
		}
	}
	return ""
}

// collectDuckDB keeps the block for the DuckDB script, run whole, in
// document order, after every block is read.
func collectDuckDB(t *testing.T, f *fixture, b block) {
	f.duckdb = append(f.duckdb, b)
}

// duckdbScript runs, in DuckDB, each statement of the input file in
// order, and prints the rows each returned; it stops at the first that
// fails.
const duckdbScript = `
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
const require = createRequire(process.env.DUCKDB_DIR + '/node_modules/');
const { DuckDBInstance } = require('@duckdb/node-api');
const stmts = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const db = await DuckDBInstance.create(':memory:');
const con = await db.connect();
const rows = [];
for (const sql of stmts) {
  try {
    rows.push((await con.runAndReadAll(sql)).getRowsJS().length);
  } catch (e) {
    console.error('statement ' + rows.length + ' failed: ' + e.message);
    process.exit(2);
  }
}
console.log(JSON.stringify(rows));
`

// runDuckDBScript runs the DuckDB blocks, as one script, in the directory
// where `demo` wrote export/ with the CSV sink (the page says to run it
// there). Its views must answer with rows on the demo's calls and groups.
func runDuckDBScript(t *testing.T, f *fixture) {
	dir := duckdbDir(t)
	var stmts []string
	for _, b := range f.duckdb {
		stmts = append(stmts, statements(b.text)...)
	}
	work := t.TempDir()
	input, _ := json.Marshal(stmts)
	if err := os.WriteFile(filepath.Join(work, "script.mjs"), []byte(duckdbScript), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(work, "stmts.json"), input, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", filepath.Join(work, "script.mjs"), filepath.Join(work, "stmts.json"))
	cmd.Dir = f.csvDir
	cmd.Env = append(slices.Clip(f.env), "DUCKDB_DIR="+dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		msg := stderr.String()
		if m := regexp.MustCompile(`^statement (\d+) failed`).FindStringSubmatch(msg); m != nil {
			i, _ := strconv.Atoi(m[1])
			msg += "\n" + stmts[i]
		}
		t.Fatalf("DuckDB over the demo's CSV files: %v\n%s", err, msg)
	}
	var rows []int
	if err := json.Unmarshal(out, &rows); err != nil || len(rows) != len(stmts) {
		t.Fatalf("DuckDB printed %q (%v)", out, err)
	}
	for i, s := range stmts {
		t.Logf("%d rows: %s", rows[i], firstLine(s))
	}
	sel := 0
	for i, s := range stmts {
		if isQuery(s) {
			sel++
			if rows[i] == 0 && !datedExample(s) {
				t.Errorf("returns no rows over the demo's CSV files:\n%s", s)
			}
		}
	}
	if sel == 0 {
		t.Error("the script has no query")
	}
}

// isQuery tells a statement that returns rows from one that defines.
func isQuery(s string) bool {
	l := firstLine(s)
	return strings.HasPrefix(l, "SELECT") || strings.HasPrefix(l, "WITH")
}

// datedExample tells a query that asks for a fixed day, which the demo's
// calls (ending now) do not reach.
func datedExample(s string) bool {
	return regexp.MustCompile(`DATE '\d{4}-\d{2}-\d{2}'|'\d{4}-\d{2}-\d{2}'`).MatchString(s)
}

// duckdbDir is where DuckDB's node_modules are: WILDIX_DUCKDB_DIR, else
// ~/.cache/wildix-export/duckdb-node, where .ci/run installs them. In CI a
// missing DuckDB fails the test; elsewhere it is skipped, saying how to
// install it (as sinks › TestGroupViewsDuckDBOverCSV does).
func duckdbDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("WILDIX_DUCKDB_DIR")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			t.Fatal(err)
		}
		dir = filepath.Join(home, ".cache", "wildix-export", "duckdb-node")
	}
	_, err := os.Stat(filepath.Join(dir, "node_modules", "@duckdb", "node-api", "package.json"))
	if _, nodeErr := exec.LookPath("node"); err != nil || nodeErr != nil {
		msg := "DuckDB (node and the npm package @duckdb/node-api) not found in " + dir + ": bash .ci/run installs it, or set WILDIX_DUCKDB_DIR"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return dir
}

// optIn reports whether name is a built-in endpoint left out of the
// default set (record.Endpoint.OptIn).
func optIn(name string) bool {
	return slices.ContainsFunc(record.Builtin(), func(e record.Endpoint) bool { return e.Name == name && e.OptIn })
}
