package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// key32 is a valid pseudonym key, one that must never show in a message.
const key32 = "k3y-0123456789abcdef0123456789abcdef"

func TestPrivacySettings(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "key")
	if err := os.WriteFile(keyFile, []byte(key32+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		change    func(*env)
		need      Need
		rule      string
		retention time.Duration
		problems  []string // the variables with a problem; each message must say what to do
	}{
		{"off by default", func(*env) {}, Need{Sink: true}, "none", 0, nil},
		{"numbers with a key", func(e *env) { e.Pseudonymize, e.PseudonymKey = "numbers", key32 }, Need{Sink: true}, "numbers", 0, nil},
		{"key from a file", func(e *env) { e.Pseudonymize, e.PseudonymKeyFile = "all", keyFile }, Need{Sink: true}, "all", 0, nil},
		{"names and numbers", func(e *env) { e.Pseudonymize, e.PseudonymKey = "Names, Numbers", key32 }, Need{Sink: true}, "numbers,names", 0, nil},
		{"no key", func(e *env) { e.Pseudonymize = "numbers" }, Need{Sink: true}, "numbers", 0, []string{"EXPORT_PSEUDONYM_KEY"}},
		{"no key, nothing written", func(e *env) { e.Pseudonymize = "numbers" }, Need{}, "numbers", 0, nil},
		{"short key", func(e *env) { e.Pseudonymize, e.PseudonymKey = "numbers", key32[:31] }, Need{}, "numbers", 0, []string{"EXPORT_PSEUDONYM_KEY"}},
		{"key twice", func(e *env) { e.Pseudonymize, e.PseudonymKey, e.PseudonymKeyFile = "numbers", key32, keyFile }, Need{Sink: true}, "numbers", 0, []string{"EXPORT_PSEUDONYM_KEY"}},
		{"key without a rule", func(e *env) { e.PseudonymKey = key32 }, Need{Sink: true}, "none", 0, nil},
		{"previous key", func(e *env) { e.Pseudonymize, e.PseudonymKey, e.PrevPseudonymKey = "numbers", key32, "x"+key32 }, Need{Sink: true}, "numbers", 0, nil},
		{"previous key from a file", func(e *env) { e.Pseudonymize, e.PseudonymKey, e.PrevKeyFile = "numbers", "x"+key32, keyFile }, Need{Sink: true}, "numbers", 0, nil},
		{"previous key short", func(e *env) { e.PrevPseudonymKey = key32[:31] }, Need{Sink: true}, "none", 0, []string{"EXPORT_PSEUDONYM_PREVIOUS_KEY"}},
		{"previous key the key", func(e *env) { e.Pseudonymize, e.PseudonymKey, e.PrevKeyFile = "numbers", key32, keyFile }, Need{Sink: true}, "numbers", 0, []string{"EXPORT_PSEUDONYM_PREVIOUS_KEY"}},
		{"previous key twice", func(e *env) { e.PrevPseudonymKey, e.PrevKeyFile = key32, keyFile }, Need{Sink: true}, "none", 0, []string{"EXPORT_PSEUDONYM_PREVIOUS_KEY"}},
		{"unknown rule", func(e *env) { e.Pseudonymize, e.PseudonymKey = "phones", key32 }, Need{Sink: true}, "none", 0, []string{"EXPORT_PSEUDONYMIZE"}},
		{"none and numbers", func(e *env) { e.Pseudonymize, e.PseudonymKey = "none,numbers", key32 }, Need{Sink: true}, "none", 0, []string{"EXPORT_PSEUDONYMIZE"}},
		{"display", func(e *env) { e.Pseudonymize, e.PseudonymKey, e.PseudonymDisplay = "numbers", key32, "true" }, Need{Sink: true}, "numbers", 0, nil},
		{"display without numbers", func(e *env) { e.Pseudonymize, e.PseudonymKey, e.PseudonymDisplay = "names", key32, "true" }, Need{Sink: true}, "names", 0, []string{"EXPORT_PSEUDONYM_DISPLAY"}},
		{"display not a boolean", func(e *env) { e.PseudonymDisplay = "yes" }, Need{Sink: true}, "none", 0, []string{"EXPORT_PSEUDONYM_DISPLAY"}},
		{"retention in days", func(e *env) { e.Retention = " 400d " }, Need{Sink: true}, "none", 400 * 24 * time.Hour, nil},
		{"retention in hours", func(e *env) { e.Retention = "48h" }, Need{Sink: true}, "none", 48 * time.Hour, nil},
		{"retention off", func(e *env) { e.Retention = "0" }, Need{Sink: true}, "none", 0, nil},
		{"retention under a day", func(e *env) { e.Retention = "12h" }, Need{Sink: true}, "none", 0, []string{"EXPORT_RETENTION"}},
		{"retention 0d", func(e *env) { e.Retention = "0d" }, Need{Sink: true}, "none", 0, []string{"EXPORT_RETENTION"}},
		{"retention negative", func(e *env) { e.Retention = "-5d" }, Need{Sink: true}, "none", 0, []string{"EXPORT_RETENTION"}},
		{"retention in years", func(e *env) { e.Retention = "2y" }, Need{Sink: true}, "none", 0, []string{"EXPORT_RETENTION"}},
		{"retention too long", func(e *env) { e.Retention = "36501d" }, Need{Sink: true}, "none", 0, []string{"EXPORT_RETENTION"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := good()
			tc.change(&e)
			cfg, err := parse(e, tc.need, os.ReadFile)
			var got []string
			var ce *Error
			if errors.As(err, &ce) {
				for _, p := range ce.Problems {
					got = append(got, p.Var)
					if !strings.Contains(p.Expected, "expected") && !strings.Contains(p.Expected, "make one") && !strings.Contains(p.Expected, "set either") {
						t.Errorf("%s: the message does not say what to do: %s", p.Var, p.Expected)
					}
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if strings.Join(got, " ") != strings.Join(tc.problems, " ") {
				t.Fatalf("problems with %v, want %v\n%v", got, tc.problems, err)
			}
			if err != nil && strings.Contains(err.Error(), key32[:20]) {
				t.Fatalf("the key is shown: %v", err)
			}
			if cfg.Pseudonymize.String() != tc.rule || cfg.Retention != tc.retention {
				t.Fatalf("rule %q, retention %v; want %q, %v", cfg.Pseudonymize, cfg.Retention, tc.rule, tc.retention)
			}
		})
	}
}

// TestPseudonymsKeyed: the key read is the one the pseudonyms use (a file's
// final newline dropped), and none set gives none.
func TestPseudonymsKeyed(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(path, []byte(key32+"\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fromEnv, fromFile := good(), good()
	fromEnv.Pseudonymize, fromEnv.PseudonymKey = "numbers", key32
	fromFile.Pseudonymize, fromFile.PseudonymKeyFile = "numbers", path
	var ids []string
	for _, e := range []env{fromEnv, fromFile} {
		cfg, err := parse(e, Need{Sink: true}, os.ReadFile)
		if err != nil {
			t.Fatal(err)
		}
		k, err := cfg.Pseudonyms()
		if err != nil || k == nil {
			t.Fatalf("Pseudonyms() = %v, %v", k, err)
		}
		ids = append(ids, k.KeyID())
	}
	if ids[0] != ids[1] {
		t.Fatalf("key ids %v differ: the file's key is not the variable's", ids)
	}
	fromFile.PseudonymKey, fromFile.PseudonymKeyFile, fromFile.PrevKeyFile = "x"+key32, "", path
	if cfg, err := parse(fromFile, Need{Sink: true}, os.ReadFile); err != nil || cfg.PrevPseudonymKey.Value() != key32 {
		t.Fatalf("EXPORT_PSEUDONYM_PREVIOUS_KEY_FILE: %v; the key read is not the file's", err)
	}
	cfg, err := parse(good(), Need{Sink: true}, os.ReadFile)
	if err != nil {
		t.Fatal(err)
	}
	if k, err := cfg.Pseudonyms(); k != nil || err != nil {
		t.Fatalf("no key set: Pseudonyms() = %v, %v", k, err)
	}
}
