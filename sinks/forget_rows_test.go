package sinks

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/wildix-export/wildix-export/exporter"
	"github.com/wildix-export/wildix-export/exporter/record"
)

// writeRecords converts records, each a record of ep as the PBX sends
// it, and writes them to s as one committed batch of PBX "x", run "r1",
// its state's cursor at cursor: the forget tests' rows to find and erase.
func writeRecords(t *testing.T, s exporter.Sink, ep *record.Endpoint, cursor int, records []string) {
	t.Helper()
	ctx := context.Background()
	var rows []record.Row
	for i, rec := range records {
		conv := &record.Converter{Endpoint: ep, Warnings: &record.Warnings{}}
		r, err := conv.Convert(i, json.RawMessage(rec))
		if err != nil {
			t.Fatal(err)
		}
		rows = append(rows, r)
	}
	b, err := s.Begin(ctx, exporter.BatchInfo{PBX: "x", RunID: "r1", Endpoint: ep, StateKey: ep.Name, Seq: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Write(ctx, rows); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(ctx, fmt.Appendf(nil, `{"cursor":%d}`, cursor), exporter.Progress{Rows: int64(len(rows))}); err != nil {
		t.Fatal(err)
	}
}
