package policy

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Derived claims: an organization may ask for a fact derived from records
// ("is over 18") instead of the records themselves ("birth_date"). Each
// derivation names the collection and the fields it reads, and is a pure
// function of those records and the time. The vault computes the answer
// and signs it; the underlying values never leave the vault.
//
// A claim is written NAME or NAME:PARAMETER, e.g. "age_over:18",
// "resident_of:DE", "member_of:ADFC Cycling Club". docs/claims.md lists
// them; adding one is adding an entry to Derivations.

// Derivation is one kind of derived claim.
type Derivation struct {
	Name        string
	Collection  string   // the only collection it reads
	Fields      []string // the only fields it reads
	Param       string   // what the parameter is ("" if none)
	Description string   // for people, with %s for the parameter
	// Check validates the parameter.
	Check func(param string) error
	// Derive computes the answer from the records of Collection (already
	// cut down to Fields).
	Derive func(records []map[string]json.RawMessage, param string, now time.Time) (any, error)
}

// Derivations is the registry of derived claims, by name.
var Derivations = map[string]Derivation{
	"age_over": {
		Name: "age_over", Collection: "profile", Fields: []string{"birth_date"}, Param: "an age in years",
		Description: "is at least %s years old",
		Check:       checkAge,
		Derive:      deriveAgeOver,
	},
	"resident_of": {
		Name: "resident_of", Collection: "profile", Fields: []string{"address"}, Param: "an ISO 3166-1 alpha-2 country code",
		Description: "lives in the country %s",
		Check:       checkCountry,
		Derive:      deriveResidentOf,
	},
	"income_band": {
		Name: "income_band", Collection: "transactions", Fields: []string{"amount", "date", "category"},
		Description: "yearly income band (income transactions of the last 365 days)",
		Check:       noParam,
		Derive:      deriveIncomeBand,
	},
	"member_of": {
		Name: "member_of", Collection: "memberships", Fields: []string{"organization", "until"}, Param: "an organization name",
		Description: "is a member of %s (and until when)",
		Check:       checkName,
		Derive:      deriveMemberOf,
	},
	"has_contract_with": {
		Name: "has_contract_with", Collection: "contracts", Fields: []string{"counterparty", "end"}, Param: "a counterparty name",
		Description: "has a current contract with %s",
		Check:       checkName,
		Derive:      deriveContractWith,
	},
}

var claimRE = regexp.MustCompile(`^([a-z][a-z0-9_]{0,40})(?::(.{1,100}))?$`)

// ParseClaim splits a claim into its derivation and parameter and checks
// both.
func ParseClaim(claim string) (Derivation, string, error) {
	m := claimRE.FindStringSubmatch(claim)
	if m == nil {
		return Derivation{}, "", fmt.Errorf("%s is not a claim name", quoteShort(claim))
	}
	d, ok := Derivations[m[1]]
	if !ok {
		return Derivation{}, "", fmt.Errorf("%s is not a known derived claim", quoteShort(m[1]))
	}
	if err := d.Check(m[2]); err != nil {
		return Derivation{}, "", fmt.Errorf("%s: %v", quoteShort(claim), err)
	}
	return d, m[2], nil
}

// Describe says in words what a claim reveals, e.g. "is at least 18 years
// old".
func Describe(claim string) string {
	d, p, err := ParseClaim(claim)
	if err != nil {
		return claim
	}
	if strings.Contains(d.Description, "%s") {
		return fmt.Sprintf(d.Description, p)
	}
	return d.Description
}

// Derive computes one claim from all the records of its collection. Only
// the fields the derivation declares are passed on.
func Derive(claim string, records []json.RawMessage, now time.Time) (any, error) {
	d, p, err := ParseClaim(claim)
	if err != nil {
		return nil, err
	}
	cut := make([]map[string]json.RawMessage, 0, len(records))
	for _, r := range records {
		proj, err := Project(AuthorizationDetail{Fields: d.Fields}, r)
		if err != nil {
			return nil, err
		}
		cut = append(cut, proj)
	}
	return d.Derive(cut, p, now)
}

