package policy

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Terms are the owner's terms of service: the conditions under which any
// organization may ask for data. docs/terms.md describes the format.
type Terms struct {
	Title             string                    `json:"title"`
	Purposes          []Purpose                 `json:"purposes"`
	MaxGrantDuration  Duration                  `json:"max_grant_duration"`
	MaxRetention      Duration                  `json:"max_retention"`
	ThirdPartySharing bool                      `json:"third_party_sharing"`
	Profiling         bool                      `json:"profiling"`
	Jurisdiction      string                    `json:"jurisdiction"`
	Text              string                    `json:"text"`
	Collections       map[string]CollectionRule `json:"collections,omitempty"`
	// Agreements are IEEE 7012 (MyTerms) agreements the owner proffers, by
	// reference (policy/myterms.go).
	Agreements []AgreementRef `json:"agreements,omitempty"`
}

// Purpose is one purpose the owner accepts, by id.
type Purpose struct {
	ID          string `json:"id"`
	Description string `json:"description"`
}

// CollectionRule narrows the terms for one collection.
type CollectionRule struct {
	// Purposes, if set, are the only purposes for which the collection may
	// be asked.
	Purposes []string `json:"purposes,omitempty"`
	// Forbidden collections are never shared.
	Forbidden bool `json:"forbidden,omitempty"`
}

// Duration is a length of time written as a number and a unit: "90d",
// "12h", "30m", "45s". It encodes in the largest unit that divides it.
type Duration time.Duration

const day = 24 * time.Hour

func (d Duration) String() string {
	t := time.Duration(d)
	switch {
	case t == 0:
		return "0s"
	case t%day == 0:
		return strconv.FormatInt(int64(t/day), 10) + "d"
	case t%time.Hour == 0:
		return strconv.FormatInt(int64(t/time.Hour), 10) + "h"
	case t%time.Minute == 0:
		return strconv.FormatInt(int64(t/time.Minute), 10) + "m"
	}
	return strconv.FormatInt(int64(t/time.Second), 10) + "s"
}

// ParseDuration reads "90d", "12h", "30m" or "45s".
func ParseDuration(s string) (Duration, error) {
	bad := fmt.Errorf("duration %q: write a whole number and a unit d, h, m or s, e.g. 90d", s)
	if len(s) < 2 || len(s) > 12 {
		return 0, bad
	}
	n, err := strconv.ParseInt(s[:len(s)-1], 10, 64)
	if err != nil || n < 0 {
		return 0, bad
	}
	unit := map[byte]time.Duration{'d': day, 'h': time.Hour, 'm': time.Minute, 's': time.Second}[s[len(s)-1]]
	if unit == 0 || n > int64(100*365*day/unit) {
		return 0, bad
	}
	return Duration(time.Duration(n) * unit), nil
}

func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("durations are strings such as \"90d\"")
	}
	v, err := ParseDuration(s)
	if err != nil {
		return err
	}
	*d = v
	return nil
}

var purposeRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)

// Limits on the terms document.
const (
	MaxTermsBytes     = 64 << 10
	maxPurposes       = 50
	maxTextLen        = 20000
	longestGrantLimit = 10 * 365 * day
)

var ErrInvalidTerms = E(KindInvalid, "invalid_terms", "the terms are not valid")

// ParseTerms reads a terms document strictly (unknown members are errors)
// and checks it, reporting every problem at once.
func ParseTerms(b []byte) (Terms, error) {
	var t Terms
	if len(b) > MaxTermsBytes {
		return t, ErrInvalidTerms.WithReasons([]string{"the terms document is larger than 64 KiB"})
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&t); err != nil {
		return t, ErrInvalidTerms.WithReasons([]string{"not a valid terms document: " + jsonProblem(err)})
	}
	if dec.More() {
		return t, ErrInvalidTerms.WithReasons([]string{"unexpected data after the terms document"})
	}
	if reasons := t.problems(); len(reasons) > 0 {
		return t, ErrInvalidTerms.WithReasons(reasons)
	}
	return t, nil
}

// jsonProblem describes a decoding error without echoing input back.
func jsonProblem(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("JSON syntax error at byte %d", se.Offset)
	case errors.As(err, &te):
		return fmt.Sprintf("member %q has the wrong type", te.Field)
	}
	msg := err.Error()
	if strings.HasPrefix(msg, "json: unknown field ") {
		return "unknown member " + strings.TrimPrefix(msg, "json: unknown field ")
	}
	if len(msg) > 120 {
		msg = msg[:120]
	}
	return msg
}

