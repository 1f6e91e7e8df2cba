package sinks

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// duckdbPackage is the DuckDB the CSV reporting test runs: an npm package
// whose platform package carries the engine (`.ci/run` installs it).
const duckdbPackage = "@duckdb/node-api@1.5.6-r.1"

// duckdbDir is where the test looks for DuckDB's node_modules:
// WILDIX_DUCKDB_DIR, else ~/.cache/wildix-export/duckdb-node, where
// `.ci/run` installs it. In CI a missing DuckDB fails the test; elsewhere
// the test is skipped with the command that installs it.
func duckdbDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("WILDIX_DUCKDB_DIR")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			t.Fatal(err)
		}
		dir = filepath.Join(home, ".cache", "wildix-export", "duckdb-node")
	}
	_, err := os.Stat(filepath.Join(dir, "node_modules", "@duckdb", "node-api", "package.json"))
	if _, nodeErr := exec.LookPath("node"); err != nil || nodeErr != nil {
		msg := "DuckDB (node and the npm package " + duckdbPackage + ") not found in " + dir +
			": install it with `npm install --prefix " + dir + " " + duckdbPackage + "` (bash .ci/run does), or set WILDIX_DUCKDB_DIR"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return dir
}

// duckdbRunner runs, in DuckDB, the statements of setup in order, then
// each query, and prints {"examples": [rows per setup statement], "queries":
// {name: rows}}, each row a list of texts (null for NULL).
const duckdbRunner = `
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
const require = createRequire(process.env.DUCKDB_DIR + '/node_modules/');
const { DuckDBInstance } = require('@duckdb/node-api');
const input = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const db = await DuckDBInstance.create(':memory:');
const con = await db.connect();
const text = (v) => v === null || v === undefined ? null : String(v);
const out = { examples: [], queries: {} };
for (const sql of input.setup) {
  try {
    const r = await con.runAndReadAll(sql);
    out.examples.push(r.getRowsJS().length);
  } catch (e) {
    console.error('statement failed: ' + e.message + '\n' + sql);
    process.exit(2);
  }
}
for (const [name, sql] of Object.entries(input.queries)) {
  try {
    const r = await con.runAndReadAll(sql);
    out.queries[name] = r.getRowsJS().map(row => row.map(text));
  } catch (e) {
    console.error('query ' + name + ' failed: ' + e.message + '\n' + sql);
    process.exit(2);
  }
}
console.log(JSON.stringify(out));
`

// The DuckDB queries that print the same text, row for row, as
// groupCallsQuery, groupIntervalsQuery and agentCallsQuery in PostgreSQL.
var duckdbCompare = map[string]string{
	"group_calls": `SELECT group_key, group_name, CAST(first_leg_id AS VARCHAR), strftime(offered_at, '%Y-%m-%d %H:%M:%S'),
  strftime(local_offered, '%Y-%m-%d %H:%M:%S'), CAST(local_day AS VARCHAR), strftime(interval_start, '%Y-%m-%d %H:%M'),
  outcome, CAST(answered AS VARCHAR), CAST(abandoned AS VARCHAR), CAST(short_abandon AS VARCHAR), CAST(overflowed AS VARCHAR),
  CAST(answered_in_service_level AS VARCHAR), answered_by_extension, answered_by_colleague, CAST(wait_seconds AS VARCHAR),
  CAST(talk_seconds AS VARCHAR), CAST(transferred_out AS VARCHAR), next_destination, CAST(legs AS VARCHAR),
  CAST(members_rung AS VARCHAR), group_source
FROM group_calls ORDER BY offered_at, group_key, first_leg_id`,
	"group_intervals": `SELECT group_key, group_name, strftime(interval_start, '%Y-%m-%d %H:%M'), strftime(interval_local, '%Y-%m-%d %H:%M'),
  CAST(utc_offset_minutes AS VARCHAR), CAST(offered AS VARCHAR), CAST(answered AS VARCHAR), CAST(answered_in_service_level AS VARCHAR),
  CAST(abandoned AS VARCHAR), CAST(short_abandons AS VARCHAR), CAST(overflowed AS VARCHAR), printf('%.1f', service_level_percent),
  printf('%.1f', avg_speed_of_answer_seconds), printf('%.1f', avg_wait_seconds), CAST(max_wait_seconds AS VARCHAR),
  printf('%.1f', avg_handle_seconds), CAST(talk_seconds AS VARCHAR)
FROM group_intervals ORDER BY group_key, interval_start`,
	"agent_calls": `SELECT group_key, group_name, extension, colleague, CAST(day AS VARCHAR), CAST(calls_rung AS VARCHAR), CAST(answered AS VARCHAR),
  CAST(missed AS VARCHAR), CAST(answered_by_others AS VARCHAR), CAST(talk_seconds AS VARCHAR), printf('%.1f', avg_handle_seconds),
  CAST(group_answered AS VARCHAR), printf('%.1f', answered_share_percent)
FROM agent_calls ORDER BY group_key, day, extension`,
}

