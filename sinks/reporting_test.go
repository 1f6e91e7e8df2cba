package sinks

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wildix-export/wildix-export/exporter"
	"github.com/wildix-export/wildix-export/exporter/record"
	"github.com/wildix-export/wildix-export/internal/pbxsim"
	"github.com/wildix-export/wildix-export/internal/pgtest"
	"github.com/wildix-export/wildix-export/simtest"
)

// leg is one CDR row of a fixture, in the PBX's own form: PBX-local wall
// times (Europe/Rome), every value a string.
type leg struct {
	id                     int64
	start, answer, end     string
	duration, billsec      int
	disposition, typ       string
	from, fromName         string
	to, toName, dst        string
	channel, dstchannel    string
	cost, uniqueid, offset string
}

func (l leg) json(rome *time.Location) json.RawMessage {
	typ := l.typ
	if typ == "" {
		typ = "call"
	}
	dst := l.dst
	if dst == "" {
		dst = l.to
	}
	cost := l.cost
	if cost == "" {
		cost = "0"
	}
	offset := l.offset
	if t, err := time.ParseInLocation("2006-01-02 15:04:05", l.start, rome); err == nil && offset == "" {
		offset = t.Format("-0700")
	}
	m := map[string]string{
		"id": fmt.Sprint(l.id), "start": l.start, "answer": l.answer, "end": l.end,
		"duration": fmt.Sprint(l.duration), "billsec": fmt.Sprint(l.billsec),
		"disposition": l.disposition, "type": typ, "src": l.from, "dst": dst,
		"from_number": l.from, "from_name": l.fromName, "to_number": l.to, "to_name": l.toName,
		"channel": l.channel, "dstchannel": l.dstchannel, "lastapp": "Dial", "lastdata": "",
		"userfield": "", "cost": cost, "faxdata": "", "timezone": offset,
	}
	if l.uniqueid != "" {
		m["uniqueid"] = l.uniqueid
	}
	b, _ := json.Marshal(m)
	return b
}

