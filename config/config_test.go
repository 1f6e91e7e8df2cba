package config

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the README's configuration table")

// good is a complete, valid environment.
func good() env {
	return env{
		PBXURL: "https://acme.wildixin.com", ClientID: "app", ClientSecret: "s3cret",
		RedirectURL: "http://127.0.0.1:8765/callback", TokenAuth: "auto", InsecureTLS: "false", AllowHTTP: "false",
		RequestTimeout: "60s", Sink: "csv", CSVDir: "./export", CSVGzip: "false", CSVSafeFormulas: "false", DBSchema: "wildix", Strict: "false",
		Schedule: "0 2 * * *", PageSize: "1000", Concurrency: "4", BatchSize: "50000", MaxPages: "100000", MaxAttempts: "8",
		RunTimeout: "6h", ShutdownGrace: "30s", Settle: "2m", LogFormat: "auto", LogLevel: "info",
		MaxResponseSize: "64MiB",
	}
}

// s3 configures a complete S3 recordings store.
func s3(e *env) {
	e.RecordingsStore, e.RecordingsToken = "s3", "access_rec"
	e.S3Endpoint, e.S3Bucket, e.S3Region, e.S3Prefix, e.S3PathStyle = "https://s3.eu-west-1.amazonaws.com", "acme-recordings", "eu-west-1", "pbx1/", "true"
	e.S3AccessKey, e.S3SecretKey = "AKIAEXAMPLE", "s3-secret-key"
}

func noFiles(string) ([]byte, error) { return nil, errors.New("no files here") }

