package sinks

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wildix-export/wildix-export/exporter"
	"github.com/wildix-export/wildix-export/exporter/record"
)

// gleg is a CDR leg of a group fixture: a leg with the group fields a PBX
// may send.
type gleg struct {
	leg
	dstgrp, lastapp, lastdata string
}

func (g gleg) json(rome *time.Location) json.RawMessage {
	var m map[string]string
	if err := json.Unmarshal(g.leg.json(rome), &m); err != nil {
		panic(err)
	}
	if g.dstgrp != "" {
		m["dstgrp"] = g.dstgrp
	}
	if g.lastapp != "" {
		m["lastapp"], m["lastdata"] = g.lastapp, g.lastdata
	}
	b, _ := json.Marshal(m)
	return b
}

// ring is a leg of a group call from caller to number that rang ext.
func ring(id int64, start, answer, end string, dur, bill int, number, ext, channel string) gleg {
	disp := "NO ANSWER"
	if answer != "" {
		disp = "ANSWERED"
	}
	l := leg{id: id, start: start, answer: answer, end: end, duration: dur, billsec: bill, disposition: disp,
		from: "+39333" + channel, to: number, channel: "SIP/trunk-" + channel}
	if ext != "" {
		l.dstchannel = "SIP/" + ext + "-" + channel
	}
	return gleg{leg: l}
}

func (g gleg) with(dstgrp, lastapp, lastdata, offset string) gleg {
	g.dstgrp, g.lastapp, g.lastdata = dstgrp, lastapp, lastdata
	if offset != "" {
		g.offset = offset
	}
	return g
}

