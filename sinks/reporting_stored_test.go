package sinks

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wildix-export/wildix-export/exporter"
	"github.com/wildix-export/wildix-export/exporter/record"
	"github.com/wildix-export/wildix-export/internal/pgtest"
)

// liveGroupViews creates, beside the stored views, the group views as
// they were computed at each query before group_calls was stored
// (migrations 6 and 10, read from their own text): group_legs_live,
// group_calls_live, group_intervals_live and agent_calls_live, the reference the stored rows
// must equal after every write.
func liveGroupViews(t *testing.T, p *Postgres, pool *pgxpool.Pool) {
	t.Helper()
	between := func(s, from, to string) string {
		i := strings.Index(s, from)
		j := strings.Index(s[i+1:], to)
		if i < 0 || j < 0 {
			t.Fatalf("no %q … %q in a migration", from, to)
		}
		return s[i : i+1+j]
	}
	legs := strings.Replace(between(reportingGroups, "CREATE OR REPLACE VIEW {schema}.group_legs AS", "-- group_calls: one row"),
		"{schema}.group_legs AS", "{schema}.group_legs_live AS", 1)
	calls := strings.NewReplacer("{schema}.group_calls AS", "{schema}.group_calls_live AS",
		"{schema}.group_legs", "{schema}.group_legs_live").Replace(reportingGroupsTimeout)
	agents := strings.NewReplacer("{schema}.agent_calls AS", "{schema}.agent_calls_live AS",
		"{schema}.group_legs", "{schema}.group_legs_live", "{schema}.group_calls\n", "{schema}.group_calls_live\n").
		Replace(between(reportingGroups, "CREATE OR REPLACE VIEW {schema}.agent_calls AS", "-- data_quality keeps"))
	intervals := strings.NewReplacer("{schema}.group_intervals AS", "{schema}.group_intervals_live AS",
		"{schema}.group_calls c", "{schema}.group_calls_live c").
		Replace(between(reportingGroups, "CREATE OR REPLACE VIEW {schema}.group_intervals AS", "-- agent_calls: per group"))
	for _, sql := range []string{legs, calls, agents, intervals} {
		if _, err := pool.Exec(context.Background(), strings.ReplaceAll(sql, "{schema}", pgx.Identifier{p.schema}.Sanitize())); err != nil {
			t.Fatalf("create a live view: %v", err)
		}
	}
}

// sameAsLive fails when group_legs, group_calls, group_intervals or
// agent_calls differ in
// any row from their live definitions, or when group_calls is empty.
func sameAsLive(t *testing.T, pool *pgxpool.Pool, step string) {
	t.Helper()
	for _, v := range []struct{ name, order string }{
		{"group_legs", "pbx, id"},
		{"group_calls", "pbx, call_key, group_key"},
		{"group_intervals", "pbx, group_key, interval_start"},
		{"agent_calls", "pbx, group_key, extension, day"},
	} {
		got := viewLines(t, pool, "SELECT * FROM "+v.name+" ORDER BY "+v.order)
		want := viewLines(t, pool, "SELECT * FROM "+v.name+"_live ORDER BY "+v.order)
		if len(want) == 0 {
			t.Fatalf("%s: %s_live has no rows", step, v.name)
		}
		sameLines(t, step+": "+v.name+" against its live definition", got, want)
	}
}

func sqlExec(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) {
	t.Helper()
	if _, err := pool.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%v\n%s", err, sql)
	}
}

func legRecords(legs ...gleg) []json.RawMessage {
	rome, _ := time.LoadLocation("Europe/Rome")
	var recs []json.RawMessage
	for _, l := range legs {
		recs = append(recs, l.json(rome))
	}
	return recs
}