// csvReportingScript returns the statements of docs/reporting.md's DuckDB
// section, in order.
func csvReportingScript(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("../docs/reporting.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	start := strings.Index(doc, "\n## The same questions over the CSV files")
	if start < 0 {
		t.Fatal("docs/reporting.md has no '## The same questions over the CSV files' section")
	}
	var stmts []string
	for _, block := range strings.Split(doc[start:], "```sql\n")[1:] {
		for _, q := range strings.Split(block[:strings.Index(block, "```")], ";\n") {
			if strings.TrimSpace(q) != "" {
				stmts = append(stmts, q)
			}
		}
	}
	if len(stmts) < 10 {
		t.Fatalf("docs/reporting.md's DuckDB section has %d statements; the split no longer finds them", len(stmts))
	}
	return stmts
}

// TestGroupViewsDuckDBOverCSV: the DuckDB script of docs/reporting.md,
// run over the CSV files of both fixtures (the call groups exported by two
// runs, the group renamed in between), gives every row and figure of
// group_calls, group_intervals and agent_calls that the PostgreSQL views
// give on the same records; and each of its example queries returns rows.
func TestGroupViewsDuckDBOverCSV(t *testing.T) {
	t.Parallel()
	dir := duckdbDir(t)
	rome, err := time.LoadLocation("Europe/Rome")
	if err != nil {
		t.Fatal(err)
	}
	var legs, colleagues []json.RawMessage
	for _, l := range fixtureLegs {
		legs = append(legs, l.json(rome))
	}
	for _, l := range groupLegs {
		legs = append(legs, l.json(rome))
	}
	for _, c := range fixtureColleagues {
		colleagues = append(colleagues, json.RawMessage(c))
	}

	p, pool := loadFixture(t, "Europe/Rome", fixtureLegs)
	loadGroupFixture(t, p, "Sales")
	loadRecords(t, p, "call_groups", groupRecords("Inside sales"), "second-run")

	work := t.TempDir()
	csvSink, err := NewCSV(CSVOptions{Dir: filepath.Join(work, "export")})
	if err != nil {
		t.Fatal(err)
	}
	first, second := "20261206T010000Z-aaaaaa", "20261207T010000Z-bbbbbb"
	loadRecords(t, csvSink, "colleagues", colleagues, first)
	loadRecords(t, csvSink, "call_history", legs, first)
	loadRecords(t, csvSink, "call_groups", groupRecords("Sales"), first)
	loadRecords(t, csvSink, "call_groups", groupRecords("Inside sales"), second)

	stmts := csvReportingScript(t)
	got := runDuckDB(t, dir, work, stmts, duckdbCompare)
	for i, n := range got.Examples {
		if strings.HasPrefix(strings.TrimSpace(lastComment(stmts[i])), "SELECT") && n == 0 {
			t.Errorf("docs/reporting.md DuckDB example returns no rows on the fixtures:\n%s", stmts[i])
		}
	}
	pg := map[string]string{"group_calls": groupCallsQuery, "group_intervals": groupIntervalsQuery, "agent_calls": agentCallsQuery}
	for name, q := range pg {
		want := viewLines(t, pool, q)
		var lines []string
		for _, row := range got.Queries[name] {
			parts := make([]string, len(row))
			for i, v := range row {
				if v != nil {
					parts[i] = *v
				}
			}
			lines = append(lines, strings.Join(parts, "|"))
		}
		if len(want) < 8 {
			t.Fatalf("%s: PostgreSQL gives %d rows; the fixture should give more", name, len(want))
		}
		sameLines(t, name+" (DuckDB over CSV, then PostgreSQL)", lines, want)
	}
}

// lastComment drops the comment lines heading a statement.
func lastComment(stmt string) string {
	var keep []string
	for _, l := range strings.Split(stmt, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "--") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}

type duckdbOutput struct {
	Examples []int                  `json:"examples"`
	Queries  map[string][][]*string `json:"queries"`
}

// runDuckDB runs stmts, then queries, in DuckDB with the working
// directory work (which holds export/).
func runDuckDB(t *testing.T, dir, work string, stmts []string, queries map[string]string) duckdbOutput {
	t.Helper()
	script := filepath.Join(work, "run.mjs")
	input := filepath.Join(work, "input.json")
	b, err := json.Marshal(map[string]any{"setup": stmts, "queries": queries})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(script, []byte(duckdbRunner), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(input, b, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", script, input)
	cmd.Dir = work
	cmd.Env = append(os.Environ(), "DUCKDB_DIR="+dir)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("DuckDB: %v\n%s", err, stderr.String())
	}
	var out duckdbOutput
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		t.Fatalf("DuckDB's output: %v\n%s", err, stdout.String())
	}
	return out
}
