package policy

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// DetailType is the RFC 9396 authorization_details type pdvault uses.
const DetailType = "pdvault_records"

// AuthorizationDetail is one entry of authorization_details (RFC 9396): read
// access to some fields of one collection.
type AuthorizationDetail struct {
	Type       string   `json:"type"`
	Collection string   `json:"collection"`
	Fields     []string `json:"fields,omitempty"`
	Claims     []string `json:"claims,omitempty"`  // derived claims (policy/claims.go) instead of fields
	Actions    []string `json:"actions,omitempty"` // only "read"; default read
	// Kinds narrows the detail to records whose "kind" field is one of
	// these (documents by kind: contract, payslip, ...); empty is every
	// record of the collection.
	Kinds []string `json:"kinds,omitempty"`
	// IDs narrows the detail to these records (a contract, one payslip).
	// They are the organization's ids (pairwise, docs/protocol.md §7):
	// only the owner sets them, when approving; a request cannot.
	IDs []string `json:"ids,omitempty"`
}

// maxKinds and maxIDs bound the kinds and records of one detail.
const (
	maxKinds = 20
	maxIDs   = 100
)

var kindRE = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,39}$`)

// ValidKind reports whether s is a well-formed kind: a lower-case word.
func ValidKind(s string) bool { return kindRE.MatchString(s) }

// Covers reports whether a record (its id as the organization knows it,
// and its JSON data) lies within the detail's ids and kinds.
func Covers(d AuthorizationDetail, orgID string, record json.RawMessage) bool {
	if len(d.IDs) > 0 && !slices.Contains(d.IDs, orgID) {
		return false
	}
	if len(d.Kinds) == 0 {
		return true
	}
	var r struct {
		Kind string `json:"kind"`
	}
	if json.Unmarshal(record, &r) != nil {
		return false
	}
	return slices.Contains(d.Kinds, r.Kind)
}

// Limits on a scope.
const (
	maxDetails         = 20
	maxFieldsPerDetail = 100
)

// checkDetails validates the shape of a scope and returns every problem.
func checkDetails(details []AuthorizationDetail) []string {
	var r []string
	if len(details) == 0 {
		return []string{"authorization_details: ask for at least one collection"}
	}
	if len(details) > maxDetails {
		return []string{fmt.Sprintf("authorization_details: at most %d entries", maxDetails)}
	}
	seen := map[string]bool{}
	for i, d := range details {
		at := fmt.Sprintf("authorization_details[%d]", i)
		if d.Type != DetailType {
			r = append(r, fmt.Sprintf("%s: type must be %q", at, DetailType))
		}
		if ValidateCollection(d.Collection) != nil {
			r = append(r, fmt.Sprintf("%s: %s is not a valid collection name", at, quoteShort(d.Collection)))
		} else if seen[d.Collection] {
			r = append(r, fmt.Sprintf("%s: collection %s is named twice", at, d.Collection))
		}
		seen[d.Collection] = true
		if (len(d.Fields) == 0 && len(d.Claims) == 0) || len(d.Fields) > maxFieldsPerDetail {
			r = append(r, fmt.Sprintf("%s: name between 1 and %d fields, or derived claims", at, maxFieldsPerDetail))
		}
		r = append(r, checkClaims(at, d)...)
		r = append(r, checkNames(at, "field", d.Fields, 0, func(f string) bool { return ValidateField(f) == nil }, "a valid field name")...)
		r = append(r, checkNames(at, "kind", d.Kinds, maxKinds, ValidKind, "a valid kind (a lower-case word)")...)
		r = append(r, checkNames(at, "record", d.IDs, maxIDs, ValidateRecordID, "a record id")...)
		for _, a := range d.Actions {
			if a != "read" {
				r = append(r, fmt.Sprintf("%s: the only action is \"read\"", at))
				break
			}
		}
	}
	return r
}

// checkNames reports too many names (max > 0), malformed ones and repeats.
func checkNames(at, noun string, names []string, max int, valid func(string) bool, what string) []string {
	var r []string
	if max > 0 && len(names) > max {
		r = append(r, fmt.Sprintf("%s: at most %d %ss", at, max, noun))
	}
	seen := map[string]bool{}
	for _, n := range names {
		if !valid(n) {
			r = append(r, fmt.Sprintf("%s: %s is not %s", at, quoteShort(n), what))
		} else if seen[n] {
			r = append(r, fmt.Sprintf("%s: %s %s is named twice", at, noun, n))
		}
		seen[n] = true
	}
	return r
}

// Detail returns the entry for collection, if the scope has one.
func Detail(details []AuthorizationDetail, collection string) (AuthorizationDetail, bool) {
	for _, d := range details {
		if d.Collection == collection {
			return d, true
		}
	}
	return AuthorizationDetail{}, false
}

var ErrNotNarrower = E(KindInvalid, "invalid_scope", "the approved scope must be within what was asked")

// Narrow checks that approved lies within requested: only collections that
// were asked for, only fields that were asked for. The owner may give less,
// never more.
func Narrow(requested, approved []AuthorizationDetail) error {
	if r := checkDetails(approved); len(r) > 0 {
		return ErrNotNarrower.WithReasons(r)
	}
	var r []string
	for _, a := range approved {
		q, ok := Detail(requested, a.Collection)
		if !ok {
			r = append(r, fmt.Sprintf("collection %s was not asked for", a.Collection))
			continue
		}
		for _, f := range a.Fields {
			if !slices.Contains(q.Fields, f) {
				r = append(r, fmt.Sprintf("field %s.%s was not asked for", a.Collection, f))
			}
		}
		if len(q.Kinds) > 0 && len(a.Kinds) == 0 {
			r = append(r, fmt.Sprintf("collection %s was asked for only of kinds %s", a.Collection, strings.Join(q.Kinds, ", ")))
		}
		for _, id := range a.IDs {
			if len(q.IDs) > 0 && !slices.Contains(q.IDs, id) {
				r = append(r, fmt.Sprintf("record %s of %s was not asked for", id, a.Collection))
			}
		}
		if len(q.IDs) > 0 && len(a.IDs) == 0 {
			r = append(r, fmt.Sprintf("collection %s was asked for only for some records", a.Collection))
		}
		for _, k := range a.Kinds {
			if len(q.Kinds) > 0 && !slices.Contains(q.Kinds, k) {
				r = append(r, fmt.Sprintf("kind %s of %s was not asked for", k, a.Collection))
			}
		}
		for _, c := range a.Claims {
			if !slices.Contains(q.Claims, c) {
				r = append(r, fmt.Sprintf("claim %s (%s) was not asked for", c, a.Collection))
			}
		}
	}
	if len(r) > 0 {
		return ErrNotNarrower.WithReasons(r)
	}
	return nil
}

// Project returns only the granted fields of a record. A field the grant
// names but the record lacks is simply absent.
func Project(d AuthorizationDetail, record json.RawMessage) (map[string]json.RawMessage, error) {
	var all map[string]json.RawMessage
	if err := json.Unmarshal(record, &all); err != nil {
		return nil, err
	}
	out := make(map[string]json.RawMessage, len(d.Fields))
	for _, f := range d.Fields {
		if v, ok := all[f]; ok {
			out[f] = v
		}
	}
	return out, nil
}