func TestParseProblems(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		change func(*env)
		want   []string // variables with a problem, in order
	}{
		{"valid", func(*env) {}, nil},
		{"three at once", func(e *env) { e.PBXURL = "acme"; e.ClientID = ""; e.Schedule = "every night" },
			[]string{"EXPORT_SCHEDULE", "WILDIX_PBX_URL", "WILDIX_CLIENT_ID"}},
		{"http not on loopback", func(e *env) { e.PBXURL = "http://acme.wildixin.com" }, []string{"WILDIX_PBX_URL"}},
		{"http on loopback", func(e *env) { e.PBXURL = "http://127.0.0.1:8080" }, nil},
		{"http allowed", func(e *env) { e.PBXURL = "http://pbx.lan"; e.AllowHTTP = "true" }, nil},
		{"path in URL", func(e *env) { e.PBXURL = "https://acme.wildixin.com/api/v1" }, []string{"WILDIX_PBX_URL"}},
		{"user in URL", func(e *env) { e.PBXURL = "https://u:p@acme.wildixin.com" }, []string{"WILDIX_PBX_URL"}},
		{"port out of range", func(e *env) { e.PBXURL = "https://acme.wildixin.com:99999" }, []string{"WILDIX_PBX_URL"}},
		{"port zero", func(e *env) { e.PBXURL = "https://acme.wildixin.com:0" }, []string{"WILDIX_PBX_URL"}},
		{"port empty", func(e *env) { e.PBXURL = "https://acme.wildixin.com:" }, []string{"WILDIX_PBX_URL"}},
		{"port without a host", func(e *env) { e.PBXURL = "https://:8443" }, []string{"WILDIX_PBX_URL"}},
		{"numbers", func(e *env) { e.PageSize = "0"; e.Concurrency = "many"; e.BatchSize = "-1" },
			[]string{"EXPORT_PAGE_SIZE", "EXPORT_CONCURRENCY", "EXPORT_BATCH_SIZE"}},
		{"durations and booleans", func(e *env) { e.RunTimeout = "forever"; e.CSVGzip = "yes please" },
			[]string{"EXPORT_CSV_GZIP", "EXPORT_RUN_TIMEOUT"}},
		{"enums", func(e *env) { e.Sink = "excel"; e.LogLevel = "loud"; e.TokenAuth = "header" },
			[]string{"WILDIX_TOKEN_AUTH", "EXPORT_SINK", "EXPORT_LOG_LEVEL"}},
		{"zone", func(e *env) { e.Timezone = "Rome" }, []string{"WILDIX_TIMEZONE"}},
		{"endpoints naming none", func(e *env) { e.Endpoints = " , " }, []string{"EXPORT_ENDPOINTS"}},
		{"endpoints named", func(e *env) { e.Endpoints = "call_history, colleagues," }, nil},
		{"schema injection", func(e *env) { e.DBSchema = `wildix"; DROP TABLE x; --` }, []string{"EXPORT_DB_SCHEMA"}},
		{"postgres without url", func(e *env) { e.Sink = "postgres" }, []string{"EXPORT_DATABASE_URL"}},
		{"api key instead of oauth", func(e *env) { e.ClientID, e.ClientSecret, e.APIKey = "", "", "wsk-v1-x" }, nil},
		{"s2s incomplete", func(e *env) { e.S2SAppID = "id" }, []string{"WILDIX_S2S_APP_NAME", "WILDIX_S2S_SECRET"}},
		{"secret twice", func(e *env) { e.ClientSecretFile = "/run/secrets/x" }, []string{"WILDIX_CLIENT_SECRET"}},
		{"secret file missing", func(e *env) { e.ClientSecret = ""; e.ClientSecretFile = "/nope" }, []string{"WILDIX_CLIENT_SECRET_FILE", "WILDIX_CLIENT_SECRET"}},
		{"bad token key", func(e *env) { e.TokenKey = "c2hvcnQ=" }, []string{"WILDIX_TOKEN_KEY"}},
		{"cron with zone", func(e *env) { e.Schedule = "CRON_TZ=Europe/Rome 30 1 * * *" }, nil},
		{"descriptor", func(e *env) { e.Schedule = "@daily" }, nil},
		{"system schemas", func(e *env) { e.DBSchema = "information_schema" }, []string{"EXPORT_DB_SCHEMA"}},
		{"pg_catalog", func(e *env) { e.DBSchema = "pg_catalog" }, []string{"EXPORT_DB_SCHEMA"}},
		{"pg_toast", func(e *env) { e.DBSchema = "pg_toast" }, []string{"EXPORT_DB_SCHEMA"}},
		{"pg_temp", func(e *env) { e.DBSchema = "pg_temp_3" }, []string{"EXPORT_DB_SCHEMA"}},
		{"pg_toast_temp", func(e *env) { e.DBSchema = "pg_toast_temp_1" }, []string{"EXPORT_DB_SCHEMA"}},
		{"schema starting with _", func(e *env) { e.DBSchema = "_x" }, nil},
		{"schema starting with a digit", func(e *env) { e.DBSchema = "1x" }, []string{"EXPORT_DB_SCHEMA"}},
		{"PBX id at the limit", func(e *env) { e.PBXID = strings.Repeat("a", 84) + "é" }, nil},
		{"PBX id over the limit", func(e *env) { e.PBXID = strings.Repeat("a", 85) + "é" }, []string{"WILDIX_PBX_ID"}},
		{"PBX id of 300 characters", func(e *env) { e.PBXID = strings.Repeat("p", 300) }, []string{"WILDIX_PBX_ID"}},
		{"PBX id of 300 characters, PostgreSQL", func(e *env) {
			e.Sink, e.DatabaseURL, e.PBXID = "postgres", "postgres://u@h/db", strings.Repeat("p", 300)
		}, nil},
		{"PBX id from a long host", func(e *env) { e.PBXURL = "https://" + strings.Repeat("h", 91) + ".example" }, []string{"WILDIX_PBX_ID"}},
		{"schema like a system one", func(e *env) { e.DBSchema = "pgx_reports" }, nil},
		{"CA file missing", func(e *env) { e.CAFile = "/nope/ca.pem" }, []string{"WILDIX_CA_FILE"}},
		{"database URL unparsable", func(e *env) { e.Sink, e.DatabaseURL = "postgres", "postgres://u:pw@h:notaport/db" }, []string{"EXPORT_DATABASE_URL"}},
		{"database URL key=value", func(e *env) { e.Sink, e.DatabaseURL = "postgres", "host=db dbname=reports" }, nil},
		{"listen address", func(e *env) { e.HTTPAddr = "9090" }, []string{"EXPORT_HTTP_ADDR"}},
		{"listen port", func(e *env) { e.HTTPAddr = ":99999" }, []string{"EXPORT_HTTP_ADDR"}},
		{"listen address ok", func(e *env) { e.HTTPAddr = "127.0.0.1:9090" }, nil},
		{"recordings to a folder", func(e *env) {
			e.RecordingsStore, e.RecordingsDir, e.RecordingsToken = "dir", os.TempDir(), "access_rec"
		}, nil},
		{"recordings store in capitals", func(e *env) {
			e.RecordingsStore, e.RecordingsDir, e.RecordingsToken = " DIR ", os.TempDir(), "access_rec"
		}, nil},
		{"recordings with the API key as Simple Token", func(e *env) {
			e.ClientID, e.ClientSecret, e.APIKey, e.RecordingsStore, e.RecordingsDir = "", "", "access_main", "dir", os.TempDir()
		}, nil},
		{"recordings with a company key", func(e *env) {
			e.ClientID, e.ClientSecret, e.APIKey, e.RecordingsStore, e.RecordingsDir = "", "", "wsk-v1-x", "dir", os.TempDir()
		}, []string{"WILDIX_RECORDINGS_TOKEN"}},
		{"recordings token a company key", func(e *env) { e.RecordingsToken = "wsk-v1-x" }, []string{"WILDIX_RECORDINGS_TOKEN"}},
		{"recordings without a token", func(e *env) { e.RecordingsStore, e.RecordingsDir = "dir", os.TempDir() }, []string{"WILDIX_RECORDINGS_TOKEN"}},
		{"recordings folder missing", func(e *env) {
			e.RecordingsStore, e.RecordingsDir, e.RecordingsToken = "dir", "/nope/recordings", "access_rec"
		}, []string{"EXPORT_RECORDINGS_DIR"}},
		{"recordings folder a file", func(e *env) {
			e.RecordingsStore, e.RecordingsDir, e.RecordingsToken = "dir", "/etc/hostname", "access_rec"
		}, []string{"EXPORT_RECORDINGS_DIR"}},
		{"recordings folder not set", func(e *env) { e.RecordingsStore, e.RecordingsToken = "dir", "access_rec" }, []string{"EXPORT_RECORDINGS_DIR"}},
		{"recordings store unknown", func(e *env) { e.RecordingsStore = "nas" }, []string{"EXPORT_RECORDINGS_STORE"}},
		{"recordings folder without the store", func(e *env) { e.RecordingsDir = os.TempDir() }, []string{"EXPORT_RECORDINGS_DIR"}},
		{"recordings bucket without the store", func(e *env) {
			e.RecordingsStore, e.RecordingsDir, e.RecordingsToken, e.S3Bucket = "dir", os.TempDir(), "access_rec", "b1"
		},
			[]string{"EXPORT_RECORDINGS_S3_BUCKET"}},
		{"recordings endpoint without a store", func(e *env) { e.Endpoints = "call_history,recordings" }, []string{"EXPORT_RECORDINGS_STORE"}},
		{"recordings to S3", func(e *env) { s3(e) }, nil},
		{"recordings to S3 on loopback over http", func(e *env) { s3(e); e.S3Endpoint = "http://127.0.0.1:7070" }, nil},
		{"recordings to S3 over http", func(e *env) { s3(e); e.S3Endpoint = "http://minio.lan:9000" }, []string{"EXPORT_RECORDINGS_S3_ENDPOINT"}},
		{"recordings to S3 over http allowed", func(e *env) { s3(e); e.S3Endpoint, e.AllowHTTP = "http://minio.lan:9000", "true" }, nil},
		{"recordings to S3, endpoint with a path", func(e *env) { s3(e); e.S3Endpoint = "https://s3.example.com/bucket" }, []string{"EXPORT_RECORDINGS_S3_ENDPOINT"}},
		{"recordings to S3, bad names", func(e *env) { s3(e); e.S3Bucket, e.S3Region, e.S3Prefix = "My_Bucket", "eu west", "/a//b" },
			[]string{"EXPORT_RECORDINGS_S3_BUCKET", "EXPORT_RECORDINGS_S3_REGION", "EXPORT_RECORDINGS_S3_PREFIX"}},
		{"recordings to S3, nothing set", func(e *env) { e.RecordingsStore, e.RecordingsToken, e.S3PathStyle = "s3", "access_rec", "maybe" },
			[]string{"EXPORT_RECORDINGS_S3_PATH_STYLE", "EXPORT_RECORDINGS_S3_ENDPOINT", "EXPORT_RECORDINGS_S3_BUCKET", "EXPORT_RECORDINGS_S3_ACCESS_KEY", "EXPORT_RECORDINGS_S3_SECRET_KEY"}},
		{"all the late ones together", func(e *env) {
			e.CAFile, e.HTTPAddr, e.DBSchema, e.Sink, e.DatabaseURL = "/nope", "x", "pg_catalog", "postgres", "postgres://%zz"
		}, []string{"EXPORT_DB_SCHEMA", "WILDIX_CA_FILE", "EXPORT_HTTP_ADDR", "EXPORT_DATABASE_URL"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := good()
			tc.change(&e)
			_, err := parse(e, Need{PBX: true, Sink: true}, noFiles)
			var got []string
			var ce *Error
			if errors.As(err, &ce) {
				for _, p := range ce.Problems {
					got = append(got, p.Var)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("problems with %v, want %v\n%v", got, tc.want, err)
			}
		})
	}
}

