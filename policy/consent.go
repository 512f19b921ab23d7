package policy

import (
	"fmt"
	"slices"
	"time"
)

// Consent records and receipts (docs/protocol.md, "Consent receipts"). A
// grant's consent is kept as one record — who consented to whom, for
// what, for how long, and what has happened since — and shown in two
// standard shapes: ISO/IEC TS 27560:2023 as profiled by W3C DPV
// (dpv-27560, JSON-LD) and the Kantara Consent Receipt v1.1. Neither shape
// is stored: both are computed from the record, so they cannot disagree.

// TypConsentReceipt is the JOSE type of a signed consent receipt (a
// Kantara v1.1 receipt as the JWS payload, as that specification has it).
const TypConsentReceipt = "consent-receipt+jwt"

// KantaraVersion is the Kantara Consent Receipt version written.
const KantaraVersion = "KI-CR-v1.1.0"

// Consent events: the consent's history, append-only.
const (
	ConsentGiven     = "given"     // the owner approved; the grant was issued
	ConsentNarrowed  = "narrowed"  // she approved less than was asked
	ConsentWithdrawn = "withdrawn" // she revoked the grant
	ConsentReleased  = "released"  // the organization gave the grant up
	ConsentExpired   = "expired"   // its time ran out
	ConsentDeleted   = "deleted"   // the organization's deletion receipt arrived
)

// ConsentEvent is one step in a consent's history.
type ConsentEvent struct {
	Type string    `json:"type"`
	At   time.Time `json:"at"`
	Note string    `json:"note,omitempty"`
}

// ConsentRecord is the consent behind one grant.
type ConsentRecord struct {
	ID                string                `json:"id"` // the grant's id
	Vault             string                `json:"vault"`
	Subject           string                `json:"subject"` // the pairwise subject the organization knows
	ControllerName    string                `json:"controller_name"`
	ControllerURI     string                `json:"controller_uri"`
	ControllerID      string                `json:"controller_id"` // client_id, the key thumbprint
	Purpose           string                `json:"purpose"`
	PurposeText       string                `json:"purpose_text,omitempty"`
	Requested         []AuthorizationDetail `json:"requested"`
	Granted           []AuthorizationDetail `json:"granted"`
	Given             time.Time             `json:"given"`
	Expires           time.Time             `json:"expires"`
	Retention         int64                 `json:"retention"` // seconds kept after the end
	ThirdPartySharing bool                  `json:"third_party_sharing"`
	Jurisdiction      string                `json:"jurisdiction"`
	PolicyURL         string                `json:"policy_url"` // the terms accepted, by hash
	TermsHash         string                `json:"terms_hash"`
	Events            []ConsentEvent        `json:"events"`
}

// SortEvents puts the history in time order (the order of the same
// instant's events is kept).
func (c *ConsentRecord) SortEvents() {
	slices.SortStableFunc(c.Events, func(a, b ConsentEvent) int { return a.At.Compare(b.At) })
}

// State is the consent's state now, computed from its events: active,
// withdrawn, released or expired (a deletion does not change it).
func (c ConsentRecord) State() string {
	state := "active"
	for _, e := range c.Events {
		switch e.Type {
		case ConsentWithdrawn, ConsentReleased, ConsentExpired:
			if state == "active" {
				state = e.Type
			}
		}
	}
	return state
}

// sensitiveCollections hold special categories of data (GDPR art. 9).
var sensitiveCollections = map[string]string{"health": "health"}

// personalData lists what the consent covers, as collection.field (and
// collection:claim for derived claims), with the kinds and records it is
// narrowed to.
func personalData(details []AuthorizationDetail) []string {
	var out []string
	for _, d := range details {
		for _, f := range d.Fields {
			out = append(out, d.Collection+"."+f)
		}
		for _, cl := range d.Claims {
			out = append(out, d.Collection+":"+cl)
		}
	}
	return out
}

