package recordings

import (
	"errors"
	"net/url"
	"strings"
	"testing"
)

func TestSpoolURL(t *testing.T) {
	t.Parallel()
	origin, _ := url.Parse("https://pbx.example.com")
	for _, c := range []struct {
		path, want string // want: the URL fetched, or "refused: <reason part>"
	}{
		{"/spoolview/recordings/2026/01/02/2026.01.02-10.00.00-201-0612345678-ab12cd34-1.wav", "https://pbx.example.com/spoolview/recordings/2026/01/02/2026.01.02-10.00.00-201-0612345678-ab12cd34-1.wav"},
		{"/spoolview/recordings/2026/01/02/a%20b.wav", "https://pbx.example.com/spoolview/recordings/2026/01/02/a%20b.wav"},
		{"https://pbx.example.com/spoolview/recordings/x.wav", "https://pbx.example.com/spoolview/recordings/x.wav"},
		{"https://PBX.example.com:443/spoolview/recordings/x.wav?v=1", "https://pbx.example.com/spoolview/recordings/x.wav?v=1"},
		{"/spoolview/recordings/2026/01/02/..%2F..%2Fetc%2Fx", "refused: slash"},
		{"/spoolview/recordings/2026/01/02/%2Fetc%2Fpasswd", "refused: slash"},
		{"/spoolview/recordings/2026/01/02/a%5Cb.wav", "refused: slash"},
		{"/spoolview/recordings/2026/01/02/a%00b.wav", "refused: control"},
		{"/spoolview/recordings/2026/01/02/line%0Abreak%1B%5B31m.wav", "refused: control"},
		{"/spoolview/recordings/2026/01/02/a\x00b.wav", "refused: control"},
		{"/spoolview/recordings/../../etc/passwd", "refused: segment .."},
		{"/spoolview/recordings/%2e%2e/x.wav", "refused: segment .."},
		{"/spoolview/recordings/./x.wav", "refused: segment ."},
		{"/spoolview/recordings//x.wav", "refused: empty segment"},
		{"/spoolview/recordings/", "refused: empty segment"},
		{"/spoolview/recordings/" + strings.Repeat("x", 4096) + ".wav", "refused: bytes long"},
		{"/spoolview/other/x.wav", "refused: outside"},
		{"/api/v1/PBX/recordings", "refused: outside"},
		{"spoolview/recordings/x.wav", "refused: outside"},
		{"/etc/passwd", "refused: outside"},
		{"https://evil.example.com/spoolview/recordings/x.wav", "refused: origin"},
		{"//evil.example.com/spoolview/recordings/x.wav", "refused: origin"},
		{"http://pbx.example.com/spoolview/recordings/x.wav", "refused: origin"},
		{"https://pbx.example.com:8443/spoolview/recordings/x.wav", "refused: origin"},
		{"https://u:p@pbx.example.com/spoolview/recordings/x.wav", "refused: origin"},
		{"/spoolview/recordings/x.wav#f", "refused: not a URL path"},
		{"/spoolview/recordings/%zz.wav", "refused: not a URL path"},
		{"/spoolview/recordings/\xff.wav", "refused: UTF-8"},
	} {
		u, err := spoolURL(origin, c.path)
		var got string
		if err != nil {
			var re *RefusedError
			if !errors.As(err, &re) {
				t.Errorf("%.60q: error %v is not a *RefusedError", c.path, err)
			}
			got = "refused: " + re.Reason
			if len(err.Error()) > 300 {
				t.Errorf("%.60q: a %d-byte message", c.path, len(err.Error()))
			}
		} else {
			got = u.String()
		}
		if want, refused := strings.CutPrefix(c.want, "refused: "); refused {
			if !strings.HasPrefix(got, "refused: ") || !strings.Contains(got, want) {
				t.Errorf("%.60q: %s; want refused, the reason saying %q", c.path, got, want)
			}
		} else if got != c.want {
			t.Errorf("%.60q: %s; want %s", c.path, got, c.want)
		}
	}
}

func TestCheckFileName(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		ok   bool
	}{
		{"2026.01.02-10.00.00-201-0612345678-ab12cd34-1.wav", true},
		{"appel de M. Dupont.wav", true},
		{"../../etc/x", false},
		{"/etc/passwd", false},
		{"a\x00b.wav", false},
		{"line\nbreak\x1b[31m.wav", false},
		{strings.Repeat("x", 4096) + ".wav", false},
		{"..", false},
		{"", false},
		{`a\b.wav`, false},
	} {
		if err := CheckFileName(c.name); (err == nil) != c.ok {
			t.Errorf("CheckFileName(%.40q) = %v; want ok %v", c.name, err, c.ok)
		}
	}
}