func TestSecretsFromFilesAndRedaction(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "secret")
	os.WriteFile(path, []byte("from-file-secret\n"), 0o600)
	e := good()
	e.ClientSecret, e.ClientSecretFile = "", path
	e.Sink, e.DatabaseURL = "postgres", "postgres://u:db-password@h/db"
	s3(&e)
	e.RecordingsToken, e.RecTokenFile = "", path
	e.S3SecretKey = "s3-secret-in-env"
	cfg, err := parse(e, Need{PBX: true, Sink: true}, os.ReadFile)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ClientSecret.Value() != "from-file-secret" {
		t.Fatalf("secret from file = %q", cfg.ClientSecret.Value())
	}
	if tok, from := cfg.RecordingsCredential(); tok.Value() != "from-file-secret" || from != "WILDIX_RECORDINGS_TOKEN" {
		t.Fatalf("recordings token from file = %q from %s", tok.Value(), from)
	}
	var out bytes.Buffer
	cfg.Print(&out)
	fmt.Fprintf(&out, "%v %+v %#v %s", cfg, cfg, cfg, cfg.ClientSecret)
	slog.New(slog.NewTextHandler(&out, nil)).Info("config", "cfg", cfg, "secret", cfg.DatabaseURL)
	slog.New(slog.NewJSONHandler(&out, nil)).Info("config", "cfg", cfg, "secret", cfg.ClientSecret)
	for _, s := range []string{"from-file-secret", "db-password", "s3-secret-in-env", "AKIAEXAMPLE"} {
		if strings.Contains(out.String(), s) {
			t.Fatalf("%q appears in:\n%s", s, out.String())
		}
	}
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	env := map[string]string{"WILDIX_PBX_URL": "https://acme.wildixin.com", "EXPORT_PAGE_SIZE": "200", "WILDIX_SCOPES": ""}
	cfg, err := Load(Need{}, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Sink != "csv" || cfg.CSVDir != "./export" || cfg.DBSchema != "wildix" || cfg.Schedule != "0 2 * * *" ||
		cfg.PageSize != 200 || cfg.PBXID != "acme.wildixin.com" || cfg.Timezone != nil || cfg.ScheduleTimezone != time.UTC {
		t.Fatalf("defaults: %+v", cfg)
	}
}

