// Command bench measures wildix-export against the physical limits of the
// machine it runs on, side by side in one run: how fast the simulator can
// be read at all (the fetch limit), how fast PostgreSQL takes the same rows
// with COPY (the load limit), and wildix-export's exports against them, plus
// latency and memory. It prints medians, spreads and ratios.
//
//	go run ./bench                       # the documented defaults
//	go run ./bench -n 1000000 -runs 3    # a larger run
//
// Each subject runs as its own process (the pbxsim and wildix-export
// binaries, built first), so its peak memory is its own. See bench/README.md.
package main

import (
	"bufio"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

type options struct {
	n, latN, page, latPage, conc, runs int
	memN                               []int
	latency                            time.Duration
	db                                 string
	baseline                           string
	cases                              map[string]bool
	behSizes                           []size
	behaviours                         []behaviour
	simNice                            int
}

func main() {
	var o options
	var memN, cases, behSizes, behCases string
	flag.IntVar(&o.n, "n", 200000, "call records for the fetch, load, csv, pg and incremental cases (calls of three legs for the groups case)")
	flag.IntVar(&o.runs, "runs", 3, "repetitions of each case (median and spread are reported)")
	flag.IntVar(&o.page, "page", 1000, "page size (EXPORT_PAGE_SIZE)")
	flag.IntVar(&o.conc, "conc", 4, "pages fetched at once (EXPORT_CONCURRENCY)")
	flag.DurationVar(&o.latency, "latency", 20*time.Millisecond, "per-request latency of the latency case")
	flag.IntVar(&o.latN, "latency-n", 100000, "call records of the latency case (the sequential pager reads a fifth of them)")
	flag.IntVar(&o.latPage, "latency-page", 100, "page size of the latency case")
	flag.StringVar(&memN, "mem-n", "100000,1000000", "record counts of the memory case")
	flag.StringVar(&o.db, "db", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable", "PostgreSQL for the load and pg cases")
	flag.StringVar(&o.baseline, "baseline", "", "source tree of an earlier wildix-export (e.g. a git worktree of main) whose PostgreSQL, CSV and latency exports are measured in the same run, for comparison")
	flag.StringVar(&behSizes, "behaviours-sizes", "20000/100,200000/1000", "calls/page pairs of the behaviours case (-latency a request, -conc at once)")
	flag.StringVar(&behCases, "behaviours-cases", "by-key,capped,sort-ignored,filter-ignored,both-ignored,no-total", "PBX behaviours of the behaviours case (by-key is always measured: the others are against it)")
	flag.IntVar(&o.simNice, "behaviours-sim-nice", 0, "niceness of the behaviours case's simulators, e.g. -10 on a busy machine: the PBX then answers as if it had cores of its own (a negative value needs the right to raise priority)")
	flag.StringVar(&cases, "cases", "fetch,load,load-pk,csv,pg,pg-merge,incremental,latency,memory,groups,csv-once", "cases to run; behaviours (issue 28: each PBX behaviour at -behaviours-sizes, minutes at the defaults) and recordings (issue 29: -recordings-*) run only when named")
	flag.Parse()
	o.cases = map[string]bool{}
	for _, c := range strings.Split(cases, ",") {
		o.cases[strings.TrimSpace(c)] = true
	}
	for _, s := range strings.Split(memN, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || v <= 0 {
			fatalf("-mem-n %q: expected a comma list of positive counts", memN)
		}
		o.memN = append(o.memN, v)
	}
	var err error
	if o.behSizes, err = parseSizes(behSizes); err != nil {
		fatalf("%v", err)
	}
	if o.behaviours, err = pickBehaviours(behCases); err != nil {
		fatalf("%v", err)
	}
	if err := run(context.Background(), o); err != nil {
		fatalf("%v", err)
	}
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
	os.Exit(1)
}

// sample is one measurement: wall time and, for processes, peak RSS.
type sample struct {
	d   time.Duration
	rss int64         // bytes
	cpu time.Duration // user and system time of a process
	// host is the bench process's own user and system time during the
	// measure (the recordings case: its simulator's, and the plain
	// copy's when that is the subject).
	host time.Duration
}

type figure struct {
	name    string
	rows    int
	samples []sample
	note    string
}

func (f *figure) median() time.Duration {
	return medianOf(f, func(s sample) time.Duration { return s.d })
}

func (f *figure) spread() (time.Duration, time.Duration) {
	lo, hi := f.samples[0].d, f.samples[0].d
	for _, s := range f.samples {
		lo, hi = min(lo, s.d), max(hi, s.d)
	}
	return lo, hi
}

func (f *figure) medianCPU() time.Duration {
	return medianOf(f, func(s sample) time.Duration { return s.cpu })
}

func (f *figure) medianHost() time.Duration {
	return medianOf(f, func(s sample) time.Duration { return s.host })
}

func (f *figure) medianRSS() int64 { return medianOf(f, func(s sample) int64 { return s.rss }) }

// medianOf is the median of one measure of f's samples.
func medianOf[T cmp.Ordered](f *figure, measure func(sample) T) T {
	vs := make([]T, len(f.samples))
	for i, s := range f.samples {
		vs[i] = measure(s)
	}
	slices.Sort(vs)
	return vs[len(vs)/2]
}

type bench struct {
	o       options
	dir     string
	wx, sim string
	base    string // the -baseline binary, "" without
	figures map[string]*figure
	order   []string
	commit  string // of the source tree the binaries were built from
	// behTables are the behaviours case's, one a size.
	behTables []*behaviourTable
	// wrapped counts the recordings case's runs under -recordings-wrap,
	// for its {n}.
	wrapped int
}

func (b *bench) add(name string, rows int, s sample, note string) {
	f := b.figures[name]
	if f == nil {
		f = &figure{name: name, rows: rows, note: note}
		b.figures[name] = f
		b.order = append(b.order, name)
	}
	f.samples = append(f.samples, s)
}

// buildStatic builds pkg from the module in dir (the working directory
// when empty) into out as .ci/build-static and the release do: static,
// -trimpath, stripped. A binary built otherwise (dynamically linked,
// symbols kept) starts measurably slower than the one users run.
func buildStatic(dir, out, pkg string) error {
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", out, pkg)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build %s: %v\n%s", pkg, err, b)
	}
	return nil
}

