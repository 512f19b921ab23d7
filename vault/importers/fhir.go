package importers

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// FHIR R4 Bundles (JSON) into health, one record per resource, keeping
// FHIR's own element names (the vocabulary for health is FHIR's). The
// Bundle is streamed entry by entry with encoding/json's tokenizer; only
// one resource is held at a time. The Go FHIR model libraries were not
// used: records keep every element as published (nothing is dropped by a
// model that does not know it), and the checks below are the R4
// cardinalities of the resource types this importer names.
var fhirFormat = Format{
	Name:        "fhir",
	Version:     "1",
	Description: "FHIR R4 Bundles in JSON, e.g. patient-portal and SMART exports (.json)",
	Collections: []string{"health"},
	Extensions:  []string{".json"},
	Detect: func(head []byte) bool {
		h := strings.TrimSpace(textHead(head))
		return strings.HasPrefix(h, "{") && strings.Contains(h, `"resourceType"`)
	},
	Parse: parseFHIR,
}

func fhirErr(ref, code, format string, args ...any) error {
	return &Error{Format: "fhir", Ref: ref, Code: code, Msg: fmt.Sprintf(format, args...)}
}

// fhirRequired are the elements R4 makes 1..1 in the resource types the
// issue names; "x" ends a choice type (medication[x]).
var fhirRequired = map[string][]string{
	"Observation":         {"status", "code"},
	"Condition":           {"subject"},
	"AllergyIntolerance":  {"patient"},
	"MedicationStatement": {"status", "medicationx", "subject"},
	"MedicationRequest":   {"status", "intent", "medicationx", "subject"},
	"Immunization":        {"status", "vaccineCode", "patient", "occurrencex"},
	"Procedure":           {"status", "subject"},
	"Encounter":           {"status", "class"},
	"DiagnosticReport":    {"status", "code"},
	"DocumentReference":   {"status", "content"},
}

func parseFHIR(r io.Reader, emit func(Item) error) error {
	dec := json.NewDecoder(&lineLimit{r: r})
	dec.UseNumber() // FHIR decimals keep their digits
	tok, err := dec.Token()
	if err == io.EOF {
		return fhirErr("", "fhir_empty", "the file is empty")
	}
	if err != nil {
		return fhirJSONError(err, dec, "")
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return fhirErr("", "fhir_not_bundle", "the file is not a JSON object")
	}
	var rtype string
	n := 0
	for dec.More() {
		kt, err := dec.Token()
		if err != nil {
			return fhirJSONError(err, dec, "")
		}
		key, _ := kt.(string)
		switch key {
		case "resourceType":
			if err := dec.Decode(&rtype); err != nil {
				return fhirJSONError(err, dec, "")
			}
			if rtype != "Bundle" {
				return fhirErr("", "fhir_not_bundle", "the resource is not a Bundle")
			}
		case "entry":
			if t, err := dec.Token(); err != nil {
				return fhirJSONError(err, dec, "")
			} else if d, ok := t.(json.Delim); !ok || d != '[' {
				return fhirErr("", "fhir_structure", "Bundle.entry is not an array")
			}
			for dec.More() {
				n++
				ref := fmt.Sprintf("entry %d", n)
				var e struct {
					FullURL  string                     `json:"fullUrl"`
					Resource map[string]json.RawMessage `json:"resource"`
				}
				if err := dec.Decode(&e); err != nil {
					return fhirJSONError(err, dec, ref)
				}
				it, err := fhirItem(e.FullURL, e.Resource, ref)
				if err != nil {
					return err
				}
				if err := emit(it); err != nil {
					return err
				}
			}
			if _, err := dec.Token(); err != nil {
				return fhirJSONError(err, dec, "")
			}
		default:
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return fhirJSONError(err, dec, "")
			}
		}
	}
	if _, err := dec.Token(); err != nil {
		return fhirJSONError(err, dec, "")
	}
	if rtype == "" {
		return fhirErr("", "fhir_not_bundle", "the object has no resourceType")
	}
	if _, err := dec.Token(); err != io.EOF {
		return fhirErr("", "fhir_structure", "data after the Bundle")
	}
	return nil
}

func fhirJSONError(err error, dec *json.Decoder, ref string) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.Is(err, ErrLineTooLong):
		return fhirErr(ref, "line_too_long", "a line is longer than 1 MiB")
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return fhirErr(ref, "fhir_truncated", "the file ends inside the Bundle")
	case errors.As(err, &se):
		return fhirErr(ref, "fhir_syntax", "malformed JSON at byte %d", se.Offset)
	case errors.As(err, &te):
		return fhirErr(ref, "fhir_structure", "an element has the wrong JSON type (%s)", clip(te.Field))
	}
	return err
}

func fhirItem(fullURL string, res map[string]json.RawMessage, ref string) (Item, error) {
	if res == nil {
		return Item{}, fhirErr(ref, "fhir_structure", "the entry has no resource")
	}
	var rtype, id string
	if json.Unmarshal(res["resourceType"], &rtype) != nil || rtype == "" {
		return Item{}, fhirErr(ref, "fhir_no_resource_type", "the resource has no resourceType")
	}
	ref += " (" + clip(rtype) + ")"
	json.Unmarshal(res["id"], &id)
	for _, el := range fhirRequired[rtype] {
		if strings.HasSuffix(el, "x") && !strings.HasSuffix(el, "Code") {
			prefix, found := strings.TrimSuffix(el, "x"), false
			for k := range res {
				found = found || (strings.HasPrefix(k, prefix) && len(k) > len(prefix) && k[len(prefix)] >= 'A' && k[len(prefix)] <= 'Z')
			}
			if !found {
				return Item{}, fhirErr(ref, "fhir_missing_element", "%s[x] is required", prefix)
			}
			continue
		}
		if v, ok := res[el]; !ok || bytes.Equal(bytes.TrimSpace(v), []byte("null")) {
			return Item{}, fhirErr(ref, "fhir_missing_element", "%s is required", el)
		}
	}
	d := make(map[string]any, len(res))
	for k, v := range res {
		d[k] = json.RawMessage(v)
	}
	key := ""
	switch {
	case id != "":
		key = "id:" + rtype + "/" + id
	case fullURL != "":
		key = "url:" + fullURL
	default:
		key = "content:" + contentKey(rtype, string(mustCompact(res)))
	}
	return Item{Collection: "health", Key: key, Ref: ref, Data: d}, nil
}

func mustCompact(res map[string]json.RawMessage) []byte {
	b, _ := json.Marshal(res)
	return b
}
