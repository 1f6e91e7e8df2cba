package main

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// behaviour is one way a PBX answers call-history lists, as pbxsim's
// switches play it (issue 28, point 5).
type behaviour struct {
	key  string // as -behaviours-cases names it
	name string
	// switches gives pbxsim's flags for pages of page records.
	switches func(page int) []string
	// served is the most records a page holds at pages of page.
	served func(page int) int
	// Acceptance of issue 28 against the by-key path; 0: none.
	timeLimit, requestLimit float64
}

func unchanged(page int) int { return page }

// behaviours are the cases, the by-key path first: every other one is
// measured against it.
var behaviours = []behaviour{
	{key: "by-key", name: "by key (honours filter[id] and sort=id)", switches: func(int) []string { return nil }, served: unchanged},
	{key: "capped", name: "capped (count cut to a quarter of the page)", switches: func(page int) []string {
		return []string{"-max-count", strconv.Itoa(capOf(page))}
	}, served: capOf},
	{key: "sort-ignored", name: "sort ignored (key ranges)", switches: func(int) []string { return []string{"-ignore-sort"} }, served: unchanged,
		timeLimit: 1.2, requestLimit: 1.35},
	{key: "filter-ignored", name: "filter[id] ignored (time windows)", switches: func(int) []string { return []string{"-ignore-filter", "id"} }, served: unchanged,
		timeLimit: 1.3, requestLimit: 1.5},
	{key: "both-ignored", name: "both ignored", switches: func(int) []string { return []string{"-ignore-filter", "id", "-ignore-sort"} }, served: unchanged},
	{key: "no-total", name: "no total", switches: func(int) []string { return []string{"-total", "absent"} }, served: unchanged},
}

// pickBehaviours reads -behaviours-cases: a comma list of behaviours' keys;
// by key is always measured, first, as every other is measured against it.
func pickBehaviours(s string) ([]behaviour, error) {
	picked := []behaviour{behaviours[0]}
	for _, k := range strings.Split(s, ",") {
		k = strings.TrimSpace(k)
		i := slices.IndexFunc(behaviours, func(b behaviour) bool { return b.key == k })
		if i < 0 {
			keys := make([]string, len(behaviours))
			for j, b := range behaviours {
				keys[j] = b.key
			}
			return nil, fmt.Errorf("-behaviours-cases %q: %q is none of %s", s, k, strings.Join(keys, ", "))
		}
		if i > 0 && !slices.ContainsFunc(picked, func(b behaviour) bool { return b.key == k }) {
			picked = append(picked, behaviours[i])
		}
	}
	return picked, nil
}

func capOf(page int) int { return max(page/4, 1) }

// size is one call count read in pages of one size.
type size struct{ calls, page int }

// parseSizes reads -behaviours-sizes: a comma list of calls/page.
func parseSizes(s string) ([]size, error) {
	var out []size
	for _, f := range strings.Split(s, ",") {
		c, p, ok := strings.Cut(strings.TrimSpace(f), "/")
		calls, err1 := strconv.Atoi(c)
		page, err2 := strconv.Atoi(p)
		if !ok || err1 != nil || err2 != nil || calls <= 0 || page <= 0 {
			return nil, fmt.Errorf("-behaviours-sizes %q: %q is not calls/page (e.g. 20000/100, both positive)", s, f)
		}
		out = append(out, size{calls, page})
	}
	return out, nil
}

// behaviourRuns is what the runs of one behaviour at one size measured.
type behaviourRuns struct {
	beh      behaviour
	switches []string
	times    []time.Duration
	requests []int
	// CPU time of the exporter and of the simulator during each run; the
	// simulator's is -1 where /proc is not.
	exportCPU, simCPU []time.Duration
	paging            []string // as the run ledger says, each distinct once
	// Per run, against the by-key run of the same round.
	timeRatios, requestRatios []float64
}

// behaviourTable is one size's cases.
type behaviourTable struct {
	size
	runs       []*behaviourRuns
	loadBefore string
	loadAfter  string
	began      time.Time
}

