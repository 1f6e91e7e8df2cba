package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wildix-export/wildix-export/internal/pbxsim"
)

// start runs the command with args on a free port and returns its base URL;
// it stops with the test.
func start(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out, w := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, append([]string{"-addr", "127.0.0.1:0", "-api-key", "wsk-v1-sim"}, args...), w, io.Discard)
		w.Close()
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("pbxsim: %v", err)
		}
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("pbxsim did not start: %v", err)
	}
	go io.Copy(io.Discard, out)
	base, ok := strings.CutPrefix(strings.TrimSpace(line), "pbxsim listening on ")
	if !ok {
		t.Fatalf("pbxsim printed %q", line)
	}
	return base
}

// ids lists the call ids of one answer, and its total as sent.
func ids(t *testing.T, base, query string) ([]string, any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/api/v1/PBX/CallHistory/?"+query, nil)
	req.Header.Set("Authorization", "Bearer wsk-v1-sim")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var env struct {
		Result struct {
			Total   any
			Records []struct{ ID string }
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&env); err != nil || resp.StatusCode != 200 {
		t.Fatalf("%s: status %d, %v", query, resp.StatusCode, err)
	}
	var out []string
	for _, r := range env.Result.Records {
		out = append(out, r.ID)
	}
	return out, env.Result.Total
}

// TestSwitchesReachTheSimulator: each of the PBX's behaviours the
// exporter must survive is a flag of the command, for trying a build
// against it by hand.
func TestSwitchesReachTheSimulator(t *testing.T) {
	t.Parallel()
	const q = "sort=id&dir=ASC&count=5&filter[id][from]=11&filter[id][to]=20"
	plain := start(t, "-calls", "50")
	if got, total := ids(t, plain, q); strings.Join(got, ",") != "11,12,13,14,15" || total != "10" {
		t.Fatalf("plain: %v, total %v", got, total)
	}
	odd := start(t, "-calls", "50", "-ignore-filter", "id", "-ignore-sort", "-max-count", "3", "-total", "number")
	got, total := ids(t, odd, q)
	if len(got) != 3 || total != float64(50) {
		t.Fatalf("-max-count 3, -total number: %v, total %v", got, total)
	}
	if got[0] == "11" && got[1] == "12" {
		t.Fatalf("-ignore-filter id: %v still filtered", got)
	}
	if got, total := ids(t, start(t, "-calls", "50", "-total", "absent"), q); len(got) != 5 || total != nil {
		t.Fatalf("-total absent: %v, total %v", got, total)
	}
	if got, total := ids(t, start(t, "-calls", "0"), q); len(got) != 0 || total != "0" {
		t.Fatalf("-calls 0: %v, total %v: want an empty PBX", got, total)
	}
	if got, _ := ids(t, start(t, "-calls", "50", "-filter-from-exclusive", "id", "-filter-to-exclusive"), q); strings.Join(got, ",") != "12,13,14,15,16" {
		t.Fatalf("-filter-from-exclusive id -filter-to-exclusive: %v, want 12 to 16", got)
	}
	if got, _ := ids(t, start(t, "-calls", "50", "-filter-to-exclusive"), q+"&start=5"); strings.Join(got, ",") != "16,17,18,19" {
		t.Fatalf("-filter-to-exclusive: %v, want 16 to 19", got)
	}
	live := start(t, "-calls", "50", "-live-insert-every", "1", "-live-insert-batch", "3", "-live-insert-max", "4")
	for range 3 {
		ids(t, live, q)
	}
	if got, _ := ids(t, live, "sort=id&dir=DESC&count=1"); strings.Join(got, ",") != "54" {
		t.Fatalf("-live-insert-max 4 after 4 requests inserting 3 each: newest %v, want 54", got)
	}
	purge := start(t, "-calls", "50", "-delete-after", "1", "-delete-oldest", "12")
	ids(t, purge, q)
	if got, _ := ids(t, purge, q); strings.Join(got, ",") != "13,14,15,16,17" {
		t.Fatalf("-delete-after 1 -delete-oldest 12: then %v", got)
	}
	fields := func(base string) map[string]string {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", base+"/api/v1/PBX/CallHistory/?sort=id&dir=ASC&count=16", nil)
		req.Header.Set("Authorization", "Bearer wsk-v1-sim")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var env struct {
			Result struct{ Records []map[string]string }
		}
		if err := json.NewDecoder(resp.Body).Decode(&env); err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for _, r := range env.Result.Records {
			for k, v := range r {
				if k == "lastapp" || k == "dstgrp" || k == "uniqueid" || k == "dcontext" || k == "clid" {
					out[k] += v + ","
				}
				if r["lastapp"] == "Queue" && r["dstchannel"] == "" {
					out["queue's own leg"] += r["id"] + ","
				}
			}
		}
		return out
	}
	plainFields := fields(plain)
	if !strings.Contains(plainFields["lastapp"], "Queue") || plainFields["dstgrp"] != "" || plainFields["uniqueid"] != "" || plainFields["dcontext"] != "" {
		t.Fatalf("default group fields: %v, want lastapp Queue on group legs and no dstgrp, uniqueid or dcontext", plainFields)
	}
	allFields := fields(start(t, "-calls", "50", "-group-app", "dial", "-group-ids", "-uniqueid", "-dcontext"))
	if strings.Contains(allFields["lastapp"], "Queue") || !strings.Contains(allFields["dstgrp"], "0,") || allFields["uniqueid"] == "" || allFields["dcontext"] == "" {
		t.Fatalf("-group-app dial -group-ids -uniqueid -dcontext: %v", allFields)
	}
	if noApp := fields(start(t, "-calls", "50", "-group-app", "none")); noApp["lastapp"] != "" {
		t.Fatalf("-group-app none: lastapp %q sent", noApp["lastapp"])
	}
	if plainFields["queue's own leg"] != "" {
		t.Fatalf("a queue's own leg without -queue-leg: %v", plainFields)
	}
	if own := fields(start(t, "-calls", "200", "-queue-leg")); own["queue's own leg"] == "" {
		t.Fatalf("-queue-leg: no leg of Queue without a phone rung in %v", own)
	}
	if plainFields["clid"] != "" {
		t.Fatalf("clid sent without -caller-id-fields: %v", plainFields["clid"])
	}
	if ids := fields(start(t, "-calls", "50", "-caller-id-fields")); !strings.Contains(ids["clid"], "<") {
		t.Fatalf("-caller-id-fields: clid %q, want caller ids \"name\" <number>", ids["clid"])
	}
	groups := func(base string) string {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", base+"/api/v1/Dialplan/CallGroups", nil)
		req.Header.Set("Authorization", "Bearer wsk-v1-sim")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("call groups: status %d, %v", resp.StatusCode, err)
		}
		return string(b)
	}
	if g := groups(plain); strings.Contains(g, pbxsim.ExternalMemberName) {
		t.Fatalf("an external member without -external-group-member: %s", g)
	}
	if g := groups(start(t, "-calls", "50", "-external-group-member")); !strings.Contains(g, pbxsim.ExternalMemberName) {
		t.Fatalf("-external-group-member: no external member in %s", g)
	}
	for _, bad := range [][]string{{"-total", "maybe"}, {"-delete-oldest", "3"}} {
		if err := run(context.Background(), append([]string{"-addr", "127.0.0.1:0"}, bad...), io.Discard, io.Discard); err == nil {
			t.Errorf("%v: no error", bad)
		}
	}
}