// fixtureLegs holds one case per situation of issue 14; the comment of each
// names it. Ids grow with each leg's end, as a PBX assigns them.
var fixtureLegs = []leg{
	// 1. Ring group 600 answered by its second member (202) after 12 s.
	{id: 101, start: "2026-03-10 09:00:00", end: "2026-03-10 09:00:12", duration: 12, disposition: "NO ANSWER",
		from: "+393331111111", fromName: "Customer One", to: "600", toName: "Sales group", channel: "SIP/trunk-00000101", dstchannel: "SIP/201-00000102"},
	{id: 102, start: "2026-03-10 09:00:00", end: "2026-03-10 09:00:12", duration: 12, disposition: "NO ANSWER",
		from: "+393331111111", fromName: "Customer One", to: "600", toName: "Sales group", channel: "SIP/trunk-00000101", dstchannel: "SIP/203-00000103"},
	{id: 103, start: "2026-03-10 09:00:00", answer: "2026-03-10 09:00:12", end: "2026-03-10 09:05:12", duration: 312, billsec: 300, disposition: "ANSWERED",
		from: "+393331111111", fromName: "Customer One", to: "600", toName: "Sales group", channel: "SIP/trunk-00000101", dstchannel: "SIP/202-00000104"},
	// 2. Ring group 600, nobody answered: the caller waited 30 s.
	{id: 201, start: "2026-03-10 10:00:00", end: "2026-03-10 10:00:30", duration: 30, disposition: "NO ANSWER",
		from: "+393332222222", to: "600", toName: "Sales group", channel: "SIP/trunk-00000201", dstchannel: "SIP/201-00000202"},
	{id: 202, start: "2026-03-10 10:00:00", end: "2026-03-10 10:00:30", duration: 30, disposition: "NO ANSWER",
		from: "+393332222222", to: "600", toName: "Sales group", channel: "SIP/trunk-00000201", dstchannel: "SIP/202-00000203"},
	{id: 203, start: "2026-03-10 10:00:00", end: "2026-03-10 10:00:30", duration: 30, disposition: "BUSY",
		from: "+393332222222", to: "600", toName: "Sales group", channel: "SIP/trunk-00000201", dstchannel: "SIP/203-00000204"},
	// 3. Queue 700 answered by 203 after 20 s, who transferred it to 204.
	{id: 301, start: "2026-03-10 11:00:00", answer: "2026-03-10 11:00:20", end: "2026-03-10 11:02:00", duration: 120, billsec: 100, disposition: "ANSWERED",
		from: "+393333333333", to: "700", toName: "Support queue", channel: "SIP/trunk-00000301", dstchannel: "SIP/203-00000302"},
	{id: 302, start: "2026-03-10 11:02:00", answer: "2026-03-10 11:02:05", end: "2026-03-10 11:04:05", duration: 125, billsec: 120, disposition: "ANSWERED",
		from: "+393333333333", to: "204", dst: "204", channel: "SIP/trunk-00000301", dstchannel: "SIP/204-00000303"},
	// 4. Internal call, 201 to 202.
	{id: 401, start: "2026-03-10 12:00:00", answer: "2026-03-10 12:00:05", end: "2026-03-10 12:01:05", duration: 65, billsec: 60, disposition: "ANSWERED",
		from: "201", fromName: "Alice Rossi", to: "202", toName: "Bruno Costa", channel: "SIP/201-00000401", dstchannel: "SIP/202-00000402"},
	// 5. Outbound to a busy number.
	{id: 501, start: "2026-03-10 13:00:00", end: "2026-03-10 13:00:03", duration: 3, disposition: "BUSY",
		from: "204", to: "+390212345678", dst: "00390212345678", channel: "SIP/204-00000501", dstchannel: "SIP/trunk-00000502"},
	// 6. Inbound to 201, missed, called back by 201 ten minutes later.
	{id: 601, start: "2026-03-10 14:00:00", end: "2026-03-10 14:00:25", duration: 25, disposition: "NO ANSWER",
		from: "+393336666666", fromName: "Customer Six", to: "201", channel: "SIP/trunk-00000601", dstchannel: "SIP/201-00000602"},
	{id: 602, start: "2026-03-10 14:10:00", answer: "2026-03-10 14:10:10", end: "2026-03-10 14:12:10", duration: 130, billsec: 120, disposition: "ANSWERED",
		from: "201", to: "+393336666666", dst: "00393336666666", channel: "SIP/201-00000603", dstchannel: "SIP/trunk-00000604", cost: "0.2520"},
	// 7. Across midnight: the call belongs to the day it started.
	{id: 701, start: "2026-03-10 23:58:00", answer: "2026-03-10 23:58:10", end: "2026-03-11 00:03:10", duration: 310, billsec: 300, disposition: "ANSWERED",
		from: "+393337777777", to: "202", channel: "SIP/trunk-00000701", dstchannel: "SIP/202-00000702"},
	// 8. Across the spring daylight-saving change (02:00 → 03:00): 10 min
	// of real time, 70 min of wall time.
	{id: 801, start: "2026-03-29 01:55:00", answer: "2026-03-29 01:55:10", end: "2026-03-29 03:05:00", duration: 600, billsec: 590, disposition: "ANSWERED",
		from: "+393338888888", to: "203", channel: "SIP/trunk-00000801", dstchannel: "SIP/203-00000802"},
	// 8b. Across the autumn change (03:00 → 02:00): starts in the first
	// 02:50, ends in the second 02:05, 15 minutes later.
	{id: 802, start: "2026-10-25 02:50:00", answer: "2026-10-25 02:50:05", end: "2026-10-25 02:05:00", duration: 900, billsec: 895, disposition: "ANSWERED",
		from: "+393338080808", to: "204", channel: "SIP/trunk-00000803", dstchannel: "SIP/204-00000804", offset: "+0200"},
	// 9. A fax received by 204.
	{id: 901, start: "2026-03-11 15:00:00", answer: "2026-03-11 15:00:02", end: "2026-03-11 15:01:02", duration: 62, billsec: 60, disposition: "ANSWERED", typ: "fax",
		from: "+390298765432", to: "204", channel: "SIP/trunk-00000901", dstchannel: "SIP/204-00000902"},
	// 10. No readable start (the PBX's empty value): still one call, in no day.
	{id: 1001, start: "", end: "2026-03-11 16:00:20", duration: 20, disposition: "NO ANSWER",
		from: "+393339999999", to: "201", channel: "SIP/trunk-00001001", dstchannel: "SIP/201-00001002", offset: "+0100"},
	// 11. A disposition nobody documented.
	{id: 1101, start: "2026-03-11 16:30:00", end: "2026-03-11 16:30:04", duration: 4, disposition: "CANCEL",
		from: "+393331010101", to: "202", channel: "SIP/trunk-00001101", dstchannel: "SIP/202-00001102"},
	// 12. Legs with the PBX's uniqueid are grouped by it, whatever channel.
	{id: 1201, start: "2026-03-11 17:00:00", end: "2026-03-11 17:00:15", duration: 15, disposition: "NO ANSWER", uniqueid: "1773244800.77",
		from: "+393331212121", to: "600", channel: "SIP/trunk-00001201", dstchannel: "SIP/201-00001202"},
	{id: 1202, start: "2026-03-11 17:00:15", answer: "2026-03-11 17:00:20", end: "2026-03-11 17:01:20", duration: 65, billsec: 60, disposition: "ANSWERED", uniqueid: "1773244800.77",
		from: "+393331212121", to: "600", channel: "Local/600@groups-00001203", dstchannel: "SIP/203-00001204"},
	// 13. The channel name of case 4 again, days later (the PBX restarted):
	// another call.
	{id: 1301, start: "2026-03-12 09:00:00", answer: "2026-03-12 09:00:04", end: "2026-03-12 09:00:34", duration: 34, billsec: 30, disposition: "ANSWERED",
		from: "201", to: "203", channel: "SIP/201-00000401", dstchannel: "SIP/203-00001302"},
}

