// Package config reads wildix-export's configuration from environment
// variables, checks it once, and reports every problem together.
//
// Only cmd/wildix-export reads configuration; the other packages take plain
// values. Like every package in this module, it is not a supported Go API.
package config

import (
	"cmp"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/kelseyhightower/envconfig"
	"github.com/robfig/cron/v3"

	"github.com/wildix-export/wildix-export/internal/notify"
	"github.com/wildix-export/wildix-export/internal/pseudonym"
)

// env is what envconfig reads: every variable as a string, so that a bad
// value becomes one problem in the list instead of stopping the parse.
// The tags are the documentation: Usage prints them as the README's table.
type env struct {
	PBXURL           string `envconfig:"WILDIX_PBX_URL" desc:"PBX base URL, e.g. https://acme.wildixin.com (http:// only for loopback unless WILDIX_ALLOW_HTTP)"`
	PBXID            string `envconfig:"WILDIX_PBX_ID" desc:"name this PBX is stored under in tokens, state and tables (default: the URL's host); with EXPORT_SINK=csv at most 90 bytes, a byte other than a letter, digit, -, _ or . counting three"`
	ClientID         string `envconfig:"WILDIX_CLIENT_ID" desc:"OAuth 2.0 Application ID from WMS"`
	ClientSecret     string `envconfig:"WILDIX_CLIENT_SECRET" desc:"OAuth 2.0 Secret key from WMS (secret; or WILDIX_CLIENT_SECRET_FILE)"`
	RedirectURL      string `envconfig:"WILDIX_REDIRECT_URL" default:"http://127.0.0.1:8765/callback" desc:"Redirect URI registered on the PBX; loopback for the local flow, any other for the paste flow"`
	Scopes           string `envconfig:"WILDIX_SCOPES" desc:"OAuth scopes to request, space separated (default: none)"`
	TokenAuth        string `envconfig:"WILDIX_TOKEN_AUTH" default:"auto" desc:"client authentication at the token endpoint: auto, body or basic"`
	APIKey           string `envconfig:"WILDIX_API_KEY" desc:"static bearer key (wsk-v1-... or access_...) instead of OAuth (secret; or WILDIX_API_KEY_FILE)"`
	S2SAppID         string `envconfig:"WILDIX_S2S_APP_ID" desc:"S2S application id, for signed server-to-server requests"`
	S2SAppName       string `envconfig:"WILDIX_S2S_APP_NAME" desc:"S2S application name"`
	S2SSecret        string `envconfig:"WILDIX_S2S_SECRET" desc:"S2S secret key (secret; or WILDIX_S2S_SECRET_FILE)"`
	TokenFile        string `envconfig:"WILDIX_TOKEN_FILE" desc:"token store file (default: ./wildix-token.json with the csv sink, the database with the postgres sink)"`
	TokenKey         string `envconfig:"WILDIX_TOKEN_KEY" desc:"base64 32-byte key encrypting stored tokens with AES-GCM; with it, a token or authorization in progress stored in clear is refused (run authorize once after setting it) (secret; or WILDIX_TOKEN_KEY_FILE)"`
	CAFile           string `envconfig:"WILDIX_CA_FILE" desc:"PEM file of extra CA certificates trusted for the PBX"`
	InsecureTLS      string `envconfig:"WILDIX_INSECURE_SKIP_VERIFY" default:"false" desc:"skip TLS certificate verification (never in production)"`
	AllowHTTP        string `envconfig:"WILDIX_ALLOW_HTTP" default:"false" desc:"allow a plain http:// PBX URL (or EXPORT_RECORDINGS_S3_ENDPOINT) that is not loopback"`
	Timezone         string `envconfig:"WILDIX_TIMEZONE" desc:"the PBX's IANA time zone, e.g. Europe/Rome (default: each record's timezone offset; a record without one stops the run, exit 2)"`
	RequestTimeout   string `envconfig:"WILDIX_REQUEST_TIMEOUT" default:"60s" desc:"timeout of one HTTP request to the PBX"`
	Sink             string `envconfig:"EXPORT_SINK" default:"csv" desc:"where rows go: csv or postgres"`
	CSVDir           string `envconfig:"EXPORT_CSV_DIR" default:"./export" desc:"folder of the csv sink"`
	CSVGzip          string `envconfig:"EXPORT_CSV_GZIP" default:"false" desc:"gzip the csv files"`
	CSVSafeFormulas  string `envconfig:"EXPORT_CSV_SAFE_FORMULAS" default:"false" desc:"prefix text cells starting with = + - @, tab or carriage return with a quote, against spreadsheet formula injection"`
	DatabaseURL      string `envconfig:"EXPORT_DATABASE_URL" desc:"PostgreSQL URL for the postgres sink (secret; or EXPORT_DATABASE_URL_FILE); a pool of 8 connections unless it sets pool_max_conns (4 at the least)"`
	DBSchema         string `envconfig:"EXPORT_DB_SCHEMA" default:"wildix" desc:"PostgreSQL schema of the exported tables, created when missing"`
	Strict           string `envconfig:"EXPORT_STRICT" default:"false" desc:"fail the run on a record PostgreSQL refuses, instead of keeping it in export_quarantine and going on"`
	Endpoints        string `envconfig:"EXPORT_ENDPOINTS" desc:"comma list of endpoints to export (default: every built-in endpoint)"`
	EndpointsFile    string `envconfig:"EXPORT_ENDPOINTS_FILE" desc:"JSON file of custom endpoints"`
	Schedule         string `envconfig:"EXPORT_SCHEDULE" default:"0 2 * * *" desc:"cron spec of the worker (5 fields, @daily, or CRON_TZ=Zone prefix)"`
	ScheduleTimezone string `envconfig:"EXPORT_TIMEZONE" desc:"time zone of EXPORT_SCHEDULE (default: WILDIX_TIMEZONE, else UTC)"`
	PageSize         string `envconfig:"EXPORT_PAGE_SIZE" default:"1000" desc:"records asked for per page (count)"`
	Concurrency      string `envconfig:"EXPORT_CONCURRENCY" default:"4" desc:"pages (and recording files) fetched at once"`
	BatchSize        string `envconfig:"EXPORT_BATCH_SIZE" default:"50000" desc:"rows committed together with their cursor"`
	MaxPages         string `envconfig:"EXPORT_MAX_PAGES" default:"100000" desc:"hard cap on pages per endpoint and run (an error when reached)"`
	MaxResponseSize  string `envconfig:"EXPORT_MAX_RESPONSE_SIZE" default:"64MiB" desc:"largest PBX answer accepted, in bytes or with KiB, MiB or GiB (a larger one is an error); with EXPORT_CONCURRENCY, it bounds the memory answers take"`
	MaxAttempts      string `envconfig:"EXPORT_MAX_ATTEMPTS" default:"8" desc:"attempts per request (and recording file) on 429, 5xx, timeouts and broken bodies"`
	MaxRPS           string `envconfig:"EXPORT_MAX_RPS" default:"0" desc:"hard cap on requests per second to the PBX's API across the run, retries included (0: no cap)"`
	RunTimeout       string `envconfig:"EXPORT_RUN_TIMEOUT" default:"6h" desc:"deadline of one whole run"`
	ShutdownGrace    string `envconfig:"EXPORT_SHUTDOWN_GRACE" default:"30s" desc:"time the batch in flight gets to commit after SIGTERM"`
	Settle           string `envconfig:"EXPORT_SETTLE" default:"2m" desc:"a PBX read by time windows (it ignores filter[id]) is read up to its present at the run's start less this; newer calls, still arriving, are the next run's"`
	HTTPAddr         string `envconfig:"EXPORT_HTTP_ADDR" desc:"listen address of /healthz, /readyz and /metrics, e.g. 127.0.0.1:9090 (no authentication: loopback unless a scraper elsewhere needs it; default: off)"`
	LogFormat        string `envconfig:"EXPORT_LOG_FORMAT" default:"auto" desc:"auto (text on a terminal, JSON otherwise), text or json"`
	LogLevel         string `envconfig:"EXPORT_LOG_LEVEL" default:"info" desc:"debug, info, warn or error"`
	Notify           string `envconfig:"EXPORT_NOTIFY" desc:"where failures, recoveries and the daily summary are sent: chat webhook, JSON webhook or smtp:// URLs separated by spaces (docs/notifications.md) (secret; or EXPORT_NOTIFY_FILE)"`
	NotifySummaryAt  string `envconfig:"EXPORT_NOTIFY_SUMMARY_AT" desc:"time of day (HH:MM, in EXPORT_TIMEZONE) of the daily summary (default: none)"`
	NotifyStateFile  string `envconfig:"EXPORT_NOTIFY_STATE_FILE" desc:"file remembering what was notified when the database cannot be reached (default: wildix-export-notify.json in the temporary folder)"`
	RecordingsStore  string `envconfig:"EXPORT_RECORDINGS_STORE" default:"none" desc:"where call recordings are copied: none, dir or s3; the recordings endpoint is exported by default only when it is dir or s3 (README, Call recordings)"`
	RecordingsDir    string `envconfig:"EXPORT_RECORDINGS_DIR" desc:"with EXPORT_RECORDINGS_STORE=dir: the folder recordings are copied into, which must exist (a mounted volume or NAS)"`
	RecordingsGroup  string `envconfig:"EXPORT_RECORDINGS_GROUP_READABLE" default:"false" desc:"with EXPORT_RECORDINGS_STORE=dir: create recordings 0640 and folders 0750 instead of 0600 and 0700, for a backup job of the same group (never wider than the umask)"`
	S3Endpoint       string `envconfig:"EXPORT_RECORDINGS_S3_ENDPOINT" desc:"with EXPORT_RECORDINGS_STORE=s3: the S3-compatible server, e.g. https://s3.eu-west-1.amazonaws.com (http:// only for loopback unless WILDIX_ALLOW_HTTP)"`
	S3Region         string `envconfig:"EXPORT_RECORDINGS_S3_REGION" desc:"the bucket's region, e.g. eu-west-1 (default: asked of the server)"`
	S3Bucket         string `envconfig:"EXPORT_RECORDINGS_S3_BUCKET" desc:"with EXPORT_RECORDINGS_STORE=s3: the bucket, which must exist"`
	S3Prefix         string `envconfig:"EXPORT_RECORDINGS_S3_PREFIX" desc:"put before every object's name, e.g. recordings/ (default: none)"`
	S3PathStyle      string `envconfig:"EXPORT_RECORDINGS_S3_PATH_STYLE" default:"false" desc:"address the bucket in the path (https://host/bucket/...) instead of the host name: for most self-hosted servers (MinIO, Ceph, versitygw)"`
	S3AccessKey      string `envconfig:"EXPORT_RECORDINGS_S3_ACCESS_KEY" desc:"with EXPORT_RECORDINGS_STORE=s3: the access key id (secret; or EXPORT_RECORDINGS_S3_ACCESS_KEY_FILE)"`
	S3SecretKey      string `envconfig:"EXPORT_RECORDINGS_S3_SECRET_KEY" desc:"with EXPORT_RECORDINGS_STORE=s3: the secret access key (secret; or EXPORT_RECORDINGS_S3_SECRET_KEY_FILE)"`
	RecordingsToken  string `envconfig:"WILDIX_RECORDINGS_TOKEN" desc:"PBX Simple Token (access_...) that fetches recording files, created for an admin user in WMS (PBX > Integrations > Applications > Simple Token); sent to the PBX's /spoolview/ only (default: WILDIX_API_KEY when it is a Simple Token) (secret; or WILDIX_RECORDINGS_TOKEN_FILE)"`
	Pseudonymize     string `envconfig:"EXPORT_PSEUDONYMIZE" default:"none" desc:"what is replaced by keyed pseudonyms (p:…, n:…) before anything is written: none, numbers (external phone numbers), names (external parties' names), numbers,names, or all (also colleagues' names and numbers; extensions stay readable: up to 6 digits by shape, longer ones when a colleague's, read from the PBX at each run's start) (README, Privacy)"`
	PseudonymKey     string `envconfig:"EXPORT_PSEUDONYM_KEY" desc:"secret of at least 32 bytes keying the pseudonyms, required with EXPORT_PSEUDONYMIZE; keep it: another key gives other pseudonyms, and a database or folder refuses it (secret; or EXPORT_PSEUDONYM_KEY_FILE)"`
	PrevPseudonymKey string `envconfig:"EXPORT_PSEUDONYM_PREVIOUS_KEY" desc:"for the one run that changes EXPORT_PSEUDONYM_KEY (run --force), with or without a recordings store: the earlier key, which the key of the recordings' ids is sealed with, so that it is sealed again with the new one and no recording is copied a second time; unset it afterwards (secret; or EXPORT_PSEUDONYM_PREVIOUS_KEY_FILE)"`
	PseudonymDisplay string `envconfig:"EXPORT_PSEUDONYM_DISPLAY" default:"false" desc:"with EXPORT_PSEUDONYMIZE replacing numbers: keep beside each number column replaced a display form, its country code and last two digits (+39 ••• ••• 12), in the row's extra as <column>_display"`
	Retention        string `envconfig:"EXPORT_RETENTION" desc:"how long rows are kept, in days, e.g. 400d: older calls are not exported and are removed after each run (default: for ever)"`
	ClientSecretFile string `envconfig:"WILDIX_CLIENT_SECRET_FILE" desc:"file holding WILDIX_CLIENT_SECRET"`
	APIKeyFile       string `envconfig:"WILDIX_API_KEY_FILE" desc:"file holding WILDIX_API_KEY"`
	S2SSecretFile    string `envconfig:"WILDIX_S2S_SECRET_FILE" desc:"file holding WILDIX_S2S_SECRET"`
	TokenKeyFile     string `envconfig:"WILDIX_TOKEN_KEY_FILE" desc:"file holding WILDIX_TOKEN_KEY"`
	DatabaseURLFile  string `envconfig:"EXPORT_DATABASE_URL_FILE" desc:"file holding EXPORT_DATABASE_URL"`
	NotifyFile       string `envconfig:"EXPORT_NOTIFY_FILE" desc:"file holding EXPORT_NOTIFY"`
	RecTokenFile     string `envconfig:"WILDIX_RECORDINGS_TOKEN_FILE" desc:"file holding WILDIX_RECORDINGS_TOKEN"`
	S3AccessKeyFile  string `envconfig:"EXPORT_RECORDINGS_S3_ACCESS_KEY_FILE" desc:"file holding EXPORT_RECORDINGS_S3_ACCESS_KEY"`
	S3SecretKeyFile  string `envconfig:"EXPORT_RECORDINGS_S3_SECRET_KEY_FILE" desc:"file holding EXPORT_RECORDINGS_S3_SECRET_KEY"`
	PseudonymKeyFile string `envconfig:"EXPORT_PSEUDONYM_KEY_FILE" desc:"file holding EXPORT_PSEUDONYM_KEY"`
	PrevKeyFile      string `envconfig:"EXPORT_PSEUDONYM_PREVIOUS_KEY_FILE" desc:"file holding EXPORT_PSEUDONYM_PREVIOUS_KEY"`
}