// TestBadFlags: a switch with a value the simulator cannot play stops it
// at start, naming the flag and the value, instead of serving a PBX that
// behaves otherwise than asked.
func TestBadFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-ignore-filter", "bogus"}, `-ignore-filter "bogus": "bogus" is not a call record field`},
		{[]string{"-ignore-filter", "id,Start"}, `"Start" is not a call record field`},
		{[]string{"-filter-from-exclusive", "ID"}, `-filter-from-exclusive "ID": "ID" is not a call record field`},
		{[]string{"-calls", "-1"}, "-calls -1: expected 0 or more"},
		{[]string{"-max-count", "-5"}, "-max-count -5: expected 0 or more"},
		{[]string{"-live-insert-every", "-1"}, "-live-insert-every -1"},
		{[]string{"-live-insert-batch", "0"}, "-live-insert-batch 0: expected 1 or more"},
		{[]string{"-live-insert-max", "-3"}, "-live-insert-max -3: expected 0 or more"},
		{[]string{"-delete-after", "-2"}, "-delete-after -2"},
		{[]string{"-delete-after", "3", "-delete-oldest", "-1"}, "-delete-oldest -1"},
		{[]string{"-delete-after", "3", "-delete-random", "-1"}, "-delete-random -1"},
		{[]string{"-fault-5xx", "1.5"}, "-fault-5xx 1.5: expected a rate from 0 to 1"},
		{[]string{"-fault-cut", "NaN"}, "-fault-cut NaN"},
		{[]string{"-latency", "-1s"}, "-latency -1s: expected a positive duration"},
		{[]string{"-call-gap", "0s"}, "-call-gap 0s"},
		{[]string{"-total", "maybe"}, `-total "maybe"`},
		{[]string{"-group-app", "Queue"}, `-group-app "Queue": expected queue, dial or none`},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			err := run(context.Background(), append([]string{"-addr", "127.0.0.1:0"}, tc.args...), io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to say %q", err, tc.want)
			}
		})
	}
}
