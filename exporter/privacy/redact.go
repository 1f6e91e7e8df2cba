package privacy

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/wildix-export/wildix-export/internal/pseudonym"
)

// Redactor replaces the phone numbers in text meant for people (log
// lines, errors, the run's notes, the ledger's errors) by their
// pseudonyms, with pseudonymisation on: the same pseudonyms as the rows',
// so that a line still says which caller it is about. It finds numbers of
// 7 digits or more (pseudonym.Scrub); names in free text are not found,
// which is why messages and notes carry keys and field names, not values,
// and why, under a rule with names, the PBX's own error text is left out
// (Names).
// The one place a record's value is quoted in a message, a conversion's
// error or warning (record.RecordError, record.Warnings: `field "start":
// "2026-01-01 Luca Rossi" is not a time`), loses the value: it may be a
// name.
type Redactor struct {
	// Keys makes the pseudonyms. Nil when pseudonymisation is asked for
	// but no key could be read (a bad EXPORT_PSEUDONYM_KEY or
	// EXPORT_PSEUDONYMIZE): each number is then left out, as leftOut.
	Keys *pseudonym.Keyed
	// Names is set under a rule that replaces names: the PBX's own error
	// text, which may name a person, is left out (leaveOutPBXText).
	Names bool
}

// leftOut is what a Redactor without Keys writes in place of a number.
const leftOut = "(a number, left out)"

// Text returns s with its numbers replaced and the values a conversion's
// message quotes left out. The program's own counts (ownNumber) and the
// CSV sink's own file names (ownFile) stay.
func (r *Redactor) Text(s string) string {
	s = leaveOutValues(s)
	if r.Names {
		s = leaveOutPBXText(s)
	}
	var b strings.Builder
	last := 0
	for _, sp := range ownSpans(s) {
		b.WriteString(r.scrub(s[last:sp[0]]))
		b.WriteString(s[sp[0]:sp[1]])
		last = sp[1]
	}
	if last == 0 {
		return r.scrub(s)
	}
	b.WriteString(r.scrub(s[last:]))
	return b.String()
}

// scrub replaces the numbers in s by their pseudonyms, or without Keys
// by leftOut: the numbers Scrub finds under a key of no one's (unkeyed),
// whose pseudonyms, new in s, are then left out.
func (r *Redactor) scrub(s string) string {
	if r.Keys != nil {
		return r.Keys.Scrub(s, nil)
	}
	return pseudonymShape.ReplaceAllStringFunc(unkeyed.Scrub(s, nil), func(p string) string {
		if strings.Contains(s, p) {
			return p // a pseudonym s held already
		}
		return leftOut
	})
}

// unkeyed finds numbers for a Redactor without Keys; its pseudonyms are
// never shown.
var unkeyed = func() *pseudonym.Keyed {
	k, err := pseudonym.New([]byte("wildix-export: numbers are left out, no key was read"))
	if err != nil {
		panic(err)
	}
	return k
}()

// pseudonymShape is a number's pseudonym as Keyed.Number writes it.
var pseudonymShape = regexp.MustCompile(pseudonym.NumberPrefix + `[a-z2-7]{16}`)

// ownSpans returns the parts of s, in order and not overlapping, that
// are the program's own and stay as they are: ownNumber's numbers (not
// followed by more digits after a separator: it may be a number's first
// group) and ownFile's file names from their date on.
func ownSpans(s string) [][2]int {
	var spans [][2]int
	for _, m := range ownNumber.FindAllStringSubmatchIndex(s, -1) {
		from, to := m[2], m[3]
		if from < 0 {
			from, to = m[4], m[5]
		}
		if to+1 < len(s) && strings.IndexByte("-./ ", s[to]) >= 0 && s[to+1] >= '0' && s[to+1] <= '9' {
			continue // more digits follow: it may be a number's first group
		}
		spans = append(spans, [2]int{from, to})
	}
	for _, m := range ownFile.FindAllStringSubmatchIndex(s, -1) {
		if ownDates(s[m[2]:m[3]]) {
			spans = append(spans, [2]int{m[2], m[1]})
		}
	}
	for _, m := range ownRunID.FindAllStringIndex(s, -1) {
		if ownDates(s[m[0]:m[1]]) {
			spans = append(spans, [2]int{m[0], m[1]})
		}
	}
	slices.SortFunc(spans, func(a, b [2]int) int { return a[0] - b[0] })
	out := spans[:0]
	for _, sp := range spans {
		if n := len(out); n > 0 && sp[0] < out[n-1][1] {
			continue
		}
		out = append(out, sp)
	}
	return out
}