// TestPrintListsEveryVariable: config prints each variable the program
// reads, from the struct tags, with its effective value.
func TestPrintListsEveryVariable(t *testing.T) {
	t.Parallel()
	e := good()
	e.Scopes, e.Endpoints, e.APIKey, e.ClientSecret = "a b", "call_history, colleagues", "", "s3cret-in-print"
	cfg, err := parse(e, Need{}, noFiles)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := cfg.Print(&out); err != nil {
		t.Fatal(err)
	}
	printed := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		k, v, _ := strings.Cut(line, " ")
		printed[k] = strings.TrimSpace(v)
	}
	for _, v := range Variables() {
		if _, ok := printed[v]; !ok && !strings.HasSuffix(v, "_FILE") {
			t.Errorf("config does not print %s", v)
		}
	}
	for k, want := range map[string]string{
		"authentication": "oauth", "WILDIX_PBX_URL": "https://acme.wildixin.com", "WILDIX_PBX_ID": "acme.wildixin.com",
		"WILDIX_SCOPES": "a b", "EXPORT_ENDPOINTS": "call_history,colleagues", "WILDIX_CLIENT_SECRET": "[redacted]",
		"WILDIX_API_KEY": "(not set)", "EXPORT_PAGE_SIZE": "1000", "EXPORT_RUN_TIMEOUT": "6h0m0s", "EXPORT_CSV_GZIP": "false",
		"EXPORT_TIMEZONE": "UTC", "WILDIX_TIMEZONE": "(not set)",
	} {
		if printed[k] != want {
			t.Errorf("%s printed as %q, want %q", k, printed[k], want)
		}
	}
	if strings.Contains(out.String(), "s3cret-in-print") {
		t.Fatalf("a secret is printed:\n%s", out.String())
	}
}

