package config

import (
	"cmp"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
)

// Recordings stores, as EXPORT_RECORDINGS_STORE names them.
const (
	StoreNone = "none"
	StoreDir  = "dir"
	StoreS3   = "s3"
)

// RecordingsEndpoint is the catalog's name of the call recordings'
// endpoint: exported by default only when a store is configured.
const RecordingsEndpoint = "recordings"

// simpleTokenPrefix starts a PBX Simple Token, the only credential known
// to fetch recording files; a company key (wsk-v1-…) does not.
const simpleTokenPrefix = "access_"

// RecordingsCredential is the token that fetches recording files, and
// the variable it comes from: WILDIX_RECORDINGS_TOKEN when set, else
// WILDIX_API_KEY when it is a PBX Simple Token (access_…), else none. A
// token set on purpose for recordings wins over the main credential.
func (c *Config) RecordingsCredential() (Secret, string) {
	switch {
	case c.RecordingsToken.IsSet():
		return c.RecordingsToken, "WILDIX_RECORDINGS_TOKEN"
	case c.Auth == AuthAPIKey && strings.HasPrefix(c.APIKey.Value(), simpleTokenPrefix):
		return c.APIKey, "WILDIX_API_KEY"
	}
	return "", ""
}

// RecordingsOn reports whether a recordings store is configured.
func (c *Config) RecordingsOn() bool {
	return c.RecordingsStore == StoreDir || c.RecordingsStore == StoreS3
}

// createSimpleToken says where a Simple Token is made.
const createSimpleToken = "create a PBX Simple Token for an admin user in WMS (PBX > Integrations > Applications > Simple Token) and set it in WILDIX_RECORDINGS_TOKEN (or WILDIX_RECORDINGS_TOKEN_FILE)"

// s3Bucket is an S3 bucket name (AWS's rule; other servers accept it too).
var s3Bucket = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)

// s3Region is a region name such as eu-west-1 or us-east-1.
var s3Region = regexp.MustCompile(`^[a-z0-9-]{1,64}$`)

// recordings checks the recordings store and its token. A setting of a
// store that is not the one chosen is a problem, not ignored: a folder or
// bucket set with EXPORT_RECORDINGS_STORE forgotten would otherwise copy
// nothing, silently.
func (c *checker) recordings(cfg *Config, e env, need Need) {
	store := cmp.Or(strings.ToLower(strings.TrimSpace(e.RecordingsStore)), StoreNone)
	cfg.RecordingsStore = c.oneOf("EXPORT_RECORDINGS_STORE", store, StoreNone, StoreDir, StoreS3)
	cfg.RecordingsGroup = c.boolean("EXPORT_RECORDINGS_GROUP_READABLE", cmp.Or(e.RecordingsGroup, "false"))
	cfg.S3PathStyle = c.boolean("EXPORT_RECORDINGS_S3_PATH_STYLE", cmp.Or(e.S3PathStyle, "false"))
	cfg.RecordingsDir = e.RecordingsDir
	cfg.S3Region = strings.TrimSpace(e.S3Region)
	cfg.S3Bucket = strings.TrimSpace(e.S3Bucket)
	cfg.S3Prefix = strings.TrimSpace(e.S3Prefix)
	cfg.RecordingsToken = c.secret("WILDIX_RECORDINGS_TOKEN", e.RecordingsToken, "WILDIX_RECORDINGS_TOKEN_FILE", e.RecTokenFile)
	cfg.S3AccessKey = c.secret("EXPORT_RECORDINGS_S3_ACCESS_KEY", e.S3AccessKey, "EXPORT_RECORDINGS_S3_ACCESS_KEY_FILE", e.S3AccessKeyFile)
	cfg.S3SecretKey = c.secret("EXPORT_RECORDINGS_S3_SECRET_KEY", e.S3SecretKey, "EXPORT_RECORDINGS_S3_SECRET_KEY_FILE", e.S3SecretKeyFile)

	if !cfg.RecordingsOn() && slices.Contains(cfg.Endpoints, RecordingsEndpoint) {
		c.add("EXPORT_RECORDINGS_STORE", cfg.RecordingsStore, "EXPORT_ENDPOINTS names recordings, which needs a store: set EXPORT_RECORDINGS_STORE=dir with EXPORT_RECORDINGS_DIR, or s3 with EXPORT_RECORDINGS_S3_BUCKET and its settings")
	}
	c.storeSettings(cfg, e)
	switch cfg.RecordingsStore {
	case StoreDir:
		c.recordingsDir(cfg.RecordingsDir, need.Sink)
	case StoreS3:
		c.recordingsS3(cfg, e, need.Sink)
	}
	if cfg.RecordingsToken.IsSet() && strings.HasPrefix(cfg.RecordingsToken.Value(), "wsk-") {
		c.add("WILDIX_RECORDINGS_TOKEN", "", "is a company key (wsk-v1-…), which the PBX refuses for recording files: "+createSimpleToken)
	}
	if cfg.RecordingsOn() && need.PBX {
		if tok, _ := cfg.RecordingsCredential(); !tok.IsSet() {
			c.add("WILDIX_RECORDINGS_TOKEN", "", fmt.Sprintf("required with EXPORT_RECORDINGS_STORE=%s: recording files need a PBX Simple Token (access_…), which %s is not: %s",
				cfg.RecordingsStore, mainCredential(cfg), createSimpleToken))
		}
	}
}

