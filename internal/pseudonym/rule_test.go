package pseudonym

import "testing"

func TestParseRule(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want string // String of the rule, "" for an error
	}{
		{"", "none"},
		{"none", "none"},
		{" NONE ", "none"},
		{"numbers", "numbers"},
		{"names", "names"},
		{"names, numbers", "numbers,names"},
		{"numbers,names,", "numbers,names"},
		{"all", "all"},
		{"numbers,all", "all"},
		{"none,numbers", ""},
		{"phones", ""},
		{"numbers;names", ""},
	} {
		r, err := ParseRule(tc.in)
		switch {
		case tc.want == "" && err == nil:
			t.Errorf("ParseRule(%q) = %v, want an error", tc.in, r)
		case tc.want != "" && err != nil:
			t.Errorf("ParseRule(%q): %v", tc.in, err)
		case tc.want != "" && r.String() != tc.want:
			t.Errorf("ParseRule(%q) = %q, want %q", tc.in, r, tc.want)
		}
		if err == nil {
			back, err := ParseRule(r.String())
			if err != nil || back != r {
				t.Errorf("ParseRule(%q).String() = %q reads back as %+v, %v", tc.in, r, back, err)
			}
		}
	}
}
