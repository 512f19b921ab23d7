package importers

import (
	"bufio"
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"
)

// Apple Health's export.xml into health, each sample as a FHIR R4
// Observation with HealthKit's identifier as its code (system below), the
// owner's characteristics as a Patient. Streamed with encoding/xml one
// element at a time: real exports are hundreds of MB to GBs.
var appleFormat = Format{
	Name:        "applehealth",
	Version:     "1",
	Description: "Apple Health export.zip, or the export.xml inside it",
	Collections: []string{"health"},
	Extensions:  []string{".zip", ".xml"},
	Detect: func(head []byte) bool {
		return bytes.Contains(head, []byte("<HealthData")) || bytes.HasPrefix(head, []byte("PK\x03\x04")) && bytes.Contains(head, []byte("apple_health_export/"))
	},
	Parse: parseAppleHealth,
}

// healthKitSystem is the code system of HealthKit type identifiers.
const healthKitSystem = "https://developer.apple.com/documentation/healthkit"

func appleErr(ref, code, format string, args ...any) error {
	return &Error{Format: "applehealth", Ref: ref, Code: code, Msg: fmt.Sprintf(format, args...)}
}

type appleMeta struct {
	Key   string `xml:"key,attr"`
	Value string `xml:"value,attr"`
}

type appleRecord struct {
	Type          string      `xml:"type,attr"`
	SourceName    string      `xml:"sourceName,attr"`
	SourceVersion string      `xml:"sourceVersion,attr"`
	Device        string      `xml:"device,attr"`
	Unit          string      `xml:"unit,attr"`
	Value         string      `xml:"value,attr"`
	CreationDate  string      `xml:"creationDate,attr"`
	StartDate     string      `xml:"startDate,attr"`
	EndDate       string      `xml:"endDate,attr"`
	Meta          []appleMeta `xml:"MetadataEntry"`
}

type appleWorkout struct {
	Activity     string      `xml:"workoutActivityType,attr"`
	Duration     string      `xml:"duration,attr"`
	DurationUnit string      `xml:"durationUnit,attr"`
	Distance     string      `xml:"totalDistance,attr"`
	DistanceUnit string      `xml:"totalDistanceUnit,attr"`
	Energy       string      `xml:"totalEnergyBurned,attr"`
	EnergyUnit   string      `xml:"totalEnergyBurnedUnit,attr"`
	SourceName   string      `xml:"sourceName,attr"`
	CreationDate string      `xml:"creationDate,attr"`
	StartDate    string      `xml:"startDate,attr"`
	EndDate      string      `xml:"endDate,attr"`
	Meta         []appleMeta `xml:"MetadataEntry"`
	Routes       []struct {
		Locations []struct{} `xml:"Location"`
	} `xml:"WorkoutRoute"`
}

func parseAppleHealth(r io.Reader, emit func(Item) error) error {
	br := bufio.NewReaderSize(r, 64<<10)
	if head, _ := br.Peek(4); bytes.Equal(head, []byte("PK\x03\x04")) || bytes.Equal(head, []byte("PK\x05\x06")) {
		return parseAppleZip(br, emit) // an archive, or an empty one
	}
	return parseAppleXML(br, emit)
}

// appleExportXML is the entry of export.zip the importer reads; the rest
// (export_cda.xml, workout-routes/*.gpx, electrocardiograms/*.csv) stays
// in the kept original.
func appleExportXML(name string) bool {
	return name == "apple_health_export/export.xml" || name == "export.xml"
}

// parseAppleZip reads export.xml out of export.zip as the archive streams
// in (zipstream.go), and checks the entry's CRC-32 at its end.
func parseAppleZip(r *bufio.Reader, emit func(Item) error) error {
	z := newZipStream(r)
	xr, check, err := z.open(appleExportXML)
	if err == nil {
		if err = parseAppleXML(xr, emit); err == nil {
			// The XML may end before the entry does (trailing space).
			if _, err = io.Copy(io.Discard, xr); err == nil {
				err = check()
			}
		}
	}
	switch {
	case errors.Is(err, errZipNotFound):
		return appleErr("", "applehealth_zip_no_export", "the archive has no apple_health_export/export.xml")
	case errors.Is(err, errZipUnsupported):
		return appleErr("", "applehealth_zip_unsupported", "the archive is encrypted or uses a compression other than deflate")
	case errors.Is(err, errZipCorrupt):
		return appleErr("", "applehealth_zip_corrupt", "the archive is damaged or cut short (a bad header, deflate stream or CRC-32)")
	case errors.Is(err, errZipTooLarge):
		return appleErr("", "applehealth_zip_too_large", "the archive inflates to more than 64 GiB")
	}
	return err
}