// TestGroupCallsStoredFollowEveryWrite: the stored group_calls (and
// agent_calls over it) equal the views computed at the query after each
// kind of write a run or a person makes: a call's legs in two batches, a
// leg backfilled below the highest id, records sent again changed
// (--force), legs deleted or marked deleted, a number becoming a group's
// by rule 3, colleagues and call groups changed, the PBX's zone and the
// thresholds changed.
func TestGroupCallsStoredFollowEveryWrite(t *testing.T) {
	t.Parallel()
	p, pool := loadFixture(t, "Europe/Rome", nil)
	loadGroupFixture(t, p, "Sales")
	liveGroupViews(t, p, pool)
	sameAsLive(t, pool, "fixture")

	// A call to 600 whose legs come in two batches, the answer last.
	loadRecords(t, p, "call_history", legRecords(
		ring(6001, "2026-03-14 09:00:00", "", "2026-03-14 09:00:09", 9, 0, "600", "201", "z001"),
		ring(6002, "2026-03-14 09:00:00", "", "2026-03-14 09:00:09", 9, 0, "600", "202", "z001")), "split-1")
	sameAsLive(t, pool, "first half of a call")
	loadRecords(t, p, "call_history", legRecords(
		ring(6003, "2026-03-14 09:00:00", "2026-03-14 09:00:09", "2026-03-14 09:02:09", 129, 120, "600", "203", "z001")), "split-2")
	sameAsLive(t, pool, "second half of a call")
	sameLines(t, "the call answered once both halves are in", viewLines(t, pool,
		`SELECT outcome, answered_by_extension, wait_seconds::text, legs::text FROM group_calls WHERE first_leg_id = 6001`), []string{"answered|203|9|3"})

	// A backfill: a leg below the highest id joins case A's call (merge path).
	loadRecords(t, p, "call_history", legRecords(
		ring(4999, "2026-03-10 09:00:00", "", "2026-03-10 09:00:12", 12, 0, "600", "204", "a001")), "backfill")
	sameAsLive(t, pool, "a leg backfilled into an earlier call")

	// Sent again (--force), one leg changed: case A answered by nobody.
	loadRecords(t, p, "call_history", legRecords(
		ring(5001, "2026-03-10 09:00:00", "", "2026-03-10 09:00:12", 12, 0, "600", "201", "a001"),
		ring(5003, "2026-03-10 09:00:00", "", "2026-03-10 09:05:12", 312, 0, "600", "202", "a001")), "force")
	sameAsLive(t, pool, "records sent again, one changed")

	// Marked deleted, deleted, changed by hand.
	sqlExec(t, pool, `UPDATE call_history SET deleted_at = now() WHERE id = 5012`)
	sameAsLive(t, pool, "the answering leg of case B marked deleted")
	sqlExec(t, pool, `DELETE FROM call_history WHERE id = 5054`)
	sameAsLive(t, pool, "the second group's leg of case F deleted")
	sqlExec(t, pool, `UPDATE call_history SET channel = 'SIP/trunk-d031' WHERE id = 5021`)
	sameAsLive(t, pool, "a leg moved to another call")

	// 800 rang 204 and 206: rule 3 now finds Night queue (204) for 800, and
	// case E2's leg, known by lastapp Queue so far, moves to it.
	before := viewLines(t, pool, `SELECT group_source FROM group_legs WHERE id = 5045`)
	loadRecords(t, p, "call_history", legRecords(
		ring(6011, "2026-03-15 09:00:00", "", "2026-03-15 09:00:20", 20, 0, "800", "204", "y011"),
		ring(6012, "2026-03-15 09:00:00", "", "2026-03-15 09:00:20", 20, 0, "800", "206", "y011")), "rule-3")
	sameAsLive(t, pool, "a number becoming a group's by the members it rang")
	sameLines(t, "case E2's leg before and after", append(before, viewLines(t, pool, `SELECT group_source FROM group_legs WHERE id = 5045`)...),
		[]string{"queue_app", "members_rung"})
	sqlExec(t, pool, `DELETE FROM call_history WHERE id IN (6011, 6012)`)
	sameAsLive(t, pool, "the number's evidence deleted again")

	// Colleagues: 600 becomes a colleague's extension (rule 3 no longer
	// applies to it), and 206 joins.
	colleagues := append(fixtureColleagues[:4:4], `{"id":"5","name":"Front desk","extension":"600"}`, `{"id":"6","name":"Franco Neri","extension":"206"}`)
	var recs []json.RawMessage
	for _, c := range colleagues {
		recs = append(recs, json.RawMessage(c))
	}
	loadRecords(t, p, "colleagues", recs, "colleagues-2")
	sameAsLive(t, pool, "colleagues changed")
	loadRecords(t, p, "colleagues", recs[:4], "colleagues-3")
	sameAsLive(t, pool, "colleagues changed back")

	// Call groups: Sales loses 203 and gets the number 650; a group renamed.
	groups := groupRecords("Inside sales")
	groups[0] = json.RawMessage(`{"id":"1","title":"Inside sales","number":"650","members":["201","202"]}`)
	loadRecords(t, p, "call_groups", groups, "groups-2")
	sameAsLive(t, pool, "call groups changed")

	// The zone and the thresholds.
	sqlExec(t, pool, `UPDATE pbx_settings SET time_zone = 'America/New_York'`)
	sameAsLive(t, pool, "the PBX's zone changed")
	sqlExec(t, pool, `UPDATE pbx_settings SET time_zone = NULL`)
	sameAsLive(t, pool, "the PBX's zone unknown")
	sqlExec(t, pool, `INSERT INTO reporting_settings (pbx, service_level_seconds, short_abandon_seconds) VALUES ($1, 5, 20)`, fixturePBX)
	sameAsLive(t, pool, "the thresholds changed")

	sqlExec(t, pool, `TRUNCATE call_history`)
	if n := len(viewLines(t, pool, `SELECT 1 FROM group_calls`)); n != 0 {
		t.Errorf("group_calls has %d rows after call_history was emptied", n)
	}
}