// TestREADMETable keeps the README's configuration table in step with the
// variables the program reads. Run with -update to rewrite it.
func TestREADMETable(t *testing.T) {
	var table bytes.Buffer
	if err := Markdown(&table); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("..", "README.md")
	readme, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	const begin, end = "<!-- config:begin -->\n", "<!-- config:end -->"
	i, j := bytes.Index(readme, []byte(begin)), bytes.Index(readme, []byte(end))
	if i < 0 || j < i {
		t.Fatalf("README.md lacks the %q … %q markers", begin, end)
	}
	current := readme[i+len(begin) : j]
	if bytes.Equal(current, table.Bytes()) {
		return
	}
	if !*update {
		t.Fatalf("README.md's configuration table is out of date: run go test ./config -update")
	}
	out := append(append(append([]byte{}, readme[:i+len(begin)]...), table.Bytes()...), readme[j:]...)
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestMaxResponseSize(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want int64 // 0: a problem
	}{
		{"64MiB", 64 << 20},
		{" 512 KiB ", 512 << 10},
		{"1GiB", 1 << 30},
		{"4GiB", 4 << 30},
		{"1048576", 1 << 20},
		{"64KiB", 64 << 10},
		{"65535", 0},
		{"5GiB", 0},
		{"64MB", 0},
		{"-1MiB", 0},
		{"lots", 0},
		{"9223372036854775807GiB", 0},
	} {
		e := good()
		e.MaxResponseSize = tc.in
		cfg, err := parse(e, Need{PBX: true, Sink: true}, noFiles)
		var ce *Error
		switch {
		case tc.want == 0:
			if !errors.As(err, &ce) || len(ce.Problems) != 1 || ce.Problems[0].Var != "EXPORT_MAX_RESPONSE_SIZE" {
				t.Errorf("%q: err %v, want one problem with EXPORT_MAX_RESPONSE_SIZE", tc.in, err)
			}
		case err != nil:
			t.Errorf("%q: %v", tc.in, err)
		case cfg.MaxResponseSize != tc.want:
			t.Errorf("%q = %d, want %d", tc.in, cfg.MaxResponseSize, tc.want)
		}
	}
}

// TestCAFileNotPEMAndDatabaseURLNotShown: a CA file that holds no
// certificate is a problem at start; an unparsable database URL is
// reported without its value, which may hold the password.
func TestCAFileNotPEMAndDatabaseURLNotShown(t *testing.T) {
	t.Parallel()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e := good()
	e.CAFile, e.Sink, e.DatabaseURL = ca, "postgres", "postgres://u:db-pass-77@h:port/db"
	_, err := parse(e, Need{PBX: true, Sink: true}, os.ReadFile)
	var ce *Error
	if !errors.As(err, &ce) || len(ce.Problems) != 2 {
		t.Fatalf("want two problems, got %v", err)
	}
	if !strings.Contains(err.Error(), "WILDIX_CA_FILE=\""+ca+"\": holds no PEM certificate") {
		t.Fatalf("CA problem not named: %v", err)
	}
	if !strings.Contains(err.Error(), "EXPORT_DATABASE_URL: cannot be parsed") || strings.Contains(err.Error(), "db-pass-77") {
		t.Fatalf("database URL problem: %v", err)
	}
}

