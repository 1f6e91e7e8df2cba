package exporter

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/wildix-export/wildix-export/exporter/pbx"
	"github.com/wildix-export/wildix-export/exporter/record"
	"github.com/wildix-export/wildix-export/exporter/recordings"
	"github.com/wildix-export/wildix-export/internal/pseudonym"
)

// recList is the recordings list as this PBX answers it: the form it
// takes from/to in, the shape of its records, and how their times are
// read.
type recList struct {
	ep    record.Endpoint // in the shape and form detected (record.Endpoint.InShape)
	shape record.Shape
	form  string
	// zone reads a wall time a record sends: WILDIX_TIMEZONE, or the UTC
	// offset call history's records carried; nil when neither is known.
	zone *time.Location
	// frame is the zone of the walls the time windows compare: UTC when
	// from/to are Unix seconds, the PBX's (zone) when they are wall times.
	frame *time.Location
	req   []string     // the fields every record must hold
	calls *callMatcher // nil: call_id not derived
	// idKey hashes the ids and paths of recordings not stored under
	// their PBX id (recordings.StoredID): Exporter.RecordingsKey.
	idKey *pseudonym.Keyed

	// repaired holds what the records whose Raw had to be repaired to be
	// storable (a NUL, invalid UTF-8) sent exactly, by their repaired Raw:
	// a NUL in a file name or path must be seen as sent (recList.info).
	mu       sync.Mutex
	repaired map[string]recInfo
}

// recInfo is what a record sent, exactly (a row's values may be repaired
// to be storable: a NUL in a file name is not kept there).
type recInfo struct {
	rec      recordings.Recording
	fileName string // as sent, or the path's last segment when none is sent
}

// Detection: the PBX's from/to form and record shape, each run.
//
// Neither is documented (docs/pbx-api.md, Recordings). Each form of the
// catalog (TimeForms; the one stored by the last run first) is asked for
// the whole range: a 400 refuses the form; an answer with records is the
// form taken once a window in 1970 comes back empty (a PBX that ignored
// the parameters would send the same records). A form answered with no
// record tells nothing (a PBX reading a wall time as the number 2026
// answers none), so the next is asked. The shape is the one the records
// of the answer fit (record.Endpoint.DetectShape); a record fitting none
// fails the run naming the fields seen, and every record read later must
// hold its shape's key and time fields (recList.rows). No record in any
// form: the list is asked once without from/to (start=0, count=1); no
// record there either, nothing to export, noted; a record there, the PBX
// takes from/to in a form not tried: the run fails naming the forms. Forms all refused, or the parameters
// ignored: the run fails, naming what each form got.
func (e *endpointRun) detectRecordings(ctx context.Context, stored string) (*recList, error) {
	forms := slices.Clone(e.ep.TimeForms)
	if i := slices.Index(forms, stored); i > 0 {
		forms = append([]string{stored}, slices.Delete(forms, i, i+1)...)
	}
	whole := [2]string{epochWall, e.x.now().UTC().Add(26 * time.Hour).Format(record.WallLayout)}
	var got []string
	for _, form := range forms {
		ep := e.ep.InShape(e.ep.Shapes[0], form)
		recs, err := e.recProbe(ctx, &ep, whole, 10)
		var ae *pbx.APIError
		switch {
		case errors.As(err, &ae) && (ae.Status == http.StatusBadRequest || ae.Status == http.StatusUnprocessableEntity):
			got = append(got, fmt.Sprintf("%s: refused (%s)", form, ae))
			continue
		case err != nil:
			return nil, fmt.Errorf("listing recordings with from/to as %s: %w", form, err)
		case len(recs) == 0:
			got = append(got, form+": no record")
			continue
		}
		if again, err := e.recProbe(ctx, &ep, [2]string{epochWall, "1970-01-02 00:00:00"}, 1); err != nil {
			return nil, fmt.Errorf("listing recordings of 1970 with from/to as %s: %w", form, err)
		} else if len(again) > 0 {
			got = append(got, form+": ignored (records for a window in 1970)")
			continue
		}
		return e.recShape(form, recs)
	}
	if slices.ContainsFunc(got, func(s string) bool { return strings.HasSuffix(s, "no record") }) &&
		!slices.ContainsFunc(got, func(s string) bool { return strings.Contains(s, "ignored") }) {
		q := url.Values{"start": {"0"}, "count": {"1"}}
		pg, err := e.x.Client.List(ctx, e.ep.Path, q, &e.n.Counts)
		if err != nil {
			return nil, fmt.Errorf("listing recordings without from/to (none listed with them: %s): %w", strings.Join(got, "; "), err)
		}
		e.n.Pages.Add(1)
		if len(pg.Records) > 0 {
			return nil, fmt.Errorf("the recordings list holds records when asked without from/to, and none in any form of from/to tried (%s): the PBX takes from/to in another form; nothing was copied: report this PBX's version (docs/pbx-api.md, Recordings)", strings.Join(got, "; "))
		}
		e.note("the PBX lists no recording (" + strings.Join(got, "; ") + "; without from/to: no record): nothing to copy")
		return nil, nil
	}
	return nil, fmt.Errorf("the recordings list took from/to in none of the forms tried (%s); nothing was copied: report this PBX's version (docs/pbx-api.md, Recordings)", strings.Join(got, "; "))
}