// Auth says how requests to the PBX are authenticated.
type Auth string

// The ways to authenticate, chosen from which variables are set.
const (
	AuthOAuth  Auth = "oauth"
	AuthAPIKey Auth = "apikey"
	AuthS2S    Auth = "s2s"
)

// Config is the checked configuration. Secrets are of type Secret, so a
// Config can be printed or logged as it is.
type Config struct {
	PBXURL       *url.URL
	PBXID        string
	Auth         Auth
	ClientID     string
	ClientSecret Secret
	RedirectURL  string
	Scopes       []string `sep:" "`
	TokenAuth    string
	APIKey       Secret
	S2SAppID     string
	S2SAppName   string
	S2SSecret    Secret
	TokenFile    string
	TokenKey     Secret
	CAFile       string
	InsecureTLS  bool
	AllowHTTP    bool
	Timezone     *time.Location

	RequestTimeout time.Duration

	Sink            string
	CSVDir          string
	CSVGzip         bool
	CSVSafeFormulas bool
	DatabaseURL     Secret
	DBSchema        string
	Strict          bool

	Endpoints     []string
	EndpointsFile string

	Schedule         string
	ScheduleTimezone *time.Location

	PageSize      int
	Concurrency   int
	BatchSize     int
	MaxPages      int
	MaxAttempts   int
	MaxRPS        int
	RunTimeout    time.Duration
	ShutdownGrace time.Duration
	Settle        time.Duration
	HTTPAddr      string
	LogFormat     string
	LogLevel      string

	MaxResponseSize int64 // bytes of one PBX answer

	Notify          notify.Targets // redacted wherever shown
	NotifySummaryAt string         // HH:MM, "" for no summary
	NotifyStateFile string

	// Call recordings (recordings.go). RecordingsStore is "none", "dir"
	// or "s3"; the token is RecordingsCredential's.
	RecordingsStore string
	RecordingsDir   string
	RecordingsGroup bool
	S3Endpoint      *url.URL
	S3Region        string
	S3Bucket        string
	S3Prefix        string
	S3PathStyle     bool
	S3AccessKey     Secret
	S3SecretKey     Secret
	RecordingsToken Secret

	// Privacy (privacy.go): what is pseudonymised, with which key, and
	// how long rows are kept (0: for ever).
	Pseudonymize     pseudonym.Rule
	PseudonymKey     Secret
	PrevPseudonymKey Secret
	PseudonymDisplay bool
	Retention        time.Duration
}

