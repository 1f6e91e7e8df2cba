package main

import (
	"context"
	"regexp"
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
			typed bool   // the value is parsed as a whole: left out, not pseudonymised
		}{
			{[]string{"backfill", "--from", number, "--to", "2026-01-02"}, "", "--from", false},
			{[]string{"config"}, "EXPORT_RETENTION=" + number, "EXPORT_RETENTION", false},
			{[]string{"run", "--once"}, "EXPORT_RETENTION=" + number, "EXPORT_RETENTION", false},
			{[]string{"check"}, "EXPORT_CONCURRENCY=" + number, "EXPORT_CONCURRENCY", false},
			// attack3 F2: the flag package's own line, before the usage
			{[]string{"backfill", "--window", number}, "", "-window", true},
			{[]string{"run", "--once=" + number}, "", "-once", false},
			{[]string{"forget", "--dry-run=" + number}, "", "-dry-run", false},
			{[]string{"check", "--x" + number}, "", "-x", false},
			{[]string{"config", "--x" + number}, "", "-x", false},
			{[]string{"notify", "--x" + number}, "", "-x", false},
			{[]string{"demo", "--x" + number}, "", "-x", false},
			{[]string{"version", "--x" + number}, "", "-x", false},
			{[]string{"endpoints", "--x" + number}, "", "-x", false},
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
			want := tc.want
			if c.typed && want != number {
				want = "(a value of 15 characters, left out)"
			}
			if !strings.Contains(all, want) || !strings.Contains(all, c.names) {
				t.Errorf("%s: %v: want %q and %q in:\n%s", tc.name, c.args, want, c.names, all)
			}
		}
	}
}

// TestConfigTableRedacted (attack3 F3): under pseudonymisation config's
// settings table shows a value holding a number by its pseudonym, as the
// problems below it do; a secret stays shown redacted. Without
// pseudonymisation the table shows the value as given.
func TestConfigTableRedacted(t *testing.T) {
	t.Parallel()
	const digits = "393528512784"
	k, err := pseudonym.New([]byte(testKey1))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		kv   []string
		want string // in place of the number
	}{
		{"keyed", []string{"EXPORT_PSEUDONYMIZE=numbers", "EXPORT_PSEUDONYM_KEY=" + testKey1}, k.Number(digits)},
		{"none", nil, digits},
	} {
		kv := append([]string{"WILDIX_PBX_URL=http://127.0.0.1:9", "WILDIX_API_KEY=key-secret-0123", "EXPORT_CSV_DIR=" + t.TempDir(),
			"EXPORT_SCHEDULE=every " + digits, "EXPORT_LOG_LEVEL=" + digits, "WILDIX_PBX_ID=pbx " + digits,
			"EXPORT_RECORDINGS_DIR=/tmp/rec " + digits}, tc.kv...)
		var out, errb lockedBuffer
		err := run(context.Background(), []string{"config"}, env(kv), strings.NewReader(""), &out, &errb)
		if code := exitCode(err); code != exitConfig {
			t.Errorf("%s: exit %d, want %d (%v)", tc.name, code, exitConfig, err)
		}
		all := out.String() + errb.String()
		if strings.Contains(all, "key-secret-0123") {
			t.Errorf("%s: the API key in clear:\n%s", tc.name, all)
		}
		for _, line := range strings.Split(out.String(), "\n") {
			for _, s := range []string{"EXPORT_SCHEDULE ", "EXPORT_LOG_LEVEL ", "WILDIX_PBX_ID ", "EXPORT_RECORDINGS_DIR "} {
				if strings.HasPrefix(line, s) && !strings.Contains(line, tc.want) {
					t.Errorf("%s: table line %q, want %q in it", tc.name, line, tc.want)
				}
			}
		}
		if tc.want != digits && strings.Contains(all, digits) {
			t.Errorf("%s: the number in clear:\n%s", tc.name, all)
		}
		if !regexp.MustCompile(`(?m)^EXPORT_MAX_RESPONSE_SIZE +67108864$`).MatchString(out.String()) {
			t.Errorf("%s: a size, not a phone number, redacted:\n%s", tc.name, out.String())
		}
	}
}
