package pbx

import (
	"encoding/json"
	"testing"
)

// FuzzParseList: any answer body either parses into a consistent page or
// is an error; never a panic.
func FuzzParseList(f *testing.F) {
	f.Add([]byte(`{"type":"result","result":{"total":"2","records":[{"id":"1"},{"id":"2"}]}}`))
	f.Add([]byte(`{"type":"result","result":{"total":6,"records":[]}}`))
	f.Add([]byte(`{"type":"error","reason":"404 Not Found","code":404}`))
	f.Add([]byte(`<html>502</html>`))
	f.Fuzz(func(t *testing.T, body []byte) {
		p, err := ParseList(body)
		if err != nil {
			return
		}
		if !json.Valid(body) {
			t.Fatalf("accepted invalid JSON: %q", body)
		}
		for i, r := range p.Records {
			if !json.Valid(r) {
				t.Fatalf("record %d is not valid JSON: %q", i, r)
			}
		}
		if p.Total >= 0 && int64(len(p.Records)) > p.Total {
			t.Fatalf("total %d < %d records accepted", p.Total, len(p.Records))
		}
	})
}
