package config

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
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

// Print writes the effective configuration, secrets shown only as set or not.
func (c *Config) Print(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	pbx := ""
	if c.PBXURL != nil {
		pbx = c.PBXURL.String()
	}
	secret := func(s Secret) string {
		if s.IsSet() {
			return s.String()
		}
		return "(not set)"
	}
	or := func(s, alt string) string {
		if s == "" {
			return alt
		}
		return s
	}
	endpoints := "(every built-in endpoint)"
	if len(c.Endpoints) > 0 {
		endpoints = strings.Join(c.Endpoints, ",")
	}
	rows := [][2]string{
		{"WILDIX_PBX_URL", or(pbx, "(not set)")},
		{"WILDIX_PBX_ID", or(c.PBXID, "(not set)")},
		{"authentication", string(c.Auth)},
		{"WILDIX_CLIENT_ID", or(c.ClientID, "(not set)")},
		{"WILDIX_CLIENT_SECRET", secret(c.ClientSecret)},
		{"WILDIX_REDIRECT_URL", c.RedirectURL},
		{"WILDIX_SCOPES", or(strings.Join(c.Scopes, " "), "(none)")},
		{"WILDIX_TOKEN_AUTH", c.TokenAuth},
		{"WILDIX_API_KEY", secret(c.APIKey)},
		{"WILDIX_S2S_APP_ID", or(c.S2SAppID, "(not set)")},
		{"WILDIX_S2S_APP_NAME", or(c.S2SAppName, "(not set)")},
		{"WILDIX_S2S_SECRET", secret(c.S2SSecret)},
		{"WILDIX_TOKEN_FILE", or(c.TokenFile, "(default for the sink)")},
		{"WILDIX_TOKEN_KEY", secret(c.TokenKey)},
		{"WILDIX_CA_FILE", or(c.CAFile, "(system roots)")},
		{"WILDIX_INSECURE_SKIP_VERIFY", fmt.Sprint(c.InsecureTLS)},
		{"WILDIX_ALLOW_HTTP", fmt.Sprint(c.AllowHTTP)},
		{"WILDIX_TIMEZONE", zoneName(c)},
		{"WILDIX_REQUEST_TIMEOUT", c.RequestTimeout.String()},
		{"EXPORT_SINK", c.Sink},
		{"EXPORT_CSV_DIR", c.CSVDir},
		{"EXPORT_CSV_GZIP", fmt.Sprint(c.CSVGzip)},
		{"EXPORT_CSV_SAFE_FORMULAS", fmt.Sprint(c.CSVSafeFormulas)},
		{"EXPORT_DATABASE_URL", secret(c.DatabaseURL)},
		{"EXPORT_DB_SCHEMA", c.DBSchema},
		{"EXPORT_ENDPOINTS", endpoints},
		{"EXPORT_ENDPOINTS_FILE", or(c.EndpointsFile, "(none)")},
		{"EXPORT_SCHEDULE", c.Schedule},
		{"EXPORT_TIMEZONE", c.ScheduleTimezone.String()},
		{"EXPORT_PAGE_SIZE", fmt.Sprint(c.PageSize)},
		{"EXPORT_CONCURRENCY", fmt.Sprint(c.Concurrency)},
		{"EXPORT_BATCH_SIZE", fmt.Sprint(c.BatchSize)},
		{"EXPORT_MAX_PAGES", fmt.Sprint(c.MaxPages)},
		{"EXPORT_MAX_ATTEMPTS", fmt.Sprint(c.MaxAttempts)},
		{"EXPORT_MAX_RPS", fmt.Sprint(c.MaxRPS)},
		{"EXPORT_RUN_TIMEOUT", c.RunTimeout.String()},
		{"EXPORT_SHUTDOWN_GRACE", c.ShutdownGrace.String()},
		{"EXPORT_HTTP_ADDR", or(c.HTTPAddr, "(off)")},
		{"EXPORT_LOG_FORMAT", c.LogFormat},
		{"EXPORT_LOG_LEVEL", c.LogLevel},
	}
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\n", r[0], r[1])
	}
	return tw.Flush()
}

func zoneName(c *Config) string {
	if c.Timezone == nil {
		return "(each record's own offset)"
	}
	return c.Timezone.String()
}