func run(ctx context.Context, o options) error {
	dir, err := os.MkdirTemp("", "wildix-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	b := &bench{o: o, dir: dir, figures: map[string]*figure{}}
	fmt.Fprintln(os.Stderr, "building the binaries…")
	b.commit = sourceCommit()
	b.wx, b.sim = filepath.Join(dir, "wildix-export"), filepath.Join(dir, "pbxsim")
	for _, x := range [][2]string{{b.wx, "./cmd/wildix-export"}, {b.sim, "./cmd/pbxsim"}} {
		if err := buildStatic("", x[0], x[1]); err != nil {
			return err
		}
	}
	if o.baseline != "" {
		b.base = filepath.Join(dir, "wildix-export-baseline")
		if err := buildStatic(o.baseline, b.base, "./cmd/wildix-export"); err != nil {
			return fmt.Errorf("the baseline in %s: %w", o.baseline, err)
		}
	}
	if err := b.main(ctx); err != nil {
		return err
	}
	if o.cases["latency"] {
		if err := b.latency(ctx); err != nil {
			return err
		}
	}
	if o.cases["memory"] {
		if err := b.memory(ctx); err != nil {
			return err
		}
	}
	if o.cases["groups"] {
		if err := b.groups(ctx); err != nil {
			return err
		}
	}
	if o.cases["csv-once"] {
		if err := b.csvOnce(ctx); err != nil {
			return err
		}
	}
	if o.cases["behaviours"] {
		if err := b.behaviours(ctx); err != nil {
			return err
		}
	}
	if err := runIf(o.cases["recordings"], func() error { return b.recordings(ctx) }); err != nil { // recordings.go
		return err
	}
	b.report(os.Stdout)
	b.reportGroups(os.Stdout)
	b.reportBehaviours(os.Stdout)
	b.reportRecordings(os.Stdout)
	return nil
}

// sim is a running pbxsim process.
type sim struct {
	cmd  *exec.Cmd
	base string
}

const apiKey = "wsk-v1-bench"

func (b *bench) startSim(calls int, extra ...string) (*sim, error) {
	return b.startSimNice(0, calls, extra...)
}

// startSimNice starts pbxsim under nice -n niceness (0: as is).
func (b *bench) startSimNice(niceness, calls int, extra ...string) (*sim, error) {
	args := append([]string{"-addr", "127.0.0.1:0", "-calls", strconv.Itoa(calls), "-api-key", apiKey}, extra...)
	cmd := exec.Command(b.sim, args...)
	if niceness != 0 {
		// nice execs pbxsim in its own process: the pid is pbxsim's.
		cmd = exec.Command("nice", append([]string{"-n", strconv.Itoa(niceness), b.sim}, args...)...)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		cmd.Process.Kill()
		return nil, fmt.Errorf("pbxsim did not start: %v", err)
	}
	base := strings.TrimSpace(strings.TrimPrefix(line, "pbxsim listening on "))
	return &sim{cmd: cmd, base: base}, nil
}

func (s *sim) stop() { s.cmd.Process.Kill(); s.cmd.Wait() }

func (s *sim) requests() int {
	resp, err := http.Get(s.base + "/_sim/stats")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "api_requests "); ok {
			n, _ := strconv.Atoi(v)
			return n
		}
	}
	return -1
}

