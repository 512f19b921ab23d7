package vault

import (
	"errors"
	"strings"
	"testing"

	"github.com/pdvault/pdvault/policy"
)

// A custom domain becomes the issuer at once and after reopening; the
// grant held from before keeps reading; each organization with a callback
// gets a vault.moved notice naming the new address; the audit says so;
// taking the domain away returns the vault to its home address, and a
// server that does not serve custom domains ignores the record.
func TestCustomDomain(t *testing.T) {
	v, dir, c := newTestVault(t)
	ctx := t.Context()
	home := v.Issuer()
	if _, err := v.SetDomain(ctx, "data.ada.example"); !errors.Is(err, ErrNoDomains) {
		t.Fatalf("without DomainIssuer: %v, want ErrNoDomains", err)
	}
	v.opts.DomainIssuer = func(d string) string { return "https://" + d + ":8443" }
	for _, bad := range []string{"ada", "127.0.0.1", "data..example", "-a.example", "a_b.example", "x.localhost", "data.example/x", strings.Repeat("a.", 130) + "example"} {
		if _, err := v.SetDomain(ctx, bad); !errors.Is(err, ErrBadDomain) {
			t.Fatalf("SetDomain(%q): %v, want ErrBadDomain", bad, err)
		}
	}
	v.CreateRecord(ctx, "profile", []byte(`{"name":"Ada"}`))
	o := newOrg(t)
	tok := o.grantFor(t, v, func(c *policy.RequestClaims) { c.CallbackURI = "https://acme.example/cb" }, Approval{})

	res, err := v.SetDomain(ctx, "Data.Ada.Example.")
	if err != nil {
		t.Fatal(err)
	}
	const want = "https://data.ada.example:8443"
	if v.Issuer() != want || v.Domain() != "data.ada.example" || v.HomeIssuer() != home {
		t.Fatalf("issuer %q domain %q home %q", v.Issuer(), v.Domain(), v.HomeIssuer())
	}
	if res.Location != want || len(res.Notices) != 1 || res.Notices[0].Event != policy.NoticeVaultMoved || res.Notices[0].URL != "https://acme.example/cb" {
		t.Fatalf("move result: %+v", res)
	}
	if _, err := v.SetDomain(ctx, "data.ada.example"); !errors.Is(err, ErrSameDomain) {
		t.Fatalf("the same domain again: %v, want ErrSameDomain", err)
	}
	// The organization follows the notice: its old grant, its proof for
	// the new address.
	if _, err := o.read(t, v, tok.AccessToken, "profile"); err != nil {
		t.Fatalf("the grant from before the domain: %v", err)
	}
	page, err := v.ListAudit(ctx, 5, "")
	if err != nil || !strings.Contains(auditReasons(page), "now answers at "+want) {
		t.Fatalf("audit: %v %+v", err, page)
	}

	// Reopened on a server that serves custom domains, and on one that
	// does not.
	v.Close()
	v2, err := Open(ctx, dir, []byte(testPass), Options{Now: c.Now, Issuer: home, DomainIssuer: func(d string) string { return "https://" + d + ":8443" }})
	if err != nil {
		t.Fatal(err)
	}
	if v2.Issuer() != want || v2.Domain() != "data.ada.example" {
		t.Fatalf("reopened: issuer %q domain %q", v2.Issuer(), v2.Domain())
	}
	if _, err := o.read(t, v2, tok.AccessToken, "profile"); err != nil {
		t.Fatalf("reopened, the old grant: %v", err)
	}
	// Back home; the grant still reads (both its issuers are recorded:
	// it was issued under the home address).
	if _, err := v2.SetDomain(ctx, ""); err != nil || v2.Issuer() != home || v2.Domain() != "" {
		t.Fatalf("domain removed: %v issuer %q domain %q", err, v2.Issuer(), v2.Domain())
	}
	if _, err := o.read(t, v2, tok.AccessToken, "profile"); err != nil {
		t.Fatalf("home again, the old grant: %v", err)
	}
	if _, err := v2.SetDomain(ctx, "data.ada.example"); err != nil {
		t.Fatal(err)
	}
	v2.Close()
	v3, err := Open(ctx, dir, []byte(testPass), Options{Now: c.Now, Issuer: home})
	if err != nil {
		t.Fatal(err)
	}
	if v3.Issuer() != home || v3.Domain() != "data.ada.example" {
		t.Fatalf("on a server without custom domains: issuer %q domain %q", v3.Issuer(), v3.Domain())
	}
	// The row edited in the file: the vault does not open.
	sqlExec(t, v3, `UPDATE domain SET name = 'evil.example'`)
	v3.Close()
	_, err = Open(ctx, dir, []byte(testPass), Options{Now: c.Now, Issuer: home, DomainIssuer: func(d string) string { return "https://" + d }})
	wantTampered(t, err)
}

func auditReasons(p AuditPage) string {
	var b strings.Builder
	for _, e := range p.Entries {
		b.WriteString(e.Reason + "\n")
	}
	return b.String()
}