// ownNumber is a number the program writes of itself, not of a record's
// value (review 30-pseudo-attack finding 9): a record's key ("key
// 1234567": keys are never personal, record.Endpoint.Personal refuses
// them), an id a page starts from, a size in bytes. Only a bare run of
// digits not beginning with 0 is taken so: "+39…", "0039…", "02…" and a
// run with separators stay numbers to replace.
var ownNumber = regexp.MustCompile(`\b(?:key|keys|id|cursor) ([1-9][0-9]*)\b|\b([1-9][0-9]*) (?:more )?bytes\b`)

// ownFile is the end of a file name the CSV sink makes (sinks/csv.go
// Begin, tmpName, and the manifest beside each file): after the PBX id
// and "_", a run id (its UTC time, "Z-", 6 hex digits) and a sequence
// number, or "backfill_" and a window's start and end; then .csv or
// .csv.gz, a manifest's .manifest.json, or a temporary file's .tmp- and
// hex digits. It holds no value of a record, only dates and counters the
// program makes (a sequence number has 4 to 6 digits: a longer run in its
// place is a number, review1 P2), and stays readable (attack 30 L4: the port of a PBX id
// and the date after "_" made one number). The PBX id before it, the
// administrator's setting, is redacted as any text is. Its first group is
// the dates, which must be dates (ownDates).
var ownFile = regexp.MustCompile(`_((?:[0-9]{8}T[0-9]{6}Z-[0-9a-f]{6}_[0-9]{4,6})|(?:backfill_[0-9]{8}T[0-9]{6}_[0-9]{8}T[0-9]{6}))(?:\.csv(?:\.gz)?|\.manifest\.json|\.tmp-[0-9a-f]+)\b`)

// ownRunID is a run's (or an erasure's) id the program makes
// (exporter.NewRunID: its UTC time, "Z-", 6 hex digits), named in
// messages such as check's and a run's warning of an erasure not
// completed (attack 6, F10: its date was taken for a number). Its date
// must be one (ownDates).
var ownRunID = regexp.MustCompile(`\b[0-9]{8}T[0-9]{6}Z-[0-9a-f]{6}\b`)

// ownDates reports whether each date and time of an ownFile's dates is
// one (20261207T081953): digits of another shape are a number's.
func ownDates(s string) bool {
	for _, d := range ownDate.FindAllString(s, -1) {
		if _, err := time.Parse("20060102T150405", d); err != nil {
			return false
		}
	}
	return true
}

var ownDate = regexp.MustCompile(`[0-9]{8}T[0-9]{6}`)

// quotedValue is a record's value as a conversion's message quotes it:
// right after `field "name": ` (and a reason such as "bad configuration:
// " or "cursor: "), or after "invalid value ", a quoted string, maybe cut
// short by jsonscan.Excerpt ("…").
var quotedValue = regexp.MustCompile(`(field "(?:[^"\\]|\\.)*": (?:[a-z ]+: )?|invalid value )"(?:[^"\\]|\\.)*(?:"|…)`)

// leaveOutValues replaces each value quotedValue finds by what it is: a
// message still says which field of which record, and what is wrong.
func leaveOutValues(s string) string {
	if !strings.Contains(s, `field "`) && !strings.Contains(s, "invalid value ") {
		return s
	}
	return quotedValue.ReplaceAllStringFunc(s, func(m string) string {
		prefix := quotedValue.FindStringSubmatch(m)[1]
		return prefix + fmt.Sprintf("(a value of %d characters, left out)", utf8.RuneCountInString(m[len(prefix):]))
	})
}