// groupLegs holds one case per situation of issue 26. Group 1 (Sales,
// ring-all, timeout 30 s) is dialled as 600 and group 2 (Support queue,
// timeout 90 s) as 700, neither number being in call_groups: the rule
// finds them by the members rung; case B sends dstgrp, case E2 only
// lastapp Queue.
var groupLegs = []gleg{
	// A. Ring-all answered by one member (202) after 12 s.
	ring(5001, "2026-03-10 09:00:00", "", "2026-03-10 09:00:12", 12, 0, "600", "201", "a001"),
	ring(5002, "2026-03-10 09:00:00", "", "2026-03-10 09:00:12", 12, 0, "600", "203", "a001"),
	ring(5003, "2026-03-10 09:00:00", "2026-03-10 09:00:12", "2026-03-10 09:05:12", 312, 300, "600", "202", "a001"),
	// G. Across a 15-minute boundary: offered 09:14:50, answered 09:15:05.
	ring(5004, "2026-03-10 09:14:50", "", "2026-03-10 09:15:05", 15, 0, "600", "202", "a004"),
	ring(5005, "2026-03-10 09:14:50", "2026-03-10 09:15:05", "2026-03-10 09:16:05", 75, 60, "600", "201", "a004"),
	// B. Queue answered: the PBX sends dstgrp; 203 rang 15 s, 204 answered
	// 25 s later (40 s: beyond the service level).
	ring(5011, "2026-03-10 09:20:00", "", "2026-03-10 09:20:15", 15, 0, "700", "203", "b011").with("2", "Queue", "700,t", ""),
	ring(5012, "2026-03-10 09:20:15", "2026-03-10 09:20:40", "2026-03-10 09:22:40", 145, 120, "700", "204", "b011").with("2", "Queue", "700,t", ""),
	// C. Nobody answers: the dialplan's 30 s timeout for the group (the
	// Queue application's fifth argument) is reached (overflow).
	ring(5021, "2026-03-10 10:00:00", "", "2026-03-10 10:00:30", 30, 0, "600", "201", "c021").with("", "Queue", "600,t,,,30", ""),
	ring(5022, "2026-03-10 10:00:00", "", "2026-03-10 10:00:30", 30, 0, "600", "202", "c021").with("", "Queue", "600,t,,,30", ""),
	ring(5023, "2026-03-10 10:00:00", "", "2026-03-10 10:00:30", 30, 0, "600", "203", "c021").with("", "Queue", "600,t,,,30", ""),
	// D. The caller hangs up after 3 s (a short abandon).
	ring(5031, "2026-03-10 10:10:00", "", "2026-03-10 10:10:03", 3, 0, "600", "201", "d031"),
	ring(5032, "2026-03-10 10:10:00", "", "2026-03-10 10:10:03", 3, 0, "600", "202", "d031"),
	ring(5033, "2026-03-10 10:10:00", "", "2026-03-10 10:10:03", 3, 0, "600", "203", "d031"),
	// E. Queue 700 rings 203, 204, 203 in turn; the caller hangs up after 60 s.
	ring(5041, "2026-03-10 10:30:00", "", "2026-03-10 10:30:20", 20, 0, "700", "203", "e041"),
	ring(5042, "2026-03-10 10:30:20", "", "2026-03-10 10:30:40", 20, 0, "700", "204", "e041"),
	ring(5043, "2026-03-10 10:30:40", "", "2026-03-10 10:31:00", 20, 0, "700", "203", "e041"),
	// E2. A queue with no agent rung, known only by lastapp Queue and its
	// lastdata (group 3); the caller hangs up after 8 s.
	ring(5045, "2026-03-10 10:50:00", "", "2026-03-10 10:50:08", 8, 0, "800", "", "e045").with("", "Queue", "3,t,,,60", ""),
	// F. Group 1 rings 20 s, then the call goes to group 2, where 204
	// answers after 5 s.
	ring(5051, "2026-03-10 11:00:00", "", "2026-03-10 11:00:20", 20, 0, "600", "201", "f051"),
	ring(5052, "2026-03-10 11:00:00", "", "2026-03-10 11:00:20", 20, 0, "600", "202", "f051"),
	ring(5053, "2026-03-10 11:00:00", "", "2026-03-10 11:00:20", 20, 0, "600", "203", "f051"),
	ring(5054, "2026-03-10 11:00:20", "2026-03-10 11:00:25", "2026-03-10 11:03:25", 185, 180, "700", "204", "f051"),
	// H. Across midnight: offered 23:59:50, answered 20 s later.
	ring(5061, "2026-03-10 23:59:50", "2026-03-11 00:00:10", "2026-03-11 00:02:10", 140, 120, "700", "203", "h061"),
	// I. The autumn change in Rome (03:00 CEST → 02:00 CET): 02:10 in
	// each of the two 02:00 hours, and a call offered at 02:59:50 CEST
	// answered at 02:00:05 CET, 15 s later.
	ring(5071, "2026-10-25 02:10:00", "2026-10-25 02:10:05", "2026-10-25 02:11:05", 65, 60, "600", "201", "i071").with("", "", "", "+0200"),
	ring(5072, "2026-10-25 02:59:50", "2026-10-25 02:00:05", "2026-10-25 02:02:05", 135, 120, "600", "203", "i072").with("", "", "", "+0200"),
	ring(5073, "2026-10-25 02:10:00", "2026-10-25 02:10:08", "2026-10-25 02:12:08", 128, 120, "600", "202", "i073").with("", "", "", "+0100"),
	// L. Queue 700 (dstgrp) whose own leg, with no phone rung, the PBX
	// answered at once (music on hold, as Asterisk's Queue does after an
	// Answer): 203 rings 15 s, 204 answers 30 s after the offer. The
	// queue's answered leg is no member's answer: answered by 204, wait 30.
	ring(5091, "2026-03-13 10:00:00", "2026-03-13 10:00:00", "2026-03-13 10:00:30", 30, 30, "700", "", "l091").with("2", "Queue", "700,t", ""),
	ring(5092, "2026-03-13 10:00:00", "", "2026-03-13 10:00:15", 15, 0, "700", "203", "l091").with("2", "Queue", "700,t", ""),
	ring(5093, "2026-03-13 10:00:15", "2026-03-13 10:00:30", "2026-03-13 10:02:30", 135, 120, "700", "204", "l091").with("2", "Queue", "700,t", ""),
	// M. The same queue's answered leg, 203 and 204 ring in turn, and the
	// caller hangs up after 45 s: abandoned, never answered.
	ring(5095, "2026-03-13 10:30:00", "2026-03-13 10:30:00", "2026-03-13 10:30:45", 45, 45, "700", "", "m095").with("2", "Queue", "700,t", ""),
	ring(5096, "2026-03-13 10:30:00", "", "2026-03-13 10:30:20", 20, 0, "700", "203", "m095").with("2", "Queue", "700,t", ""),
	ring(5097, "2026-03-13 10:30:20", "", "2026-03-13 10:30:45", 25, 0, "700", "204", "m095").with("2", "Queue", "700,t", ""),
	// N. Sales rings everyone for its strategy's 30 s (settings.timeout),
	// pauses 3 s, rings again; the caller hangs up at 50 s. The strategy's
	// timeout is one round of ringing, not when the call leaves the group
	// (Wildix's admin guide): abandoned, not overflowed.
	ring(5101, "2026-03-13 11:00:00", "", "2026-03-13 11:00:30", 30, 0, "600", "201", "n101"),
	ring(5102, "2026-03-13 11:00:00", "", "2026-03-13 11:00:30", 30, 0, "600", "202", "n101"),
	ring(5103, "2026-03-13 11:00:00", "", "2026-03-13 11:00:30", 30, 0, "600", "203", "n101"),
	ring(5104, "2026-03-13 11:00:33", "", "2026-03-13 11:00:50", 17, 0, "600", "201", "n101"),
	ring(5105, "2026-03-13 11:00:33", "", "2026-03-13 11:00:50", 17, 0, "600", "202", "n101"),
	ring(5106, "2026-03-13 11:00:33", "", "2026-03-13 11:00:50", 17, 0, "600", "203", "n101"),
	// K. A leg with no readable start: still an offered call, in no
	// interval or day, its wait unknown.
	ring(5081, "", "", "2026-03-12 10:00:30", 30, 0, "600", "201", "k081"),
}

