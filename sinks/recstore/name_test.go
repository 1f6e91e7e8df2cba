package recstore

import (
	"strings"
	"testing"
	"time"
)

// hostile are names a PBX might send (its file names carry the caller's
// number and are not checked by anyone): none may become a path.
var hostile = []string{
	"../../etc/x",
	"..",
	".",
	"/etc/passwd",
	"C:\\Windows\\x",
	"a\x00b",
	"a\nb",
	"a\x1bb",
	"a/b",
	"a b",
	"%2e%2e",
	strings.Repeat("x", 4096),
	"2026.01.02-10.00.00-201-+390612345678-abcdef-1.wav",
	"",
	"é",
}

func TestName(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 3, 9, 23, 59, 59, 0, time.UTC)
	got, err := Name("acme.wildixin.com", start, "8289")
	if err != nil || got != "acme.wildixin.com/2026/03/09/8289.wav" {
		t.Fatalf("Name = %q, %v; want acme.wildixin.com/2026/03/09/8289.wav", got, err)
	}
	if err := checkName(got); err != nil {
		t.Fatalf("checkName refuses what Name built: %v", err)
	}
	// The date is the start's in its own location.
	rome, _ := time.LoadLocation("Europe/Rome")
	if got, _ := Name("p", start.In(rome), "1"); got != "p/2026/03/10/1.wav" {
		t.Errorf("Name in Rome = %q; want p/2026/03/10/1.wav", got)
	}
	if _, err := Name("p", time.Time{}, "1"); err == nil {
		t.Error("Name accepts a zero start")
	}
	for _, h := range hostile {
		if got, err := Name("p", start, h); err == nil {
			t.Errorf("Name accepts the id %q: %q", h, got)
		} else if len(err.Error()) > 300 {
			t.Errorf("the message for a %d-byte id is %d bytes long", len(h), len(err.Error()))
		}
		if got, err := Name(h, start, "1"); err == nil {
			t.Errorf("Name accepts the PBX id %q: %q", h, got)
		}
	}
}

func TestCheckNameRefusesWhatNameCannotBuild(t *testing.T) {
	t.Parallel()
	for _, n := range append([]string{
		"p/2026/03/09/../1.wav",
		"p/2026/03/09/1.mp3",
		"p/2026/3/09/1.wav",
		"p/2026/03/09/x/1.wav",
		"/p/2026/03/09/1.wav",
		"../2026/03/09/1.wav",
		"p/2026/03/09/.wav",
		"p/2026/03/09/\x00.wav",
	}, hostile...) {
		if err := checkName(n); err == nil {
			t.Errorf("checkName accepts %q", n)
		}
	}
}
