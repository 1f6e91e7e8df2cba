package recstore

import (
	"fmt"
	"strings"
	"time"
)

// Name is the name a recording is stored under:
// <pbx>/<YYYY>/<MM>/<DD>/<id>.wav, the date being start's in its own
// location (the caller chooses the zone; UTC keeps folders stable across
// daylight-saving changes). pbx is the PBX's id from configuration
// (letters, digits, '.', '-', '_', at most 90 bytes, not starting with a
// dot); id is the recording's id or a hash the exporter computed (letters,
// digits, '-', '_', at most 64 bytes). Nothing the PBX sends as text goes
// into a name unchecked: an id that does not fit is an error, so the caller
// hashes whatever it does not control.
func Name(pbx string, start time.Time, id string) (string, error) {
	if err := checkPart("PBX id", pbx, 90, "._-"); err != nil {
		return "", err
	}
	if err := checkPart("recording id", id, 64, "-_"); err != nil {
		return "", err
	}
	if start.IsZero() {
		return "", fmt.Errorf("recording %s: no start date to file it under", id)
	}
	return fmt.Sprintf("%s/%04d/%02d/%02d/%s.wav", pbx, start.Year(), int(start.Month()), start.Day(), id), nil
}

// checkPart accepts 1 to max bytes of ASCII letters, digits and extra,
// not starting with a dot.
func checkPart(what, s string, max int, extra string) error {
	if s == "" || len(s) > max || s[0] == '.' {
		return fmt.Errorf("%s %s: expected 1 to %d letters, digits or %q, not starting with a dot", what, quoteShort(s), max, extra)
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte(extra, c) >= 0) {
			return fmt.Errorf("%s %s: expected 1 to %d letters, digits or %q, not starting with a dot", what, quoteShort(s), max, extra)
		}
	}
	return nil
}

// checkName refuses a name that Name could not have built: the stores'
// own guard, so that no caller's mistake turns PBX text into a path.
func checkName(name string) error {
	parts := strings.Split(name, "/")
	if len(parts) != 5 || !strings.HasSuffix(parts[4], ".wav") {
		return fmt.Errorf("object name %s: expected <pbx>/<YYYY>/<MM>/<DD>/<id>.wav as recstore.Name builds it", quoteShort(name))
	}
	if err := checkPart("PBX id", parts[0], 90, "._-"); err != nil {
		return fmt.Errorf("object name %s: %w", quoteShort(name), err)
	}
	for i, n := range []int{4, 2, 2} {
		p := parts[1+i]
		if len(p) != n || strings.Trim(p, "0123456789") != "" {
			return fmt.Errorf("object name %s: expected <pbx>/<YYYY>/<MM>/<DD>/<id>.wav as recstore.Name builds it", quoteShort(name))
		}
	}
	if err := checkPart("recording id", strings.TrimSuffix(parts[4], ".wav"), 64, "-_"); err != nil {
		return fmt.Errorf("object name %s: %w", quoteShort(name), err)
	}
	return nil
}

// quoteShort quotes s for a message, cut to 80 bytes: a hostile name may
// be kilobytes long.
func quoteShort(s string) string {
	if len(s) > 80 {
		return fmt.Sprintf("%q… (%d bytes)", s[:80], len(s))
	}
	return fmt.Sprintf("%q", s)
}
