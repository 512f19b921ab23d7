package importers

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/emersion/go-ical"
	"github.com/teambition/rrule-go"
)

// iCalendar (RFC 5545) events into calendar. Parsing is go-ical's; time
// zones are resolved from the file's own VTIMEZONE definitions first (as
// the RFC says), then from the IANA database, because real files carry
// TZIDs no database knows ("custom_America/New_York", Exchange's
// "GMT +0100 (Standard) / GMT +0200 (Daylight)").
var icalFormat = Format{
	Name:        "ical",
	Version:     "1",
	Description: "iCalendar events with recurrence and time zones (.ics)",
	Collections: []string{"calendar"},
	Extensions:  []string{".ics", ".ical", ".ifb"},
	Detect: func(head []byte) bool {
		return strings.HasPrefix(strings.ToUpper(textHead(head)), "BEGIN:VCALENDAR")
	},
	Parse: parseICal,
}

// MaxICal bounds a calendar: go-ical holds one VCALENDAR in memory.
const MaxICal = 64 << 20

func icalErr(ref, code, format string, args ...any) error {
	return &Error{Format: "ical", Ref: ref, Code: code, Msg: fmt.Sprintf(format, args...)}
}

var errICalTooLarge = errors.New("calendar too large")

type capReader struct {
	r io.Reader
	n int64
}

func (c *capReader) Read(p []byte) (int, error) {
	if c.n <= 0 {
		return 0, errICalTooLarge
	}
	if int64(len(p)) > c.n {
		p = p[:c.n]
	}
	n, err := c.r.Read(p)
	c.n -= int64(n)
	return n, err
}

func parseICal(r io.Reader, emit func(Item) error) error {
	// go-ical uses this bufio.Reader as is (it is large enough), so what
	// is left in it is what the decoder has not read.
	br := newLineReader(&capReader{r: r, n: MaxICal})
	dec := ical.NewDecoder(br)
	n, cals := 0, 0
	for {
		if more, err := skipBlank(br); err != nil {
			return icalDecodeError(err, cals+1)
		} else if !more {
			if cals == 0 {
				return icalErr("", "ical_empty", "the file holds no VCALENDAR")
			}
			return nil
		}
		cal, err := dec.Decode()
		if err == io.EOF {
			// Content was left, yet the decoder found no whole calendar.
			return icalErr(fmt.Sprintf("VCALENDAR %d", cals+1), "ical_truncated", "the file ends inside a component")
		}
		if err != nil {
			return icalDecodeError(err, cals+1)
		}
		cals++
		zones, err := icalZones(cal)
		if err != nil {
			return err
		}
		for _, c := range cal.Children {
			if c.Name != ical.CompEvent {
				continue
			}
			n++
			it, err := icalItem(c, zones, fmt.Sprintf("VEVENT %d", n))
			if err != nil {
				return err
			}
			if err := emit(it); err != nil {
				return err
			}
		}
	}
}

