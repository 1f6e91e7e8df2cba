package exporter

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/wildix-export/wildix-export/exporter/record"
)

// RecordingsResult is what a run of the recordings endpoint did with the
// files: for the run ledger (EndpointResult.Recordings) and /metrics.
type RecordingsResult struct {
	// Shape and TimeForm are what the PBX was detected to send (a shape
	// of record.Endpoint.Shapes) and to take from/to in (record.TimeWall
	// or record.TimeEpoch); "" when nothing was listed.
	Shape    string `json:"shape,omitempty"`
	TimeForm string `json:"time_form,omitempty"`
	// Listed counts the recordings listed this run and not exported
	// before (a look-back lists some again; they are not counted).
	Listed int `json:"listed"`
	// What became of their files: see recordings.Status.
	Copied   int   `json:"copied"`
	Skipped  int   `json:"skipped"`  // already stored with the same size and sha256
	Vanished int   `json:"vanished"` // 404/410: deleted on the PBX before they were copied
	Refused  int   `json:"refused"`  // a file address that must not be fetched
	Failed   int   `json:"failed"`   // failed after retries: the endpoint failed
	Bytes    int64 `json:"bytes"`    // copied this run
	// Hostile counts the recordings whose PBX file name or path must not
	// be used as a path (kept in their rows as sent, reported).
	Hostile int `json:"hostile"`
	// OldestPending is the call start of the oldest recording listed and
	// not stored (its copy failed or was not reached; the next run copies
	// it); nil when every recording listed was stored, vanished or
	// refused.
	OldestPending *time.Time `json:"oldest_pending,omitempty"`
}

// OldestPendingAge is how old the oldest recording listed and not stored
// was at now; 0 when there is none.
func (r *RecordingsResult) OldestPendingAge(now time.Time) time.Duration {
	if r == nil || r.OldestPending == nil {
		return 0
	}
	return now.Sub(*r.OldestPending)
}

// errNoRecordingsStore fails the recordings endpoint when no store is
// configured.
var errNoRecordingsStore = fmt.Errorf("%w: the recordings endpoint copies every call recording to a recordings store, and none is configured: set EXPORT_RECORDINGS_STORE (see README, Recordings), or leave recordings out of EXPORT_ENDPOINTS", record.ErrConfig)

// recordings exports the recordings endpoint: see the policy in
// recordingsRead.
func (x *Exporter) recordings(ctx context.Context, runID string, ep *record.Endpoint) (res EndpointResult) {
	e := x.newRun(runID, ep, &res)
	defer e.tally()
	res.Recordings = &RecordingsResult{}
	if x.Recordings == nil {
		res.Err = errNoRecordingsStore
		return res
	}
	res.Err = errors.New("the recordings export is not built yet (issue 29)")
	return res
}
