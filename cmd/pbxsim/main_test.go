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
	purge := start(t, "-calls", "50", "-delete-after", "1", "-delete-oldest", "12")
	ids(t, purge, q)
	if got, _ := ids(t, purge, q); strings.Join(got, ",") != "13,14,15,16,17" {
		t.Fatalf("-delete-after 1 -delete-oldest 12: then %v", got)
	}
	for _, bad := range [][]string{{"-total", "maybe"}, {"-delete-oldest", "3"}} {
		if err := run(context.Background(), append([]string{"-addr", "127.0.0.1:0"}, bad...), io.Discard, io.Discard); err == nil {
			t.Errorf("%v: no error", bad)
		}
	}
}