// groupRecords are call_groups as the PBX sends them: members in three
// shapes, a numeric id, and a group with two members nobody can read.
func groupRecords(salesTitle string) []json.RawMessage {
	return []json.RawMessage{
		json.RawMessage(`{"id":"1","title":"` + salesTitle + `","members":["201","202","203"],"settings":{"strategy":"ringall","timeout":"30"}}`),
		json.RawMessage(`{"id":"2","title":"Support queue","members":[{"extension":"203"},{"extension":"204","name":"Dario"}],"settings":{"strategy":"rrmemory","timeout":90}}`),
		json.RawMessage(`{"id":3,"title":"Night queue","members":["SIP/204"],"settings":{"strategy":"linear"}}`),
		json.RawMessage(`{"id":"4","title":"Broken","members":[true,"SIP/"]}`),
	}
}

// loadGroupFixture loads the group legs through the real sink, then the
// call groups with Sales named salesTitle; the colleagues and the PBX's
// zone come from loadFixture.
func loadGroupFixture(t *testing.T, p *Postgres, salesTitle string) {
	t.Helper()
	rome, err := time.LoadLocation("Europe/Rome")
	if err != nil {
		t.Fatal(err)
	}
	var recs []json.RawMessage
	for _, l := range groupLegs {
		recs = append(recs, l.json(rome))
	}
	loadRecords(t, p, "call_history", recs, "fixture")
	loadRecords(t, p, "call_groups", groupRecords(salesTitle), "fixture-groups-"+salesTitle)
}

// batchSink is the part of a sink loadRecords needs: the PostgreSQL and
// the CSV sinks both are one.
type batchSink interface {
	Begin(ctx context.Context, b exporter.BatchInfo) (exporter.Batch, error)
}