// Problem is one bad setting.
type Problem struct {
	Var      string // the variable, e.g. WILDIX_PBX_URL
	Value    string // the value as given, "" for a secret or an unset variable
	Expected string // what would be accepted, and what to do
}

func (p Problem) String() string {
	if p.Value == "" {
		return fmt.Sprintf("%s: %s", p.Var, p.Expected)
	}
	return fmt.Sprintf("%s=%q: %s", p.Var, p.Value, p.Expected)
}

// Error lists every problem found in the configuration.
type Error struct {
	Problems []Problem
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "configuration has %d problem(s):", len(e.Problems))
	for _, p := range e.Problems {
		b.WriteString("\n  - ")
		b.WriteString(p.String())
	}
	return b.String()
}

// Need says which settings a command requires beyond the always-checked ones.
type Need struct {
	PBX  bool // a PBX URL and a way to authenticate
	Sink bool // a complete sink configuration
}

// Load reads the environment through lookup (os.LookupEnv in the program)
// and checks it. The returned Config is usable even when err is an *Error,
// so `config` can print both.
func Load(need Need, lookup func(string) (string, bool)) (*Config, error) {
	return parse(read(lookup), need, os.ReadFile)
}

// read fills env from its tags, as envconfig would: a variable that is set
// (even empty) wins over its default.
func read(lookup func(string) (string, bool)) env {
	var e env
	v := reflect.ValueOf(&e).Elem()
	for i := range v.NumField() {
		tag := v.Type().Field(i).Tag
		s, ok := lookup(tag.Get("envconfig"))
		if !ok {
			s = tag.Get("default")
		}
		v.Field(i).SetString(s)
	}
	return e
}