// behaviours runs every behaviour at every -behaviours-sizes size: one
// simulator per behaviour on the same calls (same seed) answering each
// request after -latency, and each round runs each behaviour once, by
// key first, so that each ratio compares two runs taken minutes apart
// at most. Each run must export every call of the simulator once.
func (b *bench) behaviours(ctx context.Context) error {
	for _, sz := range b.o.behSizes {
		t, err := b.behaviourTable(ctx, sz)
		if err != nil {
			return fmt.Errorf("behaviours at %d calls, pages of %d: %w", sz.calls, sz.page, err)
		}
		b.behTables = append(b.behTables, t)
	}
	return nil
}

func (b *bench) behaviourTable(ctx context.Context, sz size) (*behaviourTable, error) {
	t := &behaviourTable{size: sz, loadBefore: loadAverage(), began: time.Now()}
	sims := make([]*sim, len(b.o.behaviours))
	defer func() {
		for _, s := range sims {
			if s != nil {
				s.stop()
			}
		}
	}()
	for i, beh := range b.o.behaviours {
		r := &behaviourRuns{beh: beh, switches: beh.switches(sz.page)}
		t.runs = append(t.runs, r)
		s, err := b.startSimNice(b.o.simNice, sz.calls, append([]string{"-latency", b.o.latency.String(), "-cache-call-json"}, r.switches...)...)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", beh.name, err)
		}
		sims[i] = s
	}
	for round := 0; round < b.o.runs; round++ {
		for i, r := range t.runs {
			fmt.Fprintf(os.Stderr, "behaviours at %d calls, pages of %d, run %d/%d: %s…\n", sz.calls, sz.page, round+1, b.o.runs, r.beh.name)
			m, err := b.behaviourRun(ctx, sims[i], sz)
			if err != nil {
				return nil, fmt.Errorf("%s (pbxsim switches: %s): %w", r.beh.name, orNone(strings.Join(r.switches, " ")), err)
			}
			r.times = append(r.times, m.d)
			r.requests = append(r.requests, m.requests)
			r.exportCPU = append(r.exportCPU, m.exportCPU)
			r.simCPU = append(r.simCPU, m.simCPU)
			if !slices.Contains(r.paging, m.paging) {
				r.paging = append(r.paging, m.paging)
			}
			byKey := t.runs[0]
			r.timeRatios = append(r.timeRatios, m.d.Seconds()/byKey.times[round].Seconds())
			r.requestRatios = append(r.requestRatios, float64(m.requests)/float64(byKey.requests[round]))
		}
	}
	t.loadAfter = loadAverage()
	return t, nil
}

// behaviourMeasure is one run of one behaviour.
type behaviourMeasure struct {
	d                 time.Duration
	requests          int
	exportCPU, simCPU time.Duration
	paging            string
}

// behaviourRun exports every call of s into a fresh CSV folder and
// returns the run's time, the requests the simulator served during it,
// the CPU time each process took and the paging the run ledger records;
// an export that is not exact (each call of the simulator once) is an
// error.
func (b *bench) behaviourRun(ctx context.Context, s *sim, sz size) (behaviourMeasure, error) {
	var m behaviourMeasure
	out := filepath.Join(b.dir, randomName("behaviour-"))
	defer os.RemoveAll(out)
	before, err := s.stats(ctx)
	if err != nil {
		return m, err
	}
	simBefore := processCPU(s.cmd.Process.Pid)
	smp, err := b.export(s.base, "EXPORT_SINK=csv", "EXPORT_CSV_DIR="+out, "EXPORT_PAGE_SIZE="+strconv.Itoa(sz.page))
	if err != nil {
		return m, err
	}
	m.simCPU = processCPU(s.cmd.Process.Pid)
	if m.simCPU >= 0 && simBefore >= 0 {
		m.simCPU -= simBefore
	}
	after, err := s.stats(ctx)
	if err != nil {
		return m, err
	}
	rows, ids, err := countCalls(filepath.Join(out, "call_history"))
	if err != nil {
		return m, err
	}
	if rows != after.calls || ids != after.calls {
		return m, fmt.Errorf("export not exact: %d rows holding %d distinct ids, the simulator holds %d calls", rows, ids, after.calls)
	}
	if m.paging, err = ledgerPaging(out); err != nil {
		return m, err
	}
	m.d, m.requests, m.exportCPU = smp.d, after.requests-before.requests, smp.cpu
	return m, nil
}

