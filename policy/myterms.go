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

// MyTermsAnswer is the organization's answer to the proffered agreements,
// carried in its signed request (claim "myterms").
type MyTermsAnswer struct {
	Response  string        `json:"response"`            // accept, propose or reject
	Agreement *AgreementRef `json:"agreement,omitempty"` // accept: a proffered one; propose: the alternative
}

// MyTerms responses; NoAnswer is recorded when the owner proffers
// agreements and the request carries no answer.
const (
	MyTermsAccept   = "accept"
	MyTermsPropose  = "propose"
	MyTermsReject   = "reject"
	MyTermsNoAnswer = "no-answer"
)

// checkMyTermsAnswer checks the answer's shape.
func checkMyTermsAnswer(a *MyTermsAnswer) []string {
	if a == nil {
		return nil
	}
	switch a.Response {
	case MyTermsAccept, MyTermsPropose:
		if a.Agreement == nil {
			return []string{"myterms: " + a.Response + " names an agreement (id, url, sha256)"}
		}
		var r []string
		for _, p := range checkAgreements([]AgreementRef{*a.Agreement}) {
			r = append(r, "myterms."+p)
		}
		return r
	case MyTermsReject:
		if a.Agreement != nil {
			return []string{"myterms: a rejection names no agreement"}
		}
		return nil
	}
	return []string{"myterms: response is accept, propose or reject"}
}

// CheckMyTerms reports what is wrong with an answer to these terms: an
// acceptance must name a proffered agreement, by the same text (hash).
func CheckMyTerms(t Terms, a *MyTermsAnswer) []string {
	if a == nil || a.Response != MyTermsAccept || a.Agreement == nil {
		return nil
	}
	for _, p := range t.Agreements {
		if p.ID == a.Agreement.ID && p.SHA256 == a.Agreement.SHA256 {
			return nil
		}
	}
	return []string{fmt.Sprintf("myterms: %s with that sha256 is not among the agreements the owner proffers (/.well-known/myterms)", quoteShort(a.Agreement.ID))}
}

// TypAgreementRecord is the JOSE type of the vault's countersignature.
const TypAgreementRecord = "myterms-agreement+jwt"

// AgreementRecord is the bilateral record of an IEEE 7012 exchange: what
// the first party proffered (by the terms' hash), what the second party
// answered, bound to the second party's signed request by its hash. The
// organization's signature is on its request; the vault countersigns this.
type AgreementRecord struct {
	Issuer        string        `json:"iss"` // the first party's vault
	Audience      string        `json:"aud"` // the second party's client_id
	ID            string        `json:"jti"`
	IssuedAt      int64         `json:"iat"`
	RequestID     string        `json:"request_id"`
	RequestSHA256 string        `json:"request_sha256"` // hex SHA-256 of the organization's signed request
	SecondParty   string        `json:"second_party"`   // its client_uri
	TermsHash     string        `json:"terms_hash"`
	Proffered     []string      `json:"proffered"` // ids proffered at the time
	Response      string        `json:"response"`  // accept, propose, reject, no-answer
	Agreement     *AgreementRef `json:"agreement,omitempty"`
	WireFormat    string        `json:"wire_format"`
}

// SignAgreementRecord countersigns an agreement record for the vault.
func SignAgreementRecord(s Signer, r AgreementRecord) (string, error) {
	return sign(s, TypAgreementRecord, r)
}
