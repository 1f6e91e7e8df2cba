package sinks

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/wildix-export/wildix-export/exporter"
	"github.com/wildix-export/wildix-export/exporter/record"
	"github.com/wildix-export/wildix-export/internal/pgtest"
	"github.com/wildix-export/wildix-export/internal/pseudonym"
)

const testPseudonymKey = "0123456789abcdef0123456789abcdef"

func testForgotten(t *testing.T, number string) (*Forgotten, *pseudonym.Keyed) {
	t.Helper()
	k, err := pseudonym.New([]byte(testPseudonymKey))
	if err != nil {
		t.Fatal(err)
	}
	f, err := NewForgotten(number, k)
	if err != nil {
		t.Fatal(err)
	}
	return f, k
}

func TestNewForgottenRefuses(t *testing.T) {
	t.Parallel()
	for _, in := range []string{"", "abc", "201", "+39 123", "p:abcdefgh23456723", "+39 0123 x",
		"00000000000", "+0 000 000 000", "+1234567890123456", strings.Repeat("7", 100_000)} {
		if _, err := NewForgotten(in); err == nil {
			t.Errorf("NewForgotten(%q) accepted it", in)
		} else if in != "" && strings.Contains(err.Error(), in) {
			t.Errorf("NewForgotten(%q): %v repeats the value", in, err)
		} else if _, n := pseudonym.Replace(err.Error(), func(string) bool { return true }, ""); n > 0 {
			t.Errorf("NewForgotten(%.20q…): %v holds a number (the redactor would replace it)", in, err)
		}
	}
}

func TestEraseJSON(t *testing.T) {
	t.Parallel()
	f, k := testForgotten(t, "+39 012 345 6789")
	p := k.Number("390123456789")
	for _, tc := range []struct{ in, want string }{
		// Order, spacing and escapes of what is not erased are kept.
		{`{"z":"1","from_number":"+390123456789","from_name":"Mario \u00e8","a":  "x<y"}`,
			`{"z":"1","from_number":"erased","from_name":"erased","a":  "x<y"}`},
		{`{"to_name":"Anna","dst":"00390123456789","to_number":"0039 0123 456789"}`,
			`{"to_name":"erased","dst":"erased","to_number":"erased"}`},
		// A name beside another field is kept; an empty name stays empty.
		{`{"from_name":"Anna","channel":"SIP/trunk-390123456789-0000002a","to_number":"+390123456789","to_name":""}`,
			`{"from_name":"Anna","channel":"SIP/trunk-erased-0000002a","to_number":"erased","to_name":""}`},
		// Nested values and integers; a nested from_number names no one.
		{`[{"n":390123456789},{"from_number":"` + p + `","from_name":"B"}]`,
			`[{"n":"erased"},{"from_number":"erased","from_name":"B"}]`},
		{`{"members":{"from_number":"+390123456789","from_name":"B"},"cost":3.90123456789}`,
			`{"members":{"from_number":"erased","from_name":"B"},"cost":3.90123456789}`},
		{`{"from_number":"+390123456788","from_name":"Other"}`, `{"from_number":"+390123456788","from_name":"Other"}`},
		{`not json +390123456789`, `not json erased`},
	} {
		got, n := eraseJSON([]byte(tc.in), f.match)
		if string(got) != tc.want {
			t.Errorf("eraseJSON(%s) =\n %s, want\n %s", tc.in, got, tc.want)
		}
		if (n > 0) != (tc.in != tc.want) {
			t.Errorf("eraseJSON(%s) counted %d", tc.in, n)
		}
	}
}

func TestEraseRowCallHistory(t *testing.T) {
	t.Parallel()
	f, _ := testForgotten(t, "0039-0123-456789")
	var e record.Endpoint
	for _, x := range record.Builtin() {
		if x.Name == "call_history" {
			e = x
		}
	}
	sh := endpointShape(&e, true)
	cells := make([]string, len(sh.names))
	set := func(name, v string) { cells[slices.Index(sh.names, name)] = v }
	get := func(name string) string { return cells[slices.Index(sh.names, name)] }
	set("id", "390123456789") // a key: never rewritten
	set("src", "+390123456789")
	set("from_number", "+390123456789")
	set("from_name", "Mario Rossi")
	set("to_number", "201")
	set("to_name", "Reception")
	set("channel", "SIP/trunk-0000002a")
	set("raw", `{"from_number":"+390123456789","from_name":"Mario Rossi","to_name":"Reception"}`)
	if n := sh.erase(cells, f.match); n != 5 {
		t.Errorf("erase counted %d, want 5 (src, from_number, from_name, raw's number and name)", n)
	}
	for name, want := range map[string]string{"id": "390123456789", "src": Erased, "from_number": Erased, "from_name": Erased,
		"to_number": "201", "to_name": "Reception", "channel": "SIP/trunk-0000002a",
		"raw": `{"from_number":"erased","from_name":"erased","to_name":"Reception"}`} {
		if got := get(name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	if n := sh.erase(cells, f.match); n != 0 {
		t.Errorf("erasing again counted %d, want 0", n)
	}
}

// TestEraseFreeTextSameAsList: the free-text forms of review
// 30-forget-attack finding 3 are erased by forget's rule and, the same
// way, by the suppression list (one function: a later export writes what
// forget left); a neighbour number stays.
func TestEraseFreeTextSameAsList(t *testing.T) {
	t.Parallel()
	f, k := testForgotten(t, "+39 352 8512784")
	var e record.Endpoint
	for _, x := range record.Builtin() {
		if x.Name == "call_history" {
			e = x
		}
	}
	l := &Suppression{}
	if _, _, err := l.addAll(f, k, time.Now()); err != nil {
		t.Fatal(err)
	}
	sup, err := l.Suppressor(k)
	if err != nil {
		t.Fatal(err)
	}
	col := func(name string) int {
		return slices.IndexFunc(e.Columns, func(c record.Column) bool { return c.Name == name })
	}
	for _, tc := range []struct{ in, want string }{
		{"cb +39-352-8512784 asap", "cb erased asap"},
		{"tel:+39-352-8512784", "tel:erased"},
		{"+39/352/8512784 x", "erased x"},
		{"called +39 352 8512784 3 times", "called erased 3 times"},
		{"tel +39\u00a0352\u00a08512784", "tel erased"},
		{"+39\t352\t8512784 later", "erased later"},
		{"393528512784 3935285127848", "erased 3935285127848"},
		{"(+39) 352 8512784", "erased"},
		// National form: without the country code (Italy has no trunk 0
		// before a mobile).
		{"cb 352 8512784 asap", "cb erased asap"},
		{"03528512784", "03528512784"},
		// The same digits written internationally: Luxembourg's number.
		{"+352 8512784", "+352 8512784"},
		{"+3528512784", "+3528512784"},
		{"00352 851 2784", "00352 851 2784"},
		{"call from +352 851 2784 today", "call from +352 851 2784 today"},
		{"cb +3935285127848 or +39352851278", "cb +3935285127848 or +39352851278"},
	} {
		sh := endpointShape(&e, true)
		cells := make([]string, len(sh.names))
		cells[slices.Index(sh.names, "userfield")] = tc.in
		sh.erase(cells, f.match)
		if got := cells[slices.Index(sh.names, "userfield")]; got != tc.want {
			t.Errorf("forget: %q became %q, want %q", tc.in, got, tc.want)
		}
		row := record.Row{Values: make([]any, len(e.Columns))}
		for i := range row.Values {
			row.Values[i] = ""
		}
		row.Values[col("userfield")] = tc.in
		sup.Apply(&e, &row)
		if got := row.Values[col("userfield")]; got != tc.want {
			t.Errorf("suppression list: %q became %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestEraseNameBesideSrc: with from_number (to_number) empty, the name's
// party is src's (dst's), as the catalog pairs them: erasing the number
// there erases the name, in the columns and in raw; with from_number
// holding another number, the name is that number's and stays.
func TestEraseNameBesideSrc(t *testing.T) {
	t.Parallel()
	f, _ := testForgotten(t, "+39 352 8512784")
	var e record.Endpoint
	for _, x := range record.Builtin() {
		if x.Name == "call_history" {
			e = x
		}
	}
	for _, tc := range []struct {
		from, to string // from_number, to_number
		want     string // from_name and to_name after
		raw      string
	}{
		{"", "", Erased, `{"src":"erased","from_number":"","from_name":"erased","dst":"erased","to_name":"erased"}`},
		{"+44207946000", "201", "Only Src Name", `{"src":"erased","from_number":"+44207946000","from_name":"Only Src Name","dst":"erased","to_name":"Only Src Name"}`},
	} {
		sh := endpointShape(&e, true)
		cells := make([]string, len(sh.names))
		set := func(name, v string) { cells[slices.Index(sh.names, name)] = v }
		get := func(name string) string { return cells[slices.Index(sh.names, name)] }
		set("src", "+393528512784")
		set("dst", "00393528512784")
		set("from_number", tc.from)
		set("to_number", tc.to)
		set("from_name", "Only Src Name")
		set("to_name", "Only Src Name")
		raw := `{"src":"+393528512784","from_number":"` + tc.from + `","from_name":"Only Src Name","dst":"+393528512784","to_name":"Only Src Name"}`
		if tc.to != "" {
			raw = strings.Replace(raw, `"dst"`, `"to_number":"`+tc.to+`","dst"`, 1)
			tc.raw = strings.Replace(tc.raw, `"dst"`, `"to_number":"`+tc.to+`","dst"`, 1)
		}
		set("raw", raw)
		sh.erase(cells, f.match)
		if get("from_name") != tc.want || get("to_name") != tc.want {
			t.Errorf("from_number %q, to_number %q: names became %q, %q; want %q", tc.from, tc.to, get("from_name"), get("to_name"), tc.want)
		}
		if get("raw") != tc.raw {
			t.Errorf("from_number %q: raw became\n %s, want\n %s", tc.from, get("raw"), tc.raw)
		}
	}
}

// TestForgetNationalFormsLeaveOtherCountries: forgetting +39 352 8512784
// leaves Luxembourg's +352 8512784 in every international form, and
// forgetting +49 30 1234567 leaves Greece's +30 1234567 (and the other
// way round), in clear through forget and the suppression list, and as
// pseudonyms unless --national-forms asks for national pseudonyms
// (review 30-fixes 1).
func TestForgetNationalFormsLeaveOtherCountries(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		forget string
		keep   []string
		other  string // the kept number's international digits
	}{
		{"+39 352 8512784", []string{"+352 8512784", "+3528512784", "00352 851 2784", "call from +352 851 2784 today", "Lux +352-851-2784."}, "3528512784"},
		{"+49 30 1234567", []string{"+30 1234567", "Greek +30 12 34 567", "0030 1234567"}, "301234567"},
		{"+30 1234567", []string{"+49 30 1234567", "call +49 30 1234567 now", "0049 30 1234567"}, "49301234567"},
	} {
		f, k := testForgotten(t, tc.forget)
		l := &Suppression{}
		if _, _, err := l.addAll(f, k, time.Now()); err != nil {
			t.Fatal(err)
		}
		sup, err := l.Suppressor(k)
		if err != nil {
			t.Fatal(err)
		}
		for _, in := range append(tc.keep, k.Number(tc.other)) {
			if got, n := eraseText(in, f.match); n != 0 {
				t.Errorf("forget %s: %q became %q", tc.forget, in, got)
			}
			if got, n := eraseText(in, sup.match); n != 0 {
				t.Errorf("forget %s, suppression list: %q became %q", tc.forget, in, got)
			}
		}
		if got, n := eraseText(tc.forget, f.match); n != 1 {
			t.Errorf("forget %s: the number itself became %q", tc.forget, got)
		}
	}
	// --as-written (review 10, R10-5): the digits as the rows write them,
	// no country code read: the same digits written internationally are
	// another country's number (+352 8512784, Luxembourg's), kept.
	written, _ := testForgotten(t, "3528512784")
	for _, in := range []string{"+352 8512784", "+3528512784", "00352 851 2784", "call from +352 851 2784 today"} {
		if got, n := eraseText(in, written.match); n != 0 {
			t.Errorf("forget 3528512784 as written: %q became %q", in, got)
		}
	}
	for _, in := range []string{"3528512784", "352 851 2784", "cb 352-851-2784"} {
		if _, n := eraseText(in, written.match); n != 1 {
			t.Errorf("forget 3528512784 as written: %q not found", in)
		}
	}
	// --national-forms: the national forms' pseudonyms too, with the risk
	// it documents (Luxembourg's pseudonym is Italy's national form's).
	f, k := testForgotten(t, "+39 352 8512784")
	if n := f.AddNationalPseudonyms(k); n != 1 {
		t.Fatalf("AddNationalPseudonyms = %d, want 1", n)
	}
	if _, n := eraseText(k.Number("3528512784"), f.match); n != 1 {
		t.Errorf("--national-forms: the national form's pseudonym is not found")
	}
}

// TestEraseJSONMemberNames: a member's name holding the number, in clear
// or as its pseudonym, is erased as a value is (it stayed, and forget's
// last search then failed: "still in … after erasure"), counted; a member
// renamed erased beside one named erased already, in either order, at the
// top or nested, takes erased#2 (jsonscan.Rewrite): no member is lost
// (jsonb keeps only the last of two members of one name). Fails with
// member names left as they are, and with a renamed member given erased
// whatever its object holds.
func TestEraseJSONMemberNames(t *testing.T) {
	t.Parallel()
	f, k := testForgotten(t, "+39 352 8512784")
	p := k.Number("393528512784")
	for _, tc := range []struct {
		in, want string
		n        int
	}{
		{`{"393528512784":1,"erased":2}`, `{"erased#2":1,"erased":2}`, 1},
		{`{"erased":2, "+39 352 8512784" :1}`, `{"erased":2, "erased#2" :1}`, 1},
		{`{"x":[{"` + p + `":1,"erased":2}],"y":{"erased":3,"393528512784":4}}`, `{"x":[{"erased#2":1,"erased":2}],"y":{"erased":3,"erased#2":4}}`, 2},
		{`{"` + p + `":"a","` + p + `#2":"b"}`, `{"erased":"a","erased#2":"b"}`, 2},
		{`{"x_phone_393528512784":"0039 352 8512784","from_number":"201"}`, `{"x_phone_erased":"erased","from_number":"201"}`, 2},
		{`{"393528512788":1}`, `{"393528512788":1}`, 0},
	} {
		got, n := eraseJSON([]byte(tc.in), f.match)
		if string(got) != tc.want || n != tc.n {
			t.Errorf("eraseJSON(%s) =\n %s, %d; want\n %s, %d", tc.in, got, n, tc.want, tc.n)
		}
	}
}

// TestEraseScrubbedFormsSameAsList: each form of the number that
// pseudonymisation replaces (pseudonym.Scrub: line breaks, Unicode dashes
// and spaces, "_", other scripts' digits, URL encoding, glued to hex
// letters) is erased by forget's rule in clear and as the pseudonym Scrub
// wrote, and the same way by the suppression list. forget missed
// "+39_352 851 2784" and fullwidth digits on a sink in clear, saying it
// found the number nowhere.
func TestEraseScrubbedFormsSameAsList(t *testing.T) {
	t.Parallel()
	f, k := testForgotten(t, "+39 352 8512784")
	l := &Suppression{}
	if _, _, err := l.addAll(f, k, time.Now()); err != nil {
		t.Fatal(err)
	}
	sup, err := l.Suppressor(k)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ in, want string }{
		{"cb +39_352 851 2784 asap", "cb erased asap"},
		{"R\u00fcckruf:\n+39\n352\n851\n2784", "R\u00fcckruf:\nerased"},
		{"cb +39\u2013352\u20138512784.", "cb erased."},
		{"+39\u200b352\u2011851\u22122784", "erased"},
		{"0039\u00b7352\u00b7851\u00b72784", "erased"},
		{"\uff0b\uff13\uff19\uff13\uff15\uff12\uff18\uff15\uff11\uff12\uff17\uff18\uff14", "erased"},
		{"\u0663\u0669\u0663\u0665\u0662\u0668\u0665\u0661\u0662\u0667\u0668\u0664", "erased"},
		{"tel:%2B39%20352%208512784", "tel:erased"},
		{"%2b393528512784&x=1", "erased&x=1"},
		{"cb393528512784", "cberased"},
		{"id 393528512784abcd", "id erasedabcd"},
	} {
		scrubbed := k.Scrub(tc.in, nil)
		if scrubbed == tc.in {
			t.Errorf("Scrub(%q) left it as it was", tc.in)
		}
		p := k.Number("+393528512784")
		for name, m := range map[string]matcher{"forget": f.match, "suppression list": sup.match} {
			if got, _ := eraseText(tc.in, m); got != tc.want {
				t.Errorf("%s: %q became %q, want %q", name, tc.in, got, tc.want)
			}
			if got, n := eraseText(scrubbed, m); n == 0 || strings.Contains(got, p) {
				t.Errorf("%s: %q (Scrub of %q) became %q, want its pseudonym erased", name, scrubbed, tc.in, got)
			}
		}
	}
}

// TestEraseGluedNumbers: a number glued to another or to a date, in a run
// too long to be one number, is erased in clear by forget's rule and the
// suppression list alike (the run whole); pseudonymised, the run is
// pseudonym.Merged, a trace of no number, which neither touches.
func TestEraseGluedNumbers(t *testing.T) {
	t.Parallel()
	f, k := testForgotten(t, "+39 352 8512784")
	l := &Suppression{}
	if _, _, err := l.addAll(f, k, time.Now()); err != nil {
		t.Fatal(err)
	}
	sup, err := l.Suppressor(k)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ in, want string }{
		{"rec-20261207393528512784.wav", "rec-erased.wav"},
		{"cb 393528512784393528512785", "cb erased"},
		{"cb 3935285127853935285127841", "cb erased"},
		{"cb 20261207393528512785", "cb 20261207393528512785"}, // another number
	} {
		for name, m := range map[string]matcher{"forget": f.match, "suppression list": sup.match} {
			if got, _ := eraseText(tc.in, m); got != tc.want {
				t.Errorf("%s: %q became %q, want %q", name, tc.in, got, tc.want)
			}
			scrubbed := k.Scrub(tc.in, nil)
			if got, n := eraseText(scrubbed, m); n != 0 || !strings.Contains(scrubbed, pseudonym.Merged) {
				t.Errorf("%s: %q (Scrub of %q) became %q, want Scrub's %s left", name, scrubbed, tc.in, got, pseudonym.Merged)
			}
		}
	}
}

// TestPatternInPostgres: pseudonym.Pattern, run by PostgreSQL on a row's
// text as forget's filter runs (t::text ~ pattern), lets through every
// form of the number that pseudonymisation replaces and forget's rule
// finds, in a text column and inside jsonb (a line break shows as \n
// there). Forget's own filter (Forgotten.pattern) does not use it yet:
// it lets through neither fullwidth digits nor "%20" between groups.
func TestPatternInPostgres(t *testing.T) {
	t.Parallel()
	_, pool := pgtest.Schema(t)
	ctx := context.Background()
	if _, err := pool.Exec(ctx, "CREATE TABLE t (v text, j jsonb)"); err != nil {
		t.Fatal(err)
	}
	f, _ := testForgotten(t, "+39 352 8512784")
	forms := []string{
		"cb +39_352 851 2784 asap", "R\u00fcckruf:\n+39\n352\n851\n2784", "+39\r\n352\r\n8512784",
		"cb +39\u2013352\u20138512784.", "+39\u200b352\u2011851\u22122784", "0039\u00b7352\u00b7851\u00b72784",
		"\uff0b\uff13\uff19\uff13\uff15\uff12\uff18\uff15\uff11\uff12\uff17\uff18\uff14",
		"\u0663\u0669\u0663\u0665\u0662\u0668\u0665\u0661\u0662\u0667\u0668\u0664",
		"tel:%2B39%20352%208512784", "%2b393528512784&x=1", "cb393528512784", "rec-20261207393528512784.wav",
		"+39\t352\t8512784", "+39 \n 352 \n 8512784",
	}
	for _, v := range forms {
		if _, n := eraseText(v, f.match); n == 0 {
			t.Fatalf("forget's rule does not find %q: not a form for this test", v)
		}
		if _, err := pool.Exec(ctx, "INSERT INTO t VALUES ($1, jsonb_build_object('x', $1::text))", v); err != nil {
			t.Fatal(err)
		}
	}
	var missed []string
	rows, err := pool.Query(ctx, "SELECT v FROM t WHERE NOT (t::text ~ $1) OR NOT (j::text ~ $1)", pseudonym.Pattern("393528512784"))
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		missed = append(missed, v)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(missed) > 0 {
		t.Errorf("PostgreSQL: pseudonym.Pattern does not match %q", missed)
	}
}

// TestEraseCallerIDWhole: a number column (and its raw field) that
// mentions the number becomes erased whole, the name beside going with it,
// in clear and pseudonymised rows (attack 30 F1); the suppression list
// does the same (one rowShape.erase); a free-text column keeps its other
// words.
func TestEraseCallerIDWhole(t *testing.T) {
	t.Parallel()
	k, err := pseudonym.New([]byte(testPseudonymKey))
	if err != nil {
		t.Fatal(err)
	}
	f, err := NewForgotten("+393528510009", k)
	if err != nil {
		t.Fatal(err)
	}
	p := k.Number("393528510009")
	var e record.Endpoint
	for _, x := range record.Builtin() {
		if x.Name == "call_history" {
			e = x
		}
	}
	for _, from := range []string{
		`Mario Rossi <+393528510009>`, `"Rossi, Mario" <sip:+393528510009@10.0.0.1>`, `Mario Rossi (+39 352 851 0009)`,
		`+393528510009 (Mario Rossi)`, `Mario Rossi <+393528510009>;tag=x`,
		k.Name("Mario Rossi") + " <" + p + ">", "<" + p + "> " + k.Name("Mario Rossi"),
	} {
		t.Run(from, func(t *testing.T) {
			t.Parallel()
			sh := endpointShape(&e, true)
			cells := make([]string, len(sh.names))
			set := func(name, v string) { cells[slices.Index(sh.names, name)] = v }
			get := func(name string) string { return cells[slices.Index(sh.names, name)] }
			set("from_number", from)
			set("to_number", "201")
			set("lastdata", "SIP/trunk/+393528510009,60 Mario")
			raw, _ := json.Marshal(map[string]string{"from_number": from, "to_number": "201", "lastdata": "SIP/trunk/+393528510009,60 Mario"})
			set("raw", string(raw))
			if n := sh.erase(cells, f.match); n == 0 {
				t.Fatal("nothing erased")
			}
			if got := get("from_number"); got != Erased {
				t.Errorf("from_number = %q, want %q", got, Erased)
			}
			if got := get("lastdata"); got != "SIP/trunk/erased,60 Mario" {
				t.Errorf("lastdata = %q: free text keeps its other words", got)
			}
			var m map[string]string
			if err := json.Unmarshal([]byte(get("raw")), &m); err != nil {
				t.Fatal(err)
			}
			if m["from_number"] != Erased || m["to_number"] != "201" {
				t.Errorf("raw = %s, want from_number erased, to_number 201", get("raw"))
			}
			// A CSV file's row: the same.
			csv := csvShape(&e, []string{"id", "from_number", "to_number", "lastdata", "extra"})
			row := []string{"9", from, "201", "x", "{}"}
			if csv.erase(row, f.match); row[1] != Erased {
				t.Errorf("CSV from_number = %q, want %q", row[1], Erased)
			}
		})
	}
}

// TestEraseCallerIDFields: a caller-id field no column reads (clid,
// c_from, c_to, dnid, did: record.Endpoint.PersonalFields), in extra and
// raw, is erased whole when it mentions the number, the caller's name
// with it (attack 30 N2: clid's "Mario Rossi" stayed after forget), in
// PostgreSQL's rows, the suppression list's (the same shape) and a CSV
// file's; free text beside keeps its other words.
func TestEraseCallerIDFields(t *testing.T) {
	t.Parallel()
	f, k := testForgotten(t, "+393528510164")
	var e record.Endpoint
	for _, x := range record.Builtin() {
		if x.Name == "call_history" {
			e = x
		}
	}
	for _, field := range []string{"clid", "c_from", "c_to", "dnid", "did", "CLID"} {
		for _, id := range []string{`"Mario Rossi" <+393528510164>`, k.Name("Mario Rossi") + " <" + k.Number("393528510164") + ">"} {
			t.Run(field+" "+id, func(t *testing.T) {
				t.Parallel()
				members, _ := json.Marshal(map[string]string{field: id, "tags": "cb +393528510164 Mario"})
				want, _ := json.Marshal(map[string]string{field: Erased, "tags": "cb erased Mario"})
				sh := endpointShape(&e, true)
				cells := make([]string, len(sh.names))
				cells[slices.Index(sh.names, "extra")] = string(members)
				cells[slices.Index(sh.names, "raw")] = string(members)
				sh.erase(cells, f.match)
				for _, c := range []string{"extra", "raw"} {
					if got := cells[slices.Index(sh.names, c)]; got != string(want) {
						t.Errorf("%s = %s, want %s", c, got, want)
					}
				}
				row := []string{"9", string(members)}
				if csvShape(&e, []string{"id", "extra"}).erase(row, f.match); row[1] != string(want) {
					t.Errorf("CSV extra = %s, want %s", row[1], want)
				}
			})
		}
	}
}

// TestForgetDialledForm: a number dialled with an outside-line digit
// (Local/03528510105@outbound) is not found by forget of its
// international form, and is by forget of the dialled form, in clear and
// pseudonymised (the workaround README's Privacy and Erasure give, attack
// 30 N4).
func TestForgetDialledForm(t *testing.T) {
	t.Parallel()
	intl, k := testForgotten(t, "+39 352 8510105")
	dialled, _ := testForgotten(t, "03528510105")
	const v = "Local/03528510105@outbound"
	for _, s := range []string{v, k.Scrub(v, nil)} {
		if _, n := eraseText(s, intl.match); n != 0 {
			t.Errorf("forget of the international form found %q: README says it does not", s)
		}
		if got, n := eraseText(s, dialled.match); n != 1 || got != "Local/erased@outbound" {
			t.Errorf("forget of the dialled form made %q of %q, want Local/erased@outbound", got, s)
		}
	}
}

// TestForgetNumericColumn: a number in a numeric column (call_history.cost)
// cannot become erased, on either sink: ForgetFind counts its row,
// ForgetErase erases the rest of the row (raw's field; CSV: the text cell
// beside) and fails naming the table and the column, that it is numeric,
// and what to do, not "a table forget does not know" (attack 30 F10) nor
// "nowhere" (the CSV sink said so: attack 30 N3), and the same words on
// both sinks.
func TestForgetNumericColumn(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const digits = "393528510031"
	type eraser interface {
		ForgetFind(ctx context.Context, f *Forgotten, endpoints []record.Endpoint) (*ForgetFound, error)
		ForgetErase(ctx context.Context, pbx string, f *Forgotten, endpoints []record.Endpoint) (*ForgetFound, error)
	}
	for _, tc := range []struct {
		name string
		// setup stores call 31 with the number in cost, and in to_number
		// (text, erased), and returns the sink and what it stores of
		// the call after the erasure.
		setup func(t *testing.T) (eraser, func() string)
	}{
		{"postgres", func(t *testing.T) (eraser, func() string) {
			p, pool := newPostgres(t)
			if _, err := pool.Exec(ctx, `INSERT INTO call_history (pbx, id, cost, to_number, raw, run_id)
VALUES ('x', 31, `+digits+`, '+`+digits+`', '{"cost":"`+digits+`","to_number":"+`+digits+`"}', 'r1')`); err != nil {
				t.Fatal(err)
			}
			return p, func() string {
				var row string
				if err := pool.QueryRow(ctx, `SELECT to_number || ' ' || cost::text || ' ' || raw::text FROM call_history WHERE id = 31`).Scan(&row); err != nil {
					t.Fatal(err)
				}
				return row
			}
		}},
		{"csv", func(t *testing.T) (eraser, func() string) {
			f := newEditFolder(t)
			s, err := NewCSV(CSVOptions{Dir: f.dir})
			if err != nil {
				t.Fatal(err)
			}
			b, err := s.Begin(ctx, exporter.BatchInfo{PBX: "x", RunID: "r1", Endpoint: &f.ep, StateKey: f.ep.Name, Seq: 1})
			if err != nil {
				t.Fatal(err)
			}
			conv := &record.Converter{Endpoint: &f.ep}
			r, err := conv.Convert(0, json.RawMessage(`{"id":"31","start":"2026-12-01 10:00:00","timezone":"+0000","cost":"`+digits+`","to_number":"+`+digits+`"}`))
			if err != nil {
				t.Fatal(err)
			}
			if err := b.Write(ctx, []record.Row{r}); err != nil {
				t.Fatal(err)
			}
			if err := b.Commit(ctx, []byte(`{"cursor":1}`), exporter.Progress{}); err != nil {
				t.Fatal(err)
			}
			return s, func() string {
				var out []string
				for _, rows := range f.files("x") {
					for _, r := range rows {
						out = append(out, r["to_number"]+" "+r["cost"])
					}
				}
				return strings.Join(out, "\n")
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, stored := tc.setup(t)
			cat, err := record.NewCatalog(record.Builtin())
			if err != nil {
				t.Fatal(err)
			}
			forgotten, err := NewForgotten("+" + digits)
			if err != nil {
				t.Fatal(err)
			}
			found, err := s.ForgetFind(ctx, forgotten, cat.All())
			if err != nil {
				t.Fatal(err)
			}
			if found.Rows() != 1 {
				t.Errorf("ForgetFind found %+v, want the call's row", found.Places)
			}
			// Said ahead, for forget --dry-run (forget handoff 4).
			dry := found.DryRunError()
			if dry == nil {
				t.Fatal("DryRunError is nil with the number in call_history.cost")
			}
			_, err = s.ForgetErase(ctx, "x", forgotten, cat.All())
			if err == nil {
				t.Fatal("ForgetErase succeeded with the number still in call_history.cost")
			}
			for _, w := range []string{"the number is still in call_history", "after erasure: column call_history.cost is numeric", `cannot hold "erased"`,
				"set the value to NULL there yourself", "then run forget again to check"} {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if _, why, _ := strings.Cut(err.Error(), "after erasure: "); !strings.HasSuffix(dry.Error(), why) {
				t.Errorf("the dry run says %q, the erasure %q: want the same words", dry, err)
			}
			if strings.Contains(err.Error(), "does not know") || strings.Contains(err.Error(), "3528510031") {
				t.Errorf("error %q: a wrong reason, or the number in clear", err)
			}
			if row := stored(); !strings.HasPrefix(row, Erased+" ") || strings.Count(row, "3528510031") != 1 {
				t.Errorf("after the erasure the call holds %q: want to_number (and raw's fields) erased, the cost alone left", row)
			}
		})
	}
}

// TestForgetQuarantinedCallerID: a call record PostgreSQL refuses (a lone
// surrogate in raw) whose caller ids (src, clid, c_from) name the number
// beside the caller's name and organization: forget of its stored copy leaves what a later
// export through the suppression list writes of it, the caller ids and
// the name beside them erased whole, no "Mario Rossi" <erased> (forget
// handoff 2: export_quarantine.record was erased with no shape, its
// caller ids losing only their number). The CSV sink refuses no value
// (it has no quarantine): the same record, in its data file, is checked
// alike. Fails on postgres without quarantinePlace's wholeRecord.
func TestForgetQuarantinedCallerID(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const digits = "393528510009"
	cid := `\"Mario Rossi\" <+` + digits + `>`
	fields := `"id":"5","start":"2026-01-10 10:00:00","timezone":"+0100","duration":"5","src":"` + cid + `","from_name":"Mario Rossi","clid":"` + cid + `","c_from":"+` + digits + `","organization":"Rossi Mario Impianti"`
	ep := record.Builtin()[0]
	row := func(t *testing.T) record.Row {
		conv := &record.Converter{Endpoint: &ep, Warnings: &record.Warnings{}}
		r, err := conv.Convert(0, json.RawMessage(`{`+fields+`}`))
		if err != nil {
			t.Fatal(err)
		}
		r.Raw = json.RawMessage(`{` + fields + `,"x":"\udc00"}`)
		return r
	}
	type sink interface {
		exporter.Sink
		ForgetErase(ctx context.Context, pbx string, f *Forgotten, endpoints []record.Endpoint) (*ForgetFound, error)
		suppressStore
	}
	for _, tc := range []struct {
		name string
		// open returns a new sink and what it stores of call 5.
		open func(t *testing.T) (sink, func() string)
	}{
		{"postgres", func(t *testing.T) (sink, func() string) {
			p, pool := newPostgres(t)
			return p, func() string {
				rows, err := pgx.CollectRows(must(pool.Query(ctx, `SELECT key || ' ' || record FROM export_quarantine WHERE endpoint = 'call_history'`)), pgx.RowTo[string])
				if err != nil || len(rows) != 1 {
					t.Fatalf("quarantined %q (%v), want call 5", rows, err)
				}
				return rows[0]
			}
		}},
		{"csv", func(t *testing.T) (sink, func() string) {
			f := newEditFolder(t)
			s, err := NewCSV(CSVOptions{Dir: f.dir})
			if err != nil {
				t.Fatal(err)
			}
			return s, func() string {
				var out []string
				for _, rows := range f.files("x") {
					for _, r := range rows {
						out = append(out, r["id"]+" "+r["src"]+" "+r["from_name"]+" "+r["extra"])
					}
				}
				if len(out) != 1 {
					t.Fatalf("stored %q, want call 5", out)
				}
				return out[0]
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			forgotten, err := NewForgotten("+" + digits)
			if err != nil {
				t.Fatal(err)
			}
			write := func(s exporter.Sink) {
				b, err := s.Begin(ctx, exporter.BatchInfo{PBX: "x", RunID: "r1", Endpoint: &ep, StateKey: ep.Name, Seq: 1})
				if err != nil {
					t.Fatal(err)
				}
				if err := b.Write(ctx, []record.Row{row(t)}); err != nil {
					t.Fatal(err)
				}
				if err := b.Commit(ctx, []byte(`{"cursor":5}`), exporter.Progress{Rows: 1}); err != nil {
					t.Fatal(err)
				}
			}
			// Stored in clear, then forgotten.
			s, stored := tc.open(t)
			write(s)
			if got := stored(); !strings.Contains(got, "Mario Rossi") {
				t.Fatalf("stored %s: the test proves nothing", got)
			}
			if _, err := s.ForgetErase(ctx, "x", forgotten, []record.Endpoint{ep}); err != nil {
				t.Fatal(err)
			}
			erased := stored()
			if strings.Contains(erased, "Rossi") || strings.Contains(erased, "8510009") || strings.Count(erased, Erased) < 4 {
				t.Errorf("after forget: %s, want src, clid, c_from and from_name erased whole", erased)
			}
			// Exported after the number was forgotten: through the list.
			s2, stored2 := tc.open(t)
			if _, _, err := s2.Suppress(ctx, forgotten, nil); err != nil {
				t.Fatal(err)
			}
			l, err := s2.Suppression(ctx)
			if err != nil {
				t.Fatal(err)
			}
			sup, err := l.Suppressor(nil)
			if err != nil {
				t.Fatal(err)
			}
			write(suppressing{s2, sup})
			if again := stored2(); again != erased {
				t.Errorf("a later export through the suppression list stores\n%s\nforget left\n%s", again, erased)
			}
		})
	}
}

// TestEraseOrganization: the CDR's organization (a name no column reads,
// in extra and raw: forget handoff 3) is erased, in any case of its
// field's name, in a row whose only external party has the number (a
// party's number field holds it: onlyParty), by the row shape forget and
// the suppression list share, and the CSV sink's; a row without the
// number, or with it in free text alone, keeps it.
func TestEraseOrganization(t *testing.T) {
	t.Parallel()
	f, _ := testForgotten(t, "+393528510165")
	e := record.Builtin()[0]
	for _, tc := range []struct{ members, want string }{
		{`{"organization":"Rossi Mario Impianti","c_from":"+393528510165"}`, `{"organization":"erased","c_from":"erased"}`},
		{`{"Organization":"Rossi Mario Impianti","c_from":"0039 352 8510165"}`, `{"Organization":"erased","c_from":"erased"}`},
		// The number in free text alone is no party's own: the
		// organization may be another's (TestEraseOrganizationOfOtherParty).
		{`{"Organization":"Rossi Mario Impianti","tags":"cb 0039 352 8510165"}`, `{"Organization":"Rossi Mario Impianti","tags":"cb erased"}`},
		{`{"organization":"Rossi Mario Impianti","c_from":"+393528510166"}`, `{"organization":"Rossi Mario Impianti","c_from":"+393528510166"}`},
	} {
		sh := endpointShape(&e, true)
		cells := make([]string, len(sh.names))
		cells[slices.Index(sh.names, "extra")] = tc.members
		cells[slices.Index(sh.names, "raw")] = tc.members
		sh.erase(cells, f.match)
		for _, c := range []string{"extra", "raw"} {
			if got := cells[slices.Index(sh.names, c)]; got != tc.want {
				t.Errorf("%s = %s, want %s", c, got, tc.want)
			}
		}
		row := []string{"9", tc.members}
		if csvShape(&e, []string{"id", "extra"}).erase(row, f.match); row[1] != tc.want {
			t.Errorf("CSV extra = %s, want %s", row[1], tc.want)
		}
	}
}

// TestNewForgottenAcceptsForms: forget --number takes every way of
// writing a number that forget finds in text (attack4 F9: "(+39) 321…"
// was refused while "+39 (0)321…" and dashes and dots were taken), each
// the same number, international (so its national forms are searched
// too); what it refuses it says how to write.
func TestNewForgottenAcceptsForms(t *testing.T) {
	t.Parallel()
	for _, in := range []string{
		"+393219793829", "0039 321-979.3829", "+39 (0)321 979 3829", "(+39) 321 979 3829",
		"(0039) 321 979 3829", "+(39) 321 979 3829", "( +39 ) 321/979/3829", " \t+39 321 979 3829 ",
		"+39\u00a0321\u202f979\u20133829", "\uff0b\uff13\uff19 \uff13\uff12\uff11 \uff19\uff17\uff19 \uff13\uff18\uff12\uff19",
		"+39\u2011321\u2014979-3829",
	} {
		f, err := NewForgotten(in)
		if err != nil {
			t.Errorf("NewForgotten(%q): %v", in, err)
			continue
		}
		if f.digits != "393219793829" || !f.National() {
			t.Errorf("NewForgotten(%q) = %q (national forms %v), want 393219793829 with its national forms", in, f.digits, f.National())
		}
	}
	_, err := NewForgotten("+39 321 979 3829 int. 2")
	if err == nil || !strings.Contains(err.Error(), "in brackets or not") || !strings.Contains(err.Error(), "dashes, dots, slashes or brackets") {
		t.Errorf("NewForgotten of a number with letters: %v, want what is accepted", err)
	}
}
