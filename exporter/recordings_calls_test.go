package exporter_test

import (
	"testing"

	"github.com/wildix-export/wildix-export/exporter/privacy"
	"github.com/wildix-export/wildix-export/internal/pbxsim"
	"github.com/wildix-export/wildix-export/internal/pseudonym"
)

// TestRecordingsCallIDNumberForms: call history writes each external
// number in one of the forms a PBX sends (NumberForms: +39…, 0039…, 39…,
// spaced), the recordings list +39…: every recording still gets its
// call's id (checkStore holds it to the simulator's truth), with
// numbers in clear and pseudonymised (the match is made before the
// Guard, on the values as sent, so the rule changes nothing). Before,
// the 0039… forms left call_id NULL, call_match contradicted (attack 4,
// F3: 31 of 83).
func TestRecordingsCallIDNumberForms(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, kind, rule string }{
		{"csv", "csv", ""},
		{"postgres", "postgres", ""},
		{"postgres pseudonymised", "postgres", "numbers"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o := pbxsim.Options{Seed: 29, Calls: 300, NumberForms: true, Recordings: pbxsim.RecordingOptions{Every: 3}}
			e := recSetup(t, o, tc.kind, nil)
			if tc.rule != "" {
				rule, err := pseudonym.ParseRule(tc.rule)
				if err != nil {
					t.Fatal(err)
				}
				keys, err := pseudonym.New([]byte("pseudonym-test-key-0123456789abcdef"))
				if err != nil {
					t.Fatal(err)
				}
				e.x.Guard = &privacy.Guard{Rule: rule, Keys: keys}
			}
			if res := e.run(t); res.Err != nil {
				t.Fatal(res.Err)
			}
			zeros := 0
			for _, r := range e.sim.Recordings() {
				if r.CallID == 0 {
					zeros++
				}
			}
			if n := len(e.sim.Recordings()); n < 60 || zeros > 0 {
				t.Fatalf("%d recordings, %d without a call: the test would pass on nothing", n, zeros)
			}
			e.checkStore(t)
		})
	}
}