// pbxText is the PBX's own text as an error quotes it: an answer's
// reason after its status (exporter/pbx.APIError: `400 Bad Request:
// "…"`, `200 OK: "…"` for {"type":"error"}), or the excerpt of a body
// that is not a list (pbx.ParseList: `expected a JSON object, got "…"`).
var pbxText = regexp.MustCompile(`(\b[1-5][0-9][0-9] [A-Za-z' -]*: |expected a JSON object, got )"(?:[^"\\]|\\.)*(?:"|…)`)

// leaveOutPBXText replaces each text of the PBX's pbxText finds by what
// it is: under a rule with names, as such a text may name a person
// ("no caller Mario Rossi") whom no shape tells from other words. The
// status, and what the program says around it, stay.
func leaveOutPBXText(s string) string {
	return pbxText.ReplaceAllStringFunc(s, func(m string) string {
		prefix := pbxText.FindStringSubmatch(m)[1]
		return prefix + fmt.Sprintf("(the PBX's text of %d characters, left out)", utf8.RuneCountInString(m[len(prefix):]))
	})
}

// Error returns err printing with its numbers replaced, unwrapping to err
// (errors.Is and errors.As see through it); err itself when nothing
// changes, nil for nil.
func (r *Redactor) Error(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if t := r.Text(msg); t != msg {
		return &redacted{msg: t, err: err}
	}
	return err
}

type redacted struct {
	msg string
	err error
}

func (e *redacted) Error() string { return e.msg }
func (e *redacted) Unwrap() error { return e.err }

// safeKeys are log attributes whose strings are ids the program makes,
// never a record's value: a run id's digits are its time, not a number.
var safeKeys = map[string]bool{"run_id": true, "forget_id": true, "endpoint": true, "status": true, "paging": true, "version": true}

// Handler returns h with every log record's message and attributes (at
// any depth, errors and lists of strings included) redacted.
func (r *Redactor) Handler(h slog.Handler) slog.Handler { return &handler{r: r, h: h} }

type handler struct {
	r *Redactor
	h slog.Handler
}

func (l *handler) Enabled(ctx context.Context, lv slog.Level) bool { return l.h.Enabled(ctx, lv) }

func (l *handler) Handle(ctx context.Context, rec slog.Record) error {
	out := slog.NewRecord(rec.Time, rec.Level, l.r.Text(rec.Message), rec.PC)
	rec.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(l.attr(a))
		return true
	})
	return l.h.Handle(ctx, out)
}

func (l *handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	clean := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		clean[i] = l.attr(a)
	}
	return &handler{r: l.r, h: l.h.WithAttrs(clean)}
}

func (l *handler) WithGroup(name string) slog.Handler {
	return &handler{r: l.r, h: l.h.WithGroup(name)}
}

// attr redacts one attribute.
func (l *handler) attr(a slog.Attr) slog.Attr {
	if safeKeys[a.Key] {
		return a
	}
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, l.r.Text(v.String()))
	case slog.KindGroup:
		g := v.Group()
		out := make([]any, len(g))
		for i, x := range g {
			out[i] = l.attr(x)
		}
		return slog.Group(a.Key, out...)
	case slog.KindAny:
		switch x := v.Any().(type) {
		case error:
			return slog.String(a.Key, l.r.Text(x.Error()))
		case []string:
			out := make([]string, len(x))
			for i, s := range x {
				out[i] = l.r.Text(s)
			}
			return slog.Any(a.Key, out)
		case fmt.Stringer:
			return slog.String(a.Key, l.r.Text(x.String()))
		case []byte:
			return slog.String(a.Key, l.r.Text(string(x)))
		}
		return slog.String(a.Key, l.r.Text(fmt.Sprint(v.Any())))
	}
	// Integers, floats, times, durations, booleans: the program's own
	// counts and sizes (no caller logs a record's value as an integer).
	return slog.Attr{Key: a.Key, Value: v}
}
