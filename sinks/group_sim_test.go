package sinks

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wildix-export/wildix-export/internal/pbxsim"
	"github.com/wildix-export/wildix-export/simtest"
)

// groupSimSeed is the simulator's seed for TestGroupViewsOnSimulatedPBX:
// WILDIX_TEST_SEED when set (to replay a failure), else the clock's.
func groupSimSeed(t *testing.T) int64 {
	t.Helper()
	seed := time.Now().UnixNano()
	if v := os.Getenv("WILDIX_TEST_SEED"); v != "" {
		var err error
		if seed, err = strconv.ParseInt(v, 10, 64); err != nil {
			t.Fatalf("WILDIX_TEST_SEED %q: expected an integer", v)
		}
	}
	t.Logf("seed %d (replay with WILDIX_TEST_SEED=%d)", seed, seed)
	return seed
}

// round1 is PostgreSQL's round(num / den, 1) of non-negative integers, as text.
func round1(num, den int64) string {
	x := (20*num + den) / (2 * den)
	return fmt.Sprintf("%d.%d", x/10, x%10)
}

// offeredAsSent is the ground truth of the calls offered to a group as the
// records the PBX sent can tell it: without uniqueid, a leg sent without
// its start is a call of its own (docs/pbx-api.md, "Calls and their
// legs"), offered at an unknown time (Offered zero), abandoned when no
// member answered (docs/reporting.md), and missing from its own call. The
// simulator spoils starts only of ring-all legs that did not answer, so
// the call keeps its offer, outcome and wait.
func offeredAsSent(sim *pbxsim.Sim, fields pbxsim.GroupFields) []pbxsim.GroupCall {
	truth := sim.GroupCalls()
	if fields.UniqueID {
		return truth
	}
	for id := int64(1); id <= sim.MaxCallID(); id++ {
		c := sim.Call(id)
		if c.Malformed != "start" {
			continue
		}
		member := strings.TrimPrefix(strings.Split(c.DstChannel, "-")[0], "SIP/")
		for i := range truth {
			t := &truth[i]
			if t.CallID != c.CallID || t.GroupID != c.Group {
				continue
			}
			t.Legs--
			t.Members = slices.DeleteFunc(slices.Clone(t.Members), func(m string) bool { return m == member })
			t.FirstLegID = 0
			for l := c.CallID; l < c.CallID+8; l++ {
				if o := sim.Call(l); o.CallID == c.CallID && o.Group == c.Group && o.Malformed != "start" && t.FirstLegID == 0 {
					t.FirstLegID = l
				}
			}
		}
		truth = append(truth, pbxsim.GroupCall{CallID: id, FirstLegID: id, GroupID: c.Group, Outcome: pbxsim.Abandoned, Legs: 1, Members: []string{member},
			Strategy: "ringall", Scenario: "a member's leg sent without its start: a call of its own"})
	}
	return truth
}

