package exporter

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/wildix-export/wildix-export/exporter/paging"
	"github.com/wildix-export/wildix-export/exporter/record"
	"github.com/wildix-export/wildix-export/internal/pseudonym"
)

// callRing is how long before its answer a call may have started: a
// caller waiting in a queue.
const callRing = 2 * time.Hour

// callMatcher finds the call-history leg each recording belongs to.
//
// No field of the list is known to name it (docs/pbx-api.md,
// Recordings), so it is matched: a recording starts when its call is
// answered, so its leg is the one whose answer is the recording's start
// (to the second) and whose src and dst are the recording's extension
// and number. call_match says how sure: "exact" (one leg answered that
// second with both parties), "time" (one leg answered that second, and
// the recording sends no party, or only one that is the leg's),
// "contradicted" (one leg answered that second, a party the recording
// sends is not the leg's: call_id stays NULL), "ambiguous" (several,
// none alone with both parties: NULL) or "none" (no leg answered then:
// NULL). Call history is read by time windows of its start, from
// callRing before a window's first recording to its last, each stretch
// once per run. A read that fails leaves call_id NULL ("not read") and
// is noted; the recordings are exported all the same. The parties are
// compared as one number however each list writes it (samePhone). The
// first contradicted match of a run is logged (a warning, no number in
// it): the leg's parties are not the recording's, which a form of a
// number samePhone does not know would also give.
type callMatcher struct {
	r      *paging.Reader // call history's
	zone   *time.Location // the PBX's, for call history's filter
	readTo time.Time      // PBX-local wall: call history read before it
	legs   map[int64][]leg
	err    error
	col    struct{ id, answer, src, dst int }
	log    *slog.Logger
	// contradicted counts the recordings matched "contradicted" this run;
	// match is called for one window at a time (recPipe.start).
	contradicted int
}

type leg struct {
	id       int64
	src, dst string
}

// newCallMatcher reads call history as the catalog declares it; nil
// when the PBX's zone is not known (its filter is PBX-local).
func (e *endpointRun) newCallMatcher(zone *time.Location) *callMatcher {
	if zone == nil {
		e.note("call_id not derived: the PBX's time zone is not known (set WILDIX_TIMEZONE)")
		return nil
	}
	for _, ep := range record.Builtin() {
		if ep.Name == "call_history" {
			m := &callMatcher{zone: zone, legs: map[int64][]leg{}, log: e.log}
			m.r = &paging.Reader{Lister: e.x.Client, Endpoint: &ep, Concurrency: e.x.Concurrency, MaxPages: e.x.MaxPages,
				Counters: &paging.Counters{}, Log: e.log, Learnt: paging.NewLearnt(e.x.PageSize),
				Rows: (&record.Converter{Endpoint: &ep, Zone: zone, Warnings: &record.Warnings{}}).Rows}
			m.col.id, m.col.answer, m.col.src, m.col.dst = ep.Column("id"), ep.Column("answer_time"), ep.Column("src"), ep.Column("dst")
			return m
		}
	}
	return nil
}

// match fills call_id and call_match of rows (recordings of one window
// of ep), windows in time order, one at a time. It returns the error of
// a read of call history that failed, once: the rows of this window and
// every later one get call_match "not read".
func (m *callMatcher) match(ctx context.Context, ep *record.Endpoint, rows []record.Row) (failed error) {
	start, ext, num := ep.Column("start_time"), ep.Column("extension"), ep.Column("number")
	var lo, hi time.Time
	for i, row := range rows {
		t := row.Values[start].(time.Time)
		if i == 0 || t.Before(lo) {
			lo = t
		}
		if t.After(hi) {
			hi = t
		}
	}
	from, to := wallOf(lo.Add(-callRing), m.zone), wallOf(hi, m.zone).Add(time.Second)
	if from.Before(m.readTo) {
		from = m.readTo
	}
	for at := range m.legs {
		if at < lo.Unix() {
			delete(m.legs, at) // later windows' recordings start later
		}
	}
	if m.err == nil && to.After(from) {
		tw := &paging.TimeWindows{Reader: m.r}
		m.err = tw.Read(ctx, from, to, m.add)
		failed = m.err
		m.readTo = to
	}
	for _, row := range rows {
		id, how := m.find(row.Values[start].(time.Time), text(row.Values[ext]), text(row.Values[num]))
		row.Values[ep.Column("call_match")] = how
		if how == "exact" || how == "time" {
			row.Values[ep.Column("call_id")] = id
		}
		if how == "contradicted" {
			m.contradicted++
			if m.contradicted == 1 && m.log != nil {
				m.log.Warn("recordings: the call-history leg answered in a recording's start second has other parties than the recording: call_id left NULL, call_match contradicted (logged for the first of this run; count them in the recordings table)",
					"start", row.Values[start].(time.Time).UTC().Format(time.RFC3339))
			}
		}
	}
	return failed
}

