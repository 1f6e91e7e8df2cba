package config

import (
	"cmp"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/wildix-export/wildix-export/internal/pseudonym"
)

// The privacy settings (issue 30; README, Privacy): what is replaced by
// pseudonyms before anything is written, with which key, and how long
// rows are kept.

// maxRetention is the longest EXPORT_RETENTION accepted: a century, far
// beyond any purpose, and far from time.Duration's limit.
const maxRetention = 36500 * 24 * time.Hour

// privacy reads EXPORT_PSEUDONYMIZE, EXPORT_PSEUDONYM_KEY(_FILE),
// EXPORT_PSEUDONYM_PREVIOUS_KEY(_FILE) and EXPORT_RETENTION. The key is required to pseudonymise only where rows
// are written (need.Sink); a key set without a rule is not refused, as
// it may key the suppression list of forgotten numbers (`forget`).
func (c *checker) privacy(cfg *Config, e env, need Need) {
	rule, err := pseudonym.ParseRule(e.Pseudonymize)
	if err != nil {
		c.add("EXPORT_PSEUDONYMIZE", e.Pseudonymize, fmt.Sprintf("%v: expected none, numbers, names, numbers,names or all (README, Privacy)", err))
	}
	cfg.Pseudonymize = rule
	cfg.PseudonymKey = c.secret("EXPORT_PSEUDONYM_KEY", e.PseudonymKey, "EXPORT_PSEUDONYM_KEY_FILE", e.PseudonymKeyFile)
	switch n := len(cfg.PseudonymKey.Value()); {
	case n == 0 && rule.On() && need.Sink:
		c.add("EXPORT_PSEUDONYM_KEY", "", fmt.Sprintf("required with EXPORT_PSEUDONYMIZE=%s: set a secret of at least %d bytes that keys the pseudonyms (make one with `openssl rand -base64 32`, once, and keep it: a new key gives every number a new pseudonym), or EXPORT_PSEUDONYM_KEY_FILE", rule, pseudonym.MinKeyLen))
	case n > 0 && n < pseudonym.MinKeyLen:
		// Its length is said, never the value.
		c.add("EXPORT_PSEUDONYM_KEY", "", fmt.Sprintf("too short: %d bytes, at least %d needed, or the pseudonyms of phone numbers could be guessed by trying every number: make one with `openssl rand -base64 32`", n, pseudonym.MinKeyLen))
	}
	cfg.PrevPseudonymKey = c.secret("EXPORT_PSEUDONYM_PREVIOUS_KEY", e.PrevPseudonymKey, "EXPORT_PSEUDONYM_PREVIOUS_KEY_FILE", e.PrevKeyFile)
	switch n := len(cfg.PrevPseudonymKey.Value()); {
	case n > 0 && n < pseudonym.MinKeyLen:
		c.add("EXPORT_PSEUDONYM_PREVIOUS_KEY", "", fmt.Sprintf("too short: %d bytes; expected the earlier EXPORT_PSEUDONYM_KEY (at least %d bytes) exactly as it was set", n, pseudonym.MinKeyLen))
	case n > 0 && cfg.PrevPseudonymKey.Value() == cfg.PseudonymKey.Value():
		c.add("EXPORT_PSEUDONYM_PREVIOUS_KEY", "", "the same as EXPORT_PSEUDONYM_KEY: expected the earlier key, the one set before the change of key, or nothing")
	}
	cfg.PseudonymDisplay = c.boolean("EXPORT_PSEUDONYM_DISPLAY", cmp.Or(e.PseudonymDisplay, "false"))
	if cfg.PseudonymDisplay && !rule.Numbers {
		c.add("EXPORT_PSEUDONYM_DISPLAY", e.PseudonymDisplay, fmt.Sprintf("set, but EXPORT_PSEUDONYMIZE=%s replaces no number: expected EXPORT_PSEUDONYMIZE=numbers, numbers,names or all, or unset EXPORT_PSEUDONYM_DISPLAY", rule))
	}
	cfg.Retention = c.retention("EXPORT_RETENTION", e.Retention)
}

// retention reads a retention period: whole days ("400d"), or a Go
// duration of at least a day ("9600h"); "0" or empty is off (0).
func (c *checker) retention(v, s string) time.Duration {
	t := strings.TrimSpace(s)
	if t == "" || t == "0" {
		return 0
	}
	const expected = "expected a number of days such as 400d (at least 1d, at most 36500d), or 0 or nothing to keep rows for ever"
	var d time.Duration
	if n, ok := strings.CutSuffix(t, "d"); ok {
		days, err := strconv.Atoi(strings.TrimSpace(n))
		if err != nil || days < 1 || days > int(maxRetention/(24*time.Hour)) {
			c.add(v, s, expected)
			return 0
		}
		d = time.Duration(days) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(t); err != nil || d < 24*time.Hour || d > maxRetention {
			c.add(v, s, expected)
			return 0
		}
	}
	return d
}

// Pseudonyms returns the keyed pseudonyms of EXPORT_PSEUDONYM_KEY, nil
// when no key is set.
func (c *Config) Pseudonyms() (*pseudonym.Keyed, error) {
	if !c.PseudonymKey.IsSet() {
		return nil, nil
	}
	k, err := pseudonym.New([]byte(c.PseudonymKey.Value()))
	if err != nil {
		return nil, fmt.Errorf("EXPORT_PSEUDONYM_KEY: %w", err)
	}
	return k, nil
}
