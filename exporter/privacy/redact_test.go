package privacy

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"strings"
	"testing"
)

// TestRedactorHandler: a number in a log line's message, a string, an
// error, a list of notes, a group or an attribute added with With comes
// out as its pseudonym, in text and JSON logs; a run id stays.
func TestRedactorHandler(t *testing.T) {
	t.Parallel()
	k := keyed(t)
	r := &Redactor{Keys: k}
	p := k.Number("+393331234567")
	for _, h := range []func(*bytes.Buffer) slog.Handler{
		func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) },
		func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) },
	} {
		var b bytes.Buffer
		log := slog.New(r.Handler(h(&b))).With("caller", "0039 333 1234567")
		log.WithGroup("g").Info("call from +393331234567 refused", "run_id", "20261207T024500Z-abc123",
			"err", fmt.Errorf("key 7, field \"src\": %q: %w", "393331234567", fs.ErrInvalid),
			"notes", []string{"first: +39 333 1234567"}, "leg", slog.GroupValue(slog.String("dst", "(+39) 333 1234567")))
		out := b.String()
		for _, s := range []string{"3331234567", "333 1234567"} {
			if strings.Contains(out, s) {
				t.Errorf("%q in the log:\n%s", s, out)
			}
		}
		if strings.Count(out, p) < 5 || !strings.Contains(out, "20261207T024500Z-abc123") {
			t.Errorf("want the pseudonym in each of the 5 places and the run id as it is:\n%s", out)
		}
	}
	err := fmt.Errorf("export call_history: %w", fs.ErrNotExist)
	if r.Error(err) != err {
		t.Error("an error without a number is wrapped")
	}
	red := r.Error(fmt.Errorf("number +393331234567: %w", fs.ErrNotExist))
	if !errors.Is(red, fs.ErrNotExist) || strings.Contains(red.Error(), "3331234567") || !strings.Contains(red.Error(), p) {
		t.Errorf("redacted error %q: want the pseudonym, unwrapping to the cause", red)
	}
}