// recProbe asks for the first count records of the wall range r.
func (e *endpointRun) recProbe(ctx context.Context, ep *record.Endpoint, r [2]string, count int) ([]json.RawMessage, error) {
	q := ep.TimeQuery(r[0], r[1])
	q.Set("start", "0")
	q.Set("count", strconv.Itoa(count))
	pg, err := e.x.Client.List(ctx, ep.Path, q, &e.n.Counts)
	if err != nil {
		return nil, err
	}
	e.n.Pages.Add(1)
	return pg.Records, nil
}

// recShape detects the shape of recs, asked in form, and says so.
func (e *endpointRun) recShape(form string, recs []json.RawMessage) (*recList, error) {
	fields, err := recordFields(recs[0])
	if err != nil {
		return nil, fmt.Errorf("a record of the recordings list: %w", err)
	}
	shape, err := e.ep.DetectShape(fields)
	if err != nil {
		return nil, err
	}
	req := e.ep.Requires(shape)
	if p := shape.Fields["path"]; !slices.Contains(req, p) {
		req = append(req, p) // a recording without its file's address cannot be copied
	}
	l := &recList{ep: e.ep.InShape(shape, form), shape: shape, form: form, zone: e.x.Zone, req: req}
	e.res.Recordings.Shape, e.res.Recordings.TimeForm = shape.Name, form
	e.note(fmt.Sprintf("the recordings list takes from/to as %s and sends records in the %s shape (fields %s)", form, shape.Name, strings.Join(fields, ", ")))
	return l, nil
}

// recordFields returns the names of a record's fields, sorted.
func recordFields(raw json.RawMessage) ([]string, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("not a JSON object: %w", err)
	}
	fields := make([]string, 0, len(m))
	for f := range m {
		fields = append(fields, f)
	}
	slices.Sort(fields)
	return fields, nil
}

// rows converts a page of the list with conv (over l.ep): each record
// must hold its shape's key and time fields; its time, a wall time (in
// l.zone) or Unix seconds, becomes the row's instant and its wall in
// l.frame; its key is the id it is stored under (recordings.StoredID).
// What it sent stays in the row (Raw: recList.info), exactly unless Raw
// was repaired (then in repaired).
func (l *recList) rows(conv *record.Converter) func([]json.RawMessage) ([]record.Row, error) {
	anchor := l.ep.Column("start_time")
	return func(raws []json.RawMessage) ([]record.Row, error) {
		infos := make([]recInfo, len(raws))
		for i, raw := range raws {
			info, m, err := l.decode(raw)
			if err != nil {
				return nil, &record.RecordError{Index: i, Err: err}
			}
			for _, f := range l.req {
				if s, _ := m[f].(string); s == "" && !isNumber(m[f]) {
					fields, _ := recordFields(raw)
					return nil, &record.RecordError{Index: i, Field: f, Err: fmt.Errorf("missing from a record holding %s: not the %s shape the list was detected to send; report this PBX's version", strings.Join(fields, ", "), l.shape.Name)}
				}
			}
			infos[i] = info
		}
		rows, err := conv.Rows(raws)
		if err != nil {
			return nil, err
		}
		for i := range rows {
			at, err := l.instant(conv, rows[i].Values[anchor].(string))
			if err != nil {
				return nil, &record.RecordError{Index: i, Key: rows[i].Key, Field: l.ep.TimeField, Err: err}
			}
			infos[i].rec.Start = at
			rows[i].Values[anchor], rows[i].Wall = at, wallOf(at, l.frame).Format(record.WallLayout)
			rows[i].Key = recordings.StoredID(infos[i].rec)
			rows[i].Values[l.ep.Column("recording")] = rows[i].Key
			if !bytes.Equal(rows[i].Raw, raws[i]) {
				l.mu.Lock()
				if l.repaired == nil {
					l.repaired = map[string]recInfo{}
				}
				l.repaired[string(rows[i].Raw)] = infos[i]
				l.mu.Unlock()
			}
		}
		return rows, nil
	}
}

