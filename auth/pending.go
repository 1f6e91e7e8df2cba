package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Pending is an authorization started and not yet finished: what the
// redirect must match and what the code exchange needs. It is kept in the
// token store, so that the process (or machine) that finishes it need not
// be the one that started it.
type Pending struct {
	State       string    `json:"state"`
	Verifier    string    `json:"verifier"` // the PKCE code verifier
	RedirectURI string    `json:"redirect_uri"`
	Origin      string    `json:"origin"` // the PBX's origin (scheme://host:port)
	ClientID    string    `json:"client_id"`
	Started     time.Time `json:"started"`
	Expires     time.Time `json:"expires"`
}

// String never shows the state or verifier.
func (p *Pending) String() string {
	return fmt.Sprintf("pending authorization(origin=%s, expires=%s)", p.Origin, p.Expires.Format(time.RFC3339))
}

// GoString redacts for %#v as well.
func (p *Pending) GoString() string { return p.String() }

// PendingTTL is how long a started authorization can be finished: about
// as long as a PBX keeps the consent page's code valid, and then some.
const PendingTTL = 10 * time.Minute

// pendingSkew is how far in the future a start may be, for clocks of
// machines sharing the store that disagree a little.
const pendingSkew = time.Minute

// usable refuses an authorization in progress that has expired, lasting
// at most PendingTTL from its start whatever its Expires says, or one
// started in the future: a record (planted, or from a machine with a wrong
// clock) cannot keep an authorization open longer.
func (p *Pending) usable(pbx string, now time.Time) error {
	if p.Started.After(now.Add(pendingSkew)) {
		return fmt.Errorf("the authorization in progress for PBX %s says it started at %s, in the future: check the clocks of the machines sharing the token store, and run `wildix-export authorize` again",
			pbx, p.Started.Format(time.RFC3339))
	}
	if now.After(p.Expires) || now.After(p.Started.Add(PendingTTL)) {
		return fmt.Errorf("the authorization in progress for PBX %s, started at %s, expired after %s: run `wildix-export authorize` again and finish within %s",
			pbx, p.Started.Format(time.RFC3339), PendingTTL, PendingTTL)
	}
	return nil
}

// PendingStore is a Store that also keeps the authorization in progress
// for each PBX, at most one: starting another replaces it. LoadPending
// returns an error wrapping ErrNoPending when there is none.
type PendingStore interface {
	Store
	SavePending(ctx context.Context, pbx string, p *Pending) error
	LoadPending(ctx context.Context, pbx string) (*Pending, error)
	DeletePending(ctx context.Context, pbx string) error
}

// ErrNoPending means no authorization is in progress for the PBX.
var ErrNoPending = errors.New("no authorization in progress")

// sealPending and openPending encode a pending authorization as the
// records are encoded (encrypted when a key is set, bound to the PBX).
func (s *sealer) sealPending(pbx string, p *Pending) (string, error) {
	b, err := json.Marshal(p)
	if err != nil {
		return "", err
	}
	return s.sealBytes("pending/"+pbx, b)
}

func (s *sealer) openPending(pbx, data string) (*Pending, error) {
	b, err := s.openBytes("pending/"+pbx, data)
	if err != nil {
		return nil, err
	}
	var p Pending
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("the stored authorization in progress is not valid JSON (%v): run `wildix-export authorize` again", err)
	}
	return &p, nil
}
