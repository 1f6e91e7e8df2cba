package pseudonym

import (
	"fmt"
	"strings"
)

// Rule says what is replaced by pseudonyms (EXPORT_PSEUDONYMIZE). The
// zero Rule replaces nothing. Internal extensions are never replaced:
// which values are extensions, numbers or names is the caller's to say.
type Rule struct {
	// Numbers: phone numbers of external parties, in their own fields and
	// inside free text (Scrub).
	Numbers bool
	// Names: names of external parties (callers, callees, contacts).
	Names bool
	// Staff: the numbers and names of the company's own people too
	// (colleagues' names, mobile and office numbers, e-mail addresses),
	// everything personal but an extension. Only with Numbers and Names.
	Staff bool
}

// The values of EXPORT_PSEUDONYMIZE.
const (
	RuleNone    = "none"
	RuleNumbers = "numbers"
	RuleNames   = "names"
	RuleAll     = "all"
)

// On reports whether the rule replaces anything.
func (r Rule) On() bool { return r.Numbers || r.Names || r.Staff }

// String is the rule's one spelling, as ParseRule reads it and the run
// ledger records it: "none", "numbers", "names", "numbers,names" or "all".
func (r Rule) String() string {
	switch {
	case r.Staff:
		return RuleAll
	case r.Numbers && r.Names:
		return RuleNumbers + "," + RuleNames
	case r.Numbers:
		return RuleNumbers
	case r.Names:
		return RuleNames
	}
	return RuleNone
}

// ParseRule reads a rule: "none" (or empty), "all", or a comma list of
// "numbers" and "names", in any case and order.
func ParseRule(s string) (Rule, error) {
	var r Rule
	none := false
	for _, w := range strings.Split(s, ",") {
		switch strings.ToLower(strings.TrimSpace(w)) {
		case "":
		case RuleNone:
			none = true
		case RuleNumbers:
			r.Numbers = true
		case RuleNames:
			r.Names = true
		case RuleAll:
			r = Rule{Numbers: true, Names: true, Staff: true}
		default:
			return Rule{}, fmt.Errorf("unknown word %q", strings.TrimSpace(w))
		}
	}
	if none && r.On() {
		return Rule{}, fmt.Errorf("none together with something to replace")
	}
	return r, nil
}