var fixtureColleagues = []string{
	`{"id":"1","name":"Alice Rossi","extension":"201","department":"Sales"}`,
	`{"id":"2","name":"Bruno Costa","extension":"202","department":"Sales"}`,
	`{"id":"3","name":"Chiara Nowak","extension":"203","department":"Support"}`,
	`{"id":"4","name":"Dario Smith","extension":"204","department":""}`,
}

// wantCall is a row of the calls view.
type wantCall struct {
	firstLeg          int64
	startUTC, local   string // "" for NULL
	direction, typ    string
	caller, callee    string
	answered          bool
	answeredBy, by    string // extension and colleague, "" for NULL
	wait, talk, legs  int
	disposition, cost string
}

var fixtureCalls = []wantCall{
	{101, "2026-03-10T08:00:00Z", "2026-03-10 09:00:00", "inbound", "call", "+393331111111", "600", true, "202", "Bruno Costa", 12, 300, 3, "ANSWERED", "0"},
	{201, "2026-03-10T09:00:00Z", "2026-03-10 10:00:00", "inbound", "call", "+393332222222", "600", false, "", "", 30, 0, 3, "NO ANSWER", "0"},
	{301, "2026-03-10T10:00:00Z", "2026-03-10 11:00:00", "inbound", "call", "+393333333333", "700", true, "203", "Chiara Nowak", 20, 220, 2, "ANSWERED", "0"},
	{401, "2026-03-10T11:00:00Z", "2026-03-10 12:00:00", "internal", "call", "201", "202", true, "202", "Bruno Costa", 5, 60, 1, "ANSWERED", "0"},
	{501, "2026-03-10T12:00:00Z", "2026-03-10 13:00:00", "outbound", "call", "204", "+390212345678", false, "", "", 3, 0, 1, "BUSY", "0"},
	{601, "2026-03-10T13:00:00Z", "2026-03-10 14:00:00", "inbound", "call", "+393336666666", "201", false, "", "", 25, 0, 1, "NO ANSWER", "0"},
	{602, "2026-03-10T13:10:00Z", "2026-03-10 14:10:00", "outbound", "call", "201", "+393336666666", true, "", "", 10, 120, 1, "ANSWERED", "0.2520"},
	{701, "2026-03-10T22:58:00Z", "2026-03-10 23:58:00", "inbound", "call", "+393337777777", "202", true, "202", "Bruno Costa", 10, 300, 1, "ANSWERED", "0"},
	{801, "2026-03-29T00:55:00Z", "2026-03-29 01:55:00", "inbound", "call", "+393338888888", "203", true, "203", "Chiara Nowak", 10, 590, 1, "ANSWERED", "0"},
	{802, "2026-10-25T00:50:00Z", "2026-10-25 02:50:00", "inbound", "call", "+393338080808", "204", true, "204", "Dario Smith", 5, 895, 1, "ANSWERED", "0"},
	{901, "2026-03-11T14:00:00Z", "2026-03-11 15:00:00", "inbound", "fax", "+390298765432", "204", true, "204", "Dario Smith", 2, 60, 1, "ANSWERED", "0"},
	{1001, "", "", "inbound", "call", "+393339999999", "201", false, "", "", 20, 0, 1, "NO ANSWER", "0"},
	{1101, "2026-03-11T15:30:00Z", "2026-03-11 16:30:00", "inbound", "call", "+393331010101", "202", false, "", "", 4, 0, 1, "", "0"},
	{1201, "2026-03-11T16:00:00Z", "2026-03-11 17:00:00", "inbound", "call", "+393331212121", "600", true, "203", "Chiara Nowak", 20, 60, 2, "ANSWERED", "0"},
	{1301, "2026-03-12T08:00:00Z", "2026-03-12 09:00:00", "internal", "call", "201", "203", true, "203", "Chiara Nowak", 4, 30, 1, "ANSWERED", "0"},
}