// TestRecordingsProblemsSayWhatToDo: each recordings problem names the
// variable, the value unless secret, and what to do.
func TestRecordingsProblemsSayWhatToDo(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		change func(*env)
		want   []string
		never  []string
	}{
		{"no token", func(e *env) { e.RecordingsStore, e.RecordingsDir = "dir", os.TempDir() },
			[]string{"WILDIX_RECORDINGS_TOKEN: required with EXPORT_RECORDINGS_STORE=dir", "an OAuth token", "Simple Token"}, nil},
		{"company key", func(e *env) { e.RecordingsToken = "wsk-v1-secretvalue" },
			[]string{"WILDIX_RECORDINGS_TOKEN: is a company key", "Simple Token"}, []string{"secretvalue"}},
		{"folder missing", func(e *env) { e.RecordingsStore, e.RecordingsDir, e.RecordingsToken = "dir", "/nope/rec", "access_x" },
			[]string{`EXPORT_RECORDINGS_DIR="/nope/rec": no such folder: create it, or mount the volume, first`}, nil},
		{"forgotten store", func(e *env) { e.RecordingsDir = "/mnt/nas" },
			[]string{`EXPORT_RECORDINGS_DIR="/mnt/nas": set, but EXPORT_RECORDINGS_STORE=none: set EXPORT_RECORDINGS_STORE=dir`}, nil},
		{"endpoint without a store", func(e *env) { e.Endpoints = "recordings" },
			[]string{`EXPORT_RECORDINGS_STORE="none": EXPORT_ENDPOINTS names recordings, which needs a store`}, nil},
		{"endpoint with credentials", func(e *env) { s3(e); e.S3Endpoint = "https://AKIA:topsecret@s3.example.com" },
			[]string{"EXPORT_RECORDINGS_S3_ENDPOINT: expected https://host[:port]"}, []string{"topsecret"}},
		{"secret key file missing", func(e *env) { s3(e); e.S3SecretKey, e.S3SecretKeyFile = "", "/nope/key" },
			[]string{`EXPORT_RECORDINGS_S3_SECRET_KEY_FILE="/nope/key": cannot read the file`}, []string{"s3-secret-key"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := good()
			tc.change(&e)
			_, err := parse(e, Need{PBX: true, Sink: true}, noFiles)
			if err == nil {
				t.Fatal("no problem reported")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("message lacks %q:\n%v", w, err)
				}
			}
			for _, n := range tc.never {
				if strings.Contains(err.Error(), n) {
					t.Errorf("message shows %q:\n%v", n, err)
				}
			}
		})
	}
}

// TestPrintRecordingsToken: with a store, config says which variable the
// recordings token comes from, never the token.
func TestPrintRecordingsToken(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		change func(*env)
		want   string
	}{
		{func(e *env) { s3(e) }, "WILDIX_RECORDINGS_TOKEN"},
		{func(e *env) {
			s3(e)
			e.RecordingsToken, e.ClientID, e.ClientSecret, e.APIKey = "", "", "", "access_main-key"
		}, "WILDIX_API_KEY"},
		{func(e *env) { s3(e); e.RecordingsToken = "" }, "none: set WILDIX_RECORDINGS_TOKEN"},
	} {
		e := good()
		tc.change(&e)
		cfg, _ := parse(e, Need{}, noFiles)
		var out bytes.Buffer
		cfg.Print(&out)
		if !regexp.MustCompile(`(?m)^recordings token +`+regexp.QuoteMeta(tc.want)+`$`).MatchString(out.String()) || strings.Contains(out.String(), "access_") {
			t.Errorf("want the line recordings token %s, no token:\n%s", tc.want, out.String())
		}
	}
}
