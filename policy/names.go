package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
)

// Collection names travel in URLs, in grants and, unencrypted, in the
// database index, so they are kept short and boring.
var collectionRE = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,62}$`)

// Record ids are minted by the vault: 26 characters of lowercase base32.
var recordIDRE = regexp.MustCompile(`^[a-z2-7]{25}[aeimquy4]$`) // canonical: the last character's two spare bits are zero

// Fields are top-level keys of a record that a grant can name.
var fieldRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]{0,63}$`)

// ValidateCollection reports whether name is an acceptable collection name.
// (A loop, not the regexp, on the hot path; TestNameValidators checks they
// agree.)
func ValidateCollection(name string) error {
	if !validCollection(name) {
		return E(KindInvalid, "invalid_collection", "collection names are 1-63 characters: a lowercase letter, then lowercase letters, digits, '_' or '-'")
	}
	return nil
}

// ValidateRecordID reports whether id has the shape of a vault record id.
// Callers that look records up treat a malformed id as not found, so that
// probing cannot tell shapes apart; this is for places that must reject.
func ValidateRecordID(id string) bool {
	if len(id) != 26 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; !(c >= 'a' && c <= 'z' || c >= '2' && c <= '7') {
			return false
		}
	}
	// 26 characters carry 130 bits for 128: the last character's two low
	// bits must be zero, or one id would have four spellings.
	last := id[25]
	var v byte
	if last >= 'a' {
		v = last - 'a'
	} else {
		v = last - '2' + 26
	}
	if v&3 != 0 {
		return false
	}
	return true
}

func validCollection(name string) bool {
	if len(name) == 0 || len(name) > 63 || name[0] < 'a' || name[0] > 'z' {
		return false
	}
	for i := 1; i < len(name); i++ {
		if c := name[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// ValidateField reports whether name is an acceptable field name.
func ValidateField(name string) error {
	if !fieldRE.MatchString(name) {
		return E(KindInvalid, "invalid_field", "field names are 1-64 characters: a letter or '_', then letters, digits, '_', '.' or '-'")
	}
	return nil
}

// MaxRecordFields bounds how many top-level fields a record may have.
const MaxRecordFields = 1000

// NormalizeRecord checks that data is a JSON object whose keys are field
// names, and returns it compacted. Records are objects so that grants can
// name the fields an organization may see. The result has its keys sorted.
func NormalizeRecord(data []byte) ([]byte, error) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return nil, E(KindInvalid, "invalid_record", "record body is empty; send a JSON object")
	}
	if data[0] != '{' {
		var x any
		if err := json.Unmarshal(data, &x); err != nil {
			return nil, BadJSON(data, err)
		}
		return nil, E(KindInvalid, "invalid_record", "a record must be a JSON object")
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil {
		return nil, BadJSON(data, err)
	}
	if len(fields) > MaxRecordFields {
		return nil, E(KindInvalid, "invalid_record", "a record may have at most 1000 fields")
	}
	for k := range fields {
		if err := ValidateField(k); err != nil {
			return nil, E(KindInvalid, "invalid_record", "field name "+quoteShort(k)+" is not allowed: field names are 1-64 characters: a letter or '_', then letters, digits, '_', '.' or '-'")
		}
	}
	// Re-encoding from the map sorts the keys and drops duplicate keys
	// (the last wins, as when decoding), so every reader of the stored
	// record sees the same fields.
	out, err := json.Marshal(fields)
	if err != nil {
		return nil, E(KindInvalid, "invalid_json", "request body is not valid JSON")
	}
	return out, nil
}

// quoteShort quotes s for an error message, cut so that a hostile key
// cannot make the message huge.
func quoteShort(s string) string {
	if len(s) > 40 {
		s = s[:40] + "..."
	}
	b, _ := json.Marshal(s)
	return string(b)
}

// BadJSON is the error for a body that is not JSON, saying where and why
// it stops being JSON (line and column of data), so that the sender can
// find the mistake.
func BadJSON(data []byte, err error) *Error {
	const msg = "request body is not valid JSON"
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se) && strings.Contains(se.Error(), "unexpected end"):
		return E(KindInvalid, "invalid_json", msg+": it ends before the JSON value does")
	case errors.As(err, &se):
		line, col := lineCol(data, se.Offset)
		return E(KindInvalid, "invalid_json", fmt.Sprintf("%s: line %d, column %d: %s", msg, line, col, strings.TrimPrefix(se.Error(), "invalid character ")))
	case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
		return E(KindInvalid, "invalid_json", msg+": it ends before the JSON value does")
	case errors.As(err, &te):
		where := te.Field
		if where == "" {
			where = "the body"
		}
		return E(KindInvalid, "invalid_json", fmt.Sprintf("%s: %s must be %s, not %s", "request body has the wrong type", quoteShort(where), jsonKind(te.Type.Kind().String()), te.Value))
	}
	return E(KindInvalid, "invalid_json", msg)
}

func jsonKind(k string) string {
	switch k {
	case "string":
		return "a string"
	case "bool":
		return "true or false"
	case "slice", "array":
		return "an array"
	case "map", "struct":
		return "an object"
	}
	return "a number"
}

// lineCol turns a byte offset (the end of the bad token) into a line and
// column, counted from 1.
func lineCol(data []byte, off int64) (int, int) {
	if off > int64(len(data)) {
		off = int64(len(data))
	}
	before := data[:max(off-1, 0)]
	line := bytes.Count(before, []byte("\n")) + 1
	col := len(before) - bytes.LastIndexByte(before, '\n')
	return line, col
}