func parseAppleXML(r io.Reader, emit func(Item) error) error {
	dec := xml.NewDecoder(newLineReader(r))
	depth, root := 0, false
	seen := repeats{}
	n := 0
	for {
		line, _ := dec.InputPos()
		tok, err := dec.Token()
		if err == io.EOF {
			if !root {
				return appleErr("", "applehealth_not_export", "the file has no HealthData element")
			}
			if depth != 0 {
				return appleErr("", "applehealth_truncated", "the file ends inside HealthData")
			}
			return nil
		}
		if err != nil {
			return appleXMLError(err, line)
		}
		ref := fmt.Sprintf("line %d", line)
		switch t := tok.(type) {
		case xml.StartElement:
			if depth == 0 {
				if t.Name.Local != "HealthData" {
					return appleErr("", "applehealth_not_export", "the root element is not HealthData")
				}
				root, depth = true, 1
				continue
			}
			var it Item
			var err error
			switch t.Name.Local {
			case "Record":
				var rec appleRecord
				if err := dec.DecodeElement(&rec, &t); err != nil {
					return appleXMLError(err, line)
				}
				it, err = appleRecordItem(rec, ref, seen)
			case "Workout":
				var w appleWorkout
				if err := dec.DecodeElement(&w, &t); err != nil {
					return appleXMLError(err, line)
				}
				it, err = appleWorkoutItem(w, ref)
			case "ActivitySummary":
				it, err = appleSummaryItem(t, ref)
				if err == nil {
					err = dec.Skip()
				}
			case "Me":
				it = appleMeItem(t, ref)
				err = dec.Skip()
			case "Correlation":
				// Its Records (blood pressure's two values) are read as
				// records of their own.
				depth++
				continue
			default:
				if err := dec.Skip(); err != nil {
					return appleXMLError(err, line)
				}
				continue
			}
			if err != nil {
				return appleXMLError(err, line)
			}
			n++
			if err := emit(it); err != nil {
				return err
			}
		case xml.EndElement:
			depth--
		}
	}
}

func appleXMLError(err error, line int) error {
	var ie *Error
	var se *xml.SyntaxError
	switch {
	case errors.As(err, &ie):
		return err
	case errors.Is(err, ErrLineTooLong):
		return appleErr(fmt.Sprintf("line %d", line), "line_too_long", "a line is longer than 1 MiB")
	case errors.As(err, &se) && strings.Contains(se.Msg, "unexpected EOF"), errors.Is(err, io.ErrUnexpectedEOF):
		return appleErr(fmt.Sprintf("line %d", line), "applehealth_truncated", "the file ends inside an element")
	case errors.As(err, &se):
		return appleErr(fmt.Sprintf("line %d", se.Line), "applehealth_syntax", "the XML is malformed")
	}
	return err
}

// appleTime turns "2016-04-18 08:25:32 -0700" into RFC 3339.
func appleTime(s, ref, attr string) (string, error) {
	t, err := time.Parse("2006-01-02 15:04:05 -0700", strings.TrimSpace(s))
	if err != nil {
		return "", appleErr(ref, "applehealth_bad_date", "%s is not a date like 2016-04-18 08:25:32 -0700", attr)
	}
	return t.Format(time.RFC3339), nil
}

func appleCode(code string) map[string]any {
	return map[string]any{"coding": []any{map[string]any{"system": healthKitSystem, "code": code}}}
}

// jsonNumber is JSON's number grammar (ParseFloat also takes NaN, Inf
// and hex, which are not numbers in a record).
var jsonNumber = regexp.MustCompile(`^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?$`)

func appleQuantity(v, unit string) (map[string]any, bool) {
	if !jsonNumber.MatchString(v) {
		return nil, false
	}
	q := map[string]any{"value": json.Number(v)}
	if unit != "" {
		q["unit"] = unit
	}
	return q, true
}

func appleExtensions(meta []appleMeta) []any {
	var out []any
	for _, m := range meta {
		out = append(out, map[string]any{"url": healthKitSystem + "/metadata#" + m.Key, "valueString": m.Value})
	}
	return out
}

func appleRecordItem(rec appleRecord, ref string, seen repeats) (Item, error) {
	if rec.Type == "" {
		return Item{}, appleErr(ref, "applehealth_no_type", "a Record without type")
	}
	start, err := appleTime(rec.StartDate, ref, "startDate")
	if err != nil {
		return Item{}, err
	}
	end, err := appleTime(rec.EndDate, ref, "endDate")
	if err != nil {
		return Item{}, err
	}
	d := map[string]any{"resourceType": "Observation", "status": "final", "code": appleCode(rec.Type)}
	if start == end {
		d["effectiveDateTime"] = start
	} else {
		d["effectivePeriod"] = map[string]any{"start": start, "end": end}
	}
	if rec.CreationDate != "" {
		if d["issued"], err = appleTime(rec.CreationDate, ref, "creationDate"); err != nil {
			return Item{}, err
		}
	}
	if q, ok := appleQuantity(rec.Value, rec.Unit); ok {
		d["valueQuantity"] = q
	} else if rec.Value != "" {
		d["valueString"] = rec.Value
	}
	if rec.SourceName != "" {
		d["device"] = map[string]any{"display": rec.SourceName}
	}
	ext := appleExtensions(rec.Meta)
	if rec.Device != "" {
		ext = append(ext, map[string]any{"url": healthKitSystem + "/hkdevice", "valueString": rec.Device})
	}
	if rec.SourceVersion != "" {
		ext = append(ext, map[string]any{"url": healthKitSystem + "/hksource#version", "valueString": rec.SourceVersion})
	}
	if len(ext) > 0 {
		d["extension"] = ext
	}
	// HealthKit samples have no id in the export: type, times, source and
	// value identify one, numbered when they repeat.
	c := contentKey(rec.Type, start, end, rec.SourceName, rec.Value, rec.Unit)
	return Item{Collection: "health", Key: fmt.Sprintf("sample:%s:%d", c, seen.next(c)), Ref: ref, Data: d}, nil
}

