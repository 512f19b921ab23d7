package importers

import (
	"strings"
	"testing"
)

func TestICalFixtures(t *testing.T) {
	for _, tc := range []struct {
		file string
		want map[string]any
	}{
		// A custom TZID defined by a VTIMEZONE with the US rules since 1967:
		// August 2014 is daylight time.
		{"icalendar-america_new_york.ics", map[string]any{"start": "2014-08-29T08:00:00-04:00", "end": "2014-08-29T10:00:00-04:00", "timeZone": "custom_America/New_York", "uid": "noend123"}},
		// Exchange's TZID, quoted; DST rules from 1601; spaces in BYDAY.
		{"icalendar-issue_165_missing_event.ics", map[string]any{"start": "2015-07-03T10:00:00+02:00", "summary": "Sprint 25 Daily Standup"}},
		// A non-Olson TZID with a leading slash; weekly recurrence.
		{"icalendar-issue_466_respect_unique_timezone.ics", map[string]any{"start": "2022-10-21T20:00:00+02:00", "recurrence": "FREQ=WEEKLY;BYDAY=FR"}},
		// Europe/Vienna in winter; LOCATION, DESCRIPTION.
		{"icalendar-timezoned.ics", map[string]any{"start": "2012-02-13T10:00:00+01:00", "end": "2012-02-17T18:00:00+01:00", "location": "aka bild", "allDay": false}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			items, err := parseFile(t, icalFormat, fixtures(t, "ical", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			if len(items) != 1 {
				t.Fatalf("%d items", len(items))
			}
			for k, w := range tc.want {
				if items[0].Data[k] != w {
					t.Errorf("%s = %v, want %v", k, items[0].Data[k], w)
				}
			}
		})
	}
	items, _ := parseFile(t, icalFormat, fixtures(t, "ical", "icalendar-issue_165_missing_event.ics"))
	if r, _ := items[0].Data["recurrence"].(string); !strings.Contains(r, "BYDAY=MO,TU,WE,TH,FR") {
		t.Errorf("recurrence %q", r)
	}
}

const icalZone = "BEGIN:VTIMEZONE\r\nTZID:Home\r\nBEGIN:STANDARD\r\nDTSTART:19701025T030000\r\nRRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nEND:STANDARD\r\nBEGIN:DAYLIGHT\r\nDTSTART:19700329T020000\r\nRRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\nEND:DAYLIGHT\r\nEND:VTIMEZONE\r\n"

func icalDoc(events ...string) string {
	return "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n" + icalZone + strings.Join(events, "") + "END:VCALENDAR\r\n"
}

func icalEvent(props ...string) string {
	return "BEGIN:VEVENT\r\n" + strings.Join(props, "\r\n") + "\r\nEND:VEVENT\r\n"
}

func TestICalTimes(t *testing.T) {
	items, err := parseString(icalFormat, icalDoc(
		icalEvent("UID:a", "DTSTART;TZID=Home:20260115T090000", "DTEND;TZID=Home:20260115T100000", "SUMMARY:winter"),
		icalEvent("UID:b", "DTSTART;TZID=Home:20260715T090000", "SUMMARY:summer"),
		icalEvent("UID:c", "DTSTART;VALUE=DATE:20261224", "DTEND;VALUE=DATE:20261225", "SUMMARY:holiday"),
		icalEvent("UID:d", "DTSTART:20261101T120000Z", "DURATION:PT1H"),
		icalEvent("UID:e", "DTSTART:20261101T120000"),
		icalEvent("UID:f", "DTSTART;TZID=Europe/Berlin:20260715T090000"),
		icalEvent("UID:b", "RECURRENCE-ID;TZID=Home:20260722T090000", "DTSTART;TZID=Home:20260722T110000", "SUMMARY:moved"),
	))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"2026-01-15T09:00:00+01:00", "2026-07-15T09:00:00+02:00", "2026-12-24", "2026-11-01T12:00:00Z", "2026-11-01T12:00:00", "2026-07-15T09:00:00+02:00", "2026-07-22T11:00:00+02:00"}
	for i, w := range want {
		if items[i].Data["start"] != w {
			t.Errorf("event %d start %v, want %s", i, items[i].Data["start"], w)
		}
	}
	if items[2].Data["allDay"] != true || items[3].Data["duration"] != "PT1H" {
		t.Errorf("all-day/duration: %v %v", items[2].Data, items[3].Data)
	}
	// A changed instance is its own item, beside the series.
	if items[6].Key == items[1].Key || items[6].Data["recurrenceId"] != "2026-07-22T09:00:00+02:00" {
		t.Errorf("override key %q data %v", items[6].Key, items[6].Data)
	}
}

func TestICalKeysStable(t *testing.T) {
	a, _ := parseString(icalFormat, icalDoc(icalEvent("DTSTART:20261101T120000Z", "SUMMARY:x")))
	b, _ := parseString(icalFormat, icalDoc(icalEvent("DTSTART:20261101T120000Z", "SUMMARY:y"), icalEvent("SUMMARY:x", "DTSTART:20261101T120000Z")))
	if a[0].Key != b[1].Key || b[0].Key == b[1].Key {
		t.Fatalf("keys %q / %q %q", a[0].Key, b[0].Key, b[1].Key)
	}
}

func TestICalMalformed(t *testing.T) {
	for _, tc := range []struct{ name, in, code string }{
		{"empty", "", "ical_empty"},
		{"not a calendar", "BEGIN:VCARD\r\nVERSION:4.0\r\nEND:VCARD\r\n", "ical_no_calendar"},
		{"truncated", "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nDTSTART:20261101T120000Z\r\n", "ical_truncated"},
		{"no start", icalDoc(icalEvent("UID:a", "SUMMARY:x")), "ical_no_start"},
		{"second calendar truncated", icalDoc(icalEvent("DTSTART:20261101T120000Z")) + "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\n", "ical_truncated"},
		{"bad time", icalDoc(icalEvent("DTSTART:2026-11-01")), "ical_bad_time"},
		{"bad duration", icalDoc(icalEvent("DTSTART:20261101T120000Z", "DURATION:soon")), "ical_bad_time"},
		{"unknown zone", icalDoc(icalEvent("DTSTART;TZID=Nowhere/Else:20261101T120000")), "ical_unknown_timezone"},
		{"bad rrule", icalDoc(icalEvent("DTSTART:20261101T120000Z", "RRULE:FREQ=SOMETIMES")), "ical_bad_rrule"},
		{"bad zone", strings.Replace(icalDoc(icalEvent("DTSTART:20261101T120000Z")), "TZOFFSETTO:+0100", "TZOFFSETTO:one", 1), "ical_bad_timezone"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseString(icalFormat, tc.in)
			wantCode(t, err, tc.code)
		})
	}
}
