package sinks

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/wildix-export/wildix-export/exporter"
	"github.com/wildix-export/wildix-export/exporter/record"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// goldenRecords are values that break naive CSV writers.
var goldenRecords = []string{
	`{"id":"1","start":"2026-03-29 01:59:59","answer":"2026-03-29 03:00:10","end":"2026-03-29 03:05:00","duration":"301","billsec":"290","disposition":"ANSWERED","type":"call","src":"201","dst":"+390212345678","from_name":"Rossi, Mario","to_name":"Anna \"Nina\" Bianchi","cost":"0.6090","timezone":"+0100"}`,
	`{"id":"2","start":"2026-10-25 02:30:00","answer":"","end":"2026-10-25 02:30:20","duration":"20","billsec":"0","disposition":"NO ANSWER","type":"call","from_name":"Line one\nLine two","to_name":"=HYPERLINK(\"http://x\")","userfield":"","cost":"0","timezone":"+0100","tags":["vip"]}`,
	`{"id":"3","start":"2026-07-01 12:00:00","end":"2026-07-01 12:00:01","duration":"1","billsec":"1","from_name":"😀 Zoë Ångström","to_name":"-5 discount","lastdata":"@reception\ttab","timezone":"+0200"}`,
}

func TestCSVGolden(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		safe bool
	}{{"call_history.csv", false}, {"call_history_safe_formulas.csv", true}} {
		dir := t.TempDir()
		s, err := NewCSV(CSVOptions{Dir: dir, SafeFormulas: tc.safe})
		if err != nil {
			t.Fatal(err)
		}
		ep := record.Builtin()[0]
		ctx := context.Background()
		b, err := s.Begin(ctx, exporter.BatchInfo{PBX: "pbx", RunID: "golden", Endpoint: &ep, StateKey: ep.Name, Seq: 1})
		if err != nil {
			t.Fatal(err)
		}
		conv := &record.Converter{Endpoint: &ep}
		var rows []record.Row
		for i, rec := range goldenRecords {
			r, err := conv.Convert(i, json.RawMessage(rec))
			if err != nil {
				t.Fatal(err)
			}
			rows = append(rows, r)
		}
		if err := b.Write(ctx, rows); err != nil {
			t.Fatal(err)
		}
		if err := b.Commit(ctx, []byte(`{"cursor":3}`), exporter.Progress{Rows: 3}); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(dir, "call_history", "pbx_golden_0001.csv"))
		if err != nil {
			t.Fatal(err)
		}
		golden := filepath.Join("testdata", tc.name)
		if *update {
			os.MkdirAll("testdata", 0o755)
			if err := os.WriteFile(golden, got, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(golden)
		if err != nil {
			t.Fatalf("%v (create it with go test ./sinks -run CSVGolden -update)", err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from the golden file:\n got: %s\nwant: %s", tc.name, got, want)
		}
	}
}