const fixturePBX = "acme.wildixin.com"

// loadFixture loads legs and colleagues through the real sink, with the
// PBX's zone recorded by StartRun as a run does.
func loadFixture(t *testing.T, zone string, legs []leg) (*Postgres, *pgxpool.Pool) {
	t.Helper()
	p, pool := newPostgres(t)
	loadInto(t, p, zone, legs)
	return p, pool
}

func loadInto(t *testing.T, p *Postgres, zone string, legs []leg) {
	t.Helper()
	ctx := context.Background()
	rome, err := time.LoadLocation("Europe/Rome")
	if err != nil {
		t.Fatal(err)
	}
	if err := p.StartRun(ctx, &exporter.RunResult{ID: "fixture", Mode: "once", PBX: fixturePBX, Started: time.Now(), TimeZone: zone}); err != nil {
		t.Fatal(err)
	}
	eps := record.Builtin()
	load := func(ep *record.Endpoint, recs []json.RawMessage) {
		conv := &record.Converter{Endpoint: ep, Zone: rome}
		rows, err := conv.Rows(recs)
		if err != nil {
			t.Fatalf("convert %s: %v", ep.Name, err)
		}
		b, err := p.Begin(ctx, exporter.BatchInfo{PBX: fixturePBX, RunID: "fixture", Endpoint: ep, StateKey: ep.Name, Snapshot: ep.Mode == record.Snapshot})
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Write(ctx, rows); err != nil {
			t.Fatal(err)
		}
		if err := b.Commit(ctx, []byte(`{}`), exporter.Progress{Rows: int64(len(rows))}); err != nil {
			t.Fatal(err)
		}
	}
	var recs []json.RawMessage
	for _, l := range legs {
		recs = append(recs, l.json(rome))
	}
	load(&eps[0], recs)
	recs = nil
	for _, c := range fixtureColleagues {
		recs = append(recs, json.RawMessage(c))
	}
	load(&eps[1], recs)
}

