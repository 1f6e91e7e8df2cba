package main

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestCountCalls(t *testing.T) {
	t.Parallel()
	const header = "id,start_time,lastdata,extra\n"
	tests := []struct {
		name      string
		files     map[string]string
		rows, ids int
		err       string
	}{
		{
			name: "quoted newlines are one row",
			files: map[string]string{
				"a_1.csv": header + "1,2026-01-01,\"two\nlines\",{}\n2,2026-01-01,x,{}\n",
				"a_2.csv": header + "3,2026-01-01,\"\"\"q\"\"\",{}\n",
			},
			rows: 3, ids: 3,
		},
		{
			name: "a call in two files counts twice as a row, once as an id",
			files: map[string]string{
				"a_1.csv": header + "1,t,x,{}\n2,t,x,{}\n",
				"a_2.csv": header + "2,t,x,{}\n",
			},
			rows: 3, ids: 2,
		},
		{
			name: "files under a temporary dot-name are not the export's",
			files: map[string]string{
				"a_1.csv":  header + "1,t,x,{}\n",
				".a~1.csv": header + "1,t,x,{}\n2,t,x,{}\n",
			},
			rows: 1, ids: 1,
		},
		{
			name:  "id is found by its header, not its place",
			files: map[string]string{"a_1.csv": "start_time,id\nt,7\nt,7\n"},
			rows:  2, ids: 1,
		},
		{name: "no file", files: map[string]string{"a.txt": "id\n1\n"}, err: "no CSV file"},
		{name: "no id column", files: map[string]string{"a_1.csv": "key\n1\n"}, err: "no id column"},
		{name: "a broken file", files: map[string]string{"a_1.csv": header + "1,\"open\n"}, err: "count the calls of"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			for name, body := range tt.files {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			rows, ids, err := countCalls(dir)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want one saying %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if rows != tt.rows || ids != tt.ids {
				t.Errorf("got %d rows, %d ids; want %d rows, %d ids", rows, ids, tt.rows, tt.ids)
			}
		})
	}
}

func TestParseSizes(t *testing.T) {
	t.Parallel()
	got, err := parseSizes("20000/100, 200000/1000")
	if err != nil {
		t.Fatal(err)
	}
	if want := []size{{20000, 100}, {200000, 1000}}; len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("got %v, want %v", got, want)
	}
	for _, bad := range []string{"", "20000", "20000/0", "-1/100", "20000/100,x/1", "20000:100"} {
		if _, err := parseSizes(bad); err == nil || !strings.Contains(err.Error(), "-behaviours-sizes") {
			t.Errorf("parseSizes(%q) = %v, want an error naming the flag", bad, err)
		}
	}
}

