package importers

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/emersion/go-vcard"
)

// vCard 2.1, 3.0 (RFC 2426) and 4.0 (RFC 6350) into contacts, with
// schema.org Person property names (docs/vocabulary.md). Parsing is
// go-vcard's; mapping and checks are ours.
var vcardFormat = Format{
	Name:        "vcard",
	Version:     "1",
	Description: "vCard 3.0/4.0 contacts (.vcf), e.g. from Google, Apple or Outlook",
	Collections: []string{"contacts"},
	Extensions:  []string{".vcf", ".vcard"},
	Detect: func(head []byte) bool {
		return strings.HasPrefix(strings.ToUpper(textHead(head)), "BEGIN:VCARD")
	},
	Parse: parseVCard,
}

func vcardErr(ref, code, format string, args ...any) error {
	return &Error{Format: "vcard", Ref: ref, Code: code, Msg: fmt.Sprintf(format, args...)}
}

func parseVCard(r io.Reader, emit func(Item) error) error {
	dec := vcard.NewDecoder(newLineReader(r))
	for n := 1; ; n++ {
		ref := fmt.Sprintf("card %d", n)
		card, err := dec.Decode()
		switch {
		case err == io.EOF:
			if n == 1 {
				return vcardErr("", "vcard_empty", "the file holds no vCard")
			}
			return nil
		case errors.Is(err, ErrLineTooLong):
			return vcardErr(ref, "line_too_long", "a line is longer than 1 MiB")
		case err != nil && strings.Contains(err.Error(), "no END"):
			return vcardErr(ref, "vcard_unterminated", "BEGIN:VCARD without END:VCARD")
		case err != nil && strings.Contains(err.Error(), "BEGIN"):
			return vcardErr(ref, "vcard_no_begin", "expected BEGIN:VCARD")
		case err != nil:
			return err // a read error of the source, not of its content
		}
		item, err := vcardItem(card, ref)
		if err != nil {
			return err
		}
		if err := emit(item); err != nil {
			return err
		}
	}
}

// vcardKnown are the properties mapped to vocabulary fields; the others
// are kept in additionalProperty.
var vcardKnown = map[string]bool{
	"VERSION": true, "FN": true, "N": true, "NICKNAME": true, "EMAIL": true, "TEL": true, "ADR": true,
	"ORG": true, "TITLE": true, "BDAY": true, "GENDER": true, "URL": true, "NOTE": true, "UID": true, "CATEGORIES": true,
}