func (t Terms) problems() []string {
	var r []string
	if strings.TrimSpace(t.Title) == "" || len(t.Title) > 200 {
		r = append(r, "title: give a title of 1 to 200 characters")
	}
	if len(t.Purposes) == 0 || len(t.Purposes) > maxPurposes {
		r = append(r, "purposes: list between 1 and 50 purposes")
	}
	seen := map[string]bool{}
	for _, p := range t.Purposes {
		if !purposeRE.MatchString(p.ID) {
			r = append(r, fmt.Sprintf("purposes: id %s must be lowercase letters, digits and '_'", quoteShort(p.ID)))
		}
		if seen[p.ID] {
			r = append(r, fmt.Sprintf("purposes: id %s appears twice", quoteShort(p.ID)))
		}
		seen[p.ID] = true
		if strings.TrimSpace(p.Description) == "" || len(p.Description) > 500 {
			r = append(r, fmt.Sprintf("purposes: %s needs a description of 1 to 500 characters", quoteShort(p.ID)))
		}
	}
	if t.MaxGrantDuration <= 0 || time.Duration(t.MaxGrantDuration) > longestGrantLimit {
		r = append(r, "max_grant_duration: must be more than 0 and at most 3650d")
	}
	if t.MaxRetention < 0 || time.Duration(t.MaxRetention) > longestGrantLimit {
		r = append(r, "max_retention: must be between 0s and 3650d")
	}
	if len(t.Jurisdiction) > 200 {
		r = append(r, "jurisdiction: at most 200 characters")
	}
	if len(t.Text) > maxTextLen {
		r = append(r, "text: at most 20000 characters")
	}
	r = append(r, checkAgreements(t.Agreements)...)
	names := make([]string, 0, len(t.Collections))
	for c := range t.Collections {
		names = append(names, c)
	}
	slices.Sort(names)
	for _, c := range names {
		if ValidateCollection(c) != nil {
			r = append(r, fmt.Sprintf("collections: %s is not a valid collection name", quoteShort(c)))
		}
		for _, p := range t.Collections[c].Purposes {
			if !seen[p] {
				r = append(r, fmt.Sprintf("collections: %s names purpose %s, which is not in purposes", c, quoteShort(p)))
			}
		}
	}
	return r
}

// Hash is the terms' identity: SHA-256 over the RFC 8785 canonical JSON,
// base64url without padding. Organizations name it in every request.
func (t Terms) Hash() (string, []byte, error) {
	c, err := Canonical(t)
	if err != nil {
		return "", nil, err
	}
	sum := sha256.Sum256(c)
	return base64.RawURLEncoding.EncodeToString(sum[:]), c, nil
}

// HasPurpose reports whether id is an accepted purpose.
func (t Terms) HasPurpose(id string) bool {
	return slices.ContainsFunc(t.Purposes, func(p Purpose) bool { return p.ID == id })
}

// DefaultTerms are what a new vault starts with: conservative, and meant to
// be edited.
func DefaultTerms() Terms {
	return Terms{
		Title: "Terms for the use of my personal data",
		Purposes: []Purpose{
			{ID: "service_delivery", Description: "Provide a product or service I asked for."},
			{ID: "identity_verification", Description: "Check who I am or that I meet a requirement (for example my age)."},
			{ID: "contract_performance", Description: "Perform or manage a contract I have with you."},
			{ID: "medical_care", Description: "Treat me or manage my care."},
		},
		MaxGrantDuration:  Duration(90 * day),
		MaxRetention:      Duration(30 * day),
		ThirdPartySharing: false,
		Profiling:         false,
		Jurisdiction:      "EU; the GDPR applies",
		Text: "You may use the data I grant you only for the purpose you stated, only for as long as the grant lasts, " +
			"and you must delete it, and tell me so with a signed deletion receipt, within the retention period after " +
			"the grant ends. You may not sell it, share it with third parties, or use it to track or profile me.",
		Collections: map[string]CollectionRule{
			"health": {Purposes: []string{"medical_care"}},
		},
	}
}

// Render is the human-readable form of the terms that organizations and
// the owner read.
func (t Terms) Render() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n\n", t.Title)
	b.WriteString("You may ask for my data for these purposes only:\n")
	for _, p := range t.Purposes {
		fmt.Fprintf(&b, "  - %s: %s\n", p.ID, p.Description)
	}
	fmt.Fprintf(&b, "\nA grant lasts at most %s.\n", humanDuration(t.MaxGrantDuration))
	if t.MaxRetention == 0 {
		b.WriteString("You must delete the data as soon as the grant ends.\n")
	} else {
		fmt.Fprintf(&b, "You must delete the data at most %s after the grant ends, and send me a signed deletion receipt.\n", humanDuration(t.MaxRetention))
	}
	if t.ThirdPartySharing {
		b.WriteString("You may share the data with third parties for the stated purpose.\n")
	} else {
		b.WriteString("You may not share the data with third parties.\n")
	}
	if t.Profiling {
		b.WriteString("You may use the data for profiling.\n")
	} else {
		b.WriteString("You may not use the data to track or profile me beyond the stated purpose.\n")
	}
	names := make([]string, 0, len(t.Collections))
	for c := range t.Collections {
		names = append(names, c)
	}
	slices.Sort(names)
	for _, c := range names {
		rule := t.Collections[c]
		switch {
		case rule.Forbidden:
			fmt.Fprintf(&b, "My %s records are never shared.\n", c)
		case len(rule.Purposes) > 0:
			fmt.Fprintf(&b, "My %s records are shared only for: %s.\n", c, strings.Join(rule.Purposes, ", "))
		}
	}
	if t.Jurisdiction != "" {
		fmt.Fprintf(&b, "Jurisdiction: %s.\n", t.Jurisdiction)
	}
	if t.Text != "" {
		fmt.Fprintf(&b, "\n%s\n", t.Text)
	}
	return b.String()
}

func humanDuration(d Duration) string {
	s := d.String()
	n, unit := s[:len(s)-1], s[len(s)-1]
	word := map[byte]string{'d': "day", 'h': "hour", 'm': "minute", 's': "second"}[unit]
	if n != "1" {
		word += "s"
	}
	return n + " " + word
}
