package pbxsim

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// TestExternalGroupMember: with Options.ExternalGroupMember the queue
// Support queue lists an external member, an object with a number and a
// name, after its colleagues; without it no group has one (the groups
// as tests pinned them).
func TestExternalGroupMember(t *testing.T) {
	t.Parallel()
	for _, on := range []bool{false, true} {
		_, srv := setup(t, Options{ExternalGroupMember: on})
		body := get(t, srv, "/api/v1/Dialplan/CallGroups", "wsk-v1-testkey", http.StatusOK)
		var page struct {
			Result struct {
				Records []struct {
					ID      string            `json:"id"`
					Members []json.RawMessage `json:"members"`
				} `json:"records"`
			} `json:"result"`
		}
		if err := json.Unmarshal([]byte(body), &page); err != nil {
			t.Fatalf("%s: %v", body, err)
		}
		if len(page.Result.Records) != len(simGroups) {
			t.Fatalf("%d groups, want %d: %s", len(page.Result.Records), len(simGroups), body)
		}
		for _, g := range page.Result.Records {
			var last struct{ Extension, Name string }
			json.Unmarshal(g.Members[len(g.Members)-1], &last)
			has := last.Extension == ExternalMemberNumber && last.Name == ExternalMemberName
			if want := on && g.ID == externalMemberGroup; has != want {
				t.Errorf("ExternalGroupMember %v: group %s's last member %s, want the external one %v", on, g.ID, g.Members[len(g.Members)-1], want)
			}
		}
		if !on && strings.Contains(body, ExternalMemberName) {
			t.Errorf("off: %s names the external member", body)
		}
	}
}