// loadRecords writes records of a built-in endpoint as one committed
// batch of run runID (a whole snapshot for snapshot endpoints).
func loadRecords(t *testing.T, p batchSink, endpoint string, recs []json.RawMessage, runID string) {
	t.Helper()
	ctx := context.Background()
	rome, _ := time.LoadLocation("Europe/Rome")
	cat, err := record.NewCatalog(record.Builtin())
	if err != nil {
		t.Fatal(err)
	}
	eps, err := cat.Select([]string{endpoint})
	if err != nil {
		t.Fatal(err)
	}
	ep := &eps[0]
	rows, err := (&record.Converter{Endpoint: ep, Zone: rome}).Rows(recs)
	if err != nil {
		t.Fatalf("convert %s: %v", endpoint, err)
	}
	b, err := p.Begin(ctx, exporter.BatchInfo{PBX: fixturePBX, RunID: runID, Endpoint: ep, StateKey: ep.Name, Snapshot: ep.Mode == record.Snapshot, Seq: 1})
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

// viewLines returns query's rows, each as its columns' text joined by |
// (NULL as an empty string).
func viewLines(t *testing.T, pool *pgxpool.Pool, query string) []string {
	t.Helper()
	rows, err := pool.Query(context.Background(), query)
	if err != nil {
		t.Fatalf("%v\n%s", err, query)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			t.Fatal(err)
		}
		parts := make([]string, len(vals))
		for i, v := range vals {
			if v != nil {
				parts[i] = textOf(v)
			}
		}
		out = append(out, strings.Join(parts, "|"))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func textOf(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case bool:
		if v {
			return "t"
		}
		return "f"
	default:
		b, _ := json.Marshal(v)
		return strings.Trim(string(b), `"`)
	}
}

func sameLines(t *testing.T, what string, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") == strings.Join(want, "\n") {
		return
	}
	t.Errorf("%s:\ngot\n\t%s\nwant\n\t%s", what, strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
}

// The queries that print each view's rows for comparison; the same text
// comes from the DuckDB queries over CSV (see the DuckDB test).
const (
	groupCallsQuery = `SELECT group_key, group_name, first_leg_id::text, to_char(offered_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'),
  to_char(local_offered, 'YYYY-MM-DD HH24:MI:SS'), local_day::text, to_char(interval_start AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'),
  outcome, answered::text, abandoned::text, short_abandon::text, overflowed::text, answered_in_service_level::text,
  answered_by_extension, answered_by_colleague, wait_seconds::text, talk_seconds::text, transferred_out::text, next_destination,
  legs::text, members_rung::text, group_source
FROM group_calls ORDER BY offered_at, group_key, first_leg_id`
	groupIntervalsQuery = `SELECT group_key, group_name, to_char(interval_start AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'),
  to_char(interval_local, 'YYYY-MM-DD HH24:MI'), utc_offset_minutes::text, offered::text, answered::text, answered_in_service_level::text,
  abandoned::text, short_abandons::text, overflowed::text, service_level_percent::text, avg_speed_of_answer_seconds::text,
  avg_wait_seconds::text, max_wait_seconds::text, avg_handle_seconds::text, talk_seconds::text
FROM group_intervals ORDER BY group_key, interval_start`
	agentCallsQuery = `SELECT group_key, group_name, extension, colleague, day::text, calls_rung::text, answered::text, missed::text,
  answered_by_others::text, talk_seconds::text, avg_handle_seconds::text, group_answered::text, answered_share_percent::text
FROM agent_calls ORDER BY group_key, day, extension`
)

// Expected rows: group_calls, one per call offered to a group.
var wantGroupCalls = []string{
	"g:1|Sales|5001|2026-03-10 08:00:00|2026-03-10 09:00:00|2026-03-10|2026-03-10 08:00|answered|true|false|false|false|true|202|Bruno Costa|12|300|false||3|3|members_rung",
	"g:1|Sales|5004|2026-03-10 08:14:50|2026-03-10 09:14:50|2026-03-10|2026-03-10 08:00|answered|true|false|false|false|true|201|Alice Rossi|15|60|false||2|2|members_rung",
	"g:2|Support queue|5011|2026-03-10 08:20:00|2026-03-10 09:20:00|2026-03-10|2026-03-10 08:15|answered|true|false|false|false|false|204|Dario Smith|40|120|false||2|2|dstgrp",
	"g:1|Sales|5021|2026-03-10 09:00:00|2026-03-10 10:00:00|2026-03-10|2026-03-10 09:00|overflowed|false|false|false|true|false|||30||false||3|3|members_rung",
	"g:1|Sales|5031|2026-03-10 09:10:00|2026-03-10 10:10:00|2026-03-10|2026-03-10 09:00|abandoned|false|true|true|false|false|||3||false||3|3|members_rung",
	"g:2|Support queue|5041|2026-03-10 09:30:00|2026-03-10 10:30:00|2026-03-10|2026-03-10 09:30|abandoned|false|true|false|false|false|||60||false||3|2|members_rung",
	"g:3|Night queue|5045|2026-03-10 09:50:00|2026-03-10 10:50:00|2026-03-10|2026-03-10 09:45|abandoned|false|true|false|false|false|||8||false||1|0|queue_app",
	"g:1|Sales|5051|2026-03-10 10:00:00|2026-03-10 11:00:00|2026-03-10|2026-03-10 10:00|overflowed|false|false|false|true|false|||20||false|Support queue|3|3|members_rung",
	"g:2|Support queue|5054|2026-03-10 10:00:20|2026-03-10 11:00:20|2026-03-10|2026-03-10 10:00|answered|true|false|false|false|true|204|Dario Smith|5|180|false||1|1|members_rung",
	"g:2|Support queue|5061|2026-03-10 22:59:50|2026-03-10 23:59:50|2026-03-10|2026-03-10 22:45|answered|true|false|false|false|true|203|Chiara Nowak|20|120|false||1|1|members_rung",
	"g:2|Support queue|5091|2026-03-13 09:00:00|2026-03-13 10:00:00|2026-03-13|2026-03-13 09:00|answered|true|false|false|false|false|204|Dario Smith|30|120|false||3|2|dstgrp",
	"g:2|Support queue|5095|2026-03-13 09:30:00|2026-03-13 10:30:00|2026-03-13|2026-03-13 09:30|abandoned|false|true|false|false|false|||45||false||3|2|dstgrp",
	"g:1|Sales|5101|2026-03-13 10:00:00|2026-03-13 11:00:00|2026-03-13|2026-03-13 10:00|abandoned|false|true|false|false|false|||50||false||6|3|members_rung",
	"g:1|Sales|5071|2026-10-25 00:10:00|2026-10-25 02:10:00|2026-10-25|2026-10-25 00:00|answered|true|false|false|false|true|201|Alice Rossi|5|60|false||1|1|members_rung",
	"g:1|Sales|5072|2026-10-25 00:59:50|2026-10-25 02:59:50|2026-10-25|2026-10-25 00:45|answered|true|false|false|false|true|203|Chiara Nowak|15|120|false||1|1|members_rung",
	"g:1|Sales|5073|2026-10-25 01:10:00|2026-10-25 02:10:00|2026-10-25|2026-10-25 01:00|answered|true|false|false|false|true|202|Bruno Costa|8|120|false||1|1|members_rung",
	"g:1|Sales|5081|||||abandoned|false|true|false|false|false|||||false||1|1|members_rung",
}

// Expected rows: group_intervals; the two 02:00 intervals of 25 October
// are an hour apart in UTC.
var wantGroupIntervals = []string{
	"g:1|Sales|2026-03-10 08:00|2026-03-10 09:00|60|2|2|2|0|0|0|100.0|13.5|13.5|15|180.0|360",
	"g:1|Sales|2026-03-10 09:00|2026-03-10 10:00|60|2|0|0|1|1|1|0.0||16.5|30||0",
	"g:1|Sales|2026-03-10 10:00|2026-03-10 11:00|60|1|0|0|0|0|1|0.0||20.0|20||0",
	"g:1|Sales|2026-03-13 10:00|2026-03-13 11:00|60|1|0|0|1|0|0|0.0||50.0|50||0",
	"g:1|Sales|2026-10-25 00:00|2026-10-25 02:00|120|1|1|1|0|0|0|100.0|5.0|5.0|5|60.0|60",
	"g:1|Sales|2026-10-25 00:45|2026-10-25 02:45|120|1|1|1|0|0|0|100.0|15.0|15.0|15|120.0|120",
	"g:1|Sales|2026-10-25 01:00|2026-10-25 02:00|60|1|1|1|0|0|0|100.0|8.0|8.0|8|120.0|120",
	"g:1|Sales||||1|0|0|1|0|0|0.0|||||0",
	"g:2|Support queue|2026-03-10 08:15|2026-03-10 09:15|60|1|1|0|0|0|0|0.0|40.0|40.0|40|120.0|120",
	"g:2|Support queue|2026-03-10 09:30|2026-03-10 10:30|60|1|0|0|1|0|0|0.0||60.0|60||0",
	"g:2|Support queue|2026-03-10 10:00|2026-03-10 11:00|60|1|1|1|0|0|0|100.0|5.0|5.0|5|180.0|180",
	"g:2|Support queue|2026-03-10 22:45|2026-03-10 23:45|60|1|1|1|0|0|0|100.0|20.0|20.0|20|120.0|120",
	"g:2|Support queue|2026-03-13 09:00|2026-03-13 10:00|60|1|1|0|0|0|0|0.0|30.0|30.0|30|120.0|120",
	"g:2|Support queue|2026-03-13 09:30|2026-03-13 10:30|60|1|0|0|1|0|0|0.0||45.0|45||0",
	"g:3|Night queue|2026-03-10 09:45|2026-03-10 10:45|60|1|0|0|1|0|0|0.0||8.0|8||0",
}

// Expected rows: agent_calls, per group, PBX-local day and member.
var wantAgentCalls = []string{
	"g:1|Sales|201|Alice Rossi|2026-03-10|5|1|4|1|60|60.0|2|50.0",
	"g:1|Sales|202|Bruno Costa|2026-03-10|5|1|4|1|300|300.0|2|50.0",
	"g:1|Sales|203|Chiara Nowak|2026-03-10|4|0|4|1|0||2|0.0",
	"g:1|Sales|201|Alice Rossi|2026-03-13|1|0|1|0|0||0|",
	"g:1|Sales|202|Bruno Costa|2026-03-13|1|0|1|0|0||0|",
	"g:1|Sales|203|Chiara Nowak|2026-03-13|1|0|1|0|0||0|",
	"g:1|Sales|201|Alice Rossi|2026-10-25|1|1|0|0|60|60.0|3|33.3",
	"g:1|Sales|202|Bruno Costa|2026-10-25|1|1|0|0|120|120.0|3|33.3",
	"g:1|Sales|203|Chiara Nowak|2026-10-25|1|1|0|0|120|120.0|3|33.3",
	"g:1|Sales|201|Alice Rossi||1|0|1|0|0||0|",
	"g:2|Support queue|203|Chiara Nowak|2026-03-10|3|1|2|1|120|120.0|3|33.3",
	"g:2|Support queue|204|Dario Smith|2026-03-10|3|2|1|0|300|150.0|3|66.7",
	"g:2|Support queue|203|Chiara Nowak|2026-03-13|2|0|2|1|0||1|0.0",
	"g:2|Support queue|204|Dario Smith|2026-03-13|2|1|1|0|120|120.0|1|100.0",
}

// TestGroupViewsOnKnownCases: every case of the group fixture gives
// exactly its expected rows in group_calls, group_intervals and
// agent_calls, and data_quality counts what the rule had to guess.
func TestGroupViewsOnKnownCases(t *testing.T) {
	t.Parallel()
	p, pool := loadFixture(t, "Europe/Rome", nil)
	loadGroupFixture(t, p, "Sales")
	sameLines(t, "group_calls", viewLines(t, pool, groupCallsQuery), wantGroupCalls)
	sameLines(t, "group_intervals", viewLines(t, pool, groupIntervalsQuery), wantGroupIntervals)
	sameLines(t, "agent_calls", viewLines(t, pool, agentCallsQuery), wantAgentCalls)
	sameLines(t, "data_quality", viewLines(t, pool, `SELECT legs::text, group_legs::text, group_by_members_rung::text,
  group_by_queue_app::text, group_not_in_call_groups::text, group_members_unreadable::text FROM data_quality`),
		[]string{"38|38|29|1|0|2"})
	sameLines(t, "call_group_members", viewLines(t, pool, `SELECT group_id, group_name, extension, position::text FROM call_group_members ORDER BY group_id, extension`),
		[]string{"1|Sales|201|1", "1|Sales|202|2", "1|Sales|203|3", "2|Support queue|203|1", "2|Support queue|204|2", "3|Night queue|204|1"})
}

// TestGroupRenamedBetweenRuns: a group renamed in WMS between two runs
// keeps its calls in one group under its new name; no interval splits.
func TestGroupRenamedBetweenRuns(t *testing.T) {
	t.Parallel()
	p, pool := loadFixture(t, "Europe/Rome", nil)
	loadGroupFixture(t, p, "Sales")
	loadRecords(t, p, "call_groups", groupRecords("Inside sales"), "second-run")
	rename := func(lines []string) []string {
		out := make([]string, len(lines))
		for i, l := range lines {
			out[i] = strings.Replace(l, "|Sales|", "|Inside sales|", 1)
		}
		return out
	}
	sameLines(t, "group_calls after the rename", viewLines(t, pool, groupCallsQuery), rename(wantGroupCalls))
	sameLines(t, "group_intervals after the rename", viewLines(t, pool, groupIntervalsQuery), rename(wantGroupIntervals))
	sameLines(t, "agent_calls after the rename", viewLines(t, pool, agentCallsQuery), rename(wantAgentCalls))
}

// TestGroupThresholdsFromSettings: a PBX's row in reporting_settings
// overrides the '*' row, without editing a view.
func TestGroupThresholdsFromSettings(t *testing.T) {
	t.Parallel()
	p, pool := loadFixture(t, "Europe/Rome", nil)
	loadGroupFixture(t, p, "Sales")
	ctx := context.Background()
	q := `SELECT first_leg_id::text, answered_in_service_level::text, short_abandon::text, service_level_seconds::text, short_abandon_seconds::text
FROM group_calls WHERE first_leg_id IN (5001, 5004, 5031) ORDER BY first_leg_id`
	sameLines(t, "defaults", viewLines(t, pool, q), []string{"5001|true|false|20|6", "5004|true|false|20|6", "5031|false|true|20|6"})
	if _, err := pool.Exec(ctx, `UPDATE reporting_settings SET service_level_seconds = 30 WHERE pbx = '*'`); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO reporting_settings (pbx, service_level_seconds, short_abandon_seconds) VALUES ($1, 12, 2)`, fixturePBX); err != nil {
		t.Fatal(err)
	}
	sameLines(t, "the PBX's own row", viewLines(t, pool, q), []string{"5001|true|false|12|2", "5004|false|false|12|2", "5031|false|false|12|2"})
	if _, err := pool.Exec(ctx, `INSERT INTO reporting_settings (pbx, service_level_seconds) VALUES ('x', -1)`); err == nil {
		t.Fatal("a negative threshold was accepted")
	}
}

// TestGroupMembersEveryShape: call_group_members reads members in every
// shape a PBX may send (array of strings, numbers, objects or interfaces,
// a PHP-style object, a comma-separated string), counts what it cannot
// read, and a group whose settings are malformed leaves every group view
// queryable.
func TestGroupMembersEveryShape(t *testing.T) {
	t.Parallel()
	p, pool := loadFixture(t, "Europe/Rome", nil)
	loadGroupFixture(t, p, "Sales")
	loadRecords(t, p, "call_groups", []json.RawMessage{
		json.RawMessage(`{"id":"10","title":"Numbers","members":[301,"302"],"settings":"ringall"}`),
		json.RawMessage(`{"id":"11","title":"PHP","members":{"0":"PJSIP/303-0000a1","3":{"stateInterface":"Local/304@queue"}},"settings":{"timeout":"soon"}}`),
		json.RawMessage(`{"id":"12","name":"Queue named by name","members":"305, SIP/306","settings":[]}`),
		json.RawMessage(`{"id":"13","title":"Odd","members":[null,{"name":"nobody"},"",[]]}`),
		json.RawMessage(`{"id":"14","title":"None"}`),
	}, "odd-shapes")
	sameLines(t, "call_group_members", viewLines(t, pool, `SELECT group_id, group_name, extension, position::text FROM call_group_members WHERE group_deleted_at IS NULL ORDER BY group_id, position`),
		[]string{"10|Numbers|301|1", "10|Numbers|302|2", "11|PHP|303|1", "11|PHP|304|2", "12|Queue named by name|305|1", "12|Queue named by name|306|2"})
	sameLines(t, "data_quality", viewLines(t, pool, `SELECT group_members_unreadable::text FROM data_quality`), []string{"4"})
	for _, v := range []string{"group_calls", "group_intervals", "agent_calls", "group_legs"} {
		if n := len(viewLines(t, pool, "SELECT * FROM "+v)); n == 0 {
			t.Errorf("%s has no rows with malformed groups present", v)
		}
	}
}

// TestGroupViewsManyPBXes: two PBXes in one database with the same call
// ids, channels, group ids and extensions (a copy of the fixture under
// another PBX) give each PBX exactly the fixture's rows, so every row of
// the group views appears twice and no figure doubles; a threshold set
// for one PBX changes only its calls.
func TestGroupViewsManyPBXes(t *testing.T) {
	t.Parallel()
	p, pool := loadFixture(t, "Europe/Rome", nil)
	loadGroupFixture(t, p, "Sales")
	ctx := context.Background()
	for _, table := range []string{"call_history", "colleagues", "call_groups", "pbx_settings"} {
		q := `INSERT INTO ` + table + ` SELECT (jsonb_populate_record(NULL::` + table + `, to_jsonb(x) || '{"pbx": "other.wildixin.com"}')).* FROM ` + table + ` x`
		if _, err := pool.Exec(ctx, q); err != nil {
			t.Fatalf("copy %s to another PBX: %v", table, err)
		}
	}
	twice := func(lines []string) []string {
		var out []string
		for _, l := range lines {
			out = append(out, l, l)
		}
		return out
	}
	sameLines(t, "group_calls of two PBXes", viewLines(t, pool, groupCallsQuery), twice(wantGroupCalls))
	sameLines(t, "group_intervals of two PBXes", viewLines(t, pool, groupIntervalsQuery), twice(wantGroupIntervals))
	sameLines(t, "agent_calls of two PBXes", viewLines(t, pool, agentCallsQuery), twice(wantAgentCalls))
	if _, err := pool.Exec(ctx, `INSERT INTO reporting_settings (pbx, service_level_seconds, short_abandon_seconds) VALUES ('other.wildixin.com', 1, 1)`); err != nil {
		t.Fatal(err)
	}
	inLevel, short := 0, 0
	for _, l := range wantGroupCalls {
		f := strings.Split(l, "|")
		if f[12] == "true" {
			inLevel++
		}
		if f[10] == "true" {
			short++
		}
	}
	sameLines(t, "calls within the service level and short abandons per PBX",
		viewLines(t, pool, `SELECT pbx, (count(*) FILTER (WHERE answered_in_service_level))::text, (count(*) FILTER (WHERE short_abandon))::text
FROM group_calls GROUP BY pbx ORDER BY pbx`),
		[]string{fmt.Sprintf("%s|%d|%d", fixturePBX, inLevel, short), "other.wildixin.com|0|0"})
}

// TestGroupDeletedKeepsItsCalls: a group deleted in WMS (gone from the
// next run's snapshot, so deleted_at is set) keeps its past calls, name,
// members and figures in every group view.
func TestGroupDeletedKeepsItsCalls(t *testing.T) {
	t.Parallel()
	p, pool := loadFixture(t, "Europe/Rome", nil)
	loadGroupFixture(t, p, "Sales")
	recs := groupRecords("Sales")
	loadRecords(t, p, "call_groups", append(recs[:1:1], recs[2:]...), "second-run")
	sameLines(t, "the group is deleted", viewLines(t, pool, `SELECT id FROM call_groups WHERE deleted_at IS NOT NULL`), []string{"2"})
	sameLines(t, "group_calls after the deletion", viewLines(t, pool, groupCallsQuery), wantGroupCalls)
	sameLines(t, "group_intervals after the deletion", viewLines(t, pool, groupIntervalsQuery), wantGroupIntervals)
	sameLines(t, "agent_calls after the deletion", viewLines(t, pool, agentCallsQuery), wantAgentCalls)
}

// TestGroupThresholdBoundaries: "within" the thresholds includes them:
// a caller hanging up exactly short_abandon_seconds after the offer is a
// short abandon, a call answered exactly service_level_seconds after it is
// within the service level; one second more is neither. Neither the
// fixture (waits 3, 12, 15, 40 s…) nor the simulator (hang-ups at 3 and
// 60 s) has a wait on a threshold.
func TestGroupThresholdBoundaries(t *testing.T) {
	t.Parallel()
	p, pool := loadFixture(t, "Europe/Rome", nil)
	loadGroupFixture(t, p, "Sales")
	loadRecords(t, p, "call_history", legRecords(
		ring(9001, "2026-05-04 09:00:00", "", "2026-05-04 09:00:06", 6, 0, "700", "204", "x901").with("2", "Queue", "700,t,,,90", ""),
		ring(9002, "2026-05-04 09:10:00", "", "2026-05-04 09:10:07", 7, 0, "700", "204", "x902").with("2", "Queue", "700,t,,,90", ""),
		ring(9003, "2026-05-04 09:20:00", "2026-05-04 09:20:20", "2026-05-04 09:21:20", 80, 60, "700", "204", "x903").with("2", "Queue", "700,t,,,90", ""),
		ring(9004, "2026-05-04 09:30:00", "2026-05-04 09:30:21", "2026-05-04 09:31:21", 81, 60, "700", "204", "x904").with("2", "Queue", "700,t,,,90", ""),
		// Nobody answers and nothing follows: the Queue timeout reached
		// exactly is an overflow, a second less an abandon.
		ring(9005, "2026-05-04 09:40:00", "", "2026-05-04 09:41:30", 90, 0, "700", "204", "x905").with("2", "Queue", "700,t,,,90", ""),
		ring(9006, "2026-05-04 09:50:00", "", "2026-05-04 09:51:29", 89, 0, "700", "204", "x906").with("2", "Queue", "700,t,,,90", "")), "boundaries")
	sameLines(t, "calls on the thresholds", viewLines(t, pool, `SELECT first_leg_id::text, outcome, wait_seconds::text, short_abandon::text, answered_in_service_level::text
FROM group_calls WHERE first_leg_id BETWEEN 9001 AND 9006 ORDER BY first_leg_id`), []string{
		"9001|abandoned|6|true|false",
		"9002|abandoned|7|false|false",
		"9003|answered|20|false|true",
		"9004|answered|21|false|false",
		"9005|overflowed|90|false|false",
		"9006|abandoned|89|false|false",
	})
	sameLines(t, "their intervals", viewLines(t, pool, `SELECT to_char(interval_local, 'HH24:MI'), offered::text, answered_in_service_level::text, short_abandons::text, overflowed::text
FROM group_intervals WHERE interval_local >= '2026-05-04' AND interval_local < '2026-05-05' ORDER BY interval_start`), []string{
		"09:00|2|0|1|0", "09:15|1|1|0|0", "09:30|2|0|0|1", "09:45|1|0|0|0",
	})
}
