package importers

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// The form importer: memberships and contracts written down by the owner
// (or exported from a spreadsheet) in the vocabulary's own field names, as
// JSON ({"memberships": [...], "contracts": [...]}) or as CSV with one
// header row. Nobody exports these in a standard format, so the form is
// the vocabulary itself, checked field by field.
var formFormat = Format{
	Name:        "form",
	Version:     "1",
	Description: "memberships and contracts as JSON ({\"memberships\": [...], \"contracts\": [...]}) or CSV in vocabulary field names",
	Collections: []string{"memberships", "contracts"},
	Extensions:  []string{".json", ".csv"},
	Detect:      formDetect,
	Parse:       parseForm,
}

func formErr(ref, code, format string, args ...any) error {
	return &Error{Format: "form", Ref: ref, Code: code, Msg: fmt.Sprintf(format, args...)}
}

// formField is how one vocabulary field is written in a form.
type formField int

const (
	fText formField = iota
	fDate
	fDecimal
	fNumber
	fCurrency
	fDuration
	fIDs
	fURL
)

// formFields are the fields of each collection (docs/vocabulary.md) and
// the one each item must have.
var formFields = map[string]struct {
	required string
	fields   map[string]formField
}{
	"memberships": {"programName", map[string]formField{
		"programName": fText, "hostingOrganization": fText, "membershipNumber": fText, "memberSince": fDate,
		"validUntil": fDate, "membershipPointsEarned": fNumber, "url": fURL, "note": fText}},
	"contracts": {"title", map[string]formField{
		"title": fText, "kind": fText, "counterparty": fText, "contractNumber": fText, "startDate": fDate, "endDate": fDate,
		"noticePeriod": fDuration, "billingPeriod": fDuration, "price": fDecimal, "currency": fCurrency, "documents": fIDs, "note": fText}},
}

// maxFormText bounds a text value (a note may be long; a record stays
// well under 1 MiB).
const maxFormText = 16 << 10

var (
	isoDuration = regexp.MustCompile(`^P(?:\d+Y)?(?:\d+M)?(?:\d+W)?(?:\d+D)?(?:T(?:\d+H)?(?:\d+M)?(?:\d+S)?)?$`)
	currencyRe  = regexp.MustCompile(`^[A-Z]{3}$`)
	recordIDRe  = regexp.MustCompile(`^[a-z2-7]{26}$`)
)

func formDetect(head []byte) bool {
	s := textHead(head)
	if strings.HasPrefix(s, "{") {
		return !strings.Contains(s, `"resourceType"`) && (strings.Contains(s, `"memberships"`) || strings.Contains(s, `"contracts"`))
	}
	first, _, _ := strings.Cut(s, "\n")
	_, ok := formCSVCollection(splitHeader(strings.TrimRight(first, "\r")))
	return ok
}

// formCSVCollection tells from a CSV header which collection its rows are.
func formCSVCollection(cols []string) (string, bool) {
	switch {
	case slices.Contains(cols, "programName"):
		return "memberships", true
	case slices.Contains(cols, "title") && slices.ContainsFunc(cols, func(c string) bool {
		return c == "contractNumber" || c == "counterparty" || c == "startDate" || c == "noticePeriod" || c == "billingPeriod"
	}):
		return "contracts", true
	}
	return "", false
}

func parseForm(r io.Reader, emit func(Item) error) error {
	br := newLineReader(r)
	head, _ := br.Peek(HeadSize)
	if strings.HasPrefix(textHead(head), "{") {
		return parseFormJSON(br, emit)
	}
	first, _, _ := strings.Cut(textHead(head), "\n")
	return parseFormCSV(br, sniffDelimiter(first), emit)
}

func parseFormJSON(r io.Reader, emit func(Item) error) error {
	dec := json.NewDecoder(r)
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return formJSONErr(err, "", "the form is not a JSON object")
	}
	n := 0
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return formJSONErr(err, "", "")
		}
		coll, _ := tok.(string)
		if _, ok := formFields[coll]; !ok {
			return formErr("", "form_unknown_collection", "%q is not memberships or contracts", clip(coll))
		}
		if tok, err := dec.Token(); err != nil || tok != json.Delim('[') {
			return formJSONErr(err, coll, "%s must be an array of objects", coll)
		}
		for i := 1; dec.More(); i++ {
			ref := fmt.Sprintf("%s[%d]", coll, i)
			var obj map[string]any
			if err := dec.Decode(&obj); err != nil {
				return formJSONErr(err, ref, "each entry must be an object")
			}
			if err := emitForm(emit, coll, ref, obj, &n); err != nil {
				return err
			}
		}
		if _, err := dec.Token(); err != nil { // ]
			return formJSONErr(err, coll, "")
		}
	}
	if _, err := dec.Token(); err != nil { // }
		return formJSONErr(err, "", "")
	}
	if _, err := dec.Token(); err != io.EOF {
		return formErr("", "form_syntax", "more after the form's closing brace")
	}
	if n == 0 {
		return formErr("", "form_empty", "the form has no memberships or contracts")
	}
	return nil
}

// formJSONErr names a JSON failure; err nil is a value of the wrong kind
// where format says what was expected.
func formJSONErr(err error, ref, format string, args ...any) error {
	var ie *Error
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case err == nil:
		return formErr(ref, "form_shape", format, args...)
	case errors.As(err, &ie):
		return err
	case errors.Is(err, ErrLineTooLong):
		return formErr(ref, "line_too_long", "a line is longer than 1 MiB")
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return formErr(ref, "form_truncated", "the form ends too soon")
	case errors.As(err, &se):
		return formErr(ref, "form_syntax", "the JSON is malformed at byte %d", se.Offset)
	case errors.As(err, &te):
		return formErr(ref, "form_shape", "%s", format)
	}
	return err
}