func appleWorkoutItem(w appleWorkout, ref string) (Item, error) {
	start, err := appleTime(w.StartDate, ref, "startDate")
	if err != nil {
		return Item{}, err
	}
	end, err := appleTime(w.EndDate, ref, "endDate")
	if err != nil {
		return Item{}, err
	}
	if w.Activity == "" {
		return Item{}, appleErr(ref, "applehealth_no_type", "a Workout without workoutActivityType")
	}
	d := map[string]any{"resourceType": "Observation", "status": "final", "code": appleCode(w.Activity),
		"effectivePeriod": map[string]any{"start": start, "end": end}}
	var comps []any
	for _, c := range []struct{ name, v, unit string }{{"duration", w.Duration, w.DurationUnit}, {"totalDistance", w.Distance, w.DistanceUnit}, {"totalEnergyBurned", w.Energy, w.EnergyUnit}} {
		if q, ok := appleQuantity(c.v, c.unit); ok {
			comps = append(comps, map[string]any{"code": appleCode(c.name), "valueQuantity": q})
		}
	}
	if len(comps) > 0 {
		d["component"] = comps
	}
	if w.SourceName != "" {
		d["device"] = map[string]any{"display": w.SourceName}
	}
	ext := appleExtensions(w.Meta)
	points := 0
	for _, r := range w.Routes {
		points += len(r.Locations)
	}
	if points > 0 {
		// The points themselves are not kept in the record (a long run
		// has thousands); only how many there were.
		ext = append(ext, map[string]any{"url": healthKitSystem + "/workoutroute#points", "valueInteger": points})
	}
	if len(ext) > 0 {
		d["extension"] = ext
	}
	return Item{Collection: "health", Key: "workout:" + contentKey(w.Activity, start, end, w.SourceName), Ref: ref, Data: d}, nil
}

func appleSummaryItem(t xml.StartElement, ref string) (Item, error) {
	attrs := map[string]string{}
	for _, a := range t.Attr {
		attrs[a.Name.Local] = a.Value
	}
	day := attrs["dateComponents"]
	if _, err := time.Parse("2006-01-02", day); err != nil {
		return Item{}, appleErr(ref, "applehealth_bad_date", "dateComponents is not a date like 2016-11-15")
	}
	d := map[string]any{"resourceType": "Observation", "status": "final", "code": appleCode("ActivitySummary"), "effectiveDateTime": day}
	var comps []any
	for _, k := range []string{"activeEnergyBurned", "activeEnergyBurnedGoal", "appleMoveTime", "appleMoveTimeGoal", "appleExerciseTime", "appleExerciseTimeGoal", "appleStandHours", "appleStandHoursGoal"} {
		unit := attrs[strings.TrimSuffix(k, "Goal")+"Unit"]
		if q, ok := appleQuantity(attrs[k], unit); ok {
			comps = append(comps, map[string]any{"code": appleCode(k), "valueQuantity": q})
		}
	}
	if len(comps) > 0 {
		d["component"] = comps
	}
	return Item{Collection: "health", Key: "activity:" + day, Ref: ref, Data: d}, nil
}

func appleMeItem(t xml.StartElement, ref string) Item {
	d := map[string]any{"resourceType": "Patient"}
	var ext []any
	for _, a := range t.Attr {
		switch a.Name.Local {
		case "HKCharacteristicTypeIdentifierDateOfBirth":
			if a.Value != "" {
				d["birthDate"] = a.Value
			}
		case "HKCharacteristicTypeIdentifierBiologicalSex":
			switch a.Value {
			case "HKBiologicalSexMale":
				d["gender"] = "male"
			case "HKBiologicalSexFemale":
				d["gender"] = "female"
			case "HKBiologicalSexOther":
				d["gender"] = "other"
			}
		default:
			if !strings.HasSuffix(a.Value, "NotSet") {
				ext = append(ext, map[string]any{"url": healthKitSystem + "#" + a.Name.Local, "valueString": a.Value})
			}
		}
	}
	if len(ext) > 0 {
		d["extension"] = ext
	}
	return Item{Collection: "health", Key: "me", Ref: ref, Data: d}
}
