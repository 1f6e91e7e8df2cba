package main

import (
	"context"
	"strings"
	"testing"

	"github.com/wildix-export/wildix-export/internal/pseudonym"
)

// TestEveryCommandsErrorsRedacted (attack 30 L3): under pseudonymisation
// every command's errors and problems come out redacted as run's do: a
// bad flag found before the configuration is read (backfill --from) and
// config's list of problems show the number's pseudonym; when no key can
// be read (too short, or EXPORT_PSEUDONYMIZE itself bad) the number is
// left out, the setting or flag still named with what to do. Without
// pseudonymisation the value is shown as given.
func TestEveryCommandsErrorsRedacted(t *testing.T) {
	t.Parallel()
	const number = "+393519990005"
	k, err := pseudonym.New([]byte(testKey1))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		kv   []string
		want string // in place of the number
	}{
		{"keyed", []string{"EXPORT_PSEUDONYMIZE=numbers", "EXPORT_PSEUDONYM_KEY=" + testKey1}, k.Number(number)},
		{"key too short", []string{"EXPORT_PSEUDONYMIZE=numbers,names", "EXPORT_PSEUDONYM_KEY=short"}, "(a number, left out)"},
		{"rule unread", []string{"EXPORT_PSEUDONYMIZE=numbrs", "EXPORT_PSEUDONYM_KEY=" + testKey1}, "(a number, left out)"},
		{"none", nil, number},
	} {
		for _, c := range []struct {
			args  []string
			extra string // a setting
			names string // what the message must still name
		}{
			{[]string{"backfill", "--from", number, "--to", "2026-01-02"}, "", "--from"},
			{[]string{"config"}, "EXPORT_RETENTION=" + number, "EXPORT_RETENTION"},
			{[]string{"run", "--once"}, "EXPORT_RETENTION=" + number, "EXPORT_RETENTION"},
			{[]string{"check"}, "EXPORT_CONCURRENCY=" + number, "EXPORT_CONCURRENCY"},
		} {
			kv := append([]string{"WILDIX_PBX_URL=http://127.0.0.1:9", "WILDIX_API_KEY=key-0123", "EXPORT_CSV_DIR=" + t.TempDir(), c.extra}, tc.kv...)
			var out, errb lockedBuffer
			err := run(context.Background(), c.args, env(kv), strings.NewReader(""), &out, &errb)
			if code := exitCode(err); code != exitConfig {
				t.Errorf("%s: %v: exit %d, want %d (%v)", tc.name, c.args, code, exitConfig, err)
				continue
			}
			all := err.Error() + "\n" + out.String() + errb.String()
			if tc.want != number && strings.Contains(all, "3519990005") {
				t.Errorf("%s: %v shows the number in clear:\n%s", tc.name, c.args, all)
			}
			if !strings.Contains(all, tc.want) || !strings.Contains(all, c.names) {
				t.Errorf("%s: %v: want %q and %q in:\n%s", tc.name, c.args, tc.want, c.names, all)
			}
		}
	}
}