func parseFormCSV(r io.Reader, delim rune, emit func(Item) error) error {
	cr := csv.NewReader(r)
	cr.ReuseRecord, cr.Comma = true, delim
	header, err := cr.Read()
	if err != nil {
		return formCSVErr(err, "line 1")
	}
	header = slices.Clone(header)
	if len(header) > 0 {
		header[0] = strings.TrimPrefix(header[0], "\ufeff")
	}
	for i := range header {
		header[i] = strings.TrimSpace(header[i])
	}
	coll, ok := formCSVCollection(header)
	if !ok {
		return formErr("line 1", "form_no_collection", "the header names neither programName (memberships) nor title with contract fields (contracts)")
	}
	n := 0
	for {
		row, err := cr.Read()
		if err == io.EOF {
			break
		}
		line, _ := cr.FieldPos(0)
		ref := fmt.Sprintf("line %d", line)
		if err != nil {
			return formCSVErr(err, ref)
		}
		obj := map[string]any{}
		for i, v := range row {
			if v = strings.TrimSpace(v); v == "" {
				continue
			}
			switch formFields[coll].fields[header[i]] {
			case fNumber:
				obj[header[i]] = json.Number(v)
			case fIDs:
				var ids []any
				for _, id := range strings.Fields(v) {
					ids = append(ids, id)
				}
				obj[header[i]] = ids
			default:
				obj[header[i]] = v
			}
		}
		if err := emitForm(emit, coll, ref, obj, &n); err != nil {
			return err
		}
	}
	if n == 0 {
		return formErr("", "form_empty", "the form has no rows under its header")
	}
	return nil
}

func formCSVErr(err error, ref string) error {
	var pe *csv.ParseError
	switch {
	case errors.Is(err, ErrLineTooLong):
		return formErr(ref, "line_too_long", "a line is longer than 1 MiB")
	case errors.Is(err, io.EOF):
		return formErr("", "form_empty", "the file is empty")
	case errors.As(err, &pe) && errors.Is(pe.Err, csv.ErrFieldCount):
		return formErr(fmt.Sprintf("line %d", pe.Line), "form_columns", "the row has a different number of columns than the header")
	case errors.As(err, &pe):
		return formErr(fmt.Sprintf("line %d", pe.Line), "form_csv_syntax", "the CSV is malformed (%s)", pe.Err)
	}
	return err
}

// emitForm checks one entry, emits it and counts it.
func emitForm(emit func(Item) error, coll, ref string, obj map[string]any, n *int) error {
	it, err := formItem(coll, ref, obj)
	if err != nil {
		return err
	}
	*n++
	return emit(it)
}

// formItem checks one entry against its collection's fields and makes
// the item; its key is what identifies the membership or contract across
// versions of the form (organization, program or title, number), so an
// edited form adds only new entries.
func formItem(coll, ref string, obj map[string]any) (Item, error) {
	spec := formFields[coll]
	data := map[string]any{}
	for k, v := range obj {
		kind, ok := spec.fields[k]
		if !ok {
			names := make([]string, 0, len(spec.fields))
			for n := range spec.fields {
				names = append(names, n)
			}
			slices.Sort(names)
			return Item{}, formErr(ref, "form_unknown_field", "%q is not a field of %s (%s)", clip(k), coll, strings.Join(names, ", "))
		}
		val, err := formValue(kind, v)
		if err != "" {
			return Item{}, formErr(ref, "form_bad_value", "%s: %s", k, err)
		}
		data[k] = val
	}
	if s, _ := data[spec.required].(string); s == "" {
		return Item{}, formErr(ref, "form_missing_field", "%s needs %s", coll, spec.required)
	}
	var key string
	if coll == "memberships" {
		key = contentKey(data["hostingOrganization"], data["programName"], data["membershipNumber"])
	} else {
		key = contentKey(data["counterparty"], data["title"], data["contractNumber"])
	}
	return Item{Collection: coll, Key: key, Ref: ref, Data: data}, nil
}

// formValue checks one value; the second result says what is wrong.
func formValue(kind formField, v any) (any, string) {
	if kind == fNumber {
		n, ok := v.(json.Number)
		if !ok || !jsonNumber.MatchString(string(n)) {
			return nil, "a number"
		}
		return n, ""
	}
	if kind == fIDs {
		arr, ok := v.([]any)
		if !ok || len(arr) > 100 {
			return nil, "a list of at most 100 document ids"
		}
		for _, x := range arr {
			if s, ok := x.(string); !ok || !recordIDRe.MatchString(s) {
				return nil, "a list of document ids (26 characters a-z, 2-7)"
			}
		}
		return arr, ""
	}
	s, ok := v.(string)
	if !ok {
		return nil, "text"
	}
	s = strings.TrimSpace(s)
	if len(s) > maxFormText || !utf8.ValidString(s) {
		return nil, "at most 16 KiB of UTF-8 text"
	}
	switch kind {
	case fDate:
		if _, err := time.Parse(time.DateOnly, s); err != nil {
			return nil, "a date YYYY-MM-DD"
		}
	case fDecimal:
		d, ok := canonDecimal(s)
		if !ok {
			return nil, "a decimal number such as 12.50"
		}
		s = d
	case fCurrency:
		if !currencyRe.MatchString(s) {
			return nil, "an ISO 4217 code such as EUR"
		}
	case fDuration:
		if !isoDuration.MatchString(s) || s == "P" || strings.HasSuffix(s, "T") {
			return nil, "an ISO 8601 duration such as P3M or P1Y"
		}
	case fURL:
		if !strings.HasPrefix(s, "https://") && !strings.HasPrefix(s, "http://") {
			return nil, "an http(s) URL"
		}
	}
	return s, ""
}