// Markdown writes the variables as a Markdown table, for the README.
func Markdown(w io.Writer) error {
	const format = "| Variable | Default | Description |\n|---|---|---|\n" +
		"{{range .}}| `{{usage_key .}}` | {{with usage_default .}}`{{.}}`{{end}} | {{usage_description .}} |\n{{end}}"
	return envconfig.Usagef("", &env{}, w, format)
}

// Usage writes the table of variables, their defaults and descriptions.
func Usage(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	format := "{{range .}}{{usage_key .}}\t{{usage_default .}}\t{{usage_description .}}\n{{end}}"
	if err := envconfig.Usagef("", &env{}, tw, format); err != nil {
		return err
	}
	return tw.Flush()
}

type checker struct {
	problems []Problem
	readFile func(string) ([]byte, error)
}

func (c *checker) add(v, value, expected string) {
	c.problems = append(c.problems, Problem{Var: v, Value: value, Expected: expected})
}

func (c *checker) boolean(v, s string) bool {
	b, err := strconv.ParseBool(strings.TrimSpace(s))
	if err != nil {
		c.add(v, s, "expected true or false")
	}
	return b
}

func (c *checker) integer(v, s string, min, max int) int {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < min || n > max {
		c.add(v, s, fmt.Sprintf("expected a whole number from %d to %d", min, max))
	}
	return n
}

