package sinks

import (
	"os"
	"path/filepath"
	"testing"
)

// TestFileRuleReadsTheUnion is review 42's R42-1 on the CSV sink, at the
// manifest: a file rewritten under names whose rows were under numbers
// is under numbers,names (privacy_written_under), which fileRule reads
// joined with its "privacy"; once a run updated rows in place since (its
// rows under its own rule only: rows_updated changed), the union no
// longer holds and the file's own rule stands.
func TestFileRuleReadsTheUnion(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, manifest, want string
	}{
		{"no union", `{"run_id":"r1","privacy":{"rule":"names"}}`, "names"},
		{"union", `{"run_id":"r1","privacy":{"rule":"names"},"privacy_written_under":{"rule":"numbers,names","rows_updated":0}}`, "numbers,names"},
		{"union, rows updated since", `{"run_id":"r1","privacy":{"rule":"names"},"rows_updated":3,"privacy_written_under":{"rule":"numbers,names","rows_updated":2}}`, "names"},
		// Review 47, R47-1: rows updated in place before the rewrite were
		// under the updating run's rule, not the stale "privacy" the union
		// joined: a union stamped then is not read.
		{"union, rows updated before", `{"run_id":"r1","privacy":{"rule":"names"},"rows_updated":2,"privacy_written_under":{"rule":"numbers,names","rows_updated":2}}`, "names"},
		{"ledger rule and union", `{"run_id":"r1","privacy_written_under":{"rule":"names","rows_updated":0}}`, "numbers,names"},
	} {
		data := filepath.Join(t.TempDir(), "a_1.csv")
		if err := os.WriteFile(manifestPath(data), []byte(tc.manifest), 0o600); err != nil {
			t.Fatal(err)
		}
		if got, _, _ := fileRule(data, map[string]string{"r1": "numbers"}); got != tc.want {
			t.Errorf("%s: fileRule = %q, want %q", tc.name, got, tc.want)
		}
	}
}

// TestRuleUnion: the union of rules in their one spelling; a rule not
// known adds nothing.
func TestRuleUnion(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   []string
		want string
	}{
		{[]string{"numbers", "names"}, "numbers,names"},
		{[]string{"names", "all"}, "all"},
		{[]string{"none", "numbers"}, "numbers"},
		{[]string{"", "names"}, "names"},
		{[]string{"bogus", "numbers"}, "numbers"},
		{[]string{"", "bogus"}, ""},
		{[]string{"none"}, "none"},
	} {
		if got := ruleUnion(tc.in...); got != tc.want {
			t.Errorf("ruleUnion(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