func vcardItem(card vcard.Card, ref string) (Item, error) {
	for name, fields := range card {
		for _, f := range fields {
			if !utf8.ValidString(f.Value) || !utf8.ValidString(name) {
				return Item{}, vcardErr(ref, "vcard_encoding", "property %s is not UTF-8 text", safeName(name))
			}
			for k, vs := range f.Params {
				for _, v := range vs {
					if !utf8.ValidString(k) || !utf8.ValidString(v) {
						return Item{}, vcardErr(ref, "vcard_encoding", "a parameter of %s is not UTF-8 text", safeName(name))
					}
				}
			}
		}
	}
	switch v := card.Value(vcard.FieldVersion); v {
	case "2.1", "3.0", "4.0":
	case "":
		return Item{}, vcardErr(ref, "vcard_no_version", "the card has no VERSION")
	default:
		return Item{}, vcardErr(ref, "vcard_bad_version", "VERSION is not 2.1, 3.0 or 4.0")
	}
	fn := card.PreferredValue(vcard.FieldFormattedName)
	n := card.Name()
	if fn == "" && (n == nil || n.FamilyName+n.GivenName == "") {
		return Item{}, vcardErr(ref, "vcard_no_name", "the card has neither FN nor N")
	}
	d := map[string]any{}
	put := func(k, v string) {
		if v != "" {
			d[k] = v
		}
	}
	put("name", fn)
	if n != nil {
		put("familyName", n.FamilyName)
		put("givenName", n.GivenName)
		put("additionalName", n.AdditionalName)
		put("honorificPrefix", n.HonorificPrefix)
		put("honorificSuffix", n.HonorificSuffix)
	}
	if fn == "" {
		d["name"] = strings.TrimSpace(n.GivenName + " " + n.FamilyName)
	}
	typed := func(k string, fields []*vcard.Field) {
		var out []any
		for _, f := range fields {
			if f.Value == "" {
				continue
			}
			e := map[string]any{"value": f.Value}
			if t := vcardTypes(f); len(t) > 0 {
				e["type"] = t
			}
			out = append(out, e)
		}
		if len(out) > 0 {
			d[k] = out
		}
	}
	typed("email", card[vcard.FieldEmail])
	typed("telephone", card[vcard.FieldTelephone])
	var addrs []any
	for _, a := range card.Addresses() {
		e := map[string]any{}
		for k, v := range map[string]string{
			"postOfficeBoxNumber": a.PostOfficeBox, "extendedAddress": a.ExtendedAddress, "streetAddress": a.StreetAddress,
			"addressLocality": a.Locality, "addressRegion": a.Region, "postalCode": a.PostalCode, "addressCountry": a.Country,
		} {
			if v != "" {
				e[k] = v
			}
		}
		if t := vcardTypes(a.Field); len(t) > 0 {
			e["type"] = t
		}
		if len(e) > 0 {
			addrs = append(addrs, e)
		}
	}
	if len(addrs) > 0 {
		d["address"] = addrs
	}
	var orgs []any
	for _, f := range card[vcard.FieldOrganization] {
		parts := strings.Split(f.Value, ";")
		e := map[string]any{"name": parts[0]}
		if len(parts) > 1 && strings.Join(parts[1:], "") != "" {
			e["department"] = strings.Join(parts[1:], "; ")
		}
		orgs = append(orgs, e)
	}
	if len(orgs) > 0 {
		d["worksFor"] = orgs
	}
	list := func(k, prop string, split bool) {
		var out []any
		for _, v := range card.Values(prop) {
			if split {
				for _, p := range strings.Split(v, ",") {
					if p = strings.TrimSpace(p); p != "" {
						out = append(out, p)
					}
				}
			} else if v != "" {
				out = append(out, v)
			}
		}
		if len(out) > 0 {
			d[k] = out
		}
	}
	list("nickname", vcard.FieldNickname, true)
	list("jobTitle", vcard.FieldTitle, false)
	list("url", vcard.FieldURL, false)
	if u, ok := d["url"].([]any); ok {
		// Google and Apple escape the colon ("http\://"), which no vCard
		// version defines; every reader takes it as a colon.
		for i := range u {
			u[i] = strings.ReplaceAll(u[i].(string), `\:`, ":")
		}
	}
	list("note", vcard.FieldNote, false)
	list("categories", vcard.FieldCategories, true)
	put("birthDate", card.Value(vcard.FieldBirthday))
	put("gender", card.Value(vcard.FieldGender))
	uid := card.Value(vcard.FieldUID)
	put("uid", uid)

	// Everything else is kept as it was, in a stable order.
	var extra []any
	names := make([]string, 0, len(card))
	for k := range card {
		if !vcardKnown[k] {
			names = append(names, k)
		}
	}
	slices.Sort(names)
	for _, k := range names {
		for _, f := range card[k] {
			e := map[string]any{"name": k, "value": f.Value}
			if f.Group != "" {
				e["group"] = f.Group
			}
			if len(f.Params) > 0 {
				e["params"] = map[string][]string(f.Params)
			}
			extra = append(extra, e)
		}
	}
	if len(extra) > 0 {
		d["additionalProperty"] = extra
	}
	key := "uid:" + uid
	if uid == "" {
		key = "card:" + vcardDigest(card)
	}
	return Item{Collection: "contacts", Key: key, Ref: ref, Data: d}, nil
}

// vcardTypes are a property's TYPE values, lower case, without the
// noise ones (INTERNET, VOICE are the defaults).
func vcardTypes(f *vcard.Field) []string {
	if f == nil {
		return nil
	}
	var out []string
	for _, t := range f.Params.Types() {
		for _, p := range strings.Split(t, ",") {
			p = strings.ToLower(strings.TrimSpace(p))
			if p != "" && p != "internet" && p != "voice" && p != "pref" && !slices.Contains(out, p) {
				out = append(out, p)
			}
		}
	}
	return out
}

// vcardDigest identifies a card without a UID by its content: the same
// contact in a later export of the same address book has the same digest.
// REV changes on every save, so it is left out.
func vcardDigest(card vcard.Card) string {
	names := make([]string, 0, len(card))
	for k := range card {
		if k != "REV" && k != "PRODID" {
			names = append(names, k)
		}
	}
	slices.Sort(names)
	h := sha256.New()
	for _, k := range names {
		vals := make([]string, 0, len(card[k]))
		for _, f := range card[k] {
			ps := make([]string, 0, len(f.Params))
			for pk, pv := range f.Params {
				ps = append(ps, fmt.Sprintf("%q=%q", pk, pv))
			}
			slices.Sort(ps)
			vals = append(vals, fmt.Sprintf("%q %q %q", f.Group, f.Value, ps))
		}
		slices.Sort(vals)
		fmt.Fprintf(h, "%q %q\n", k, vals)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// safeName is a property name fit for an error message.
func safeName(s string) string {
	if !utf8.ValidString(s) {
		return "(not UTF-8)"
	}
	return clip(s)
}

// clip shortens s for an error message.
func clip(s string) string {
	if len(s) > 40 {
		s = s[:40] + "..."
	}
	return strings.ToValidUTF8(s, "?")
}