// processCPU is a running process's user and system time so far, from
// /proc (Linux; ticks of 1/100 s, as the kernel reports them to user
// space everywhere it runs), -1 where it cannot be read.
func processCPU(pid int) time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return -1
	}
	// The command name, in parentheses, may hold spaces: fields count from
	// after it, the state being field 3.
	i := strings.LastIndexByte(string(data), ')')
	if i < 0 {
		return -1
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 13 {
		return -1
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return -1
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// simStats is what pbxsim's /_sim/stats says.
type simStats struct{ calls, requests int }

func (s *sim) stats(ctx context.Context) (simStats, error) {
	var st simStats
	req, err := http.NewRequestWithContext(ctx, "GET", s.base+"/_sim/stats", nil)
	if err != nil {
		return st, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return st, fmt.Errorf("read the simulator's stats: %w", err)
	}
	defer resp.Body.Close()
	seen := 0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		name, v, _ := strings.Cut(sc.Text(), " ")
		n, err := strconv.Atoi(v)
		switch {
		case name == "calls" && err == nil:
			st.calls, seen = n, seen+1
		case name == "api_requests" && err == nil:
			st.requests, seen = n, seen+1
		}
	}
	if err := sc.Err(); err != nil {
		return st, fmt.Errorf("read the simulator's stats: %w", err)
	}
	if seen != 2 {
		return st, fmt.Errorf("the simulator's stats lack calls or api_requests (status %s)", resp.Status)
	}
	return st, nil
}

// countCalls reads every call-history CSV file in dir and returns its
// rows and how many distinct ids they hold. Files under a temporary
// dot-name are not the export's and are skipped.
func countCalls(dir string) (rows, ids int, err error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.csv"))
	if err != nil {
		return 0, 0, err
	}
	if len(files) == 0 {
		return 0, 0, fmt.Errorf("no CSV file in %s", dir)
	}
	seen := map[string]struct{}{}
	for _, f := range files {
		if strings.HasPrefix(filepath.Base(f), ".") {
			continue
		}
		n, err := readIDs(f, seen)
		if err != nil {
			return 0, 0, fmt.Errorf("count the calls of %s: %w", f, err)
		}
		rows += n
	}
	return rows, len(seen), nil
}

func readIDs(file string, seen map[string]struct{}) (int, error) {
	f, err := os.Open(file)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	r := csv.NewReader(bufio.NewReaderSize(f, 1<<16))
	r.ReuseRecord = true
	header, err := r.Read()
	if err != nil {
		return 0, fmt.Errorf("header: %w", err)
	}
	col := slices.Index(header, "id")
	if col < 0 {
		return 0, fmt.Errorf("no id column in the header %q", header)
	}
	rows := 0
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			return rows, nil
		}
		if err != nil {
			return rows, err
		}
		seen[rec[col]] = struct{}{}
		rows++
	}
}