// size reads a byte count: a whole number of bytes, or one with a unit
// KiB, MiB or GiB (powers of 1024).
func (c *checker) size(v, s string, min, max int64) int64 {
	num, mult := strings.TrimSpace(s), int64(1)
	for i, unit := range []string{"KiB", "MiB", "GiB"} {
		if n, ok := strings.CutSuffix(num, unit); ok {
			num, mult = strings.TrimSpace(n), int64(1)<<(10*(i+1))
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < min/mult || n > max/mult || n*mult < min {
		c.add(v, s, fmt.Sprintf("expected a size from %dKiB to %dGiB: bytes, or a whole number with KiB, MiB or GiB, such as 64MiB", min>>10, max>>30))
	}
	return n * mult
}

func (c *checker) duration(v, s string) time.Duration {
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil || d <= 0 {
		c.add(v, s, "expected a positive duration such as 30s, 5m or 6h")
	}
	return d
}

func (c *checker) oneOf(v, s string, allowed ...string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	for _, a := range allowed {
		if s == a {
			return s
		}
	}
	c.add(v, s, "expected one of "+strings.Join(allowed, ", "))
	return s
}

func (c *checker) location(v, s string) *time.Location {
	loc, err := time.LoadLocation(strings.TrimSpace(s))
	if err != nil {
		c.add(v, s, "expected an IANA time zone such as Europe/Rome or UTC")
		return time.UTC
	}
	return loc
}

// secret takes a secret from its variable or from the file its _FILE
// variable names (the Docker and Kubernetes secrets convention).
func (c *checker) secret(v, value, fileVar, file string) Secret {
	if file == "" {
		return Secret(value)
	}
	if value != "" {
		c.add(v, "", fmt.Sprintf("set either %s or %s, not both", v, fileVar))
		return Secret(value)
	}
	b, err := c.readFile(file)
	if err != nil {
		c.add(fileVar, file, fmt.Sprintf("cannot read the file: %v", errors.Unwrap(err)))
		return ""
	}
	return Secret(strings.TrimRight(string(b), "\r\n"))
}

func parse(e env, need Need, readFile func(string) ([]byte, error)) (*Config, error) {
	c := &checker{readFile: readFile}
	cfg := &Config{
		PBXID:         strings.TrimSpace(e.PBXID),
		ClientID:      strings.TrimSpace(e.ClientID),
		RedirectURL:   strings.TrimSpace(e.RedirectURL),
		Scopes:        strings.Fields(e.Scopes),
		S2SAppID:      strings.TrimSpace(e.S2SAppID),
		S2SAppName:    strings.TrimSpace(e.S2SAppName),
		TokenFile:     e.TokenFile,
		CAFile:        e.CAFile,
		CSVDir:        e.CSVDir,
		DBSchema:      e.DBSchema,
		Endpoints:     SplitList(e.Endpoints),
		EndpointsFile: e.EndpointsFile,
		Schedule:      strings.TrimSpace(e.Schedule),
		HTTPAddr:      e.HTTPAddr,
	}
	cfg.ClientSecret = c.secret("WILDIX_CLIENT_SECRET", e.ClientSecret, "WILDIX_CLIENT_SECRET_FILE", e.ClientSecretFile)
	cfg.APIKey = c.secret("WILDIX_API_KEY", e.APIKey, "WILDIX_API_KEY_FILE", e.APIKeyFile)
	cfg.S2SSecret = c.secret("WILDIX_S2S_SECRET", e.S2SSecret, "WILDIX_S2S_SECRET_FILE", e.S2SSecretFile)
	cfg.TokenKey = c.secret("WILDIX_TOKEN_KEY", e.TokenKey, "WILDIX_TOKEN_KEY_FILE", e.TokenKeyFile)
	cfg.DatabaseURL = c.secret("EXPORT_DATABASE_URL", e.DatabaseURL, "EXPORT_DATABASE_URL_FILE", e.DatabaseURLFile)
	if strings.TrimSpace(e.Endpoints) != "" && len(cfg.Endpoints) == 0 {
		// Set but naming nothing: exporting everything instead would be a guess.
		c.add("EXPORT_ENDPOINTS", e.Endpoints, "expected a comma list of endpoint names (see `wildix-export endpoints`), or leave it unset for every built-in endpoint")
	}
	c.values(cfg, e)
	c.places(cfg, e, need)
	cfg.PBXURL = c.pbxURL(e.PBXURL, cfg.AllowHTTP, need.PBX)
	if cfg.PBXID == "" && cfg.PBXURL != nil {
		cfg.PBXID = cfg.PBXURL.Host
	}
	if cfg.Sink == "csv" { // only the CSV sink names files with it
		c.pbxID(cfg.PBXID, e.PBXID)
	}
	cfg.Auth = c.auth(cfg, e, need.PBX)
	c.notifications(cfg, e)
	c.recordings(cfg, e, need)
	c.privacy(cfg, e, need)
	if len(c.problems) > 0 {
		return cfg, &Error{Problems: c.problems}
	}
	return cfg, nil
}

// notifications reads EXPORT_NOTIFY's targets (each problem named
// without the URL's secrets) and the summary's time.
func (c *checker) notifications(cfg *Config, e env) {
	raw := c.secret("EXPORT_NOTIFY", e.Notify, "EXPORT_NOTIFY_FILE", e.NotifyFile)
	ts, err := notify.ParseTargets(raw.Value())
	for p := range strings.Lines(errString(err)) {
		c.add("EXPORT_NOTIFY", "", strings.TrimSpace(p)+" (docs/notifications.md)")
	}
	cfg.Notify = ts
	cfg.NotifySummaryAt = strings.TrimSpace(e.NotifySummaryAt)
	if cfg.NotifySummaryAt != "" {
		if _, err := notify.ParseClock(cfg.NotifySummaryAt); err != nil {
			c.add("EXPORT_NOTIFY_SUMMARY_AT", e.NotifySummaryAt, "expected a time of day as HH:MM, e.g. 08:00")
		} else if raw.Value() == "" {
			c.add("EXPORT_NOTIFY_SUMMARY_AT", e.NotifySummaryAt, "set EXPORT_NOTIFY too: the summary has nowhere to go")
		}
	}
	cfg.NotifyStateFile = cmp.Or(strings.TrimSpace(e.NotifyStateFile), filepath.Join(os.TempDir(), "wildix-export-notify.json"))
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// SplitList splits a comma list, dropping blanks.
func SplitList(s string) []string {
	var out []string
	for _, name := range strings.Split(s, ",") {
		if name = strings.TrimSpace(name); name != "" {
			out = append(out, name)
		}
	}
	return out
}

// values parses the booleans, zones, durations, numbers and choices.
func (c *checker) values(cfg *Config, e env) {
	cfg.InsecureTLS = c.boolean("WILDIX_INSECURE_SKIP_VERIFY", e.InsecureTLS)
	cfg.AllowHTTP = c.boolean("WILDIX_ALLOW_HTTP", e.AllowHTTP)
	cfg.CSVGzip = c.boolean("EXPORT_CSV_GZIP", e.CSVGzip)
	cfg.CSVSafeFormulas = c.boolean("EXPORT_CSV_SAFE_FORMULAS", e.CSVSafeFormulas)
	cfg.Strict = c.boolean("EXPORT_STRICT", e.Strict)
	cfg.ScheduleTimezone = time.UTC
	if strings.TrimSpace(e.Timezone) != "" {
		cfg.Timezone = c.location("WILDIX_TIMEZONE", e.Timezone)
		cfg.ScheduleTimezone = cfg.Timezone
	}
	if e.ScheduleTimezone != "" {
		cfg.ScheduleTimezone = c.location("EXPORT_TIMEZONE", e.ScheduleTimezone)
	}
	cfg.RequestTimeout = c.duration("WILDIX_REQUEST_TIMEOUT", e.RequestTimeout)
	cfg.RunTimeout = c.duration("EXPORT_RUN_TIMEOUT", e.RunTimeout)
	cfg.ShutdownGrace = c.duration("EXPORT_SHUTDOWN_GRACE", e.ShutdownGrace)
	cfg.Settle = c.duration("EXPORT_SETTLE", e.Settle)
	cfg.PageSize = c.integer("EXPORT_PAGE_SIZE", e.PageSize, 1, 100000)
	cfg.Concurrency = c.integer("EXPORT_CONCURRENCY", e.Concurrency, 1, 64)
	cfg.BatchSize = c.integer("EXPORT_BATCH_SIZE", e.BatchSize, 1, 10000000)
	cfg.MaxPages = c.integer("EXPORT_MAX_PAGES", e.MaxPages, 1, 100000000)
	cfg.MaxResponseSize = c.size("EXPORT_MAX_RESPONSE_SIZE", e.MaxResponseSize, 64<<10, 4<<30)
	cfg.MaxAttempts = c.integer("EXPORT_MAX_ATTEMPTS", e.MaxAttempts, 1, 100)
	if strings.TrimSpace(e.MaxRPS) != "" { // unset or empty: no cap
		cfg.MaxRPS = c.integer("EXPORT_MAX_RPS", e.MaxRPS, 0, 10000)
	}
	cfg.TokenAuth = c.oneOf("WILDIX_TOKEN_AUTH", e.TokenAuth, "auto", "body", "basic")
	cfg.Sink = c.oneOf("EXPORT_SINK", e.Sink, "csv", "postgres")
	cfg.LogFormat = c.oneOf("EXPORT_LOG_FORMAT", e.LogFormat, "auto", "text", "json")
	cfg.LogLevel = c.oneOf("EXPORT_LOG_LEVEL", e.LogLevel, "debug", "info", "warn", "error")
}

// places checks what names something outside the program: the schedule,
// the schema, folders and files, the database and the listen address. A
// problem here would otherwise surface late, halfway into a command.
func (c *checker) places(cfg *Config, e env, need Need) {
	if _, err := ParseSchedule(cfg.Schedule, cfg.ScheduleTimezone); err != nil {
		c.add("EXPORT_SCHEDULE", e.Schedule, "expected a cron spec such as \"0 2 * * *\", \"@daily\" or \"CRON_TZ=Europe/Rome 0 2 * * *\": "+err.Error())
	}
	c.schema(e.DBSchema)
	if strings.TrimSpace(cfg.CSVDir) == "" {
		c.add("EXPORT_CSV_DIR", e.CSVDir, "expected a folder path")
	}
	if cfg.TokenKey.IsSet() {
		if _, err := TokenKeyBytes(cfg.TokenKey); err != nil {
			c.add("WILDIX_TOKEN_KEY", "", err.Error())
		}
	}
	if cfg.CAFile != "" {
		c.caFile(cfg.CAFile)
	}
	if cfg.HTTPAddr != "" {
		c.listenAddr(cfg.HTTPAddr)
	}
	if cfg.DatabaseURL.IsSet() {
		if _, err := pgconn.ParseConfig(cfg.DatabaseURL.Value()); err != nil {
			// The value and pgx's message may hold the password: neither is shown.
			c.add("EXPORT_DATABASE_URL", "", "cannot be parsed: expected a URL such as postgres://user:password@host:5432/db?sslmode=require, or key=value settings (host=... dbname=...)")
		}
	} else if need.Sink && cfg.Sink == "postgres" {
		c.add("EXPORT_DATABASE_URL", "", "required with EXPORT_SINK=postgres, e.g. postgres://user:password@host:5432/db (or EXPORT_DATABASE_URL_FILE)")
	}
}

// schema refuses names that are not plain SQL names, and PostgreSQL's own
// schemas, whose tables the exporter must never create or drop.
func (c *checker) schema(s string) {
	if !sqlName.MatchString(s) {
		c.add("EXPORT_DB_SCHEMA", s, "expected a lower-case SQL name: letters a-z, digits and _, starting with a letter or _, at most 63 bytes")
		return
	}
	if s == "information_schema" || strings.HasPrefix(s, "pg_") {
		c.add("EXPORT_DB_SCHEMA", s, "is a PostgreSQL system schema (information_schema and pg_* are reserved): choose a schema of your own, e.g. wildix")
	}
}

// sqlName is an unquoted lower-case SQL identifier, as PostgreSQL keeps it
// (a letter or _, then letters, digits or _; NAMEDATALEN-1 bytes).
var sqlName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// MaxPBXIDBytes is the longest PBX id, counted as the CSV sink spells it
// in file names (sinks.safeName: letters, digits, -, _ and a non-leading
// dot one byte each, every other byte three, %XX). A temporary manifest's
// name holds the id twice plus 72 bytes ("." id "~" id
// "_backfill_YYYYMMDDTHHMMSS_YYYYMMDDTHHMMSS.manifest.json.tmp-" and ten
// random digits), and one path element may have 255 bytes: 2×91+72 = 254.
// 90 leaves a byte. The id is also a key in the token store and in every
// table, where this length is no concern.
const MaxPBXIDBytes = 90

// pbxID refuses a PBX id too long to name files (see MaxPBXIDBytes); raw
// is the variable as set, empty when the id comes from the URL's host.
func (c *checker) pbxID(id, raw string) {
	n := 0
	for i := 0; i < len(id); i++ {
		b := id[i]
		if b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '-' || b == '_' || b == '.' && i > 0 {
			n++
		} else {
			n += 3
		}
	}
	if n <= MaxPBXIDBytes {
		return
	}
	from := "it names the CSV sink's files"
	if strings.TrimSpace(raw) == "" {
		from = "taken from WILDIX_PBX_URL's host, it names the CSV sink's files"
	}
	c.add("WILDIX_PBX_ID", id, fmt.Sprintf("too long: %s, where it takes %d bytes (letters, digits, -, _ and . one byte each, any other byte three) and at most %d fit: set a shorter WILDIX_PBX_ID",
		from, n, MaxPBXIDBytes))
}

func (c *checker) caFile(path string) {
	pem, err := c.readFile(path)
	if err != nil {
		c.add("WILDIX_CA_FILE", path, fmt.Sprintf("cannot read the file: %v", cmp.Or(errors.Unwrap(err), err)))
		return
	}
	if !x509.NewCertPool().AppendCertsFromPEM(pem) {
		c.add("WILDIX_CA_FILE", path, "holds no PEM certificate: expected the private CA's certificate(s), -----BEGIN CERTIFICATE----- blocks")
	}
}

func (c *checker) listenAddr(addr string) {
	_, port, err := net.SplitHostPort(addr)
	if n, perr := strconv.Atoi(port); err != nil || perr != nil || n < 0 || n > 65535 {
		c.add("EXPORT_HTTP_ADDR", addr, "expected host:port or :port, e.g. :9090 or 127.0.0.1:9090")
	}
}

// auth tells how to authenticate from which variables are set, and checks
// that the chosen way is complete when the command talks to the PBX.
func (c *checker) auth(cfg *Config, e env, needPBX bool) Auth {
	switch {
	case cfg.S2SAppID != "" || cfg.S2SSecret.IsSet():
		if needPBX {
			if cfg.S2SAppID == "" {
				c.add("WILDIX_S2S_APP_ID", "", "required with WILDIX_S2S_SECRET: the S2S application id from WMS")
			}
			if cfg.S2SAppName == "" {
				c.add("WILDIX_S2S_APP_NAME", "", "required for S2S: the S2S application name from WMS")
			}
			if !cfg.S2SSecret.IsSet() {
				c.add("WILDIX_S2S_SECRET", "", "required with WILDIX_S2S_APP_ID: the S2S secret key from WMS")
			}
		}
		return AuthS2S
	case cfg.APIKey.IsSet():
		return AuthAPIKey
	}
	if needPBX {
		if cfg.ClientID == "" {
			c.add("WILDIX_CLIENT_ID", "", "required: the Application ID of the OAuth 2.0 application in WMS (Settings > PBX > Integrations > Applications), or set WILDIX_API_KEY instead")
		}
		if !cfg.ClientSecret.IsSet() {
			c.add("WILDIX_CLIENT_SECRET", "", "required: the Secret key of the OAuth 2.0 application in WMS, or WILDIX_CLIENT_SECRET_FILE")
		}
	}
	if u, err := url.Parse(cfg.RedirectURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		c.add("WILDIX_REDIRECT_URL", e.RedirectURL, "expected an absolute http(s) URL registered as the application's Redirect URI")
	}
	return AuthOAuth
}

func (c *checker) pbxURL(raw string, allowHTTP, required bool) *url.URL {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		if required {
			c.add("WILDIX_PBX_URL", "", "required: the PBX address, e.g. https://acme.wildixin.com")
		}
		return nil
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") || u.User != nil || u.RawQuery != "" {
		c.add("WILDIX_PBX_URL", raw, "expected https://host[:port] with no user, query or path, e.g. https://acme.wildixin.com")
		return nil
	}
	if u.Path != "" && u.Path != "/" {
		c.add("WILDIX_PBX_URL", raw, "expected the PBX address without a path, e.g. https://acme.wildixin.com")
		return nil
	}
	if p := u.Port(); p != "" || strings.HasSuffix(u.Host, ":") {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			c.add("WILDIX_PBX_URL", raw, "the port must be a number from 1 to 65535, e.g. https://acme.wildixin.com:8443, or left out for 443")
			return nil
		}
	}
	if u.Hostname() == "" {
		c.add("WILDIX_PBX_URL", raw, "expected a host name, e.g. https://acme.wildixin.com")
		return nil
	}
	u.Path = ""
	if u.Scheme == "http" && !allowHTTP && !isLoopback(u.Hostname()) {
		c.add("WILDIX_PBX_URL", raw, "plain http:// sends tokens unencrypted; use https://, or set WILDIX_ALLOW_HTTP=true for a trusted network")
		return nil
	}
	return u
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// ParseSchedule parses a cron spec: five fields, a descriptor such as
// @daily, optionally prefixed with CRON_TZ=Zone. loc applies when the spec
// names no zone.
func ParseSchedule(spec string, loc *time.Location) (cron.Schedule, error) {
	if strings.TrimSpace(spec) == "" {
		return nil, errors.New("empty")
	}
	p := cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)
	if !strings.HasPrefix(spec, "CRON_TZ=") && !strings.HasPrefix(spec, "TZ=") && loc != nil {
		spec = "CRON_TZ=" + loc.String() + " " + spec
	}
	return p.Parse(spec)
}

// Variables lists every environment variable the program reads.
func Variables() []string {
	t := reflect.TypeOf(env{})
	out := make([]string, 0, t.NumField())
	for i := range t.NumField() {
		out = append(out, t.Field(i).Tag.Get("envconfig"))
	}
	return out
}
