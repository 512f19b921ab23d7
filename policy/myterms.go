package policy

import (
	"fmt"
	"regexp"
)

// IEEE 7012-2025 ("MyTerms"): the individual is the first party and
// proffers terms; the organization, the second party, accepts one
// agreement from a roster kept by a neutral host (Customer Commons),
// proposes one alternative from it, or rejects. No normative wire format
// is published yet, so pdvault refers to roster agreements by id, URL and
// content hash — immutable, versioned references it never redefines — and
// keeps its own wire format (docs/terms.md, "IEEE 7012") pluggable.

// AgreementRef is one roster agreement the owner proffers.
type AgreementRef struct {
	ID      string `json:"id"`                // the roster's id, e.g. SD-BASE
	URL     string `json:"url"`               // where the roster publishes the text
	SHA256  string `json:"sha256"`            // hex SHA-256 of that text: the version agreed to
	Version string `json:"version,omitempty"` // the roster's version label, if it has one
}

// RosterIDs are the agreements on the Customer Commons roster at launch.
var RosterIDs = []string{"SD-BASE", "SD-BASE-DP", "PDC-AI", "PDC-GOOD", "PDC-INTENT"}

// MyTermsWireFormat names the message shapes pdvault uses until a
// normative IEEE 7012 wire format exists.
const MyTermsWireFormat = "pdvault-myterms/1"

const maxAgreements = 10

var (
	agreementIDRE = regexp.MustCompile(`^[A-Z][A-Z0-9-]{1,31}$`)
	sha256HexRE   = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

func checkAgreements(refs []AgreementRef) []string {
	var r []string
	if len(refs) > maxAgreements {
		return []string{fmt.Sprintf("agreements: at most %d", maxAgreements)}
	}
	seen := map[string]bool{}
	for i, a := range refs {
		at := fmt.Sprintf("agreements[%d]", i)
		if !agreementIDRE.MatchString(a.ID) {
			r = append(r, fmt.Sprintf("%s: id %s must be a roster id such as SD-BASE (capital letters, digits, -)", at, quoteShort(a.ID)))
		} else if seen[a.ID] {
			r = append(r, fmt.Sprintf("%s: %s is proffered twice", at, a.ID))
		}
		seen[a.ID] = true
		if !validURL(a.URL, true) {
			r = append(r, at+": url must be the https address where the roster publishes the agreement")
		}
		if !sha256HexRE.MatchString(a.SHA256) {
			r = append(r, at+": sha256 must be the hex SHA-256 (64 lower-case hex digits) of the agreement's text, which fixes its version")
		}
		if len(a.Version) > 40 {
			r = append(r, at+": version: at most 40 characters")
		}
	}
	return r
}
