package jsonscan

import (
	"reflect"
	"strings"
	"testing"
)

func TestScanObject(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want []string // name=value pairs
		err  string
	}{
		{`{}`, nil, ""},
		{` { "a" : "1" , "b":2,"c":null,"d":true, "e":{"x":[1,"]",{"y":"}"}]},"f":[] } `,
			[]string{`a="1"`, `b=2`, `c=null`, `d=true`, `e={"x":[1,"]",{"y":"}"}]}`, `f=[]`}, ""},
		{`{"q\"uote":"a\"b","\u00e9":"é"}`, []string{`q"uote="a\"b"`, `é="é"`}, ""},
		{`[1,2]`, nil, "not a JSON object"},
		{`{"a":1`, nil, "not closed"},
		{`{"a" 1}`, nil, "expected ':'"},
		{`{"a":1}x`, nil, "unexpected data"},
		{`{"a":tru}`, nil, "invalid value"},
		{`{"a":"unterminated}`, nil, "not closed"},
		{`{"a":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`, nil, "nested deeper"},
	} {
		var got []string
		err := Object([]byte(tc.in), func(n, v []byte) error {
			got = append(got, string(n)+"="+string(v))
			return nil
		})
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: err %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: got %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}