func queryCalls(t *testing.T, pool *pgxpool.Pool) map[int64]wantCall {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT first_leg_id,
  coalesce(to_char(start_time AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'), ''),
  coalesce(to_char(local_start, 'YYYY-MM-DD HH24:MI:SS'), ''),
  direction, type, caller_number, callee_number, answered,
  coalesce(answered_by_extension, ''), coalesce(answered_by_colleague, ''),
  wait_seconds, talk_seconds, legs, coalesce(disposition, ''), coalesce(cost::text, '')
FROM calls WHERE pbx = $1`, fixturePBX)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	got := map[int64]wantCall{}
	for rows.Next() {
		var c wantCall
		if err := rows.Scan(&c.firstLeg, &c.startUTC, &c.local, &c.direction, &c.typ, &c.caller, &c.callee, &c.answered,
			&c.answeredBy, &c.by, &c.wait, &c.talk, &c.legs, &c.disposition, &c.cost); err != nil {
			t.Fatal(err)
		}
		c.cost = strings.TrimRight(strings.TrimRight(c.cost, "0"), ".")
		if c.cost == "" {
			c.cost = "0"
		}
		got[c.firstLeg] = c
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return got
}

// TestCallsFromLegs: each fixture case gives exactly its expected call.
func TestCallsFromLegs(t *testing.T) {
	t.Parallel()
	_, pool := loadFixture(t, "Europe/Rome", fixtureLegs)
	got := queryCalls(t, pool)
	for _, w := range fixtureCalls {
		w.cost = strings.TrimRight(strings.TrimRight(w.cost, "0"), ".")
		if w.cost == "" {
			w.cost = "0"
		}
		g, ok := got[w.firstLeg]
		if !ok {
			t.Errorf("no call with first leg %d", w.firstLeg)
			continue
		}
		if g != w {
			t.Errorf("call %d:\n got %+v\nwant %+v", w.firstLeg, g, w)
		}
		delete(got, w.firstLeg)
	}
	for id, g := range got {
		t.Errorf("unexpected call %d: %+v", id, g)
	}
}

// TestReportingViewsCountCalls checks each view's counts on the fixture.
func TestReportingViewsCountCalls(t *testing.T) {
	t.Parallel()
	_, pool := loadFixture(t, "Europe/Rome", fixtureLegs)
	ctx := context.Background()
	ints := func(q string, args ...any) []int64 {
		t.Helper()
		row := pool.QueryRow(ctx, q, args...)
		var a, b, c, d int64
		if err := row.Scan(&a, &b, &c, &d); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		return []int64{a, b, c, d}
	}
	check := func(what string, got []int64, want ...int64) {
		t.Helper()
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s = %v, want %v", what, got, want)
		}
	}
	// calls_daily: the day a call started, PBX-local; answered + missed = calls.
	type dayDir struct{ day, dir string }
	want := map[dayDir][3]int64{}
	for _, c := range fixtureCalls {
		k := dayDir{"", c.direction}
		if c.local != "" {
			k.day = c.local[:10]
		}
		v := want[k]
		v[0]++
		if c.answered {
			v[1]++
		} else {
			v[2]++
		}
		want[k] = v
	}
	rows, err := pool.Query(ctx, `SELECT coalesce(day::text, ''), direction, sum(calls), sum(answered), sum(missed)
FROM calls_daily WHERE pbx = $1 GROUP BY 1, 2`, fixturePBX)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for rows.Next() {
		var k dayDir
		var v [3]int64
		if err := rows.Scan(&k.day, &k.dir, &v[0], &v[1], &v[2]); err != nil {
			t.Fatal(err)
		}
		if want[k] != v {
			t.Errorf("calls_daily %v: calls, answered, missed = %v, want %v", k, v, want[k])
		}
		n++
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if n != len(want) {
		t.Errorf("calls_daily has %d day×direction groups, want %d", n, len(want))
	}
	check("calls_daily 2026-03-10 inbound calls, answered, missed, talk",
		ints(`SELECT sum(calls), sum(answered), sum(missed), sum(talk_seconds) FROM calls_daily WHERE day = '2026-03-10' AND direction = 'inbound'`),
		5, 3, 2, 300+220+300)
	// calls_hourly: the DST call at 01:55 on Sunday 29 March.
	check("calls_hourly Sunday 01h", ints(`SELECT calls, answered, missed, inbound FROM calls_hourly WHERE weekday = 7 AND hour = 1`), 1, 1, 0, 1)
	check("calls_hourly Tuesday 09h", ints(`SELECT calls, answered, missed, inbound FROM calls_hourly WHERE weekday = 2 AND hour = 9`), 1, 1, 0, 1)
	// calls_by_extension: a ring-group call once for the group, once as
	// answered for whoever answered it.
	byExt := `SELECT calls_received, received_answered, received_missed, answered FROM calls_by_extension WHERE extension = $1`
	check("group 600", ints(byExt, "600"), 3, 2, 1, 0)
	check("queue 700", ints(byExt, "700"), 1, 1, 0, 0)
	check("202", ints(byExt, "202"), 3, 2, 1, 3) // 401, 701 answered, 1101 missed; answered 103, 401, 701
	check("203", ints(byExt, "203"), 2, 2, 0, 4) // 801, 1301; answered 301, 801, 1202, 1301
	check("201", ints(byExt, "201"), 2, 0, 2, 0) // 601, 1001 missed
	check("204", ints(byExt, "204"), 2, 2, 0, 2) // the fax and 802; 302 is a transfer leg, not a call
	check("201 made", ints(`SELECT calls_made, made_answered, talk_seconds, 0 FROM calls_by_extension WHERE extension = '201'`), 3, 3, 60+120+30, 0)
	// missed_calls: inbound calls nobody answered (not the busy outbound
	// call, not the fax), with the call-back 10 minutes later.
	rows, err = pool.Query(ctx, `SELECT id, coalesce(next_call_id, 0), coalesce(next_call_direction, ''), coalesce(next_call_after_seconds, -1), coalesce(colleague, '')
FROM missed_calls ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	var missed []string
	for rows.Next() {
		var id, next, after int64
		var dir, colleague string
		if err := rows.Scan(&id, &next, &dir, &after, &colleague); err != nil {
			t.Fatal(err)
		}
		missed = append(missed, fmt.Sprintf("%d>%d %s %d %s", id, next, dir, after, colleague))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(missed, "; "), "201>0  -1 ; 601>602 outbound 600 Alice Rossi; 1001>0  -1 Alice Rossi; 1101>0  -1 Bruno Costa"; got != want {
		t.Errorf("missed_calls:\n got %s\nwant %s", got, want)
	}
	check("calls_by_department Sales", ints(`SELECT extensions, calls_received, received_missed, answered FROM calls_by_department WHERE department = 'Sales'`), 2, 5, 3, 3)
	check("calls_by_department Support", ints(`SELECT extensions, calls_received, received_missed, answered FROM calls_by_department WHERE department = 'Support'`), 1, 2, 0, 4)
	check("data_quality", ints(`SELECT legs, calls, start_missing, unknown_disposition FROM data_quality WHERE pbx = $1`, fixturePBX), 21, 15, 1, 1)
	check("data_quality times", ints(`SELECT end_missing, answer_missing, local_time_as_utc, bad_durations FROM data_quality WHERE pbx = $1`, fixturePBX), 0, 0, 0, 0)
}

// TestLocalTimeWithoutAZone: without WILDIX_TIMEZONE (or with a zone
// PostgreSQL does not know) the views use each record's own offset, and
// pbx_settings says the zone is unknown.
func TestLocalTimeWithoutAZone(t *testing.T) {
	t.Parallel()
	for _, zone := range []string{"", "Mars/Olympus_Mons"} {
		t.Run(fmt.Sprintf("zone=%q", zone), func(t *testing.T) {
			t.Parallel()
			_, pool := loadFixture(t, zone, fixtureLegs)
			var recorded *string
			if err := pool.QueryRow(context.Background(), "SELECT time_zone FROM pbx_settings WHERE pbx = $1", fixturePBX).Scan(&recorded); err != nil {
				t.Fatal(err)
			}
			if recorded != nil {
				t.Fatalf("time_zone = %q, want NULL", *recorded)
			}
			got := queryCalls(t, pool)
			for _, w := range fixtureCalls {
				if got[w.firstLeg].local != w.local {
					t.Errorf("call %d: local start %q, want %q (from the record's offset)", w.firstLeg, got[w.firstLeg].local, w.local)
				}
			}
		})
	}
}

// TestReportingUpgradeKeepsUsersViews: a database at migration 2, with a
// user's views on the old views, upgrades in place; the user's views
// still answer, now counting calls.
func TestReportingUpgradeKeepsUsersViews(t *testing.T) {
	t.Parallel()
	schema, pool := pgtest.Schema(t)
	ctx := context.Background()
	old := NewPostgres(pool, schema, nil)
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `CREATE TABLE export_schema_migrations (version integer PRIMARY KEY, description text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		t.Fatal(err)
	}
	for _, e := range record.Builtin() {
		if err := old.ensureTable(ctx, tx, &e); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range migrations {
		if m.version > 2 {
			break
		}
		if _, err := tx.Exec(ctx, strings.ReplaceAll(m.sql, "{schema}", pgx.Identifier{schema}.Sanitize())); err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, "INSERT INTO export_schema_migrations (version, description) VALUES ($1, $2)", m.version, m.description); err != nil {
			t.Fatal(err)
		}
	}
	for _, v := range []string{
		"CREATE VIEW my_days AS SELECT day, sum(calls) AS calls, sum(answered) AS answered FROM calls_daily GROUP BY day",
		"CREATE VIEW my_missed AS SELECT id, local_start, from_number, ring_seconds FROM missed_calls",
		"CREATE VIEW my_exts AS SELECT extension, calls_received, received_missed FROM calls_by_extension",
	} {
		if _, err := tx.Exec(ctx, v); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := old.Migrate(ctx, record.Builtin()); err != nil {
		t.Fatalf("upgrade from migration 2 with users' views: %v", err)
	}
	loadInto(t, old, "Europe/Rome", fixtureLegs)
	var calls, answered int64
	if err := pool.QueryRow(ctx, "SELECT coalesce(sum(calls), 0), coalesce(sum(answered), 0) FROM my_days").Scan(&calls, &answered); err != nil {
		t.Fatalf("user's view on calls_daily: %v", err)
	}
	if calls != int64(len(fixtureCalls)) || answered != 10 {
		t.Fatalf("user's view on calls_daily: %d calls, %d answered; want %d, 10", calls, answered, len(fixtureCalls))
	}
	for _, v := range []string{"my_missed", "my_exts"} {
		if _, err := pool.Exec(ctx, "SELECT * FROM "+v); err != nil {
			t.Fatalf("user's view %s: %v", v, err)
		}
	}
}

// TestReportingOnSimulatedPBX: on the simulator's data (the demo's), calls
// has one row per call of the simulator's truth — fewer than call_history
// by the extra legs of ring-group, queue and transferred calls — and
// calls_daily's answered + missed is each PBX-local day's calls.
func TestReportingOnSimulatedPBX(t *testing.T) {
	t.Parallel()
	p, pool := newPostgres(t)
	f := simtest.New(t, pbxsim.Options{Calls: 2000, CallGap: 2 * time.Minute})
	if err := newExporter(t, f, p).Run(context.Background(), "r", "once", defaultEndpoints()).Err(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	rome, err := time.LoadLocation("Europe/Rome")
	if err != nil {
		t.Fatal(err)
	}
	type truth struct {
		start    time.Time
		answered bool
	}
	calls := map[int64]*truth{}
	legs := f.Sim.CallCount()
	for id := int64(1); id <= legs; id++ {
		c := f.Sim.Call(id)
		tr := calls[c.CallID]
		if tr == nil {
			tr = &truth{start: c.Start}
			calls[c.CallID] = tr
		}
		if c.Start.Before(tr.start) {
			tr.start = c.Start
		}
		tr.answered = tr.answered || c.Disposition == "ANSWERED"
	}
	extra := legs - int64(len(calls))
	if extra < legs/20 {
		t.Fatalf("the simulator made %d extra legs in %d records: too few to test grouping", extra, legs)
	}
	var history, got int64
	if err := pool.QueryRow(ctx, "SELECT (SELECT count(*) FROM call_history), (SELECT count(*) FROM calls)").Scan(&history, &got); err != nil {
		t.Fatal(err)
	}
	if history != legs || got != history-extra {
		t.Fatalf("call_history %d rows, calls %d rows; want %d and %d (%d extra legs)", history, got, legs, legs-extra, extra)
	}
	rows, err := pool.Query(ctx, "SELECT first_leg_id FROM calls")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		if calls[id] == nil {
			t.Fatalf("calls has first leg %d, which starts no call in the simulator's truth", id)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	type day struct{ calls, answered int64 }
	want := map[string]day{}
	for _, c := range calls {
		d := c.start.In(rome).Format("2006-01-02")
		v := want[d]
		v.calls++
		if c.answered {
			v.answered++
		}
		want[d] = v
	}
	rows, err = pool.Query(ctx, `SELECT day::text, sum(calls), sum(answered), sum(missed) FROM calls_daily GROUP BY day`)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for rows.Next() {
		var d string
		var c, a, m int64
		if err := rows.Scan(&d, &c, &a, &m); err != nil {
			t.Fatal(err)
		}
		if a+m != c || want[d] != (day{c, a}) {
			t.Fatalf("calls_daily %s: %d calls, %d answered, %d missed; want %d calls, %d answered", d, c, a, m, want[d].calls, want[d].answered)
		}
		n++
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if n != len(want) || n < 2 {
		t.Fatalf("calls_daily has %d days, want %d", n, len(want))
	}
	var dirs int
	if err := pool.QueryRow(ctx, "SELECT count(DISTINCT direction) FROM calls").Scan(&dirs); err != nil {
		t.Fatal(err)
	}
	if dirs != 3 {
		t.Fatalf("the simulated calls have %d directions, want inbound, outbound and internal", dirs)
	}
}

// TestReportingDocExamples runs every PostgreSQL example query of
// docs/reporting.md on the fixtures (each must return rows) and checks
// that its tables list every reporting view with exactly its columns.
func TestReportingDocExamples(t *testing.T) {
	t.Parallel()
	p, pool := loadFixture(t, "Europe/Rome", fixtureLegs)
	loadGroupFixture(t, p, "Sales")
	ctx := context.Background()
	b, err := os.ReadFile("../docs/reporting.md")
	if err != nil {
		t.Fatal(err)
	}
	section := string(b)
	end := strings.Index(section, "\n## The same questions over the CSV files")
	if end < 0 {
		t.Fatal("docs/reporting.md has no '## The same questions over the CSV files' section")
	}
	section = section[:end]

	listed := map[string]string{}
	for _, m := range regexp.MustCompile("(?m)^\\| `(\\w+)`(?: \\(table\\))? \\| [^|]+ \\| `([^`]+)` \\|$").FindAllStringSubmatch(section, -1) {
		listed[m[1]] = m[2]
	}
	rows, err := pool.Query(ctx, `SELECT c.table_name, string_agg(c.column_name, ', ' ORDER BY c.ordinal_position)
FROM information_schema.columns c
WHERE c.table_schema = current_schema()
  AND (c.table_name IN (SELECT table_name FROM information_schema.views WHERE table_schema = current_schema())
       OR c.table_name IN ('pbx_settings', 'reporting_settings'))
GROUP BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	actual := map[string]string{}
	for rows.Next() {
		var name, cols string
		if err := rows.Scan(&name, &cols); err != nil {
			t.Fatal(err)
		}
		actual[name] = cols
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(actual) < 16 {
		t.Fatalf("found %d views, want the reporting views", len(actual))
	}
	for name, cols := range actual {
		if listed[name] != cols {
			t.Errorf("docs/reporting.md tables: %s lists %q, the schema has %q", name, listed[name], cols)
		}
	}
	for name := range listed {
		if actual[name] == "" {
			t.Errorf("docs/reporting.md tables list %s, which the schema does not have", name)
		}
	}

	var queries []string
	for _, block := range strings.Split(section, "```sql\n")[1:] {
		queries = append(queries, strings.Split(block[:strings.Index(block, "```")], ";\n")...)
	}
	if len(queries) == 0 {
		t.Fatal("docs/reporting.md has no SQL examples")
	}
	examples := 0
	used := map[string]bool{}
	for _, q := range queries {
		if strings.TrimSpace(q) == "" {
			continue
		}
		examples++
		for name := range actual {
			if strings.Contains(q, "wildix."+name+" ") || strings.Contains(q, "wildix."+name+"\n") || strings.HasSuffix(q, "wildix."+name) {
				used[name] = true
			}
		}
		q = strings.ReplaceAll(q, "wildix.", "")
		var n int
		if err := pool.QueryRow(ctx, "SELECT count(*) FROM ("+q+") AS example").Scan(&n); err != nil {
			t.Errorf("docs/reporting.md example fails: %v\n%s", err, q)
			continue
		}
		if n == 0 {
			t.Errorf("docs/reporting.md example returns no rows on the fixtures:\n%s", q)
		}
	}
	for name := range actual {
		if !used[name] {
			t.Errorf("docs/reporting.md has no example query on %s", name)
		}
	}
	t.Logf("%d examples, %d views", examples, len(actual))
}
