package config

import "log/slog"

// Secret holds a credential. It redacts itself wherever it is printed,
// formatted, logged or marshalled, so a Config can be logged safely; Value
// returns the credential for the one place that must send it.
type Secret string

const redacted = "[redacted]"

// Value returns the secret itself. Call it only where the secret is sent.
func (s Secret) Value() string { return string(s) }

// IsSet reports whether the secret has a value.
func (s Secret) IsSet() bool { return s != "" }

// String implements fmt.Stringer.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return redacted
}

// GoString implements fmt.GoStringer, so %#v redacts too.
func (s Secret) GoString() string { return `"` + s.String() + `"` }

// LogValue implements slog.LogValuer.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalText implements encoding.TextMarshaler (and so JSON).
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }
