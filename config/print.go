package config

import (
	"cmp"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/url"
	"reflect"
	"strings"
	"text/tabwriter"
	"time"
)

// TokenKeyBytes decodes WILDIX_TOKEN_KEY: standard or URL base64 of 32 bytes.
func TokenKeyBytes(s Secret) ([]byte, error) {
	v := strings.TrimSpace(s.Value())
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(v); err == nil {
			if len(b) != 32 {
				return nil, fmt.Errorf("expected base64 of exactly 32 bytes, got %d bytes (make one with: openssl rand -base64 32)", len(b))
			}
			return b, nil
		}
	}
	return nil, errors.New("expected base64 of 32 random bytes (make one with: openssl rand -base64 32)")
}

// Print writes the effective configuration, secrets shown only as set or
// not. The rows come from env's tags: each variable is printed from the
// Config field of the same name, so a new variable needs no line here.
// The *_FILE variables have no field of their own: they fill the secret
// printed under the variable they stand for.
func (c *Config) Print(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "authentication\t%s\n", c.Auth)
	cv := reflect.ValueOf(c).Elem()
	for _, f := range reflect.VisibleFields(reflect.TypeOf(env{})) {
		cf, ok := cv.Type().FieldByName(f.Name)
		if !ok {
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\n", f.Tag.Get("envconfig"), show(cv.FieldByIndex(cf.Index).Interface(), cf.Tag.Get("sep")))
	}
	if c.RecordingsOn() {
		_, from := c.RecordingsCredential()
		fmt.Fprintf(tw, "recordings token\t%s\n", cmp.Or(from, "none: set WILDIX_RECORDINGS_TOKEN"))
	}
	return tw.Flush()
}

// show formats one effective value; sep joins lists (default ",").
func show(v any, sep string) string {
	const unset = "(not set)"
	switch v := v.(type) {
	case Secret:
		if v.IsSet() {
			return v.String()
		}
		return unset
	case *url.URL:
		if v != nil {
			return v.String()
		}
		return unset
	case *time.Location:
		if v != nil {
			return v.String()
		}
		return unset
	case []string:
		if len(v) == 0 {
			return unset
		}
		return strings.Join(v, cmp.Or(sep, ","))
	case string:
		return cmp.Or(v, unset)
	}
	return fmt.Sprint(v)
}
