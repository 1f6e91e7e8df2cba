package notify

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Kind is what a message tells.
type Kind string

// The kinds of message.
const (
	KindFailure   Kind = "failure"   // a run failed
	KindRecovered Kind = "recovered" // the first run to succeed after failures
	KindSummary   Kind = "summary"   // the daily summary
	KindTest      Kind = "test"      // `wildix-export notify --test`
)

// Message is one notification, the same for every target; each service
// renders it in its own payload. Exactly one of Failure, Recovery and
// Summary is set, as Kind says (none for a test).
type Message struct {
	Kind     Kind
	PBX      string
	At       time.Time
	Failure  *Failure
	Recovery *Recovery
	Summary  *Summary
}

// Failure is a failed run.
type Failure struct {
	RunID     string   `json:"run_id,omitempty"`
	ExitCode  int      `json:"exit_code"`
	Meaning   string   `json:"meaning"`             // the exit code's meaning, as the README's table
	Advice    string   `json:"advice"`              // what to do
	Endpoints []string `json:"endpoints,omitempty"` // those that failed; none when the run failed before any
	Error     string   `json:"error"`               // as the log shows it
	// FailingSince is the first failed run of this series; FailedRuns
	// counts them, this one included.
	FailingSince time.Time `json:"failing_since"`
	FailedRuns   int       `json:"failed_runs"`
	// Reminder is true when the same failure was already sent on an
	// earlier day.
	Reminder bool `json:"reminder"`
}

// Recovery is the first successful run after failures.
type Recovery struct {
	RunID        string    `json:"run_id,omitempty"`
	FailingSince time.Time `json:"failing_since"`
	FailedRuns   int       `json:"failed_runs"`
	LastMeaning  string    `json:"last_failure"` // what the last failure was
}

// Summary is the daily summary of the day before.
type Summary struct {
	Day        string `json:"day"` // YYYY-MM-DD, in Zone
	Zone       string `json:"time_zone"`
	RunsOK     int    `json:"runs_ok"`
	RunsFailed int    `json:"runs_failed"`
	// RunsWarned: runs that ended well with a warning, in neither of the
	// others (Tally.RunsWarned).
	RunsWarned int           `json:"runs_warned,omitempty"`
	Endpoints  []EndpointDay `json:"endpoints"`
	// Calls are the day's figures from the reporting views (nil without
	// the PostgreSQL sink).
	Calls *CallFigures `json:"calls,omitempty"`
	// Failing is the failure still unresolved, "" when none.
	Failing string `json:"failing,omitempty"`
}

// EndpointDay is one endpoint's day.
type EndpointDay struct {
	Endpoint   string `json:"endpoint"`
	Rows       int64  `json:"rows"`
	RunsOK     int    `json:"runs_ok"`
	RunsFailed int    `json:"runs_failed"`
	// RunsWarned: runs that ended well with a warning for the endpoint
	// (EndpointOutcome.Warned), counted in neither of the others.
	RunsWarned int `json:"runs_warned,omitempty"`
}

// CallFigures are a day's calls as the reporting views count them.
type CallFigures struct {
	Calls         int64 `json:"calls"`           // calls_daily.calls
	Answered      int64 `json:"answered"`        // calls_daily.answered
	Missed        int64 `json:"missed"`          // rows of missed_calls: inbound calls nobody answered
	NotCalledBack int64 `json:"not_called_back"` // of those, with no later call with the number (next_call_id IS NULL)
}

// Title is the message's one line: a chat's header, an e-mail's subject.
func (m *Message) Title() string {
	switch m.Kind {
	case KindFailure:
		return fmt.Sprintf("wildix-export %s: export FAILED (exit %d: %s)", m.PBX, m.Failure.ExitCode, m.Failure.Meaning)
	case KindRecovered:
		return fmt.Sprintf("wildix-export %s: export recovered", m.PBX)
	case KindSummary:
		return fmt.Sprintf("wildix-export %s: summary of %s", m.PBX, m.Summary.Day)
	}
	return fmt.Sprintf("wildix-export %s: test message", m.PBX)
}

// Text is the message's body as plain lines.
func (m *Message) Text() string {
	var b strings.Builder
	switch m.Kind {
	case KindFailure:
		m.Failure.write(&b)
	case KindRecovered:
		r := m.Recovery
		fmt.Fprintf(&b, "The export succeeded again (run %s) after %d failed run(s) since %s.\n", r.RunID, r.FailedRuns, stamp(r.FailingSince))
		fmt.Fprintf(&b, "The last failure was: %s.\n", r.LastMeaning)
	case KindSummary:
		m.Summary.write(&b)
	default:
		b.WriteString("This is a test message from `wildix-export notify --test`: this target is configured correctly.\n")
	}
	return b.String()
}

func (f *Failure) write(b *strings.Builder) {
	fmt.Fprintf(b, "What to do: %s\n", f.Advice)
	if len(f.Endpoints) > 0 {
		fmt.Fprintf(b, "Endpoints failed: %s\n", strings.Join(f.Endpoints, ", "))
	}
	fmt.Fprintf(b, "Error: %s\n", f.Error)
	if f.RunID != "" {
		fmt.Fprintf(b, "Run: %s\n", f.RunID)
	}
	fmt.Fprintf(b, "Failing since %s (%d failed run(s)).", stamp(f.FailingSince), f.FailedRuns)
	if f.Reminder {
		b.WriteString(" A reminder: this failure is sent at most once a day until a run succeeds.")
	} else {
		b.WriteString(" The same failure is not sent again today; a reminder follows each day until a run succeeds.")
	}
	b.WriteString("\n")
}

func (s *Summary) write(b *strings.Builder) {
	fmt.Fprintf(b, "Runs on %s (%s): %d ok, %d failed", s.Day, s.Zone, s.RunsOK, s.RunsFailed)
	if s.RunsWarned > 0 {
		fmt.Fprintf(b, ", %d with a warning", s.RunsWarned)
	}
	b.WriteString(".\n")
	for _, e := range s.Endpoints {
		fmt.Fprintf(b, "- %s: %d rows, %d run(s) ok, %d failed", e.Endpoint, e.Rows, e.RunsOK, e.RunsFailed)
		if e.RunsWarned > 0 {
			fmt.Fprintf(b, ", %d with a warning (the run ledger's notes say what)", e.RunsWarned)
		}
		b.WriteString("\n")
	}
	if c := s.Calls; c != nil {
		fmt.Fprintf(b, "Calls: %d, answered %d, missed %d, not called back %d.\n", c.Calls, c.Answered, c.Missed, c.NotCalledBack)
	}
	if s.Failing != "" {
		fmt.Fprintf(b, "Still failing: %s.\n", s.Failing)
	}
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "an unknown time"
	}
	return t.Format("2006-01-02 15:04 MST")
}

// scrubbed returns the message with every secret replaced by [redacted]
// in its free text: an error message is the one place a secret could slip
// in from elsewhere.
func (m Message) scrubbed(secrets []string) Message {
	r := replacer(secrets)
	if r == nil {
		return m
	}
	return m.freeText(r.Replace)
}

// redacted returns the message with its free text redacted by redact
// (Notifier.Redact); m itself when redact is nil.
func (m Message) redacted(redact func(string) string) Message {
	if redact == nil {
		return m
	}
	return m.freeText(redact)
}

// freeText returns the message with each free text (a failure's error,
// advice and meaning, a recovery's last meaning, a summary's failure)
// replaced by f of it, the message's parts copied, not changed.
func (m Message) freeText(f func(string) string) Message {
	if m.Failure != nil {
		c := *m.Failure
		c.Error, c.Advice, c.Meaning = f(c.Error), f(c.Advice), f(c.Meaning)
		m.Failure = &c
	}
	if m.Recovery != nil {
		c := *m.Recovery
		c.LastMeaning = f(c.LastMeaning)
		m.Recovery = &c
	}
	if m.Summary != nil {
		c := *m.Summary
		c.Failing = f(c.Failing)
		m.Summary = &c
	}
	return m
}

func replacer(secrets []string) *strings.Replacer {
	// The longest first, so that a secret holding another is replaced
	// whole.
	sorted := slices.Clone(secrets)
	slices.SortFunc(sorted, func(a, b string) int { return len(b) - len(a) })
	var pairs []string
	for _, s := range sorted {
		// A secret shorter than this would redact ordinary words.
		if len(s) >= 6 {
			pairs = append(pairs, s, redacted)
		}
	}
	if pairs == nil {
		return nil
	}
	return strings.NewReplacer(pairs...)
}