// TestBehaviours runs the behaviours case at a tiny size with the real
// binaries, as `go run ./bench -cases behaviours` does: the case is not in
// the smoke run's default cases (minutes at its defaults), so this keeps
// it from rotting. Every run checks its export exact; no time is asserted.
func TestBehaviours(t *testing.T) {
	if testing.Short() {
		t.Skip("builds wildix-export and pbxsim")
	}
	t.Parallel()
	dir := t.TempDir()
	b := &bench{dir: dir, figures: map[string]*figure{},
		wx: filepath.Join(dir, "wildix-export"), sim: filepath.Join(dir, "pbxsim"),
		o: options{runs: 2, conc: 2, page: 1000, latency: time.Millisecond, behSizes: []size{{300, 20}}, behaviours: behaviours}}
	for _, x := range [][2]string{{b.wx, "./cmd/wildix-export"}, {b.sim, "./cmd/pbxsim"}} {
		if err := buildStatic("..", x[0], x[1]); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.behaviours(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(b.behTables) != 1 {
		t.Fatalf("%d tables, want 1", len(b.behTables))
	}
	for _, r := range b.behTables[0].runs {
		if len(r.times) != 2 || len(r.requests) != 2 || len(r.paging) == 0 || r.paging[0] == "" {
			t.Errorf("%s: times %v, requests %v, paging %q: want two runs each and the ledger's paging", r.beh.name, r.times, r.requests, r.paging)
		}
		for _, c := range r.simCPU {
			if runtime.GOOS == "linux" && c < 0 {
				t.Errorf("%s: the simulator's CPU time unread on Linux", r.beh.name)
			}
		}
		for _, n := range r.requests {
			// 300 calls in pages of at most 20 cannot take fewer.
			if n < 15 {
				t.Errorf("%s: %d requests counted, fewer than the pages", r.beh.name, n)
			}
		}
	}
	var out strings.Builder
	b.reportBehaviours(&out)
	for _, beh := range behaviours {
		if !strings.Contains(out.String(), "| "+beh.name+" |") {
			t.Errorf("the report has no row for %s:\n%s", beh.name, out.String())
		}
	}
}

func TestPickBehaviours(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, want, err string
	}{
		{in: "by-key,capped,sort-ignored,filter-ignored,both-ignored,no-total", want: "by-key,capped,sort-ignored,filter-ignored,both-ignored,no-total"},
		{in: "filter-ignored, sort-ignored", want: "by-key,filter-ignored,sort-ignored"},
		{in: "no-total,by-key,no-total", want: "by-key,no-total"},
		{in: "time-windows", err: `"time-windows" is none of by-key, capped`},
		{in: "", err: `"" is none of`},
	}
	for _, tt := range tests {
		got, err := pickBehaviours(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) || !strings.Contains(err.Error(), "-behaviours-cases") {
				t.Errorf("pickBehaviours(%q) = %v, want an error naming the flag and saying %q", tt.in, err, tt.err)
			}
			continue
		}
		var keys []string
		for _, b := range got {
			keys = append(keys, b.key)
		}
		if err != nil || strings.Join(keys, ",") != tt.want {
			t.Errorf("pickBehaviours(%q) = %v, %v; want %s", tt.in, keys, err, tt.want)
		}
	}
}

func TestVerdict(t *testing.T) {
	t.Parallel()
	windows := behaviours[3]
	tests := []struct {
		time, requests float64
		want           string
	}{
		{1.3, 1.5, "time ≤ 1.3: met; requests ≤ 1.5: met"},
		{1.31, 1.2, "time ≤ 1.3: **not met** (1.3100); requests ≤ 1.5: met"},
		{1.0, 1.5004, "time ≤ 1.3: met; requests ≤ 1.5: **not met** (1.5004)"},
	}
	for _, tt := range tests {
		if got := verdict(windows, tt.time, tt.requests); got != tt.want {
			t.Errorf("verdict(%s, %v, %v) = %q, want %q", windows.name, tt.time, tt.requests, got, tt.want)
		}
	}
	if got := verdict(behaviours[0], 9, 9); got != "reported" {
		t.Errorf("by key: %q, want reported", got)
	}
}

func TestProcessCPU(t *testing.T) {
	t.Parallel()
	if runtime.GOOS != "linux" {
		if got := processCPU(os.Getpid()); got != -1 {
			t.Errorf("processCPU without /proc = %v, want -1", got)
		}
		return
	}
	// Spin until the kernel has counted some of this process's time: the
	// figure must grow from what it was, as the test burns CPU.
	first := processCPU(os.Getpid())
	if first < 0 {
		t.Fatalf("processCPU(self) = %v", first)
	}
	x := 0
	for i := 0; processCPU(os.Getpid()) < first+50*time.Millisecond; i++ {
		for j := 0; j < 1e6; j++ {
			x += j
		}
		if i > 1e4 {
			t.Fatalf("processCPU(self) stayed at %v (want %v or more)", processCPU(os.Getpid()), first+50*time.Millisecond)
		}
	}
	if got := processCPU(1 << 30); got != -1 {
		t.Errorf("processCPU of no process = %v, want -1", got)
	}
	_ = x
}