// add keeps the answered legs of call history's rows.
func (m *callMatcher) add(rows []record.Row) error {
	for _, row := range rows {
		at, ok := row.Values[m.col.answer].(time.Time)
		id, _ := row.Values[m.col.id].(int64)
		if ok {
			m.legs[at.Unix()] = append(m.legs[at.Unix()], leg{id: id, src: text(row.Values[m.col.src]), dst: text(row.Values[m.col.dst])})
		}
	}
	return nil
}

// find is the leg answered at start with parties ext and num.
func (m *callMatcher) find(start time.Time, ext, num string) (int64, string) {
	if m.err != nil {
		return 0, "not read"
	}
	legs := m.legs[start.Unix()]
	var both []leg
	for _, l := range legs {
		if party(l.src, l.dst, ext) && party(l.src, l.dst, num) {
			both = append(both, l)
		}
	}
	switch {
	case len(both) == 1:
		return both[0].id, "exact"
	case len(legs) == 1:
		l := legs[0]
		if (strings.TrimSpace(ext) == "" || party(l.src, l.dst, ext)) && (strings.TrimSpace(num) == "" || party(l.src, l.dst, num)) {
			return l.id, "time"
		}
		return 0, "contradicted"
	case len(legs) == 0:
		return 0, "none"
	}
	return 0, "ambiguous"
}

// party reports whether p is src or dst: one number however the PBX
// wrote it in either list (samePhone).
func party(src, dst, p string) bool {
	return samePhone(src, p) || samePhone(dst, p)
}

// samePhone reports whether a and b are one number: the same canonical
// digits (pseudonym.Canonical: "+39…", "0039…", "39…", spaced, dashed or
// dotted are one), or one written internationally ("+" or "00") and the
// other in a national form of it (pseudonym.NationalForms: "347 111
// 0007" for "+39 347 111 0007"). Two pseudonyms are one number when
// equal. A value that is no number (a name, a SIP address) is compared
// as written, "+" and spaces aside. An empty value is no party.
//
// Call history and the recordings list are matched as the PBX sent them,
// before the Guard pseudonymises either (the committer applies it when
// the rows are written), so the match, and call_id, is the same whatever
// EXPORT_PSEUDONYMIZE says; the pseudonyms of two forms samePhone takes
// as one are equal too (pseudonym.Number keys on Canonical), except
// national against international forms, whose pseudonyms differ.
func samePhone(a, b string) bool {
	ka, ia, oka := phoneKey(a)
	kb, ib, okb := phoneKey(b)
	switch {
	case !oka || !okb:
		return false
	case ka == kb:
		return true
	case ia && !ib:
		return slices.Contains(pseudonym.NationalForms(ka), kb)
	case ib && !ia:
		return slices.Contains(pseudonym.NationalForms(kb), ka)
	}
	return false
}

// phoneKey is what samePhone compares of s, whether s is a number
// written internationally (its key then the canonical digits), and false
// for an empty s.
func phoneKey(s string) (key string, intl, ok bool) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, pseudonym.NumberPrefix) {
		return s, false, true
	}
	if d, ok := pseudonym.Canonical(s); ok {
		return d, strings.HasPrefix(s, "+") || strings.HasPrefix(s, "00"), true
	}
	s = strings.ReplaceAll(strings.TrimPrefix(s, "+"), " ", "")
	return s, false, s != ""
}

func text(v any) string { s, _ := v.(string); return s }
