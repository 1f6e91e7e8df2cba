package jsonscan

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// TestRewriteKeepsBytes: what the policy does not replace is written as it
// was sent, spacing, escapes and order included.
func TestRewriteKeepsBytes(t *testing.T) {
	t.Parallel()
	for _, in := range []string{`{}`, `[]`, `"x"`, ` 12 `, `null`,
		` { "a" : "1" , "b":2,"c":null,"d":true, "e":{"x":[1,"]",{"y":"}"}]},"f":[] } `,
		`{"q\"uote":"a\"b","\u00e9":"é","<&>":"\u003c"}`, `[1.5e3,-2,{"":""}]`} {
		got, err := Rewrite([]byte(in), Rewriter{
			Name:  func(_ *Path, name string) string { return name },
			Value: func(*Path, []byte) []byte { return nil },
		})
		if err != nil || string(got) != in {
			t.Errorf("Rewrite(%s) = %s, %v; want it unchanged", in, got, err)
		}
	}
	if _, err := Rewrite([]byte(`{"a":1`), Rewriter{}); err == nil {
		t.Error("Rewrite of invalid JSON: no error")
	}
}

// TestRewritePath: each value literal is given with where it stands, each
// container's start too (Path.Start).
func TestRewritePath(t *testing.T) {
	t.Parallel()
	in := `{"a":[1,{"b":"x"}],"c":{"d":null},"e":true}`
	var got []string
	out, err := Rewrite([]byte(in), Rewriter{Value: func(at *Path, lit []byte) []byte {
		var p []string
		for d := range at.Depth() {
			name, obj := at.Member(d)
			p = append(p, fmt.Sprintf("%s/%v@%d", name, obj, at.Start(d)))
		}
		if at.Start(at.Depth()) != -1 || at.Start(-1) != -1 {
			t.Errorf("Start beyond the path: want -1")
		}
		top, ok := at.Top()
		got = append(got, fmt.Sprintf("%s %s top=%q,%v in=%d", lit, strings.Join(p, " "), top, ok, at.InnermostObject()))
		if string(lit) == `"x"` {
			return []byte(`"y"`)
		}
		return nil
	}})
	want := []string{
		`1 a/true@0 /false@5 top="",false in=0`,
		`"x" a/true@0 /false@5 b/true@8 top="",false in=2`,
		`null c/true@0 d/true@23 top="",false in=1`,
		`true e/true@0 top="e",true in=0`,
	}
	if err != nil || string(out) != strings.Replace(in, `"x"`, `"y"`, 1) || strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("Rewrite(%s) = %s, %v, gave\n%s\nwant\n%s", in, out, err, strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestRewriteNamesStayDistinct: a member renamed to the name of another
// member of its object, as sent (before or after it) or as renamed, takes
// the first free name#N: no member is lost. Renaming "1" and "2" to "x",
// as a pseudonym replaces two forms of one number. Fails with a renamed
// member given the name it is renamed to whatever the others are
// ({"x":1,"x":2}: jsonb keeps only the last).
func TestRewriteNamesStayDistinct(t *testing.T) {
	t.Parallel()
	rename := Rewriter{Name: func(_ *Path, name string) string {
		if name == "1" || name == "2" {
			return "x"
		}
		return name
	}}
	for _, tc := range []struct{ in, want string }{
		{`{"1":1,"x":2}`, `{"x#2":1,"x":2}`},
		{`{"x":2,"1":1}`, `{"x":2,"x#2":1}`},
		{`{"1":1,"2":2}`, `{"x":1,"x#2":2}`},
		{`{"1":1,"2":2,"x#2":3}`, `{"x":1,"x#3":2,"x#2":3}`},
		{`{"\u0031":1, "\u0078" : 2}`, `{"x#2":1, "\u0078" : 2}`},
		{`{"a":{"1":1,"x":2},"1":[{"x":0,"2":3}]}`, `{"a":{"x#2":1,"x":2},"x":[{"x":0,"x#2":3}]}`},
		{`[{"1":1},{"x":1},{"1":2}]`, `[{"x":1},{"x":1},{"x":2}]`},
		{`{"1":{"x":0}}`, `{"x":{"x":0}}`},
	} {
		got, err := Rewrite([]byte(tc.in), rename)
		if err != nil || string(got) != tc.want {
			t.Errorf("Rewrite(%s) = %s, %v; want %s", tc.in, got, err, tc.want)
		}
	}
}

// TestRewriteLosesNoMember: random objects, nested, whose member names a
// policy renames onto few names (some of them names already there): every
// object keeps as many members, all of distinct names, and the values
// stay in their order. The seed is printed.
func TestRewriteLosesNoMember(t *testing.T) {
	t.Parallel()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 0))
	names := []string{"a", "b", "a#2", "p", "p#2", "p#3", "q"}
	to := map[string]string{"a": "p", "a#2": "p#2", "p#3": "p"}
	rename := Rewriter{Name: func(_ *Path, name string) string {
		if t, ok := to[name]; ok {
			return t
		}
		return name
	}}
	for range 500 {
		in := randomJSON(r, names, 0)
		got, err := Rewrite(in, rename)
		if err != nil {
			t.Fatalf("Rewrite(%s): %v", in, err)
		}
		want, err := shape(in)
		if err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		if have, err := shape(got); err != nil || have != want {
			t.Fatalf("Rewrite(%s) =\n%s: %v\nmembers %s, want %s", in, got, err, have, want)
		}
	}
}

// randomJSON is an object of up to 5 members named from names (once each),
// its values numbers or such objects.
func randomJSON(r *rand.Rand, names []string, depth int) []byte {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, k := range r.Perm(len(names))[:r.IntN(6)] {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%q:", names[k])
		if depth < 3 && r.IntN(3) == 0 {
			b.Write(randomJSON(r, names, depth+1))
		} else {
			fmt.Fprint(&b, r.IntN(1000))
		}
	}
	b.WriteByte('}')
	return b.Bytes()
}

// shape is the JSON text's values in order, each object's count of
// members; an error when one object names two members alike.
func shape(b []byte) (string, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	var out []string
	type obj struct {
		seen map[string]bool
		key  bool
	}
	var stack []*obj
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return strings.Join(out, " "), nil
		}
		if err != nil {
			return "", err
		}
		top := (*obj)(nil)
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		switch v := tok.(type) {
		case json.Delim:
			if v == '{' {
				if top != nil {
					top.key = true
				}
				stack = append(stack, &obj{seen: map[string]bool{}, key: true})
				continue
			}
			out = append(out, fmt.Sprintf("}%d", len(top.seen)))
			stack = stack[:len(stack)-1]
			continue
		case string:
			if top.key {
				if top.seen[v] {
					return "", fmt.Errorf("two members named %q", v)
				}
				top.seen[v] = true
				top.key = false
				continue
			}
		}
		out = append(out, fmt.Sprint(tok))
		top.key = true
	}
}