// TestGroupCallsStoredRandomWrites: seeded random legs (shared and reused
// channels, uniqueids, legs without a start, several numbers and members)
// written in random batches, both paths, with random deletions and edits
// between them, leave the stored rows equal to the live views each time.
func TestGroupCallsStoredRandomWrites(t *testing.T) {
	t.Parallel()
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rnd := rand.New(rand.NewSource(seed))
	p, pool := loadFixture(t, "Europe/Rome", nil)
	loadGroupFixture(t, p, "Sales")
	liveGroupViews(t, p, pool)

	numbers := []string{"600", "700", "800", "650", "202", "205", "+390212345678"}
	var legs []gleg
	for i := 0; i < 160; i++ {
		start := time.Date(2026, 4, 1, 9, 0, 0, 0, time.UTC).Add(time.Duration(rnd.Intn(40)) * 45 * time.Second)
		dur := 1 + rnd.Intn(60)
		answer := ""
		bill := 0
		if rnd.Intn(3) == 0 {
			bill = rnd.Intn(dur)
			answer = start.Add(time.Duration(dur-bill) * time.Second).Format("2006-01-02 15:04:05")
		}
		ext := fmt.Sprint(201 + rnd.Intn(6))
		if rnd.Intn(8) == 0 {
			ext = ""
		}
		l := ring(int64(8000+i), start.Format("2006-01-02 15:04:05"), answer,
			start.Add(time.Duration(dur)*time.Second).Format("2006-01-02 15:04:05"), dur, bill,
			numbers[rnd.Intn(len(numbers))], ext, fmt.Sprintf("r%02d", rnd.Intn(12)))
		switch rnd.Intn(10) {
		case 0:
			l.uniqueid = fmt.Sprintf("u%d", rnd.Intn(8))
		case 1:
			l.start = ""
		case 2:
			l = l.with("2", "Queue", "700,t,,,40", "")
		case 3:
			l = l.with("", "Queue", "600,t,,,30", "")
		}
		legs = append(legs, l)
	}
	rnd.Shuffle(len(legs), func(i, j int) { legs[i], legs[j] = legs[j], legs[i] })
	for b := 0; len(legs) > 0; b++ {
		n := min(len(legs), 1+rnd.Intn(40))
		loadRecords(t, p, "call_history", legRecords(legs[:n]...), fmt.Sprintf("random-%d", b))
		legs = legs[n:]
		id := 8000 + rnd.Intn(160)
		switch rnd.Intn(4) {
		case 0:
			sqlExec(t, pool, `DELETE FROM call_history WHERE id = $1`, id)
		case 1:
			sqlExec(t, pool, `UPDATE call_history SET deleted_at = now() WHERE id = $1`, id)
		case 2:
			sqlExec(t, pool, `UPDATE call_history SET dstchannel = 'SIP/' || (201 + $2::int) || '-x' WHERE id = $1`, id, rnd.Intn(6))
		}
		sameAsLive(t, pool, fmt.Sprintf("random batch %d (seed %d)", b, seed))
		if t.Failed() {
			return
		}
	}
}

