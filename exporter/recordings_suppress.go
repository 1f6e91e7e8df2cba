package exporter

import (
	"github.com/wildix-export/wildix-export/exporter/record"
	"github.com/wildix-export/wildix-export/exporter/recordings"
)

// fileSuppressor is what a Guard (issue 30) says of a recording's row:
// that it names a forgotten number (`wildix-export forget`), so that its
// file, the voice of a person who asked to be forgotten, is not copied;
// or that it is older than the retention (its row is then left out by
// the guard). privacy.Guard has it.
type fileSuppressor interface {
	SuppressesFile(ep *record.Endpoint, row record.Row) bool
}

// RecordingErasedReason is the reason of a recording's row whose call
// had a number erased on request (forget): its file removed, or never
// copied.
const RecordingErasedReason = "a number of its call was erased on request (forget): its file is not kept"

// unsuppressed returns the recordings of fresh (infos theirs) whose files
// the guard does not suppress, with the index in fresh of each, and which
// rows are suppressed.
func (e *endpointRun) unsuppressed(fresh []record.Row, infos []recInfo) (recs []recordings.Recording, idx []int, suppressed []bool) {
	g, _ := e.x.Guard.(fileSuppressor)
	suppressed = make([]bool, len(fresh))
	recs = make([]recordings.Recording, 0, len(fresh))
	for i := range infos {
		if g != nil && g.SuppressesFile(e.ep, fresh[i]) {
			suppressed[i] = true
			continue
		}
		recs = append(recs, infos[i].rec)
		idx = append(idx, i)
	}
	return recs, idx, suppressed
}

// markErased sets a suppressed recording's row as erased, as forget
// leaves one: no file, the reason said. The guard erases its numbers
// when it is written.
func (e *endpointRun) markErased(row *record.Row) {
	for _, c := range []string{"object", "stored_size", "sha256"} {
		row.Values[e.ep.Column(c)] = nil
	}
	row.Values[e.ep.Column("status")] = "erased"
	row.Values[e.ep.Column("reason")] = RecordingErasedReason
}