// FormatAnswer says an answer in words for the owner ("yes", "no", ...).
func FormatAnswer(v any) string {
	switch x := v.(type) {
	case bool:
		if x {
			return "yes"
		}
		return "no"
	case string:
		return x
	case map[string]any:
		if m, ok := x["member"].(bool); ok {
			if !m {
				return "no"
			}
			if u, ok := x["until"].(string); ok && u != "" {
				return "yes, until " + u
			}
			return "yes"
		}
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func noParam(p string) error {
	if p != "" {
		return fmt.Errorf("takes no parameter")
	}
	return nil
}

func checkAge(p string) error {
	n, err := strconv.Atoi(p)
	if err != nil || n < 1 || n > 150 {
		return fmt.Errorf("the parameter is an age from 1 to 150")
	}
	return nil
}

var countryRE = regexp.MustCompile(`^[A-Z]{2}$`)

func checkCountry(p string) error {
	if !countryRE.MatchString(p) {
		return fmt.Errorf("the parameter is a two-letter country code such as DE")
	}
	return nil
}

func checkName(p string) error {
	if strings.TrimSpace(p) == "" || len(p) > 100 {
		return fmt.Errorf("the parameter is a name of 1 to 100 characters")
	}
	return nil
}

func str(r map[string]json.RawMessage, f string) (string, bool) {
	var s string
	if v, ok := r[f]; ok && json.Unmarshal(v, &s) == nil {
		return s, true
	}
	return "", false
}

func date(s string) (time.Time, bool) {
	t, err := time.Parse("2006-01-02", s)
	return t, err == nil
}

// errNoData means the records do not hold what the claim needs; the
// answer is then "unknown", never a guess.
var errNoData = fmt.Errorf("the records do not say")

func deriveAgeOver(rs []map[string]json.RawMessage, p string, now time.Time) (any, error) {
	age, _ := strconv.Atoi(p)
	for _, r := range rs {
		if s, ok := str(r, "birth_date"); ok {
			if b, ok := date(s); ok {
				return !now.Before(b.AddDate(age, 0, 0)), nil
			}
		}
	}
	return nil, errNoData
}

func deriveResidentOf(rs []map[string]json.RawMessage, p string, _ time.Time) (any, error) {
	for _, r := range rs {
		var addr struct {
			Country string `json:"country"`
		}
		if v, ok := r["address"]; ok && json.Unmarshal(v, &addr) == nil && addr.Country != "" {
			return strings.EqualFold(addr.Country, p), nil
		}
	}
	return nil, errNoData
}

// Income bands, in the currency of the transactions.
var incomeBands = []struct {
	below float64
	name  string
}{{20000, "under 20000"}, {40000, "20000-40000"}, {60000, "40000-60000"}, {100000, "60000-100000"}}

func deriveIncomeBand(rs []map[string]json.RawMessage, _ string, now time.Time) (any, error) {
	var sum float64
	seen := false
	for _, r := range rs {
		var amount float64
		if v, ok := r["amount"]; !ok || json.Unmarshal(v, &amount) != nil || amount <= 0 {
			continue
		}
		if c, ok := str(r, "category"); ok && c != "salary" && c != "income" {
			continue
		}
		if s, ok := str(r, "date"); ok {
			if d, ok := date(s); ok && now.Sub(d) <= 365*24*time.Hour && !d.After(now) {
				sum += amount
				seen = true
			}
		}
	}
	if !seen {
		return nil, errNoData
	}
	for _, b := range incomeBands {
		if sum < b.below {
			return b.name, nil
		}
	}
	return "100000 or more", nil
}

func deriveMemberOf(rs []map[string]json.RawMessage, p string, now time.Time) (any, error) {
	for _, r := range rs {
		org, _ := str(r, "organization")
		if !strings.EqualFold(strings.TrimSpace(org), strings.TrimSpace(p)) {
			continue
		}
		until, _ := str(r, "until")
		if u, ok := date(until); ok && u.Before(now.Truncate(24*time.Hour)) {
			continue
		}
		return map[string]any{"member": true, "until": until}, nil
	}
	return map[string]any{"member": false}, nil
}

func deriveContractWith(rs []map[string]json.RawMessage, p string, now time.Time) (any, error) {
	for _, r := range rs {
		cp, _ := str(r, "counterparty")
		if !strings.EqualFold(strings.TrimSpace(cp), strings.TrimSpace(p)) {
			continue
		}
		if end, ok := str(r, "end"); ok {
			if e, ok := date(end); ok && e.Before(now.Truncate(24*time.Hour)) {
				continue
			}
		}
		return true, nil
	}
	return false, nil
}

// checkClaims validates the claims of one authorization detail.
func checkClaims(at string, d AuthorizationDetail) []string {
	var r []string
	if len(d.Claims) > maxFieldsPerDetail {
		r = append(r, fmt.Sprintf("%s: at most %d claims", at, maxFieldsPerDetail))
	}
	seen := map[string]bool{}
	for _, c := range d.Claims {
		def, _, err := ParseClaim(c)
		if err != nil {
			r = append(r, fmt.Sprintf("%s: %v", at, err))
			continue
		}
		if def.Collection != d.Collection {
			r = append(r, fmt.Sprintf("%s: claim %s is derived from %s, not %s", at, quoteShort(c), def.Collection, d.Collection))
		}
		if seen[c] {
			r = append(r, fmt.Sprintf("%s: claim %s is named twice", at, quoteShort(c)))
		}
		seen[c] = true
	}
	return r
}

// ClaimsCheck is the rule for which claims a grant covers.
func ClaimsCovered(details []AuthorizationDetail) []string {
	var out []string
	for _, d := range details {
		out = append(out, d.Claims...)
	}
	slices.Sort(out)
	return out
}