// export runs `wildix-export run --once` and returns its wall time and
// peak RSS.
func (b *bench) export(base string, env ...string) (sample, error) {
	return b.exportWith(b.wx, base, env...)
}

func (b *bench) exportWith(wx, base string, env ...string) (sample, error) {
	cmd := exec.Command(wx, "run", "--once")
	cmd.Env = append(os.Environ(), append([]string{
		"WILDIX_PBX_URL=" + base, "WILDIX_API_KEY=" + apiKey, "EXPORT_ENDPOINTS=call_history",
		"EXPORT_LOG_LEVEL=warn", "EXPORT_PAGE_SIZE=" + strconv.Itoa(b.o.page), "EXPORT_CONCURRENCY=" + strconv.Itoa(b.o.conc),
	}, env...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	began := time.Now()
	if err := cmd.Run(); err != nil {
		return sample{}, fmt.Errorf("wildix-export: %v\n%s", err, stderr.String())
	}
	d := time.Since(began)
	return sample{d: d, rss: peakRSS(cmd.ProcessState), cpu: cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()}, nil
}

// fetch reads every page of n records as the exporter would (upper bound,
// then sort=id ascending within it), with conc requests at once, reading
// and discarding the bodies: the most any exporter could do.
func fetch(ctx context.Context, base string, n, page, conc int) (time.Duration, error) {
	began := time.Now()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conc + 1}}
	get := func(q url.Values) error {
		req, _ := http.NewRequestWithContext(ctx, "GET", base+"/api/v1/PBX/CallHistory/?"+q.Encode(), nil)
		req.Header.Set("Authorization", "Bearer "+apiKey)
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			return err
		}
		if resp.StatusCode != 200 {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	}
	if err := get(url.Values{"sort": {"id"}, "dir": {"DESC"}, "count": {"1"}, "fields": {"id"}}); err != nil {
		return 0, err
	}
	pages := (n + page - 1) / page
	next := make(chan int)
	errs := make(chan error, conc)
	var wg sync.WaitGroup
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range next {
				q := url.Values{"sort": {"id"}, "dir": {"ASC"}, "start": {strconv.Itoa(p * page)}, "count": {strconv.Itoa(page)},
					"filter[id][from]": {"1"}, "filter[id][to]": {strconv.Itoa(n)}}
				if err := get(q); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for p := 0; p < pages; p++ {
		next <- p
	}
	close(next)
	wg.Wait()
	select {
	case err := <-errs:
		return 0, err
	default:
	}
	return time.Since(began), nil
}

func randomName(prefix string) string {
	b := make([]byte, 4)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// main runs the cases on n records: fetch, csv, incremental, pg, load.
// It stays one function (64 lines): the cases in the order they run.
func (b *bench) main(ctx context.Context) error {
	o := b.o
	if !o.cases["fetch"] && !o.cases["csv"] && !o.cases["pg"] && !o.cases["pg-merge"] && !o.cases["load"] && !o.cases["load-pk"] && !o.cases["incremental"] {
		return nil
	}
	// The simulator builds its call records' JSON once: its CPU, which a
	// real PBX does not take from the exporter's machine, then weighs little.
	s, err := b.startSim(o.n, "-cache-call-json")
	if err != nil {
		return err
	}
	defer s.stop()
	var conn *pgx.Conn
	if o.cases["pg"] || o.cases["pg-merge"] || o.cases["load"] || o.cases["load-pk"] {
		if conn, err = pgx.Connect(ctx, o.db); err != nil {
			return fmt.Errorf("PostgreSQL at -db: %w", err)
		}
		defer conn.Close(ctx)
	}
	copyFile := filepath.Join(b.dir, "rows.csv")
	haveCopy := false
	for r := 0; r < o.runs; r++ {
		fmt.Fprintf(os.Stderr, "run %d/%d on %d records…\n", r+1, o.runs, o.n)
		if o.cases["fetch"] {
			d, err := fetch(ctx, s.base, o.n, o.page, o.conc)
			if err != nil {
				return fmt.Errorf("fetch: %w", err)
			}
			b.add("fetch limit", o.n, sample{d: d}, fmt.Sprintf("page %d, %d at once, bodies discarded", o.page, o.conc))
		}
		if o.cases["csv"] || o.cases["incremental"] {
			out := filepath.Join(b.dir, randomName("csv-"))
			smp, err := b.export(s.base, "EXPORT_SINK=csv", "EXPORT_CSV_DIR="+out)
			if err != nil {
				return err
			}
			b.add("wildix-export to CSV", o.n, smp, "")
			if b.base != "" && o.cases["csv"] {
				bout := filepath.Join(b.dir, randomName("csv-base-"))
				smp, err := b.exportWith(b.base, s.base, "EXPORT_SINK=csv", "EXPORT_CSV_DIR="+bout)
				os.RemoveAll(bout)
				if err != nil {
					return fmt.Errorf("baseline: %w", err)
				}
				b.add("baseline wildix-export to CSV", o.n, smp, "-baseline "+o.baseline)
			}
			if o.cases["incremental"] {
				before := s.requests()
				smp, err := b.export(s.base, "EXPORT_SINK=csv", "EXPORT_CSV_DIR="+out)
				if err != nil {
					return err
				}
				b.add("incremental, nothing new", 0, smp, fmt.Sprintf("%d API request(s)", s.requests()-before))
			}
			os.RemoveAll(out)
		}
		if o.cases["pg"] || o.cases["pg-merge"] || o.cases["load"] || o.cases["load-pk"] {
			if err := b.postgres(ctx, conn, s, copyFile, &haveCopy); err != nil {
				return err
			}
		}
	}
	return nil
}

// postgres runs the PostgreSQL cases once: a full export into a fresh
// schema (every row takes the direct COPY), the same export into a table
// already holding the highest key (every row takes the merge), and psql's
// \copy of the same rows into a table of the same shape, with and without
// the reporting indexes.
// It stays one function (about 100 lines): the cases' order matters (each
// starts from the schema the one before left), and it reads as that script.
func (b *bench) postgres(ctx context.Context, conn *pgx.Conn, s *sim, copyFile string, haveCopy *bool) error {
	o := b.o
	schema := randomName("bench_")
	defer conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+schema+" CASCADE")
	if err := b.migrate(b.wx, s.base, schema, true); err != nil {
		return err
	}
	smp, err := b.export(s.base, "EXPORT_SINK=postgres", "EXPORT_DATABASE_URL="+o.db, "EXPORT_DB_SCHEMA="+schema, "EXPORT_BATCH_SIZE=50000")
	if err != nil {
		return err
	}
	if o.cases["pg"] {
		b.add("wildix-export to PostgreSQL, direct COPY", o.n, smp, paths(ctx, conn, schema))
	}
	if b.base != "" && o.cases["pg"] {
		bs := randomName("bench_base_")
		if err := b.migrate(b.base, s.base, bs, false); err != nil {
			return fmt.Errorf("baseline: %w", err)
		}
		smp, err := b.exportWith(b.base, s.base, "EXPORT_SINK=postgres", "EXPORT_DATABASE_URL="+o.db, "EXPORT_DB_SCHEMA="+bs, "EXPORT_BATCH_SIZE=50000")
		conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+bs+" CASCADE")
		if err != nil {
			return fmt.Errorf("baseline: %w", err)
		}
		b.add("baseline wildix-export to PostgreSQL", o.n, smp, "-baseline "+o.baseline)
	}
	if o.cases["pg-merge"] {
		// The table holds the highest key already: no row can go direct.
		ms := randomName("bench_merge_")
		defer conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+ms+" CASCADE")
		if _, err := conn.Exec(ctx, fmt.Sprintf(`CREATE SCHEMA %[1]s; CREATE TABLE %[1]s.call_history (LIKE %[2]s.call_history INCLUDING DEFAULTS);
ALTER TABLE %[1]s.call_history ADD PRIMARY KEY (pbx, id);
INSERT INTO %[1]s.call_history SELECT * FROM %[2]s.call_history ORDER BY id DESC LIMIT 1`, ms, schema)); err != nil {
			return fmt.Errorf("prepare the merge case: %w", err)
		}
		if err := b.migrate(b.wx, s.base, ms, false); err != nil {
			return err
		}
		smp, err := b.export(s.base, "EXPORT_SINK=postgres", "EXPORT_DATABASE_URL="+o.db, "EXPORT_DB_SCHEMA="+ms, "EXPORT_BATCH_SIZE=50000")
		if err != nil {
			return err
		}
		b.add("wildix-export to PostgreSQL, merge path", o.n, smp, paths(ctx, conn, ms))
		if b.base != "" {
			// Its own schema, migrated by the baseline: a schema the
			// newer binary migrated is refused by an older one.
			bms := randomName("bench_merge_base_")
			defer conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+bms+" CASCADE")
			if _, err := conn.Exec(ctx, fmt.Sprintf(`CREATE SCHEMA %[1]s; CREATE TABLE %[1]s.call_history (LIKE %[2]s.call_history INCLUDING DEFAULTS);
ALTER TABLE %[1]s.call_history ADD PRIMARY KEY (pbx, id);
INSERT INTO %[1]s.call_history SELECT * FROM %[2]s.call_history ORDER BY id DESC LIMIT 1`, bms, schema)); err != nil {
				return fmt.Errorf("prepare the baseline's merge case: %w", err)
			}
			if err := b.migrate(b.base, s.base, bms, false); err != nil {
				return fmt.Errorf("baseline: %w", err)
			}
			smp, err := b.exportWith(b.base, s.base, "EXPORT_SINK=postgres", "EXPORT_DATABASE_URL="+o.db, "EXPORT_DB_SCHEMA="+bms, "EXPORT_BATCH_SIZE=50000")
			if err != nil {
				return fmt.Errorf("baseline: %w", err)
			}
			b.add("baseline wildix-export to PostgreSQL, merge path", o.n, smp, "-baseline "+o.baseline+", "+paths(ctx, conn, bms))
		}
	}
	if !o.cases["load"] && !o.cases["load-pk"] {
		return nil
	}
	if !*haveCopy {
		if err := psql(o.db, fmt.Sprintf(`\copy (SELECT %s FROM %s.call_history ORDER BY id) TO '%s' CSV`, loadColumns, schema, copyFile)); err != nil {
			return err
		}
		if err := pbxRaw(ctx, s.base, copyFile, o.page); err != nil {
			return fmt.Errorf("the load limit's rows: %w", err)
		}
		*haveCopy = true
	}
	for _, c := range []struct {
		name, label string
		pkOnly      bool
	}{{"load", "load limit (psql \\copy)", false}, {"load-pk", "load limit, primary key only", true}} {
		if !o.cases[c.name] {
			continue
		}
		target := randomName("bench_load_")
		if _, err := conn.Exec(ctx, fmt.Sprintf("CREATE SCHEMA %s; CREATE TABLE %s.call_history (LIKE %s.call_history INCLUDING ALL)", target, target, schema)); err != nil {
			return err
		}
		if c.pkOnly {
			if _, err := conn.Exec(ctx, fmt.Sprintf(`DO $$ DECLARE i text; BEGIN
FOR i IN SELECT indexname FROM pg_indexes WHERE schemaname = '%[1]s' AND indexname NOT LIKE '%%_pkey' LOOP
EXECUTE format('DROP INDEX %%I.%%I', '%[1]s', i); END LOOP; END $$`, target)); err != nil {
				return fmt.Errorf("drop the reporting indexes: %w", err)
			}
		}
		began := time.Now()
		if err := psql(o.db, fmt.Sprintf(`\copy %s.call_history (%s) FROM '%s' CSV`, target, loadColumns, copyFile)); err != nil {
			return err
		}
		b.add(c.label, o.n, sample{d: time.Since(began)}, "same rows, same table shape and keys")
		conn.Exec(ctx, "DROP SCHEMA "+target+" CASCADE")
	}
	return nil
}

