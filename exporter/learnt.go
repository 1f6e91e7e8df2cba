package exporter

// What the PBX was seen to do, typed: the kind of its from-bound (kept
// in the cursor's state), the parameter it ignores (the error that sends
// a read down the ladder: by key, key ranges, then time windows or
// offset), and the way an endpoint was read (the ledger's paging).

// bound is what filter[key][from] was seen to do with its bound. The
// cursor's state keeps it as "inclusive" or "exclusive", left out when
// unknown, as earlier versions wrote it.
type bound uint8

const (
	boundUnknown bound = iota
	boundInclusive
	boundExclusive
)

var boundNames = [...]string{"", "inclusive", "exclusive"}

func (b bound) String() string { return boundNames[b] }

// MarshalText writes the bound as the state stores it.
func (b bound) MarshalText() ([]byte, error) { return []byte(b.String()), nil }

// UnmarshalText reads a stored bound; one it does not know is unknown,
// as earlier versions took it, not an error.
func (b *bound) UnmarshalText(text []byte) error {
	*b = boundUnknown
	for i, name := range boundNames {
		if string(text) == name {
			*b = bound(i)
		}
	}
	return nil
}

// param is a query parameter that reading by key needs and a PBX may
// ignore.
type param uint8

const (
	sortParam   param = iota + 1 // sort=key (and dir)
	filterParam                  // filter[key][from] and [to]
)

func (p param) String() string {
	if p == sortParam {
		return "sort"
	}
	return "filter"
}

// what names p for people, for the endpoint's key field.
func (p param) what(field string) string {
	if p == sortParam {
		return "sort=" + field
	}
	return "filter[" + field + "]"
}

// ladderError says a PBX ignores a parameter reading by key needs: the
// caller goes down the ladder (key ranges when only the sort is ignored,
// then time windows or offset). Detail says what was seen, for people.
type ladderError struct {
	Ignored param
	Detail  string
}

func (e *ladderError) Error() string { return e.Detail }

// strategy is a way an endpoint's records are read; its String is the
// run ledger's paging.
type strategy uint8

const (
	byKey strategy = iota
	byKeyCapped
	byKeyRanges
	byTimeWindows
	byOffset
)

func (s strategy) String() string {
	return [...]string{PagingKeyset, PagingKeysetCapped, PagingKeyRanges, PagingTimeWindows, PagingOffset}[s]
}
