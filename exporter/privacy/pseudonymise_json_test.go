package privacy

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/wildix-export/wildix-export/exporter/record"
	"github.com/wildix-export/wildix-export/internal/pseudonym"
)

// TestPseudonymiseIntegers: a phone number the PBX sends as a JSON number
// in a field the catalog does not know (into extra and raw) is replaced
// under numbers, as the same digits in a string are (review
// 30-forget-attack, note 13: "x_num": 393528512784 stayed in clear); an
// integer of fewer than 7 digits and a short decimal stay numbers; one of
// 7 integer digits or more in decimal or exponent notation
// (393528512784.0, 3.93528512784e11: final attack, finding 1) is replaced
// as its integer part. Fails with number literals of free text left alone.
func TestPseudonymiseIntegers(t *testing.T) {
	t.Parallel()
	calls := endpoint(t, "call_history")
	k := keyed(t)
	g := &Guard{Rule: pseudonym.Rule{Numbers: true}, Keys: k}
	raw := strings.Replace(inbound, `"uniqueid":"1764583200.7"`,
		`"uniqueid":"1764583200.7","x_num":393528512784,"x_obj":{"n":[393528512784, 201]},"x_short":201,"x_count":123456,"x_dec":12345.5,"x_neg":-393528512784,"x_e":3.93528512784e11,"x_f":393528512784.0,"x_nf":-393528512784.25,"x_map":{"393528512784":"k","+39 352 8512784":{"201":"k2"}},"x_phone_393528512784":"y"`, 1)
	got, err := g.Rows(calls, []record.Row{convert(t, calls, raw)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := k.Number("+393528512784")
	for what, b := range map[string][]byte{"extra": got[0].Extra, "raw": got[0].Raw} {
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("%s %s: %v", what, b, err)
		}
		if m["x_num"] != p || m["x_obj"].(map[string]any)["n"].([]any)[0] != p || m["x_neg"] != "-"+p || m["x_e"] != p || m["x_f"] != p || m["x_nf"] != "-"+p {
			t.Errorf("%s %s: want x_num, x_obj.n[0], x_neg, x_e, x_f and x_nf as %s", what, b, p)
		}
		if m["x_map"].(map[string]any)[p] != "k" || m["x_map"].(map[string]any)[p+"#2"] == nil || m["x_phone_"+p] != "y" {
			t.Errorf("%s %s: want the member names holding the number replaced", what, b)
		}
		if xm := m["x_map"].(map[string]any); len(xm) != 2 {
			t.Errorf("%s %s: want x_map's two members", what, b)
		}
		if m["x_short"] != 201.0 || m["x_count"] != 123456.0 || m["x_dec"] != 12345.5 || m["x_obj"].(map[string]any)["n"].([]any)[1] != 201.0 {
			t.Errorf("%s %s: want the short integers and the decimal kept as numbers", what, b)
		}
	}
	if got := everything(got[0]); strings.Contains(got, "393528512784") {
		t.Errorf("the number is in clear:\n%s", got)
	}
}

// TestPseudonymiseNumbersUnderNames: under all, a JSON number under a
// member named as a name, at any depth, becomes the number's pseudonym
// (review 30-last 2: it stayed in clear, where numbers alone replaced it).
func TestPseudonymiseNumbersUnderNames(t *testing.T) {
	t.Parallel()
	calls := endpoint(t, "call_history")
	k := keyed(t)
	for _, rule := range []pseudonym.Rule{{Numbers: true}, {Numbers: true, Names: true, Staff: true}} {
		g := &Guard{Rule: rule, Keys: k}
		raw := strings.Replace(inbound, `"uniqueid":"1764583200.7"`,
			`"uniqueid":"1764583200.7","x_people":[{"name":393528512784}],"caller_name":393528512784,"x_o":{"callerName":3.93528512784e11}`, 1)
		got, err := g.Rows(calls, []record.Row{convert(t, calls, raw)}, nil)
		if err != nil {
			t.Fatal(err)
		}
		p := k.Number("+393528512784")
		for what, b := range map[string][]byte{"extra": got[0].Extra, "raw": got[0].Raw} {
			var m map[string]any
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatalf("%+v %s %s: %v", rule, what, b, err)
			}
			if m["caller_name"] != p || m["x_people"].([]any)[0].(map[string]any)["name"] != p || m["x_o"].(map[string]any)["callerName"] != p {
				t.Errorf("%+v %s %s: want caller_name, x_people[0].name and x_o.callerName as %s", rule, what, b, p)
			}
		}
		if s := everything(got[0]); strings.Contains(s, "393528512784") {
			t.Errorf("%+v: the number is in clear:\n%s", rule, s)
		}
	}
}

// TestPseudonymiseNamesKeepEveryMember: a member named by a number beside
// one named by its pseudonym already ({"393528512784": 1, "p:…": 2}, in
// either order, at the top of raw and extra and nested), once the number
// is replaced, are still two members: the renamed one takes p:…#2
// (jsonscan.Rewrite). Fails with the renamed member given the pseudonym
// whatever the object holds: one of the two values was lost (jsonb keeps
// only the last of two members of one name).
func TestPseudonymiseNamesKeepEveryMember(t *testing.T) {
	t.Parallel()
	calls := endpoint(t, "call_history")
	k := keyed(t)
	g := &Guard{Rule: pseudonym.Rule{Numbers: true}, Keys: k}
	p := k.Number("+393528512784")
	for _, members := range []string{
		`"393528512784":1,"` + p + `":2`,
		`"` + p + `":2,"393528512784":1`,
		`"x_map":{"393528512784":1,"` + p + `":2}`,
		`"x_map":[{"` + p + `":2,"+39 352 8512784":1}]`,
	} {
		raw := strings.Replace(inbound, `"uniqueid":"1764583200.7"`, `"uniqueid":"1764583200.7",`+members, 1)
		got, err := g.Rows(calls, []record.Row{convert(t, calls, raw)}, nil)
		if err != nil {
			t.Fatal(err)
		}
		for what, b := range map[string][]byte{"extra": got[0].Extra, "raw": got[0].Raw} {
			var m map[string]any
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatalf("%s %s: %v", what, b, err)
			}
			if x, ok := m["x_map"].(map[string]any); ok {
				m = x
			} else if x, ok := m["x_map"].([]any); ok {
				m = x[0].(map[string]any)
			}
			if m[p] != 2.0 || m[p+"#2"] != 1.0 {
				t.Errorf("%s of %s:\n%s\nwant %s: 2 and %s#2: 1", what, members, b, p, p)
			}
		}
		if s := everything(got[0]); strings.Contains(s, "393528512784") {
			t.Errorf("%s: the number is in clear:\n%s", members, s)
		}
	}
}