// pbxRaw puts into the raw column of file (rows by ascending id) each
// record's JSON as the PBX sends it, which wildix-export loads: PostgreSQL
// prints jsonb with its keys sorted, and parsing JSON whose keys are
// already in jsonb's order costs it less than parsing the PBX's own.
func pbxRaw(ctx context.Context, base, file string, page int) error {
	in, err := os.Open(file)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(file + ".tmp")
	if err != nil {
		return err
	}
	defer out.Close()
	r, w := csv.NewReader(bufio.NewReaderSize(in, 1<<20)), csv.NewWriter(bufio.NewWriterSize(out, 1<<20))
	rawCol := slices.Index(strings.Split(loadColumns, ", "), "raw")
	var records []json.RawMessage
	next := int64(1) // the lowest id not yet asked for
	for {
		row, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if len(records) == 0 {
			if records, err = pbxPage(ctx, base, next, page); err != nil {
				return err
			}
		}
		var head struct {
			ID string `json:"id"`
		}
		if len(records) == 0 || json.Unmarshal(records[0], &head) != nil || head.ID != row[1] {
			return fmt.Errorf("the PBX's next record is not call %s", row[1])
		}
		next, _ = strconv.ParseInt(head.ID, 10, 64)
		next++
		row[rawCol] = string(records[0])
		records = records[1:]
		if err := w.Write(row); err != nil {
			return err
		}
	}
	if w.Flush(); w.Error() != nil {
		return w.Error()
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Rename(file+".tmp", file)
}

// pbxPage reads up to page call records from id from, in id order.
func pbxPage(ctx context.Context, base string, from int64, page int) ([]json.RawMessage, error) {
	q := url.Values{"sort": {"id"}, "dir": {"ASC"}, "count": {strconv.Itoa(page)}, "filter[id][from]": {strconv.FormatInt(from, 10)}}
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/api/v1/PBX/CallHistory/?"+q.Encode(), nil)
	req.Header.Set("Authorization", "Bearer "+apiKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var body struct {
		Result struct {
			Records []json.RawMessage `json:"records"`
		} `json:"result"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, err
	}
	return body.Result.Records, nil
}

// migrate sets up schema as wildix-export wx does (migrations, by an
// export of the colleagues, which are few) before an export is timed, as
// the load limit's table is made before psql's \copy is timed; with
// record, its time is a figure of its own.
func (b *bench) migrate(wx, base, schema string, record bool) error {
	smp, err := b.exportWith(wx, base, "EXPORT_SINK=postgres", "EXPORT_DATABASE_URL="+b.o.db, "EXPORT_DB_SCHEMA="+schema, "EXPORT_ENDPOINTS=colleagues")
	if err != nil {
		return fmt.Errorf("set up schema %s: %w", schema, err)
	}
	if record {
		b.add("schema set-up (migrations, and 25 colleagues)", 25, smp, "before each PostgreSQL export, untimed there")
	}
	return nil
}

// paths reads from a schema's run ledger how the rows were loaded.
func paths(ctx context.Context, conn *pgx.Conn, schema string) string {
	var direct, merged, fallbacks int64
	err := conn.QueryRow(ctx, fmt.Sprintf(`SELECT coalesce(sum(rows_direct), 0), coalesce(sum(rows_merged), 0), coalesce(sum(direct_fallbacks), 0)
FROM %s.export_run_endpoints WHERE endpoint = 'call_history'`, schema)).Scan(&direct, &merged, &fallbacks)
	if err != nil {
		return fmt.Sprintf("ledger unreadable: %v", err)
	}
	return fmt.Sprintf("%d rows direct, %d merged, %d fallbacks", direct, merged, fallbacks)
}

const loadColumns = "pbx, id, start_time, answer_time, end_time, duration, billsec, disposition, type, src, dst, from_number, from_name, " +
	"to_number, to_name, channel, dstchannel, lastapp, lastdata, userfield, cost, faxdata, tz_offset, extra, raw, run_id"

func psql(db, command string) error {
	out, err := exec.Command("psql", db, "-v", "ON_ERROR_STOP=1", "-q", "-c", command).CombinedOutput()
	if err != nil {
		return fmt.Errorf("psql %s: %v\n%s", command, err, out)
	}
	return nil
}

// latency: the simulator answers each request after a fixed delay.
func (b *bench) latency(ctx context.Context) error {
	o := b.o
	s, err := b.startSim(o.latN, "-latency", o.latency.String(), "-cache-call-json")
	if err != nil {
		return err
	}
	defer s.stop()
	for r := 0; r < o.runs; r++ {
		fmt.Fprintf(os.Stderr, "latency run %d/%d…\n", r+1, o.runs)
		out := filepath.Join(b.dir, randomName("lat-"))
		smp, err := b.export(s.base, "EXPORT_SINK=csv", "EXPORT_CSV_DIR="+out, "EXPORT_PAGE_SIZE="+strconv.Itoa(o.latPage))
		if err != nil {
			return err
		}
		os.RemoveAll(out)
		b.add("latency: wildix-export", o.latN, smp, fmt.Sprintf("%s a request, page %d, %d at once", o.latency, o.latPage, o.conc))
		if b.base != "" {
			bout := filepath.Join(b.dir, randomName("lat-base-"))
			smp, err := b.exportWith(b.base, s.base, "EXPORT_SINK=csv", "EXPORT_CSV_DIR="+bout, "EXPORT_PAGE_SIZE="+strconv.Itoa(o.latPage))
			os.RemoveAll(bout)
			if err != nil {
				return fmt.Errorf("baseline: %w", err)
			}
			b.add("latency: baseline wildix-export", o.latN, smp, "-baseline "+o.baseline)
		}
		// The same pages read by a pure fetcher, side by side: what this
		// machine allows, against which the ideal can be judged.
		d, err := fetch(ctx, s.base, o.latN, o.latPage, o.conc)
		if err != nil {
			return err
		}
		b.add("latency: fetch limit", o.latN, sample{d: d}, fmt.Sprintf("page %d, %d at once, bodies discarded", o.latPage, o.conc))
		seqN := max(o.latN/5, o.latPage)
		d, err = fetch(ctx, s.base, seqN, o.latPage, 1)
		if err != nil {
			return err
		}
		b.add("latency: sequential pager", seqN, sample{d: d}, fmt.Sprintf("page %d, one at a time", o.latPage))
	}
	return nil
}

// memory: peak RSS of a CSV export at each size.
func (b *bench) memory(ctx context.Context) error {
	for _, n := range b.o.memN {
		s, err := b.startSim(n)
		if err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "memory at %d records…\n", n)
		out := filepath.Join(b.dir, randomName("mem-"))
		smp, err := b.export(s.base, "EXPORT_SINK=csv", "EXPORT_CSV_DIR="+out)
		s.stop()
		os.RemoveAll(out)
		if err != nil {
			return err
		}
		b.add(fmt.Sprintf("memory at %d", n), n, smp, "CSV export, peak RSS")
	}
	return nil
}

// report prints the machine, the ratios against their goals and the table
// of figures. It stays one function (85 lines): a list of rows, each a line
// or two, in the order they are printed.
func (b *bench) report(w io.Writer) {
	host, _ := os.Hostname()
	fmt.Fprintf(w, "\n# wildix-export benchmark, %s\n\n", time.Now().UTC().Format("2006-01-02 15:04 UTC"))
	fmt.Fprintf(w, "machine: %s, %d cores, %s/%s, %s; runs per case: %d\n\n", host, runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, runtime.Version(), b.o.runs)
	if len(b.order) == 0 {
		return
	}
	r := func(name string) *figure { return b.figures[name] }
	ratio := func(a, c time.Duration) float64 { return a.Seconds() / c.Seconds() }
	fmt.Fprintln(w, "## Ratios (goals from issue 7)")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| figure | value | goal |")
	fmt.Fprintln(w, "|---|---|---|")
	fetchF, loadF, csvF, pgF := r("fetch limit"), r("load limit (psql \\copy)"), r("wildix-export to CSV"), r("wildix-export to PostgreSQL, direct COPY")
	mergeF, pkF := r("wildix-export to PostgreSQL, merge path"), r("load limit, primary key only")
	if pgF != nil && fetchF != nil && loadF != nil {
		limit := max(fetchF.median(), loadF.median())
		fmt.Fprintf(w, "| PostgreSQL export ÷ max(fetch limit, load limit) | %.2f | ≤ 1.3 |\n", ratio(pgF.median(), limit))
	}
	if pgF != nil && loadF != nil {
		fmt.Fprintf(w, "| PostgreSQL export (direct COPY) ÷ psql \\copy of the same rows | %.2f | ≤ 1.15 (issue 15) |\n", ratio(pgF.median(), loadF.median()))
	}
	if baseM := r("baseline wildix-export to PostgreSQL, merge path"); baseM != nil && mergeF != nil {
		fmt.Fprintf(w, "| PostgreSQL export, merge path ÷ baseline's merge path | %.2f | ≤ 1 (issue 15: no slower) |\n", ratio(mergeF.median(), baseM.median()))
	}
	if baseF := r("baseline wildix-export to PostgreSQL"); baseF != nil && pgF != nil {
		fmt.Fprintf(w, "| PostgreSQL export ÷ baseline's export | %.2f | |\n", ratio(pgF.median(), baseF.median()))
	}
	if mergeF != nil && loadF != nil {
		fmt.Fprintf(w, "| PostgreSQL export (merge path) ÷ psql \\copy of the same rows | %.2f | reported |\n", ratio(mergeF.median(), loadF.median()))
	}
	if pkF != nil && loadF != nil {
		fmt.Fprintf(w, "| psql \\copy with the reporting indexes ÷ with the primary key only | %.2f | (the indexes' cost) |\n", ratio(loadF.median(), pkF.median()))
	}
	if csvF != nil && fetchF != nil {
		fmt.Fprintf(w, "| CSV export ÷ fetch limit | %.2f | ≤ 1.2 (issue 7; the simulator builds no JSON, see bench/README) |\n", ratio(csvF.median(), fetchF.median()))
	}
	if baseC := r("baseline wildix-export to CSV"); baseC != nil && csvF != nil {
		fmt.Fprintf(w, "| CSV export ÷ baseline's CSV export | %.2f | |\n", ratio(csvF.median(), baseC.median()))
	}
	if lat, seq := r("latency: wildix-export"), r("latency: sequential pager"); lat != nil && seq != nil {
		ideal := float64(b.o.conc*b.o.latPage) / b.o.latency.Seconds() // rows/s
		got := float64(lat.rows) / lat.median().Seconds()
		seqRate := float64(seq.rows) / seq.median().Seconds()
		fmt.Fprintf(w, "| latency case: wildix-export rows/s ÷ ideal (concurrency %d × page %d ÷ %s = %.0f rows/s) | %.2f | ≥ 0.9 |\n", b.o.conc, b.o.latPage, b.o.latency, ideal, got/ideal)
		fmt.Fprintf(w, "| latency case: wildix-export rows/s ÷ sequential pager rows/s | %.2f | |\n", got/seqRate)
		if lim := r("latency: fetch limit"); lim != nil {
			limRate := float64(lim.rows) / lim.median().Seconds()
			fmt.Fprintf(w, "| latency case: fetch limit rows/s ÷ ideal (what this machine allows) | %.2f | |\n", limRate/ideal)
			fmt.Fprintf(w, "| latency case: wildix-export rows/s ÷ fetch limit rows/s | %.2f | |\n", got/limRate)
		}
		if baseL := r("latency: baseline wildix-export"); baseL != nil {
			fmt.Fprintf(w, "| latency case: baseline's rows/s ÷ ideal | %.2f | |\n", float64(baseL.rows)/baseL.median().Seconds()/ideal)
		}
	}
	if with, without := r("CSV nightly run after a backfill of every call"), r("CSV nightly run, no backfill before"); with != nil && without != nil {
		fmt.Fprintf(w, "| CSV nightly run after a backfill of every call ÷ the same run with no backfill before | %.2f | ≤ 1.10 (issue 31) |\n", ratio(with.median(), without.median()))
	}
	if len(b.o.memN) >= 2 {
		lo, hi := r(fmt.Sprintf("memory at %d", b.o.memN[0])), r(fmt.Sprintf("memory at %d", b.o.memN[len(b.o.memN)-1]))
		if lo != nil && hi != nil {
			fmt.Fprintf(w, "| peak RSS at %d ÷ at %d | %.2f | ≤ 1.2 |\n", b.o.memN[len(b.o.memN)-1], b.o.memN[0], float64(hi.medianRSS())/float64(lo.medianRSS()))
			fmt.Fprintf(w, "| peak RSS at %d | %.1f MiB | < 100 MiB |\n", b.o.memN[len(b.o.memN)-1], float64(hi.medianRSS())/(1<<20))
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "## Figures")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| case | rows | median | min – max | rows/s | peak RSS | note |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|")
	for _, name := range b.order {
		f := b.figures[name]
		lo, hi := f.spread()
		rate := "-"
		if f.rows > 0 {
			rate = strconv.Itoa(int(float64(f.rows) / f.median().Seconds()))
		}
		rss := "-"
		if m := f.medianRSS(); m > 0 {
			rss = fmt.Sprintf("%.1f MiB", float64(m)/(1<<20))
		}
		fmt.Fprintf(w, "| %s | %d | %s | %s – %s | %s | %s | %s |\n", name, f.rows, f.median().Round(time.Millisecond),
			lo.Round(time.Millisecond), hi.Round(time.Millisecond), rate, rss, f.note)
	}
}
