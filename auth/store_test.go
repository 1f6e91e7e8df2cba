package auth

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

// TestKeyedStoreRefusesUnsealedRecords: with WILDIX_TOKEN_KEY set, a token
// or an authorization in progress written in clear into the store (by a
// store without the key: a planted record) is refused with exit code 3's
// error, saying that authorize replaces it and how to remove it; authorize
// (a sealed save) then works. Without a key, the same records are read.
func TestKeyedStoreRefusesUnsealedRecords(t *testing.T) {
	t.Parallel()
	key := make([]byte, 32)
	for i := range key {
		key[i] = byte(3 * i)
	}
	type stores struct {
		clear, keyed PendingStore
		remove       []string // what the messages say to remove: token, pending
	}
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T) stores
	}{
		{"file", func(t *testing.T) stores {
			clear := fileStore(t, nil)
			keyed, err := NewFileStore(clear.Path(), key)
			if err != nil {
				t.Fatal(err)
			}
			return stores{clear, keyed, []string{`delete the entry "pbx'1" under "tokens" in ` + clear.Path(),
				`delete the entry "pbx'1" under "pending" in ` + clear.PendingPath()}}
		}},
		{"postgres", func(t *testing.T) stores {
			schema, pool := migratedSchema(t)
			clear, err := NewPostgresStore(pool, schema, nil)
			if err != nil {
				t.Fatal(err)
			}
			keyed, err := NewPostgresStore(pool, schema, key)
			if err != nil {
				t.Fatal(err)
			}
			return stores{clear, keyed, []string{`DELETE FROM "` + schema + `"."oauth_tokens" WHERE pbx = 'pbx''1';`,
				`DELETE FROM "` + schema + `"."oauth_pending" WHERE pbx = 'pbx''1';`}}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			s := tc.setup(t)
			const pbx = "pbx'1"
			planted := &Record{AccessToken: "planted-access", RefreshToken: "planted-refresh", Expiry: time.Now().Add(time.Hour), IssuedAt: time.Now()}
			pending := &Pending{State: "planters-state", Verifier: "planters-verifier", Origin: "https://pbx.example:443", ClientID: clientID,
				Started: time.Now(), Expires: time.Now().Add(10 * 365 * 24 * time.Hour)}
			if err := s.clear.Save(ctx, pbx, planted); err != nil {
				t.Fatal(err)
			}
			if err := s.clear.SavePending(ctx, pbx, pending); err != nil {
				t.Fatal(err)
			}
			if _, err := s.clear.Load(ctx, pbx); err != nil {
				t.Fatalf("without a key, the record in clear is read: %v", err)
			}

			_, errToken := s.keyed.Load(ctx, pbx)
			_, errPending := s.keyed.LoadPending(ctx, pbx)
			for i, err := range []error{errToken, errPending} {
				if !errors.Is(err, ErrReauthorize) {
					t.Fatalf("keyed store read a record in clear: %v", err)
				}
				for _, want := range []string{"not encrypted although WILDIX_TOKEN_KEY is set", "`wildix-export authorize` replaces it", s.remove[i]} {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("error %q does not say %q", err, want)
					}
				}
				if strings.Contains(err.Error(), "planted-") || strings.Contains(err.Error(), "planters-") {
					t.Errorf("error shows the record: %v", err)
				}
			}

			// authorize replaces both with sealed records.
			if err := s.keyed.Save(ctx, pbx, &Record{AccessToken: "new", IssuedAt: time.Now()}); err != nil {
				t.Fatal(err)
			}
			if err := s.keyed.SavePending(ctx, pbx, &Pending{State: "s", Started: time.Now(), Expires: time.Now().Add(PendingTTL)}); err != nil {
				t.Fatal(err)
			}
			if r, err := s.keyed.Load(ctx, pbx); err != nil || r.AccessToken != "new" {
				t.Fatalf("after a sealed save: %v, %v", r, err)
			}
			if p, err := s.keyed.LoadPending(ctx, pbx); err != nil || p.State != "s" {
				t.Fatalf("after a sealed save: %v, %v", p, err)
			}
		})
	}
}

// TestAlteredSealedRecordNeedsAuthorize: with WILDIX_TOKEN_KEY set, a
// sealed token or authorization in progress that does not open (a byte of
// it altered, its text damaged, or sealed with another key) is refused
// as needing authorize (exit 3, as a record in clear is), never as a
// failed export (exit 1), and the message does not show the record.
func TestAlteredSealedRecordNeedsAuthorize(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	key, other := make([]byte, 32), make([]byte, 32)
	for i := range key {
		key[i], other[i] = byte(5*i), byte(7*i+1)
	}
	alter := map[string]func(string) string{
		"a byte altered": func(v string) string {
			raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(v, sealedPrefix))
			if err != nil {
				t.Fatal(err)
			}
			raw[len(raw)-1] ^= 1
			return sealedPrefix + base64.StdEncoding.EncodeToString(raw)
		},
		"damaged":     func(string) string { return sealedPrefix + "!!not base64" },
		"too short":   func(string) string { return sealedPrefix + "AAAA" },
		"another key": func(v string) string { return v },
	}
	for name, change := range alter {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := fileStore(t, key)
			if err := s.Save(ctx, "pbx1", &Record{AccessToken: "secret-access", IssuedAt: time.Now()}); err != nil {
				t.Fatal(err)
			}
			if err := s.SavePending(ctx, "pbx1", &Pending{State: "secret-state", Started: time.Now(), Expires: time.Now().Add(PendingTTL)}); err != nil {
				t.Fatal(err)
			}
			for _, f := range []struct{ path, field string }{{s.Path(), "tokens"}, {s.PendingPath(), "pending"}} {
				var c map[string]any
				b, err := os.ReadFile(f.path)
				if err != nil {
					t.Fatal(err)
				}
				if err := json.Unmarshal(b, &c); err != nil {
					t.Fatal(err)
				}
				m := c[f.field].(map[string]any)
				m["pbx1"] = change(m["pbx1"].(string))
				if b, err = json.Marshal(c); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(f.path, b, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			read := s
			if name == "another key" {
				var err error
				if read, err = NewFileStore(s.Path(), other); err != nil {
					t.Fatal(err)
				}
			}
			_, errToken := read.Load(ctx, "pbx1")
			_, errPending := read.LoadPending(ctx, "pbx1")
			for _, err := range []error{errToken, errPending} {
				if !errors.Is(err, ErrReauthorize) {
					t.Errorf("err = %v, want ErrReauthorize", err)
				}
				if err != nil && strings.Contains(err.Error(), "secret-") {
					t.Errorf("error shows the record: %v", err)
				}
			}
		})
	}
}
