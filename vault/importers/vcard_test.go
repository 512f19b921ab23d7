package importers

import (
	"strings"
	"testing"
)

func TestVCardFullContact(t *testing.T) {
	items, err := parseFile(t, vcardFormat, fixtures(t, "vcard", "ez-vcard-fullcontact.vcf"))
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 1 {
		t.Fatalf("%d items, want 1", len(items))
	}
	d := items[0].Data
	if d["name"] != "Prefix FirstName MiddleName LastName Suffix" || d["familyName"] != "LastName" ||
		d["givenName"] != "FirstName" || d["honorificSuffix"] != "Suffix" {
		t.Errorf("names: %v", d)
	}
	if n := len(d["telephone"].([]any)); n != 9 {
		t.Errorf("%d telephones, want 9", n)
	}
	if n := len(d["email"].([]any)); n != 5 {
		t.Errorf("%d emails, want 5", n)
	}
	if n := len(d["worksFor"].([]any)); n != 2 {
		t.Errorf("%d organizations, want 2", n)
	}
	// Folded lines are joined; proprietary properties are kept, not dropped.
	var photo, xid bool
	for _, p := range d["additionalProperty"].([]any) {
		m := p.(map[string]any)
		photo = photo || (m["name"] == "PHOTO" && strings.HasSuffix(m["value"].(string), "c432f637e95c8a"))
		xid = xid || (m["name"] == "X-ID" && m["value"] == "14f9aba0c9422da9ae376fe28bd89c2a.0")
	}
	if !photo || !xid {
		t.Errorf("unknown properties lost: photo %v, X-ID %v", photo, xid)
	}
	if !strings.HasPrefix(items[0].Key, "card:") || items[0].Ref != "card 1" {
		t.Errorf("key %q ref %q", items[0].Key, items[0].Ref)
	}
}

func TestVCardGmail(t *testing.T) {
	items, err := parseFile(t, vcardFormat, fixtures(t, "vcard", "ez-vcard-gmail-single2.vcf"))
	if err != nil {
		t.Fatal(err)
	}
	d := items[0].Data
	if d["name"] != "VCard Test" || d["birthDate"] != "1912-06-23" {
		t.Errorf("data: %v", d)
	}
	if n := len(d["email"].([]any)); n != 5 {
		t.Errorf("%d emails, want 5 (item1.EMAIL counts)", n)
	}
	if n := len(d["telephone"].([]any)); n != 11 {
		t.Errorf("%d telephones, want 11", n)
	}
	if u := d["url"].([]any)[0]; u != "http://www.example1.com" {
		t.Errorf("url %q: the escaped colon should be a colon", u)
	}
	tel := d["telephone"].([]any)[6].(map[string]any)
	if tel["value"] != "5555551117" || strings.Join(tel["type"].([]string), ",") != "home,fax" {
		t.Errorf("typed telephone: %v", tel)
	}
}

func TestVCardUIDAndEscapes(t *testing.T) {
	items, err := parseFile(t, vcardFormat, fixtures(t, "vcard", "ez-vcard-issue114.vcf"))
	if err != nil {
		t.Fatal(err)
	}
	it := items[0]
	if it.Key != "uid:8b574c60-fd7f-4e99-b584-c5db131ae687" {
		t.Errorf("key %q: a card with a UID is identified by it", it.Key)
	}
	if it.Data["name"] != "Dummy, Dummy" {
		t.Errorf("name %q: \\, is a comma", it.Data["name"])
	}
	a := it.Data["address"].([]any)[0].(map[string]any)
	if a["streetAddress"] != "Dummy-Dummy-Strasse 1" || a["postalCode"] != "61352" || a["addressCountry"] != "Germany" {
		t.Errorf("address %v", a)
	}
}

// The same contact saved again (a later REV, properties in another order)
// has the same key, so a re-export adds nothing; another contact does not.
func TestVCardKeyStable(t *testing.T) {
	a := "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Ann Lee\r\nN:Lee;Ann;;;\r\nTEL;TYPE=CELL:123\r\nREV:2020-01-01T00:00:00Z\r\nEND:VCARD\r\n"
	b := "BEGIN:VCARD\nVERSION:3.0\nN:Lee;Ann;;;\nTEL;TYPE=CELL:123\nFN:Ann Lee\nREV:2026-11-01T00:00:00Z\nEND:VCARD\n"
	c := strings.Replace(a, "123", "124", 1)
	var keys []string
	for _, s := range []string{a, b, c} {
		items, err := parseString(vcardFormat, s)
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, items[0].Key)
	}
	if keys[0] != keys[1] {
		t.Error("the same contact re-exported got another key")
	}
	if keys[0] == keys[2] {
		t.Error("two different contacts share a key")
	}
}

func TestVCardMultipleCards(t *testing.T) {
	s := "BEGIN:VCARD\nVERSION:4.0\nFN:A\nEND:VCARD\n\nBEGIN:VCARD\nVERSION:4.0\nFN:B\nUID:urn:uuid:b\nEND:VCARD\n"
	items, err := parseString(vcardFormat, s)
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 2 || items[1].Ref != "card 2" || items[1].Data["name"] != "B" || items[1].Key != "uid:urn:uuid:b" {
		t.Fatalf("items %+v", items)
	}
}

// Each malformation has its own code and says where it is.
func TestVCardMalformed(t *testing.T) {
	ok := "BEGIN:VCARD\nVERSION:4.0\nFN:A\nEND:VCARD\n"
	for _, tc := range []struct{ name, in, code, ref string }{
		{"empty", "", "vcard_empty", ""},
		{"not a vcard", "hello: world\n", "vcard_no_begin", "card 1"},
		{"no vcard at all", "hello\n\n", "vcard_empty", ""},
		{"other object", "BEGIN:VCALENDAR\nEND:VCALENDAR\n", "vcard_no_begin", "card 1"},
		{"unterminated", ok + "BEGIN:VCARD\nVERSION:4.0\nFN:B\n", "vcard_unterminated", "card 2"},
		{"no version", "BEGIN:VCARD\nFN:A\nEND:VCARD\n", "vcard_no_version", "card 1"},
		{"bad version", "BEGIN:VCARD\nVERSION:5.0\nFN:A\nEND:VCARD\n", "vcard_bad_version", "card 1"},
		{"no name", ok + "BEGIN:VCARD\nVERSION:3.0\nTEL:1\nEND:VCARD\n", "vcard_no_name", "card 2"},
		{"not utf-8", "BEGIN:VCARD\nVERSION:4.0\nFN:Ren\xe9\nEND:VCARD\n", "vcard_encoding", "card 1"},
		{"long line", "BEGIN:VCARD\nVERSION:4.0\nNOTE:" + strings.Repeat("x", MaxLine+10) + "\nEND:VCARD\n", "line_too_long", "card 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseString(vcardFormat, tc.in)
			wantCode(t, err, tc.code)
			if got := err.(*Error).Ref; got != tc.ref {
				t.Errorf("ref %q, want %q", got, tc.ref)
			}
		})
	}
}
