package recordings

import (
	"fmt"
	"net/url"
	"strings"
	"unicode/utf8"
)

// spoolPrefix is where a PBX serves recording files: the only path the
// recordings token is ever sent to.
const spoolPrefix = "/spoolview/recordings/"

// maxPathLen bounds the address of a file as the list gives it. A PBX's is
// about 100 bytes (YYYY/MM/DD/<date>-<ext>-<number>-<hash>-<n>.wav); one of
// kilobytes is not a recording's.
const maxPathLen = 1024

// RefusedError is a recording whose file address (or file name) the PBX
// sent in a form that must not be fetched or used: outside
// /spoolview/recordings/, on another origin, a segment that climbs (..)
// or carries a slash, a backslash or a control character once decoded,
// or too long. It is reported, never fetched: fetching
// /spoolview/recordings/..%2F..%2Fetc%2Fx with an admin's token would ask
// a PBX (or a proxy in front of it) that decodes before routing for a file
// that is not a recording.
type RefusedError struct {
	What   string // "path" or "file name"
	Value  string // quoted and cut to 80 bytes: it may be hostile
	Reason string
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("%s %s refused: %s", e.What, e.Value, e.Reason)
}

// spoolURL checks the file address p (a path, or an absolute URL on the
// PBX's origin) and returns the URL to fetch on origin, or a
// *RefusedError. The URL keeps the path's escaping byte for byte: what
// was checked is what is sent.
func spoolURL(origin *url.URL, p string) (*url.URL, error) {
	refuse := func(reason string) error {
		return &RefusedError{What: "path", Value: quoteShort(p), Reason: reason}
	}
	if len(p) > maxPathLen {
		return nil, refuse(fmt.Sprintf("%d bytes long; a recording's path is about 100 (at most %d accepted)", len(p), maxPathLen))
	}
	if !utf8.ValidString(p) {
		return nil, refuse("not valid UTF-8")
	}
	if hasControl(p) {
		return nil, refuse("control characters")
	}
	u, err := url.Parse(p)
	if err != nil {
		return nil, refuse("not a URL path")
	}
	if u.Scheme != "" || u.Host != "" || u.User != nil {
		if u.User != nil || !sameOrigin(u, origin) {
			return nil, refuse("not on the PBX's origin " + origin.Scheme + "://" + origin.Host + ": the recordings token is sent to the PBX only")
		}
	}
	if u.Opaque != "" || u.Fragment != "" || u.RawFragment != "" {
		return nil, refuse("not a URL path")
	}
	escaped := u.EscapedPath()
	rest, ok := strings.CutPrefix(escaped, spoolPrefix)
	if !ok {
		return nil, refuse("outside " + spoolPrefix)
	}
	for _, seg := range strings.Split(rest, "/") {
		dec, err := url.PathUnescape(seg)
		switch {
		case err != nil:
			return nil, refuse("a badly escaped segment")
		case dec == "":
			return nil, refuse("an empty segment (//)")
		case dec == "." || dec == "..":
			return nil, refuse("a segment " + dec)
		case strings.ContainsAny(dec, `/\`):
			return nil, refuse("a segment holding a slash or backslash once decoded")
		case hasControl(dec) || !utf8.ValidString(dec):
			return nil, refuse("a segment holding a control character or invalid UTF-8 once decoded")
		}
	}
	out := &url.URL{Scheme: origin.Scheme, Host: origin.Host, Path: u.Path, RawPath: escaped, RawQuery: u.RawQuery}
	if out.EscapedPath() != escaped {
		return nil, refuse("escaping that would not be sent as given")
	}
	return out, nil
}

// CheckFileName reports, as a *RefusedError, a PBX file name that must
// never become a path: empty, over 255 bytes, "." or "..", holding a slash,
// a backslash, a control character (NUL included) or invalid UTF-8. The
// copier never uses file names (stored names come from recstore.Name);
// this is for the row that keeps the name, to record it as hostile.
func CheckFileName(name string) error {
	refuse := func(reason string) error {
		return &RefusedError{What: "file name", Value: quoteShort(name), Reason: reason}
	}
	switch {
	case name == "":
		return refuse("empty")
	case len(name) > 255:
		return refuse(fmt.Sprintf("%d bytes long (a file name has at most 255)", len(name)))
	case name == "." || name == "..":
		return refuse("not a file name")
	case strings.ContainsAny(name, `/\`):
		return refuse("holds a slash or backslash")
	case hasControl(name) || !utf8.ValidString(name):
		return refuse("holds a control character or invalid UTF-8")
	}
	return nil
}

func hasControl(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return true
		}
	}
	return false
}

// sameOrigin reports whether u is on origin: same scheme, host and port
// (the scheme's default port written or not). Go's http.Client compares
// host names only when it decides to keep Authorization on a redirect;
// this is the comparison the token's rule needs.
func sameOrigin(u, origin *url.URL) bool {
	return strings.EqualFold(u.Scheme, origin.Scheme) &&
		strings.EqualFold(u.Hostname(), origin.Hostname()) &&
		port(u) == port(origin)
}

func port(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	switch strings.ToLower(u.Scheme) {
	case "https":
		return "443"
	case "http":
		return "80"
	}
	return ""
}

// quoteShort quotes s for a message, cut to 80 bytes: a hostile value may
// be kilobytes long.
func quoteShort(s string) string {
	if len(s) > 80 {
		return fmt.Sprintf("%q… (%d bytes)", s[:80], len(s))
	}
	return fmt.Sprintf("%q", s)
}