// TestGroupCallsStoredFilledByTheMigration: a schema at version 11 with
// a PBX's calls, colleagues and groups already exported gets, from
// migration 12, the stored rows that give exactly the fixture's expected
// group_calls, group_intervals and agent_calls; and the triggers it adds
// keep them from then on.
func TestGroupCallsStoredFilledByTheMigration(t *testing.T) {
	t.Parallel()
	schema, pool := pgtest.Schema(t)
	p := NewPostgres(pool, schema, nil)
	if err := p.migrate(context.Background(), record.Builtin(), 11); err != nil {
		t.Fatal(err)
	}
	loadInto(t, p, "Europe/Rome", nil)
	loadGroupFixture(t, p, "Sales")
	if err := p.Migrate(context.Background(), record.Builtin()); err != nil {
		t.Fatal(err)
	}
	sameLines(t, "group_calls after the migration", viewLines(t, pool, groupCallsQuery), wantGroupCalls)
	sameLines(t, "group_intervals after the migration", viewLines(t, pool, groupIntervalsQuery), wantGroupIntervals)
	sameLines(t, "agent_calls after the migration", viewLines(t, pool, agentCallsQuery), wantAgentCalls)
	liveGroupViews(t, p, pool)
	loadRecords(t, p, "call_history", legRecords(
		ring(6001, "2026-03-14 09:00:00", "2026-03-14 09:00:04", "2026-03-14 09:01:04", 64, 60, "700", "204", "z001")), "after-migration")
	sameAsLive(t, pool, "a call exported after the migration")
}

// loadFor writes records of a built-in endpoint as one committed batch of
// pbx (loadRecords for another PBX).
func loadFor(t *testing.T, p *Postgres, pbx, endpoint string, recs []json.RawMessage, runID string) {
	t.Helper()
	ctx := context.Background()
	rome, _ := time.LoadLocation("Europe/Rome")
	cat, err := record.NewCatalog(record.Builtin())
	if err != nil {
		t.Error(err)
		return
	}
	eps, err := cat.Select([]string{endpoint})
	if err != nil {
		t.Error(err)
		return
	}
	ep := &eps[0]
	rows, err := (&record.Converter{Endpoint: ep, Zone: rome}).Rows(recs)
	if err != nil {
		t.Errorf("convert %s: %v", endpoint, err)
		return
	}
	info := exporter.BatchInfo{PBX: pbx, RunID: runID, Endpoint: ep, StateKey: ep.Name, Snapshot: ep.Mode == record.Snapshot, Seq: 1}
	b, err := p.Begin(ctx, info)
	if err != nil {
		t.Error(err)
		return
	}
	if err := b.Write(ctx, rows); err != nil {
		t.Error(err)
		return
	}
	if err := b.Commit(ctx, []byte(`{}`), exporter.Progress{Rows: int64(len(rows))}); err != nil {
		t.Error(err)
	}
}

