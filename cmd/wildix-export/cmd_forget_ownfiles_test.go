package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestForgetUserCSVNotLostState (review 28, R28-5 LOW): an
// EXPORT_CSV_DIR without .state holding only a user's own CSV files (not
// named as the sink names its data files, no manifest) is a folder
// holding no export, not one whose state was lost: forget --allow-empty
// forgets before the first export (exit 0), and without it exits 2
// saying the folder holds no export (before: exit 2 both ways, "holds
// data files but no .state"). A file named as the sink's is still taken
// for a data file whose state is lost, --allow-empty or not.
func TestForgetUserCSVNotLostState(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for name, body := range map[string]string{"reports/mine.csv": "a,b\n1,2\n", "call_history/export.csv": "a,b\n1,2\n"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	env := []string{"WILDIX_PBX_URL=https://pbx.example.com", "EXPORT_CSV_DIR=" + dir}
	r := runCLI(t, env, "forget", "--number", "+390123456789")
	if msg := fmt.Sprint(r.err); r.code != exitConfig || !strings.Contains(msg, "holds no export") {
		t.Errorf("forget: exit %d, %v; want 2 saying the folder holds no export", r.code, r.err)
	}
	other := t.TempDir()
	named := filepath.Join(other, "call_history", "pbx.example.com_20261207T113550Z-133c3d_0001.csv")
	if err := os.MkdirAll(filepath.Dir(named), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(named, []byte("id\n1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r = runCLI(t, []string{"WILDIX_PBX_URL=https://pbx.example.com", "EXPORT_CSV_DIR=" + other}, "forget", "--number", "+390123456789", "--allow-empty")
	if msg := fmt.Sprint(r.err); r.code != exitConfig || !strings.Contains(msg, "but no .state") {
		t.Errorf("forget --allow-empty beside a data file named as the sink's: exit %d, %v; want 2 saying the state was lost", r.code, r.err)
	}
	r = runCLI(t, env, "forget", "--number", "+390123456789", "--allow-empty")
	if r.code != exitOK {
		t.Fatalf("forget --allow-empty beside a user's CSV files: exit %d: %v\n%s", r.code, r.err, r.stdout)
	}
}