// TestGroupViewsOnSimulatedPBX: the simulator plays ring groups and queues
// (answered, the caller hanging up after 3 s and after 60 s, voicemail at
// the timeout, sent on to another group, transferred after the answer)
// with the group fields sent or not, as a PBX may (pbxsim.GroupFields),
// and spoilt in some legs. After a real export over HTTP into PostgreSQL,
// each offered call's row in group_calls equals the simulator's ground
// truth for that call, and every row of group_intervals equals the
// figures this test computes from the ground truth alone, and so does every
// row of agent_calls; data_quality
// counts the legs placed by a guess and the malformed fields.
func TestGroupViewsOnSimulatedPBX(t *testing.T) {
	t.Parallel()
	seed := groupSimSeed(t)
	for _, v := range []struct {
		name   string
		fields pbxsim.GroupFields
	}{
		{"lastapp Queue (default)", pbxsim.GroupFields{}},
		{"dstgrp, uniqueid and dcontext", pbxsim.GroupFields{GroupIDs: true, UniqueID: true, DContext: true}},
		{"lastapp Dial", pbxsim.GroupFields{App: "dial"}},
		{"lastapp Dial and uniqueid", pbxsim.GroupFields{App: "dial", UniqueID: true}},
		{"no lastapp", pbxsim.GroupFields{App: "none"}},
		{"dstgrp without lastapp", pbxsim.GroupFields{App: "none", GroupIDs: true}},
		{"queues' own legs", pbxsim.GroupFields{QueueLeg: true}},
		{"queues' own legs, dstgrp without lastapp", pbxsim.GroupFields{QueueLeg: true, GroupIDs: true, App: "none"}},
		{"malformed legs", pbxsim.GroupFields{Malformed: true}},
		{"malformed legs with dstgrp and queues' own legs", pbxsim.GroupFields{Malformed: true, GroupIDs: true, UniqueID: true, QueueLeg: true}},
	} {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			p, pool := newPostgres(t)
			// A day across the end of summer time in Rome (25 October,
			// 01:00 UTC), calls 10 s apart.
			f := simtest.New(t, pbxsim.Options{Seed: seed, Calls: 6000, CallGap: 10 * time.Second,
				CallsStart: time.Date(2026, 10, 24, 18, 0, 0, 0, time.UTC), GroupFields: v.fields})
			ctx := context.Background()
			if err := newExporter(t, f, p).Run(ctx, "r", "once", defaultEndpoints()).Err(); err != nil {
				t.Fatal(err)
			}
			truth := offeredAsSent(f.Sim, v.fields)
			rome, err := time.LoadLocation("Europe/Rome")
			if err != nil {
				t.Fatal(err)
			}
			var sl, short int64
			if err := pool.QueryRow(ctx, `SELECT service_level_seconds, short_abandon_seconds FROM reporting_settings WHERE pbx = '*'`).Scan(&sl, &short); err != nil {
				t.Fatal(err)
			}

			// Each offered call: its row equals the ground truth.
			source := "members_rung"
			if v.fields.GroupIDs {
				source = "dstgrp"
			}
			got := map[string]string{}
			for _, l := range viewLines(t, pool, `SELECT first_leg_id::text, group_key, to_char(offered_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'),
  outcome, answered_by_extension, wait_seconds::text, talk_seconds::text, members_rung::text, legs::text,
  transferred_out, next_destination, short_abandon, answered_in_service_level, group_source
FROM group_calls`) {
				id, _, _ := strings.Cut(l, "|")
				if got[id] != "" {
					t.Errorf("group_calls has first leg %s twice", id)
				}
				got[id] = l
			}
			outcomes := map[string]int{}
			for _, c := range truth {
				outcomes[c.Outcome]++
				talk := ""
				if c.Outcome == pbxsim.Answered {
					talk = strconv.FormatInt(c.Talk, 10)
				}
				offered, wait := "", ""
				if !c.Offered.IsZero() {
					offered, wait = c.Offered.UTC().Format(time.DateTime), strconv.FormatInt(c.Wait, 10)
				}
				want := strings.Join([]string{strconv.FormatInt(c.FirstLegID, 10), "g:" + c.GroupID, offered,
					c.Outcome, c.AnsweredBy, wait, talk, strconv.Itoa(len(c.Members)), strconv.Itoa(c.Legs),
					textOf(c.TransferredOut), c.NextDestination, textOf(c.Outcome == pbxsim.Abandoned && wait != "" && c.Wait <= short),
					textOf(c.Outcome == pbxsim.Answered && c.Wait <= sl), source}, "|")
				id := strconv.FormatInt(c.FirstLegID, 10)
				if got[id] != want {
					t.Errorf("call %d offered to group %s (%s, %s):\n\tgroup_calls %q\n\ttruth       %q", c.CallID, c.GroupID, c.Strategy, c.Scenario, got[id], want)
				}
				delete(got, id)
			}
			for id, l := range got {
				t.Errorf("group_calls has first leg %s, which the ground truth does not offer: %s", id, l)
			}
			if outcomes[pbxsim.Answered] < 50 || outcomes[pbxsim.Abandoned] < 10 || outcomes[pbxsim.Overflowed] < 10 {
				t.Fatalf("the simulator offered %v: too few of an outcome to test", outcomes)
			}

			// Every group and interval: the view's figures equal those
			// computed from the ground truth.
			type figures struct {
				offered, answered, inSL, abandoned, short, overflowed int64
				waitAnswered, wait, waits, maxWait, talk              int64
			}
			type key struct {
				group string
				start time.Time
			}
			byInterval := map[key]*figures{}
			for _, c := range truth {
				k := key{"g:" + c.GroupID, c.Offered.UTC().Truncate(15 * time.Minute)}
				fg := byInterval[k]
				if fg == nil {
					fg = &figures{}
					byInterval[k] = fg
				}
				fg.offered++
				if c.Offered.IsZero() { // offered at an unknown time: interval NULL, wait unknown
					fg.abandoned++
					continue
				}
				fg.wait += c.Wait
				fg.waits++
				fg.maxWait = max(fg.maxWait, c.Wait)
				switch c.Outcome {
				case pbxsim.Answered:
					fg.answered++
					fg.waitAnswered += c.Wait
					fg.talk += c.Talk
					if c.Wait <= sl {
						fg.inSL++
					}
				case pbxsim.Abandoned:
					fg.abandoned++
					if c.Wait <= short {
						fg.short++
					}
				case pbxsim.Overflowed:
					fg.overflowed++
				}
			}
			var want []string
			offsets := map[int]bool{}
			for k, fg := range byInterval {
				mean := func(sum, n int64) string {
					if n == 0 {
						return ""
					}
					return round1(sum, n)
				}
				start, local, off, maxWait := "", "", "", ""
				if !k.start.IsZero() {
					l := k.start.In(rome)
					_, secs := l.Zone()
					offsets[secs/60] = true
					start, local, off = k.start.Format("2006-01-02 15:04"), l.Format("2006-01-02 15:04"), strconv.Itoa(secs/60)
				}
				if fg.waits > 0 {
					maxWait = fmt.Sprint(fg.maxWait)
				}
				want = append(want, strings.Join([]string{k.group, start, local, off, fmt.Sprint(fg.offered), fmt.Sprint(fg.answered), fmt.Sprint(fg.inSL), fmt.Sprint(fg.abandoned),
					fmt.Sprint(fg.short), fmt.Sprint(fg.overflowed), round1(100*fg.inSL, fg.offered), mean(fg.waitAnswered, fg.answered),
					mean(fg.wait, fg.waits), maxWait, mean(fg.talk, fg.answered), fmt.Sprint(fg.talk)}, "|"))
			}
			slices.Sort(want)
			gotIntervals := viewLines(t, pool, `SELECT group_key, to_char(interval_start AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'),
  to_char(interval_local, 'YYYY-MM-DD HH24:MI'), utc_offset_minutes::text, offered::text, answered::text, answered_in_service_level::text,
  abandoned::text, short_abandons::text, overflowed::text, service_level_percent::text, avg_speed_of_answer_seconds::text,
  avg_wait_seconds::text, max_wait_seconds::text, avg_handle_seconds::text, talk_seconds::text
FROM group_intervals ORDER BY 1, 2`)
			sameLines(t, "group_intervals against the ground truth", gotIntervals, want)
			if len(want) < 100 || !offsets[60] || !offsets[120] {
				t.Fatalf("%d group intervals, UTC offsets %v: too few to test, or not across the change of time", len(want), offsets)
			}

			// agent_calls: each member's calls rung, answered and talked,
			// per group and PBX-local day, from the ground truth.
			type agentKey struct{ group, ext, day string }
			type agentFigures struct{ rung, answered, others, talk int64 }
			agents := map[agentKey]*agentFigures{}
			groupAnswered := map[[2]string]int64{}
			for _, c := range truth {
				day := ""
				if !c.Offered.IsZero() {
					day = c.Offered.In(rome).Format(time.DateOnly)
				}
				if c.Outcome == pbxsim.Answered {
					groupAnswered[[2]string{c.GroupID, day}]++
				}
				for _, m := range c.Members {
					k := agentKey{c.GroupID, m, day}
					a := agents[k]
					if a == nil {
						a = &agentFigures{}
						agents[k] = a
					}
					a.rung++
					switch {
					case c.AnsweredBy == m:
						a.answered++
						a.talk += c.Talk
					case c.Outcome == pbxsim.Answered:
						a.others++
					}
				}
			}
			var wantAgents []string
			for k, a := range agents {
				handle, share := "", ""
				if a.answered > 0 {
					handle = round1(a.talk, a.answered)
				}
				if ga := groupAnswered[[2]string{k.group, k.day}]; ga > 0 {
					share = round1(100*a.answered, ga)
				}
				wantAgents = append(wantAgents, strings.Join([]string{"g:" + k.group, k.ext, k.day, fmt.Sprint(a.rung), fmt.Sprint(a.answered),
					fmt.Sprint(a.rung - a.answered), fmt.Sprint(a.others), fmt.Sprint(a.talk), handle,
					fmt.Sprint(groupAnswered[[2]string{k.group, k.day}]), share}, "|"))
			}
			slices.Sort(wantAgents)
			sameLines(t, "agent_calls against the ground truth", viewLines(t, pool, `SELECT group_key, extension, day::text, calls_rung::text,
  answered::text, missed::text, answered_by_others::text, talk_seconds::text, avg_handle_seconds::text, group_answered::text,
  answered_share_percent::text
FROM agent_calls ORDER BY 1, 2, 3`), wantAgents)

			// data_quality: the legs placed by a guess, and the malformed fields.
			var legs, answerMissing, endMissing, startMissing int64
			for _, c := range truth {
				legs += int64(c.Legs)
			}
			for id := int64(1); id <= f.Sim.MaxCallID(); id++ {
				switch f.Sim.Call(id).Malformed {
				case "answer":
					answerMissing++
				case "end":
					endMissing++
				case "start":
					startMissing++
				}
			}
			byMembers := legs
			if v.fields.GroupIDs {
				byMembers = 0
			}
			if v.fields.Malformed && (answerMissing == 0 || endMissing == 0 || startMissing == 0) {
				t.Fatalf("malformed: %d answers, %d ends and %d starts spoilt: too few to test", answerMissing, endMissing, startMissing)
			}
			sameLines(t, "data_quality", viewLines(t, pool, `SELECT group_legs::text, group_by_members_rung::text, group_by_queue_app::text,
  group_not_in_call_groups::text, group_members_unreadable::text, answer_missing::text, end_missing::text, start_missing::text FROM data_quality`),
				[]string{fmt.Sprintf("%d|%d|0|0|0|%d|%d|%d", legs, byMembers, answerMissing, endMissing, startMissing)})
			t.Logf("%d offered calls %v in %d intervals, %d group legs", len(truth), outcomes, len(want), legs)
		})
	}
}