// mainCredential names the main credential, for a message saying it does
// not fetch recordings.
func mainCredential(cfg *Config) string {
	switch cfg.Auth {
	case AuthAPIKey:
		return "WILDIX_API_KEY"
	case AuthS2S:
		return "S2S signing"
	}
	return "an OAuth token"
}

// storeSettings refuses the settings of a store not chosen.
func (c *checker) storeSettings(cfg *Config, e env) {
	if cfg.RecordingsStore != StoreDir {
		if strings.TrimSpace(e.RecordingsDir) != "" {
			c.add("EXPORT_RECORDINGS_DIR", e.RecordingsDir, fmt.Sprintf("set, but EXPORT_RECORDINGS_STORE=%s: set EXPORT_RECORDINGS_STORE=dir to copy recordings into it, or unset EXPORT_RECORDINGS_DIR", cfg.RecordingsStore))
		}
	}
	if cfg.RecordingsStore != StoreS3 {
		for _, v := range []struct{ name, value string }{{"EXPORT_RECORDINGS_S3_ENDPOINT", e.S3Endpoint}, {"EXPORT_RECORDINGS_S3_BUCKET", e.S3Bucket}} {
			if strings.TrimSpace(v.value) != "" {
				c.add(v.name, v.value, fmt.Sprintf("set, but EXPORT_RECORDINGS_STORE=%s: set EXPORT_RECORDINGS_STORE=s3 to copy recordings to the bucket, or unset %s", cfg.RecordingsStore, v.name))
			}
		}
	}
}

// recordingsDir checks the folder of the directory store: required, and
// there already (it is never created, so that a volume not mounted is
// not replaced by a folder on the container's own disk).
func (c *checker) recordingsDir(dir string, required bool) {
	if strings.TrimSpace(dir) == "" {
		if required {
			c.add("EXPORT_RECORDINGS_DIR", "", "required with EXPORT_RECORDINGS_STORE=dir: the folder recordings are copied into, e.g. /var/lib/wildix-export/recordings (it must exist)")
		}
		return
	}
	st, err := os.Stat(dir)
	switch {
	case os.IsNotExist(err):
		c.add("EXPORT_RECORDINGS_DIR", dir, "no such folder: create it, or mount the volume, first (it is never created, so that a volume not mounted is not replaced by a folder on this machine's disk)")
	case err != nil:
		c.add("EXPORT_RECORDINGS_DIR", dir, fmt.Sprintf("cannot be used: %v", cmp.Or(unwrap(err), err)))
	case !st.IsDir():
		c.add("EXPORT_RECORDINGS_DIR", dir, "is not a folder: expected the folder recordings are copied into")
	}
}