// decode reads what a record sent for the copier, and its fields.
func (l *recList) decode(raw json.RawMessage) (recInfo, map[string]any, error) {
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber() // ids and sizes as sent, not as float64
	if err := dec.Decode(&m); err != nil {
		return recInfo{}, nil, fmt.Errorf("not a JSON object: %w", err)
	}
	info := recInfo{rec: recordings.Recording{ID: scalar(m[l.shape.Key[0]]), Path: scalar(m[l.shape.Fields["path"]]), IDKey: l.idKey}, fileName: scalar(m[l.shape.Fields["file_name"]])}
	if l.shape.Key[0] == l.shape.Fields["path"] {
		info.rec.ID = "" // no id: stored under a hash of the path
	}
	if n, err := strconv.ParseInt(scalar(m[l.shape.Fields["size"]]), 10, 64); err == nil && n > 0 {
		info.rec.Size = n
	}
	if info.fileName == "" {
		info.fileName = lastSegment(info.rec.Path)
	}
	return info, m, nil
}

// info is what the record of row (converted by rows) sent, with the
// instant it started and the id it is stored under: each row carries its
// own, so that two records under one key never share one.
func (l *recList) info(row record.Row) recInfo {
	l.mu.Lock()
	info, ok := l.repaired[string(row.Raw)]
	l.mu.Unlock()
	if !ok {
		info, _, _ = l.decode(row.Raw) // rows decoded it already
	}
	info.rec.Start, _ = row.Values[l.ep.Column("start_time")].(time.Time)
	info.rec.Key = row.Key
	return info
}

// instant reads a record's time: Unix seconds, or a wall time in l.zone.
func (l *recList) instant(conv *record.Converter, s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if n, err := strconv.ParseInt(s, 10, 64); err == nil && n > 0 {
		return time.Unix(n, 0).UTC(), nil
	}
	if l.zone == nil {
		if _, err := time.Parse(record.WallLayout, s); err == nil {
			return time.Time{}, fmt.Errorf("%w: the recordings list sends PBX-local wall times (%q) and the PBX's time zone is not known: set WILDIX_TIMEZONE (e.g. Europe/Rome), or export call_history first so that its UTC offset is learnt", record.ErrConfig, s)
		}
	}
	c := &record.Converter{Endpoint: conv.Endpoint, Zone: l.zone}
	t, _, err := c.Instant(s, nil, time.Time{}, true)
	return t, err
}

// scalar is a decoded JSON string or number as text; "" for anything else.
func scalar(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case json.Number:
		return x.String()
	}
	return ""
}

func isNumber(v any) bool { _, ok := v.(json.Number); return ok }

// lastSegment is the file name in a path as the list gives it, decoded
// ("" when it cannot be).
func lastSegment(p string) string {
	u, err := url.Parse(p)
	if err != nil {
		return ""
	}
	seg := u.EscapedPath()
	seg = seg[strings.LastIndexByte(seg, '/')+1:]
	dec, err := url.PathUnescape(seg)
	if err != nil {
		return seg
	}
	return dec
}