// TestGroupCallsStoredMoreWrites: scenarios beyond
// TestGroupCallsStoredFollowEveryWrite: thresholds UPDATEd and DELETEd on
// '*', TRUNCATE of pbx_settings, colleagues and call_groups, a colleague
// gone from the snapshot, a non-group leg backfilled early on a channel
// that holds group calls (renumbering its sessions), a second PBX with
// the same channels and uniqueids loaded concurrently.
func TestGroupCallsStoredMoreWrites(t *testing.T) {
	t.Parallel()
	p, pool := loadFixture(t, "Europe/Rome", nil)
	loadGroupFixture(t, p, "Sales")
	liveGroupViews(t, p, pool)
	sameAsLive(t, pool, "fixture")

	sqlExec(t, pool, `UPDATE reporting_settings SET service_level_seconds = 5, short_abandon_seconds = 40 WHERE pbx = '*'`)
	sameAsLive(t, pool, "thresholds '*' updated")
	sqlExec(t, pool, `DELETE FROM reporting_settings WHERE pbx = '*'`)
	sameAsLive(t, pool, "thresholds '*' deleted")
	sqlExec(t, pool, `INSERT INTO reporting_settings (pbx) VALUES ('*')`)
	sameAsLive(t, pool, "thresholds '*' back")

	// A channel that holds group calls: a leg reaching no group, earlier
	// than all of them, opens a session and renumbers the channel's calls.
	loadRecords(t, p, "call_history", legRecords(
		ring(100, "2026-03-01 08:00:00", "2026-03-01 08:00:01", "2026-03-01 08:00:30", 30, 29, "+390212345678", "", "a001")), "early-backfill")
	sameAsLive(t, pool, "a non-group leg backfilled first on a channel of group calls")
	sqlExec(t, pool, `UPDATE call_history SET start_time = start_time + interval '9 days 1 hour' WHERE id = 100`)
	sameAsLive(t, pool, "that leg moved into the middle of the channel's calls")

	// A second PBX, same channels and uniqueids, loaded concurrently with
	// more legs of the first.
	other := "other.wildixin.com"
	rome, _ := time.LoadLocation("Europe/Rome")
	var otherLegs []json.RawMessage
	for _, l := range groupLegs {
		otherLegs = append(otherLegs, l.json(rome))
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		var recs []json.RawMessage
		for _, c := range fixtureColleagues {
			recs = append(recs, json.RawMessage(c))
		}
		loadFor(t, p, other, "colleagues", recs, "o-colleagues")
		loadFor(t, p, other, "call_history", otherLegs, "o-legs")
		loadFor(t, p, other, "call_groups", groupRecords("Other sales"), "o-groups")
	}()
	go func() {
		defer wg.Done()
		for i := 0; i < 5; i++ {
			loadFor(t, p, fixturePBX, "call_history", legRecords(
				ring(int64(7000+2*i), fmt.Sprintf("2026-03-20 09:%02d:00", i), "", fmt.Sprintf("2026-03-20 09:%02d:09", i), 9, 0, "600", "201", fmt.Sprintf("q%03d", i)),
				ring(int64(7001+2*i), fmt.Sprintf("2026-03-20 09:%02d:00", i), fmt.Sprintf("2026-03-20 09:%02d:09", i), fmt.Sprintf("2026-03-20 09:%02d:59", i), 59, 50, "600", "202", fmt.Sprintf("q%03d", i))),
				fmt.Sprint("c-", i))
		}
	}()
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	sameAsLive(t, pool, "two PBXes loaded concurrently")

	// A colleague gone from the snapshot (deleted_at set): 204 is no
	// longer a colleague's extension.
	var recs []json.RawMessage
	for _, c := range fixtureColleagues[:3] {
		recs = append(recs, json.RawMessage(c))
	}
	loadRecords(t, p, "colleagues", recs, "colleagues-gone")
	sameAsLive(t, pool, "a colleague marked deleted")

	sqlExec(t, pool, `TRUNCATE colleagues`)
	sameAsLive(t, pool, "colleagues truncated")
	sqlExec(t, pool, `TRUNCATE call_groups`)
	sameAsLive(t, pool, "call_groups truncated")
	sqlExec(t, pool, `TRUNCATE reporting_settings`)
	sameAsLive(t, pool, "reporting_settings truncated")
}

// TestGroupCallsStoredFollowTruncatedPBXSettings: pbx_settings emptied by TRUNCATE (no
// trigger fires on it) recomputes the local times without a zone
// (migration 13; before it they kept the zone that was no longer there).
func TestGroupCallsStoredFollowTruncatedPBXSettings(t *testing.T) {
	t.Parallel()
	p, pool := loadFixture(t, "America/New_York", nil)
	loadGroupFixture(t, p, "Sales")
	liveGroupViews(t, p, pool)
	sameAsLive(t, pool, "fixture in New York time")
	sqlExec(t, pool, `TRUNCATE pbx_settings`)
	sameAsLive(t, pool, "pbx_settings truncated")
}
