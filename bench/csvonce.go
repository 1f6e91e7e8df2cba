package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// csvOnce measures what keeping each record once in the CSV folder costs
// a nightly run (issue 31): `run --once` over -n calls into an empty
// folder, and the same run into a folder that a backfill of every call's
// days filled first (each row is then found in a window's file, read
// back and compared, and not written again). The two alternate, so that
// a machine getting busier weighs on both. It also reports the size of
// the key index each leaves in the state.
func (b *bench) csvOnce(ctx context.Context) error {
	o := b.o
	s, err := b.startSim(o.n, "-cache-call-json")
	if err != nil {
		return err
	}
	defer s.stop()
	// The simulator's calls start on 2026-01-01, 30 s apart on average.
	from := "2025-12-31"
	to := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(o.n)*30*time.Second + 72*time.Hour).Format("2006-01-02")
	plain := func() error {
		out := filepath.Join(b.dir, randomName("csv-once-"))
		defer os.RemoveAll(out)
		smp, err := b.export(s.base, "EXPORT_SINK=csv", "EXPORT_CSV_DIR="+out)
		if err != nil {
			return err
		}
		b.add("CSV nightly run, no backfill before", o.n, smp, "key index "+indexSize(out))
		return nil
	}
	afterBackfill := func() error {
		out := filepath.Join(b.dir, randomName("csv-once-bf-"))
		defer os.RemoveAll(out)
		if err := b.backfill(s.base, out, from, to); err != nil {
			return err
		}
		smp, err := b.export(s.base, "EXPORT_SINK=csv", "EXPORT_CSV_DIR="+out)
		if err != nil {
			return err
		}
		b.add("CSV nightly run after a backfill of every call", o.n, smp, "key index "+indexSize(out))
		return nil
	}
	for r := 0; r < o.runs; r++ {
		fmt.Fprintf(os.Stderr, "csv-once run %d/%d on %d records…\n", r+1, o.runs, o.n)
		first, second := plain, afterBackfill
		if r%2 == 1 {
			first, second = second, first
		}
		if err := first(); err != nil {
			return err
		}
		if err := second(); err != nil {
			return err
		}
	}
	return nil
}

// backfill runs `wildix-export backfill` of call history over [from, to)
// into the CSV folder out.
func (b *bench) backfill(base, out, from, to string) error {
	cmd := exec.Command(b.wx, "backfill", "--from", from, "--to", to, "--endpoints", "call_history")
	cmd.Env = append(os.Environ(), "WILDIX_PBX_URL="+base, "WILDIX_API_KEY="+apiKey, "EXPORT_LOG_LEVEL=warn",
		"EXPORT_PAGE_SIZE="+strconv.Itoa(b.o.page), "EXPORT_CONCURRENCY="+strconv.Itoa(b.o.conc),
		"EXPORT_SINK=csv", "EXPORT_CSV_DIR="+out)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	cmd.Stdout = io.Discard
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("backfill: %v\n%s", err, stderr.String())
	}
	return nil
}

// indexSize is the size of the call_history key index under out.
func indexSize(out string) string {
	files, _ := filepath.Glob(filepath.Join(out, ".state", "*", "call_history~keys.json"))
	if len(files) != 1 {
		return "not found"
	}
	fi, err := os.Stat(files[0])
	if err != nil {
		return err.Error()
	}
	return fmt.Sprintf("%d bytes", fi.Size())
}