// skipBlank consumes blank bytes and reports whether anything follows.
func skipBlank(br *bufio.Reader) (bool, error) {
	for {
		c, err := br.ReadByte()
		if err == io.EOF {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		if c != ' ' && c != '\t' && c != '\r' && c != '\n' {
			return true, br.UnreadByte()
		}
	}
}

func icalDecodeError(err error, cal int) error {
	ref := fmt.Sprintf("VCALENDAR %d", cal)
	switch {
	case errors.Is(err, errICalTooLarge):
		return icalErr("", "ical_too_large", "the file is over 64 MiB")
	case errors.Is(err, ErrLineTooLong):
		return icalErr(ref, "line_too_long", "a line is longer than 1 MiB")
	case errors.Is(err, io.ErrUnexpectedEOF), strings.Contains(err.Error(), "EOF"):
		return icalErr(ref, "ical_truncated", "the file ends inside a component")
	case strings.Contains(err.Error(), "toplevel"), strings.Contains(err.Error(), "expected BEGIN"):
		return icalErr(ref, "ical_no_calendar", "expected BEGIN:VCALENDAR")
	}
	return icalErr(ref, "ical_syntax", "malformed content line or component")
}

// zone is a VTIMEZONE: observances whose onsets are computed from their
// DTSTART, RRULE and RDATEs, all in local (floating) time.
type zone []observance

type observance struct {
	from, to int // offsets in seconds
	start    time.Time
	rule     *rrule.RRule
	rdates   []time.Time
}

func parseOffset(s string) (int, bool) {
	s = strings.TrimSpace(s)
	if len(s) != 5 && len(s) != 7 || (s[0] != '+' && s[0] != '-') {
		return 0, false
	}
	t, err := time.Parse("1504", s[1:5])
	if err != nil {
		return 0, false
	}
	off := t.Hour()*3600 + t.Minute()*60
	if len(s) == 7 {
		var sec int
		if _, err := fmt.Sscanf(s[5:], "%02d", &sec); err != nil || sec > 59 {
			return 0, false
		}
		off += sec
	}
	if s[0] == '-' {
		off = -off
	}
	return off, true
}

func icalZones(cal *ical.Calendar) (map[string]zone, error) {
	zones := map[string]zone{}
	for _, c := range cal.Children {
		if c.Name != ical.CompTimezone {
			continue
		}
		tzid := c.Props.Get(ical.PropTimezoneID)
		if tzid == nil || tzid.Value == "" {
			return nil, icalErr("VTIMEZONE", "ical_bad_timezone", "a VTIMEZONE without TZID")
		}
		var z zone
		for _, o := range c.Children {
			ref := "VTIMEZONE " + clip(tzid.Value)
			var ob observance
			var ok1, ok2 bool
			if p := o.Props.Get(ical.PropTimezoneOffsetFrom); p != nil {
				ob.from, ok1 = parseOffset(p.Value)
			}
			if p := o.Props.Get(ical.PropTimezoneOffsetTo); p != nil {
				ob.to, ok2 = parseOffset(p.Value)
			}
			ds := o.Props.Get(ical.PropDateTimeStart)
			if !ok1 || !ok2 || ds == nil {
				return nil, icalErr(ref, "ical_bad_timezone", "an observance lacks a valid TZOFFSETFROM, TZOFFSETTO or DTSTART")
			}
			var err error
			if ob.start, err = time.ParseInLocation("20060102T150405", ds.Value, time.UTC); err != nil {
				return nil, icalErr(ref, "ical_bad_timezone", "an observance's DTSTART is not a local date-time")
			}
			if p := o.Props.Get(ical.PropRecurrenceRule); p != nil {
				opt, err := rrule.StrToROption(strings.ReplaceAll(p.Value, " ", ""))
				if err != nil {
					return nil, icalErr(ref, "ical_bad_rrule", "an observance's RRULE is malformed")
				}
				opt.Dtstart = ob.start
				if ob.rule, err = rrule.NewRRule(*opt); err != nil {
					return nil, icalErr(ref, "ical_bad_rrule", "an observance's RRULE is malformed")
				}
			}
			for _, p := range o.Props.Values(ical.PropRecurrenceDates) {
				for _, v := range strings.Split(p.Value, ",") {
					if t, err := time.ParseInLocation("20060102T150405", strings.TrimSuffix(v, "Z"), time.UTC); err == nil {
						ob.rdates = append(ob.rdates, t)
					}
				}
			}
			z = append(z, ob)
		}
		if len(z) == 0 {
			return nil, icalErr("VTIMEZONE "+clip(tzid.Value), "ical_bad_timezone", "a VTIMEZONE without STANDARD or DAYLIGHT")
		}
		zones[tzid.Value] = z
	}
	return zones, nil
}

// offset is the zone's UTC offset at local time t: that of the observance
// with the latest onset at or before t.
func (z zone) offset(t time.Time) int {
	var best time.Time
	off, found := 0, false
	earliest := z[0]
	for _, o := range z {
		if o.start.Before(earliest.start) {
			earliest = o
		}
		last := time.Time{}
		if !o.start.After(t) {
			last = o.start
		}
		if o.rule != nil {
			if x := o.rule.Before(t, true); !x.IsZero() {
				last = x
			}
		}
		for _, d := range o.rdates {
			if !d.After(t) && d.After(last) {
				last = d
			}
		}
		if !last.IsZero() && (!found || last.After(best)) {
			best, off, found = last, o.to, true
		}
	}
	if !found {
		return earliest.from
	}
	return off
}

// icalTime reads a DATE or DATE-TIME property: a date, or an instant in
// RFC 3339 with the offset it had where it was written.
func icalTime(p *ical.Prop, zones map[string]zone, ref string) (value string, allDay bool, err error) {
	v := strings.TrimSpace(p.Value)
	if p.ValueType() == ical.ValueDate || len(v) == 8 {
		t, err := time.Parse("20060102", v)
		if err != nil {
			return "", false, icalErr(ref, "ical_bad_time", "%s is not a date", p.Name)
		}
		return t.Format("2006-01-02"), true, nil
	}
	if strings.HasSuffix(v, "Z") {
		t, err := time.Parse("20060102T150405Z", v)
		if err != nil {
			return "", false, icalErr(ref, "ical_bad_time", "%s is not a date-time", p.Name)
		}
		return t.Format(time.RFC3339), false, nil
	}
	local, err := time.ParseInLocation("20060102T150405", v, time.UTC)
	if err != nil {
		return "", false, icalErr(ref, "ical_bad_time", "%s is not a date-time", p.Name)
	}
	tzid := p.Params.Get(ical.PropTimezoneID)
	if tzid == "" {
		// Floating time: the same wall-clock time wherever one is.
		return local.Format("2006-01-02T15:04:05"), false, nil
	}
	if z, ok := zones[tzid]; ok {
		off := z.offset(local)
		return time.Date(local.Year(), local.Month(), local.Day(), local.Hour(), local.Minute(), local.Second(), 0,
			time.FixedZone("", off)).Format(time.RFC3339), false, nil
	}
	if loc, err := time.LoadLocation(strings.TrimPrefix(tzid, "/")); err == nil && tzid != "Local" {
		return time.Date(local.Year(), local.Month(), local.Day(), local.Hour(), local.Minute(), local.Second(), 0, loc).Format(time.RFC3339), false, nil
	}
	return "", false, icalErr(ref, "ical_unknown_timezone", "%s names a TZID that neither the file nor the time zone database defines", p.Name)
}

var icalKnown = map[string]bool{
	"UID": true, "SUMMARY": true, "DESCRIPTION": true, "LOCATION": true, "STATUS": true, "DTSTART": true, "DTEND": true,
	"DURATION": true, "RRULE": true, "RDATE": true, "EXDATE": true, "RECURRENCE-ID": true, "ORGANIZER": true,
	"ATTENDEE": true, "CATEGORIES": true, "URL": true, "DTSTAMP": true, "SEQUENCE": true, "LAST-MODIFIED": true, "CREATED": true,
}

func icalItem(c *ical.Component, zones map[string]zone, ref string) (Item, error) {
	d := map[string]any{}
	text := func(k, prop string) {
		if p := c.Props.Get(prop); p != nil {
			if s, err := c.Props.Text(prop); err == nil && strings.TrimSpace(s) != "" {
				d[k] = strings.TrimSpace(s)
			} else if strings.TrimSpace(p.Value) != "" {
				d[k] = strings.TrimSpace(p.Value)
			}
		}
	}
	text("summary", ical.PropSummary)
	text("description", ical.PropDescription)
	text("location", ical.PropLocation)
	text("url", ical.PropURL)
	text("uid", ical.PropUID)
	if p := c.Props.Get(ical.PropStatus); p != nil && p.Value != "" {
		d["status"] = strings.ToLower(p.Value)
	}
	ds := c.Props.Get(ical.PropDateTimeStart)
	if ds == nil {
		return Item{}, icalErr(ref, "ical_no_start", "the event has no DTSTART")
	}
	start, allDay, err := icalTime(ds, zones, ref)
	if err != nil {
		return Item{}, err
	}
	d["start"] = start
	d["allDay"] = allDay
	if tz := ds.Params.Get(ical.PropTimezoneID); tz != "" {
		d["timeZone"] = tz
	}
	if de := c.Props.Get(ical.PropDateTimeEnd); de != nil {
		if d["end"], _, err = icalTime(de, zones, ref); err != nil {
			return Item{}, err
		}
	} else if du := c.Props.Get(ical.PropDuration); du != nil {
		if _, err := du.Duration(); err != nil {
			return Item{}, icalErr(ref, "ical_bad_time", "DURATION is malformed")
		}
		d["duration"] = du.Value
	}
	if p := c.Props.Get(ical.PropRecurrenceRule); p != nil {
		// Some clients write "BYDAY=MO, TU" (spaces in lists).
		rule := strings.ReplaceAll(p.Value, " ", "")
		if _, err := rrule.StrToROption(rule); err != nil {
			return Item{}, icalErr(ref, "ical_bad_rrule", "RRULE is malformed")
		}
		d["recurrence"] = rule
	}
	multi := func(k, prop string) {
		var out []any
		for _, p := range c.Props.Values(prop) {
			v, _, err := icalTime(&p, zones, ref)
			if err != nil {
				for _, part := range strings.Split(p.Value, ",") {
					out = append(out, part)
				}
				continue
			}
			out = append(out, v)
		}
		if len(out) > 0 {
			d[k] = out
		}
	}
	multi("recurrenceDates", ical.PropRecurrenceDates)
	multi("exceptionDates", ical.PropExceptionDates)
	recID := ""
	if p := c.Props.Get(ical.PropRecurrenceID); p != nil {
		if recID, _, err = icalTime(p, zones, ref); err != nil {
			return Item{}, err
		}
		d["recurrenceId"] = recID
	}
	if p := c.Props.Get(ical.PropOrganizer); p != nil {
		d["organizer"] = strings.TrimPrefix(strings.TrimPrefix(p.Value, "mailto:"), "MAILTO:")
	}
	var att []any
	for _, p := range c.Props.Values(ical.PropAttendee) {
		att = append(att, strings.TrimPrefix(strings.TrimPrefix(p.Value, "mailto:"), "MAILTO:"))
	}
	if len(att) > 0 {
		d["attendee"] = att
	}
	if cats, err := c.Props.Text(ical.PropCategories); err == nil && cats != "" {
		var out []any
		for _, s := range strings.Split(cats, ",") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
		d["categories"] = out
	}
	var names []string
	for k := range c.Props {
		if !icalKnown[k] {
			names = append(names, k)
		}
	}
	slices.Sort(names)
	var extra []any
	for _, k := range names {
		for _, p := range c.Props[k] {
			e := map[string]any{"name": k, "value": p.Value}
			if len(p.Params) > 0 {
				e["params"] = map[string][]string(p.Params)
			}
			extra = append(extra, e)
		}
	}
	if len(extra) > 0 {
		d["additionalProperty"] = extra
	}
	// UID with RECURRENCE-ID identifies an event (or one changed instance
	// of a recurring one) across exports; without a UID, its start and
	// summary do.
	uid, _ := d["uid"].(string)
	key := "uid:" + uid + "|" + recID
	if uid == "" {
		h := sha256.Sum256([]byte(fmt.Sprintf("%q", []any{d["start"], d["end"], d["summary"], d["recurrence"], recID})))
		key = "event:" + hex.EncodeToString(h[:])
	}
	return Item{Collection: "calendar", Key: key, Ref: ref, Data: d}, nil
}
