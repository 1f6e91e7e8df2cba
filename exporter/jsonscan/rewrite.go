package jsonscan

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Rewriter is the policy of Rewrite: what it writes in place of each
// member name and each value literal. Both are called in the order they
// are written; either may be nil (nothing replaced).
type Rewriter struct {
	// Name returns the name to give the member named name (unquoted, as
	// sent); at ends with the object it is a member of, its member being
	// this one. Returning name keeps it as it was written.
	Name func(at *Path, name string) string
	// Value returns what to write in place of the value literal lit (a
	// string as written, quotes and escapes included; a number; true,
	// false or null) at at; nil keeps it.
	Value func(at *Path, lit []byte) []byte
}

// Path is where a literal stands: the objects and arrays it is in,
// outermost first. It is valid only during the call it is given to.
type Path struct{ levels []level }

type level struct {
	obj, key bool   // an object; its next literal is a member name
	name     string // an object's member being read, as sent
	start    int    // where the object starts
	taken    map[string]bool
}

// Depth is how many objects and arrays the literal is in: 0 for a JSON
// text that is a literal alone, 1 for a member of the top-level object.
func (p *Path) Depth() int { return len(p.levels) }

// Member returns, for the container at depth d (0 the outermost), the name
// (as sent) of the member the literal is in and whether the container is
// an object; "" and false for an array or a depth the path has not.
func (p *Path) Member(d int) (name string, obj bool) {
	if d < 0 || d >= len(p.levels) || !p.levels[d].obj {
		return "", false
	}
	return p.levels[d].name, true
}

// Start returns where the container at depth d (0 the outermost) starts
// in the text given to Rewrite, the offset of its '{' or '[': the same
// for every literal of one object, so that a first Rewrite can mark
// objects a second one, over the same text, reads (an object's members
// seen together); -1 for a depth the path has not.
func (p *Path) Start(d int) int {
	if d < 0 || d >= len(p.levels) {
		return -1
	}
	return p.levels[d].start
}

// InnermostObject is the depth of the innermost object the literal is a
// member of, through arrays ({"name": ["…"]}); -1 when none.
func (p *Path) InnermostObject() int {
	for d := len(p.levels) - 1; d >= 0; d-- {
		if _, obj := p.Member(d); obj {
			return d
		}
	}
	return -1
}

// Top returns the name of the member of the top-level object the literal
// is (not inside one of its values), and whether it is one.
func (p *Path) Top() (string, bool) {
	if len(p.levels) != 1 {
		return "", false
	}
	return p.Member(0)
}

// Rewrite returns a copy of the JSON text b in which each member name and
// value literal is what rw says (Rewriter), every other byte as it was:
// member order, spacing and escapes stay as sent, so that two rewrites of
// the same text by the same policy give the same bytes. It is one pass; it
// returns an error, and no text, when b is not valid JSON.
//
// A member renamed takes a name no other member of its object has, as sent
// or as renamed before it: when the name is taken, the first of name#2,
// name#3… that is not. Two members never end up with one name, which
// would lose one's value (PostgreSQL's jsonb and most readers keep only
// the last of two members of one name): {"393528512784": 1, "p:X": 2},
// its first name replaced by p:X, becomes {"p:X#2": 1, "p:X": 2}.
func Rewrite(b []byte, rw Rewriter) ([]byte, error) {
	if !json.Valid(b) {
		return nil, errors.New("not valid JSON")
	}
	w := rewrite{b: b, rw: rw, out: make([]byte, 0, len(b))}
	for i := 0; i < len(b); {
		i = w.step(i)
	}
	return append(w.out, b[w.done:]...), nil
}

// rewrite is one Rewrite: b[:done] is in out.
type rewrite struct {
	b    []byte
	rw   Rewriter
	at   Path
	out  []byte
	done int
}

// step reads the token at b[i] and returns the index past it.
func (w *rewrite) step(i int) int {
	lv := w.at.levels
	switch c := w.b[i]; c {
	case '{', '[':
		w.at.levels = append(lv, level{obj: c == '{', key: c == '{', start: i})
	case '}', ']':
		w.at.levels = lv[:len(lv)-1]
	case ',':
		if l := len(lv) - 1; l >= 0 && lv[l].obj {
			lv[l].key = true
		}
	case ' ', '\t', '\n', '\r', ':':
	default:
		end := literalEnd(w.b, i)
		if l := len(lv) - 1; l >= 0 && lv[l].key {
			w.name(&lv[l], i, end)
		} else if w.rw.Value != nil {
			if r := w.rw.Value(&w.at, w.b[i:end]); r != nil {
				w.replace(i, end, r)
			}
		}
		return end
	}
	return i + 1
}

// name reads the member name b[i:end] of the object lv and renames it as
// the policy says, to a name free in the object (Rewrite).
func (w *rewrite) name(lv *level, i, end int) {
	lv.key = false
	lv.name = Unquote(w.b[i:end])
	if w.rw.Name == nil {
		return
	}
	t := w.rw.Name(&w.at, lv.name)
	if t == lv.name {
		return
	}
	if lv.taken == nil {
		lv.taken = memberNames(w.b, lv.start)
	}
	if lv.taken[t] {
		base := t
		for n := 2; lv.taken[t]; n++ {
			t = base + "#" + strconv.Itoa(n)
		}
	}
	lv.taken[t] = true
	w.replace(i, end, Quote(t))
}

func (w *rewrite) replace(i, end int, r []byte) {
	w.out = append(append(w.out, w.b[w.done:i]...), r...)
	w.done = end
}

// literalEnd returns the index past the literal at b[i] of valid JSON.
func literalEnd(b []byte, i int) int {
	if b[i] == '"' {
		end, _ := StringEnd(b, i)
		return end
	}
	end := i + 1
	for end < len(b) && !strings.ContainsRune(" \t\n\r,:]}", rune(b[end])) {
		end++
	}
	return end
}

// memberNames returns the names (as sent) of the members of the object at
// b[i] == '{' of valid JSON.
func memberNames(b []byte, i int) map[string]bool {
	names := map[string]bool{}
	depth, key := 0, false
	for ; i < len(b); i++ {
		switch b[i] {
		case '{', '[':
			depth++
			key = depth == 1
		case '}', ']':
			if depth--; depth == 0 {
				return names
			}
		case ',':
			key = depth == 1
		case '"':
			end := literalEnd(b, i)
			if key {
				names[Unquote(b[i:end])] = true
				key = false
			}
			i = end - 1
		}
	}
	return names
}

// Unquote returns the string the JSON string literal lit holds, as
// encoding/json reads it (invalid UTF-8 as U+FFFD); "" when lit is not one.
func Unquote(lit []byte) string {
	if len(lit) >= 2 && lit[0] == '"' && lit[len(lit)-1] == '"' && bytes.IndexByte(lit, '\\') < 0 && utf8.Valid(lit) {
		return string(lit[1 : len(lit)-1])
	}
	var s string
	json.Unmarshal(lit, &s)
	return s
}

// Quote returns s as a JSON string literal, with <, > and & as they are
// (encoding/json escapes them for HTML by default).
func Quote(s string) []byte {
	var b bytes.Buffer
	e := json.NewEncoder(&b)
	e.SetEscapeHTML(false)
	e.Encode(s)
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}
