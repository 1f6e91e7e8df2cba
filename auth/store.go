// Package auth authenticates wildix-export to a PBX: the one-time OAuth 2.0
// authorization-code flow (Authorize, or BeginAuthorize and FinishAuthorize
// in two processes sharing the store), a durable token store keyed by PBX
// (FileStore, PostgresStore), a token source that refreshes before expiry
// and persists every new token before it is used (Source), static bearer
// keys, and Wildix S2S signed requests (S2S). Credentials go only to the
// PBX's own origin (SameOrigin, and the transports' own check). What it
// hands the rest of the program is an *http.Client's transport.
package auth

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/oauth2"
)

// Record is what a Store keeps for one PBX.
type Record struct {
	AccessToken  string    `json:"access_token"`
	TokenType    string    `json:"token_type,omitempty"`
	RefreshToken string    `json:"refresh_token,omitempty"`
	Expiry       time.Time `json:"expiry,omitzero"`
	// ClientAuth is how the token endpoint accepted the client credentials,
	// "body" or "basic", remembered so detection happens once.
	ClientAuth string    `json:"client_auth,omitempty"`
	ClientID   string    `json:"client_id,omitempty"`
	IssuedAt   time.Time `json:"issued_at"`
}

// Token returns the record as an oauth2 token.
func (r *Record) Token() *oauth2.Token {
	return &oauth2.Token{AccessToken: r.AccessToken, TokenType: r.TokenType, RefreshToken: r.RefreshToken, Expiry: r.Expiry}
}

// String never shows the tokens, so a Record is safe to log or format.
func (r *Record) String() string {
	return fmt.Sprintf("token(expiry=%s, refresh=%t, client_auth=%s)", r.Expiry.Format(time.RFC3339), r.RefreshToken != "", r.ClientAuth)
}

// GoString redacts for %#v as well.
func (r *Record) GoString() string { return r.String() }

// Store keeps one token record per PBX.
//
// Lock serialises refreshes across processes and machines sharing the store:
// whoever holds it may refresh and Save; unlock must be called. Load returns
// an error wrapping ErrNoToken when nothing is stored for the PBX.
type Store interface {
	Load(ctx context.Context, pbx string) (*Record, error)
	Save(ctx context.Context, pbx string, r *Record) error
	Lock(ctx context.Context, pbx string) (unlock func(), err error)
}

// ErrNoToken means no token is stored for the PBX.
var ErrNoToken = errors.New("no token stored")

// ErrReauthorize means the stored authorization is gone or refused and a
// person must run `wildix-export authorize` again.
var ErrReauthorize = errors.New("authorization needed: run `wildix-export authorize` again")

// errUnsealed means a record in clear was found in a store whose records
// are sealed; the store says where it is (refuseUnsealed).
var errUnsealed = errors.New("not encrypted although WILDIX_TOKEN_KEY is set")

// refuseUnsealed explains a record found in clear in a keyed store: what
// and where it is, that it is not used, that authorize replaces it, and
// how to remove it by hand (remove).
func refuseUnsealed(what, where, remove string) error {
	return fmt.Errorf("%w: the %s in %s is %v (stored without the key, or planted by someone who can write the store), so it is not used; `wildix-export authorize` replaces it, or remove it by hand: %s",
		ErrReauthorize, what, where, errUnsealed, remove)
}

// sealer encrypts records at rest with AES-GCM when a key is configured.
type sealer struct{ aead cipher.AEAD }

func newSealer(key []byte) (*sealer, error) {
	if key == nil {
		return &sealer{}, nil
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("token encryption key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &sealer{aead: aead}, nil
}

const sealedPrefix = "aesgcm:v1:"

// seal encodes r, encrypted when a key is set; pbx is bound as associated
// data, so a record cannot be moved to another PBX.
func (s *sealer) seal(pbx string, r *Record) (string, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return "", err
	}
	return s.sealBytes(pbx, b)
}

func (s *sealer) sealBytes(aad string, b []byte) (string, error) {
	if s.aead == nil {
		return string(b), nil
	}
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	out := s.aead.Seal(nonce, nonce, b, []byte(aad))
	return sealedPrefix + base64.StdEncoding.EncodeToString(out), nil
}

func (s *sealer) open(pbx, data string) (*Record, error) {
	b, err := s.openBytes(pbx, data)
	if err != nil {
		return nil, err
	}
	var r Record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("the stored token is not valid JSON (%v): run `wildix-export authorize` again", err)
	}
	return &r, nil
}

// sealedWhat names the record sealed with aad (seal, sealPending).
func sealedWhat(aad string) string {
	if pbx, ok := strings.CutPrefix(aad, "pending/"); ok {
		return "authorization in progress of PBX " + pbx
	}
	return "token of PBX " + aad
}

func (s *sealer) openBytes(aad, data string) ([]byte, error) {
	rest, ok := strings.CutPrefix(data, sealedPrefix)
	if !ok {
		if s.aead != nil {
			// With a key, a record in clear was not written by this
			// program with this configuration: taking it would let whoever
			// can write the store plant a token or an authorization.
			return nil, errUnsealed
		}
		return []byte(data), nil
	}
	if s.aead == nil {
		return nil, errors.New("the stored token is encrypted: set WILDIX_TOKEN_KEY to the key it was stored with")
	}
	raw, err := base64.StdEncoding.DecodeString(rest)
	// Both are for authorize to replace (exit 3), as a record in clear is.
	if err != nil || len(raw) < s.aead.NonceSize() {
		return nil, fmt.Errorf("%w: the stored %s is damaged", ErrReauthorize, sealedWhat(aad))
	}
	b, err := s.aead.Open(nil, raw[:s.aead.NonceSize()], raw[s.aead.NonceSize():], []byte(aad))
	if err != nil {
		return nil, fmt.Errorf("%w: the stored %s does not open with WILDIX_TOKEN_KEY: it was sealed with another key (then set that one instead), or altered", ErrReauthorize, sealedWhat(aad))
	}
	return b, nil
}
