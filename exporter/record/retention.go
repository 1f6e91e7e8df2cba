package record

import "time"

// Retention is a run's retention cut (EXPORT_RETENTION; README,
// Retention): the rows of calls that started before Cut are neither
// written nor kept. It is the one place that decides which endpoints and
// rows retention concerns, for the exporter's guard (a recording's file
// and its row alike: exporter/privacy) and for the sinks' Prune, which a
// run gives the same Retention (RetentionAt of its start), so that no
// recording's file is copied whose row is then left out. The zero
// Retention keeps every row.
type Retention struct {
	Cut time.Time
}

// RetentionAt is the retention of a run that began at now with limit
// (none when limit <= 0): now less limit, in UTC, to the second (as the
// run ledger's notes write it).
func RetentionAt(now time.Time, limit time.Duration) Retention {
	if limit <= 0 {
		return Retention{}
	}
	return Retention{Cut: now.Add(-limit).UTC().Truncate(time.Second)}
}

// RetentionColumn is the index of the column retention goes by in ep's
// rows, -1 when retention never touches ep. Only endpoints read
// incrementally whose time field is a timestamp column hold rows of
// calls: snapshots (colleagues, contacts, a custom one even with a
// time_field) are read whole each run and are never filtered or pruned.
func RetentionColumn(ep *Endpoint) int {
	if ep.Mode != Incremental || ep.TimeField == "" {
		return -1
	}
	for i, c := range ep.Columns {
		if c.Field == ep.TimeField && c.Type == Timestamp {
			return i
		}
	}
	return -1
}

// Expired reports whether a call that started at t (known false: its
// time is unknown) is older than the cut: strictly before it. A call
// exactly at the cut is kept, and so is one whose time is unknown.
func (r Retention) Expired(t time.Time, known bool) bool {
	return known && !r.Cut.IsZero() && t.Before(r.Cut)
}

// Drops reports whether row of ep is older than the cut (see Expired;
// a NULL time is unknown).
func (r Retention) Drops(ep *Endpoint, row Row) bool {
	col := RetentionColumn(ep)
	if col < 0 || r.Cut.IsZero() {
		return false
	}
	t, ok := row.Values[col].(time.Time)
	return r.Expired(t, ok)
}