// Kantara is the record as a Kantara Consent Receipt v1.1.
func (c ConsentRecord) Kantara() map[string]any {
	sensitive, spi := false, []string{}
	for _, d := range c.Granted {
		if cat, ok := sensitiveCollections[d.Collection]; ok && !slices.Contains(spi, cat) {
			sensitive, spi = true, append(spi, cat)
		}
	}
	purpose := map[string]any{
		"purpose":              c.Purpose,
		"consentType":          "EXPLICIT",
		"purposeCategory":      []string{c.Purpose},
		"piiCategory":          personalData(c.Granted),
		"primaryPurpose":       true,
		"termination":          fmt.Sprintf("access ends %s; data kept at most %d s after that, then deleted with a signed receipt", c.Expires.UTC().Format(time.RFC3339), c.Retention),
		"thirdPartyDisclosure": c.ThirdPartySharing,
	}
	if c.ThirdPartySharing {
		purpose["thirdPartyName"] = "as named by " + c.ControllerName
	}
	return map[string]any{
		"version":          KantaraVersion,
		"jurisdiction":     c.Jurisdiction,
		"consentTimestamp": c.Given.Unix(),
		"collectionMethod": "a request signed by the organization (RFC 9101), approved by the person in her own vault",
		"consentReceiptID": c.ID,
		"language":         "en",
		"piiPrincipalId":   c.Subject,
		// The vault knows the organization by name, URL and key, not by a
		// postal address, mail or phone: those members are present, empty.
		"piiControllers": []map[string]any{{
			"piiController": c.ControllerName, "onBehalf": false, "contact": c.ControllerName,
			"address": map[string]any{}, "email": "", "phone": "", "piiControllerUrl": c.ControllerURI,
		}},
		"policyUrl": c.PolicyURL,
		"services":  []map[string]any{{"service": c.ControllerName, "purposes": []map[string]any{purpose}}},
		"sensitive": sensitive,
		"spiCat":    spi,
	}
}

// dpvStatus maps a state to DPV's consent status concepts.
var dpvStatus = map[string]string{
	"active": "dpv:ConsentGiven", ConsentWithdrawn: "dpv:ConsentWithdrawn",
	ConsentReleased: "dpv:ConsentRevoked", ConsentExpired: "dpv:ConsentExpired",
}

// DPV27560 is the record as an ISO/IEC TS 27560 consent record in the
// W3C DPV profile (dpv-27560#record), JSON-LD. The history, which 27560
// keeps as record updates, is in pdvault's own terms under "pdv:".
func (c ConsentRecord) DPV27560() map[string]any {
	var data []map[string]any
	for _, p := range personalData(c.Granted) {
		data = append(data, map[string]any{"@type": "dpv:PersonalData", "dct:identifier": p})
	}
	var events []map[string]any
	for _, e := range c.Events {
		ev := map[string]any{"@type": "pdv:ConsentEvent", "pdv:event": e.Type, "dct:date": e.At.UTC().Format(time.RFC3339)}
		if e.Note != "" {
			ev["dct:description"] = e.Note
		}
		events = append(events, ev)
	}
	return map[string]any{
		"@context": map[string]any{
			"dpv": "https://w3id.org/dpv#", "dct": "http://purl.org/dc/terms/", "schema": "https://schema.org/",
			"pdv": c.Vault + "/ns#",
		},
		"@id":                "urn:pdvault:consent:" + c.ID,
		"@type":              "dpv:ConsentRecord",
		"dct:identifier":     c.ID,
		"dct:conformsTo":     "https://w3id.org/dpv/schema/dpv-27560#record",
		"dct:created":        c.Given.UTC().Format(time.RFC3339),
		"dct:publisher":      c.Vault,
		"dpv:hasDataSubject": map[string]any{"@id": "urn:pdvault:subject:" + c.Subject, "@type": "dpv:DataSubject"},
		"dpv:hasDataController": map[string]any{"@id": c.ControllerURI, "@type": "dpv:DataController",
			"schema:name": c.ControllerName, "dct:identifier": c.ControllerID},
		"dpv:hasJurisdiction":  c.Jurisdiction,
		"dpv:hasLegalBasis":    "dpv:Consent",
		"dpv:hasConsentStatus": map[string]any{"@type": dpvStatus[c.State()], "dct:date": c.lastChange().UTC().Format(time.RFC3339)},
		"dpv:hasNotice":        map[string]any{"@id": c.PolicyURL, "dct:identifier": c.TermsHash},
		"dpv:hasProcess": map[string]any{
			"@type":               "dpv:Process",
			"dpv:hasPurpose":      map[string]any{"@type": "dpv:Purpose", "dct:identifier": c.Purpose, "dct:description": c.PurposeText},
			"dpv:hasPersonalData": data,
			"dpv:hasRecipient":    c.ControllerURI,
			"dpv:hasDuration":     map[string]any{"@type": "dpv:EndDate", "dct:date": c.Expires.UTC().Format(time.RFC3339)},
			"dpv:hasStorageCondition": map[string]any{"@type": "dpv:StorageDuration",
				"dpv:hasDuration": fmt.Sprintf("PT%dS", c.Retention)},
			"dpv:isThirdPartySharing": c.ThirdPartySharing,
		},
		"pdv:events": events,
	}
}

func (c ConsentRecord) lastChange() time.Time {
	t := c.Given
	for _, e := range c.Events {
		if e.Type != ConsentDeleted && e.At.After(t) {
			t = e.At
		}
	}
	return t
}

// SignConsentReceipt signs a Kantara receipt (typ consent-receipt+jwt).
func SignConsentReceipt(s Signer, receipt map[string]any) (string, error) {
	return sign(s, TypConsentReceipt, receipt)
}
