package exporter_test

import (
	"context"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/wildix-export/wildix-export/auth"
	"github.com/wildix-export/wildix-export/exporter"
	"github.com/wildix-export/wildix-export/internal/pbxsim"
	"github.com/wildix-export/wildix-export/internal/simtest"
)

// TestTimesAcrossDaylightSaving reads calls around Rome's two changes of
// 2026 from the simulator over HTTP and checks every instant against the
// ground truth. With WILDIX_TIMEZONE set and no timezone field, a call is
// exact whenever its own times tell which occurrence of a repeated wall
// time is meant; the calls that lie wholly inside one pass of the repeated
// hour cannot tell, and are counted, read as the earlier pass.
func TestTimesAcrossDaylightSaving(t *testing.T) {
	t.Parallel()
	rome, err := time.LoadLocation("Europe/Rome")
	if err != nil {
		t.Fatal(err)
	}
	spring := time.Date(2026, 3, 29, 0, 0, 0, 0, time.UTC)          // 02:00 → 03:00 at 01:00Z
	autumn := time.Date(2026, 10, 24, 23, 30, 0, 0, time.UTC)       // 03:00 → 02:00 at 01:00Z
	fold1 := time.Date(2026, 10, 25, 0, 0, 0, 0, time.UTC)          // first pass of 02:00-03:00
	fold2, fold2End := fold1.Add(time.Hour), fold1.Add(2*time.Hour) // second pass
	for _, tc := range []struct {
		name   string
		start  time.Time
		omitTZ bool
	}{
		{"spring, no timezone field", spring, true},
		{"autumn, no timezone field", autumn, true},
		{"autumn, timezone field", autumn, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := simtest.New(t, pbxsim.Options{Calls: 300, CallGap: time.Minute, CallsStart: tc.start, Location: rome,
				OmitTimezoneField: tc.omitTZ, APIKeys: []string{"wsk-v1-tz"}})
			c := f.Client(&http.Client{Transport: &auth.Transport{Source: auth.Static("wsk-v1-tz")}})
			page, err := c.List(context.Background(), "/api/v1/PBX/CallHistory/", url.Values{"sort": {"id"}, "dir": {"ASC"}, "count": {"1000"}}, &exporter.Counters{})
			if err != nil {
				t.Fatal(err)
			}
			if len(page.Records) != 300 {
				t.Fatalf("%d records, want 300", len(page.Records))
			}
			ep := exporter.Builtin()[0]
			w := &exporter.Warnings{}
			rows, err := (&exporter.Converter{Endpoint: &ep, Zone: rome, Warnings: w}).Rows(page.Records)
			if err != nil {
				t.Fatal(err)
			}
			at := func(row exporter.Row, col string) time.Time {
				v, _ := row.Values[ep.Column(col)].(time.Time)
				return v
			}
			var undecidable, crossing int64
			for _, row := range rows {
				truth := f.Sim.Call(row.Cursor)
				times := []time.Time{truth.Start, truth.End}
				if !truth.Answer.IsZero() {
					times = append(times, truth.Answer)
				}
				in := func(from, to time.Time) bool {
					for _, x := range times {
						if x.Before(from) || !x.Before(to) {
							return false
						}
					}
					return true
				}
				shift := time.Duration(0)
				switch {
				case !tc.omitTZ:
				case in(fold1, fold2):
					undecidable++
				case in(fold2, fold2End):
					undecidable++
					shift = -time.Hour // read as the earlier pass
				case !truth.Start.Before(fold1) && truth.Start.Before(fold2End):
					crossing++ // starts in the repeated hour, told apart by its end
				}
				for col, want := range map[string]time.Time{"start_time": truth.Start, "end_time": truth.End, "answer_time": truth.Answer} {
					if !want.IsZero() {
						want = want.Add(shift)
					}
					if got := at(row, col); !got.Equal(want) {
						t.Errorf("call %d %s = %v, want %v (truth %s %s → %s)", row.Cursor, col, got, want, truth.Start, truth.Answer, truth.End)
					}
				}
			}
			if got := w.Count(exporter.WarnAmbiguous); got != undecidable || w.Total() != undecidable {
				t.Fatalf("warnings %v, want %d undecidable calls counted", w.Notes(), undecidable)
			}
			if tc.start == autumn && tc.omitTZ && (undecidable == 0 || crossing == 0) {
				t.Fatalf("%d undecidable and %d decided calls in the repeated hour: the data misses a case", undecidable, crossing)
			}
			if tc.start == spring {
				spans := 0
				for id := int64(1); id <= 300; id++ {
					if c := f.Sim.Call(id); c.Start.Before(spring.Add(time.Hour)) && c.End.After(spring.Add(time.Hour)) {
						spans++
					}
				}
				if spans == 0 {
					t.Fatal("no call spans the spring change")
				}
			}
		})
	}
}