// ledgerPaging reads how call history was read from the CSV folder's run
// ledger (the last run's line).
func ledgerPaging(out string) (string, error) {
	files, _ := filepath.Glob(filepath.Join(out, ".state", "*", "runs.jsonl"))
	if len(files) != 1 {
		return "", fmt.Errorf("%d run ledgers under %s, expected 1", len(files), out)
	}
	data, err := os.ReadFile(files[0])
	if err != nil {
		return "", err
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	var run struct {
		Status    string `json:"status"`
		Endpoints []struct {
			Endpoint, Paging string
		} `json:"endpoints"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &run); err != nil {
		return "", fmt.Errorf("read the run ledger %s: %w", files[0], err)
	}
	for _, e := range run.Endpoints {
		if e.Endpoint == "call_history" {
			return e.Paging, nil
		}
	}
	return "", fmt.Errorf("the run ledger %s has no call_history", files[0])
}

// loadAverage is the machine's load (1, 5 and 15 minutes), "?" where
// /proc/loadavg is not.
func loadAverage() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// sourceCommit names the commit of the source tree in the working
// directory, and whether the tree differs from it: read when the binaries
// are built, as the tree may change while the cases run.
func sourceCommit() string {
	out, err := exec.Command("git", "log", "-1", "--format=%h (%cd)", "--date=format-local:%Y-%m-%d %H:%M UTC").Output()
	if err != nil {
		return "unknown (not a git checkout)"
	}
	c := strings.TrimSpace(string(out))
	if st, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(st) > 0 {
		c += " with uncommitted changes"
	}
	return c
}

func median[T int | float64 | time.Duration](xs []T) T {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

func (b *bench) reportBehaviours(w io.Writer) {
	if len(b.behTables) == 0 {
		return
	}
	fmt.Fprintln(w, "\n## PBX behaviours (issue 28)")
	fmt.Fprintln(w)
	fmt.Fprintf(w, "Commit %s. Call history only, CSV sink, EXPORT_CONCURRENCY %d, every request answered after %s; "+
		"median of %d run(s); the requests are those the simulator served during the run, the CPU time what each process took during it "+
		"(the simulator's is the PBX's work, on the same cores here). Each ratio is the median over the runs "+
		"of the case's run ÷ the by-key run of the same round; every run exported each call once (checked).\n",
		b.commit, b.o.conc, b.o.latency, b.o.runs)
	if b.o.simNice != 0 {
		fmt.Fprintf(w, "The simulators ran under nice -n %d (the exporter at 0).\n", b.o.simNice)
	}
	for _, t := range b.behTables {
		writeBehaviourTable(w, t, b.o.runs)
	}
}

func writeBehaviourTable(w io.Writer, t *behaviourTable, runs int) {
	fmt.Fprintf(w, "\n### %d calls, pages of %d (%s; load average %s before, %s after)\n\n", t.calls, t.page,
		t.began.UTC().Format("2006-01-02 15:04 UTC"), t.loadBefore, t.loadAfter)
	fmt.Fprintln(w, "| PBX behaviour | pbxsim | paging | time | min – max | requests | requests ÷ pages | time ÷ by key | requests ÷ by key | acceptance | CPU: exporter, simulator |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range t.runs {
		lo, hi := slices.Min(r.times), slices.Max(r.times)
		req := strconv.Itoa(median(r.requests))
		if mn, mx := slices.Min(r.requests), slices.Max(r.requests); mn != mx {
			req += fmt.Sprintf(" (%d – %d)", mn, mx)
		}
		pages := (t.calls + r.beh.served(t.page) - 1) / r.beh.served(t.page)
		tr, rr := median(r.timeRatios), median(r.requestRatios)
		simCPU := "?"
		if c := median(r.simCPU); c >= 0 {
			simCPU = seconds(c)
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s – %s | %s | %.2f | %.2f | %.2f | %s | %s, %s |\n", r.beh.name, orNone(strings.Join(r.switches, " ")),
			strings.Join(r.paging, ", "), seconds(median(r.times)), seconds(lo), seconds(hi), req,
			float64(median(r.requests))/float64(pages), tr, rr, verdict(r.beh, tr, rr), seconds(median(r.exportCPU)), simCPU)
	}
}

func verdict(beh behaviour, timeRatio, requestRatio float64) string {
	if beh.timeLimit == 0 {
		return "reported"
	}
	met := func(v, lim float64) string {
		if v <= lim {
			return "met"
		}
		// Four places: 1.3547 shows as 1.35 in its column.
		return fmt.Sprintf("**not met** (%.4f)", v)
	}
	return fmt.Sprintf("time ≤ %g: %s; requests ≤ %g: %s", beh.timeLimit, met(timeRatio, beh.timeLimit),
		beh.requestLimit, met(requestRatio, beh.requestLimit))
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func seconds(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }
