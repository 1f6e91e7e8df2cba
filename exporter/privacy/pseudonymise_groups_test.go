package privacy

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/wildix-export/wildix-export/exporter/record"
	"github.com/wildix-export/wildix-export/internal/pbxsim"
	"github.com/wildix-export/wildix-export/internal/pseudonym"
)

// groupRecord is a call group whose members are colleagues (an extension
// with a name, a bare extension, a queue interface) and four external
// numbers with a name each (attack 30 B2): a string, a JSON number, in an
// array, as a member's name; its settings forward to an external number
// with a name.
const groupRecord = `{"id":"2","title":"Support queue","members":[
{"extension":"201","name":"Alice Bianchi"},"202","SIP/203",
{"extension":"+393519990003","name":"Ignatius Fairweather"},
{"number":393519990004,"displayName":"Ottilie Quince"},
{"numbers":["+44 20 7946 0958"],"callerName":["Barnaby Lintwhistle"]},
{"393519990006":"mobile","name":"Perpetua Keyname"}],
"settings":{"strategy":"rrmemory","forward":{"number":"0039 351 999 0005","name":"Wendell Ashgrove"}}}`

// TestPseudonymiseExternalGroupMember: under a rule with names, the name
// of a call group's external member (an object holding an external
// number: in members, or in settings' forward) is replaced, in its column
// and in raw, its number as the rule says; a colleague's name beside an
// extension stays but under all (README, Privacy). Under numbers alone no
// name is replaced. Fails with a nested name replaced only under all.
func TestPseudonymiseExternalGroupMember(t *testing.T) {
	t.Parallel()
	groups := endpoint(t, "call_groups")
	k := keyed(t)
	external := []string{"Ignatius Fairweather", "Ottilie Quince", "Barnaby Lintwhistle", "Perpetua Keyname", "Wendell Ashgrove"}
	for _, tc := range []struct {
		rule            pseudonym.Rule
		external, alice bool // replaced
		numbersReplaced bool
	}{
		{pseudonym.Rule{Numbers: true}, false, false, true},
		{pseudonym.Rule{Names: true}, true, false, false},
		{pseudonym.Rule{Numbers: true, Names: true}, true, false, true},
		{pseudonym.Rule{Numbers: true, Names: true, Staff: true}, true, true, true},
	} {
		g := &Guard{Rule: tc.rule, Keys: k}
		got, err := g.Rows(groups, []record.Row{convert(t, groups, groupRecord)}, nil)
		if err != nil {
			t.Fatal(err)
		}
		members := got[0].Values[groups.Column("members")].(json.RawMessage)
		settings := got[0].Values[groups.Column("settings")].(json.RawMessage)
		var raw struct{ Members, Settings json.RawMessage }
		if err := json.Unmarshal(got[0].Raw, &raw); err != nil {
			t.Fatalf("%+v: raw %s: %v", tc.rule, got[0].Raw, err)
		}
		for where, s := range map[string]string{
			"members": string(members), "settings": string(settings),
			"raw": string(raw.Members) + string(raw.Settings),
		} {
			for _, name := range external {
				if !strings.Contains(where, "settings") && name == "Wendell Ashgrove" || where == "settings" && name != "Wendell Ashgrove" {
					continue
				}
				if in, pseudo := strings.Contains(s, `"`+name+`"`), strings.Contains(s, jsonString(k.Name(name))); in == tc.external || pseudo != tc.external {
					t.Errorf("%+v: %s %s: %q in clear %v, its pseudonym %v; want replaced %v", tc.rule, where, s, name, in, pseudo, tc.external)
				}
			}
			if where == "settings" {
				continue
			}
			if in := strings.Contains(s, `"Alice Bianchi"`); in == tc.alice {
				t.Errorf("%+v: %s %s: the colleague's name in clear %v; want replaced %v", tc.rule, where, s, in, tc.alice)
			}
			if !strings.Contains(s, `"201"`) || !strings.Contains(s, `"SIP/203"`) {
				t.Errorf("%+v: %s %s: want the extensions kept", tc.rule, where, s)
			}
		}
		all := everything(got[0])
		for _, n := range []string{"393519990003", "393519990004", "351 999 0005", "7946 0958", "393519990006"} {
			if in := strings.Contains(all, n); in == tc.numbersReplaced {
				t.Errorf("%+v: %s in clear %v, want replaced %v:\n%s", tc.rule, n, in, tc.numbersReplaced, all)
			}
		}
	}
}

// TestPseudonymiseSimulatedGroups: the simulator's call groups, with the
// external member (pbxsim.Options.ExternalGroupMember), under
// numbers,names: the external member's number and name are replaced, the
// colleagues' members' names ("member 203") kept.
func TestPseudonymiseSimulatedGroups(t *testing.T) {
	t.Parallel()
	groups := endpoint(t, "call_groups")
	k := keyed(t)
	status, body := pbxsim.New(pbxsim.Options{ExternalGroupMember: true}).List(groups.Path, nil)
	var page struct {
		Result struct{ Records []json.RawMessage }
	}
	if err := json.Unmarshal(body, &page); err != nil || status != 200 || len(page.Result.Records) == 0 {
		t.Fatalf("%d %s: %v", status, body, err)
	}
	var rows []record.Row
	for _, r := range page.Result.Records {
		rows = append(rows, convert(t, groups, string(r)))
	}
	got, err := (&Guard{Rule: pseudonym.Rule{Numbers: true, Names: true}, Keys: k}).Rows(groups, rows, nil)
	if err != nil {
		t.Fatal(err)
	}
	var all strings.Builder
	for _, r := range got {
		all.WriteString(everything(r))
	}
	for _, clear := range []string{pbxsim.ExternalMemberName, pbxsim.ExternalMemberNumber[1:]} {
		if strings.Contains(all.String(), clear) {
			t.Errorf("%q in clear:\n%s", clear, all.String())
		}
	}
	for _, kept := range []string{k.Name(pbxsim.ExternalMemberName), k.Number(pbxsim.ExternalMemberNumber), `"name":"member 203"`} {
		if !strings.Contains(all.String(), kept) {
			t.Errorf("%q is not there:\n%s", kept, all.String())
		}
	}
}