func unwrap(err error) error {
	if u, ok := err.(interface{ Unwrap() error }); ok {
		return u.Unwrap()
	}
	return nil
}

// recordingsS3 checks the S3 store's settings.
func (c *checker) recordingsS3(cfg *Config, e env, required bool) {
	raw := strings.TrimSpace(e.S3Endpoint)
	switch {
	case raw == "":
		if required {
			c.add("EXPORT_RECORDINGS_S3_ENDPOINT", "", "required with EXPORT_RECORDINGS_STORE=s3: the server's address, e.g. https://s3.eu-west-1.amazonaws.com or https://minio.example.com:9000")
		}
	default:
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.Hostname() == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
			// Not shown: a user-info part or a query may hold a key.
			c.add("EXPORT_RECORDINGS_S3_ENDPOINT", "", "expected https://host[:port] with no path, query or credentials, e.g. https://s3.eu-west-1.amazonaws.com (the bucket goes in EXPORT_RECORDINGS_S3_BUCKET, the keys in their own variables)")
			break
		}
		if u.Scheme == "http" && !cfg.AllowHTTP && !isLoopback(u.Hostname()) {
			c.add("EXPORT_RECORDINGS_S3_ENDPOINT", raw, "plain http:// sends the recordings unencrypted; use https://, or set WILDIX_ALLOW_HTTP=true for a trusted network")
			break
		}
		u.Path = ""
		cfg.S3Endpoint = u
	}
	if cfg.S3Bucket == "" {
		if required {
			c.add("EXPORT_RECORDINGS_S3_BUCKET", "", "required with EXPORT_RECORDINGS_STORE=s3: the bucket's name (it must exist)")
		}
	} else if !s3Bucket.MatchString(cfg.S3Bucket) || strings.Contains(cfg.S3Bucket, "..") {
		c.add("EXPORT_RECORDINGS_S3_BUCKET", e.S3Bucket, "expected a bucket name: 3 to 63 lower-case letters, digits, dots and hyphens, starting and ending with a letter or digit (a folder inside it goes in EXPORT_RECORDINGS_S3_PREFIX)")
	}
	if cfg.S3Region != "" && !s3Region.MatchString(cfg.S3Region) {
		c.add("EXPORT_RECORDINGS_S3_REGION", e.S3Region, "expected a region name such as eu-west-1, or leave it unset to ask the server")
	}
	if p := cfg.S3Prefix; p != "" {
		bad := strings.HasPrefix(p, "/") || strings.ContainsFunc(p, func(r rune) bool { return r < 0x20 || r == 0x7f })
		for _, part := range strings.Split(strings.TrimSuffix(p, "/"), "/") {
			bad = bad || part == "" || part == "." || part == ".."
		}
		if bad {
			c.add("EXPORT_RECORDINGS_S3_PREFIX", p, "expected names separated by single slashes, e.g. recordings/ or backups/pbx1/: no leading slash, no . or .., no control characters")
		}
	}
	if required {
		if !cfg.S3AccessKey.IsSet() {
			c.add("EXPORT_RECORDINGS_S3_ACCESS_KEY", "", "required with EXPORT_RECORDINGS_STORE=s3: the access key id of a key allowed to list the bucket and put, get and abort uploads of objects (or EXPORT_RECORDINGS_S3_ACCESS_KEY_FILE)")
		}
		if !cfg.S3SecretKey.IsSet() {
			c.add("EXPORT_RECORDINGS_S3_SECRET_KEY", "", "required with EXPORT_RECORDINGS_STORE=s3: the key's secret (or EXPORT_RECORDINGS_S3_SECRET_KEY_FILE)")
		}
	}
}
