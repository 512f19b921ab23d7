package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pdvault/pdvault/api"
	"github.com/pdvault/pdvault/api/client"
	"github.com/pdvault/pdvault/policy"
	"github.com/pdvault/pdvault/vault"
)

// cmdDemo runs the whole story against a real server in-process: an
// organization asks, the owner approves less than asked, the organization
// reads only that, the owner revokes, the next read is refused, and the
// audit log verifies. It is the quickest way to see what pdvault does.
func (a *app) cmdDemo(ctx context.Context, args []string) error {
	fs := a.flags("demo", "demo [--addr HOST:PORT]")
	addr := fs.String("addr", "127.0.0.1:0", "address for the demo server")
	if err := a.parse(fs, args); err != nil {
		return err
	}
	log := slog.New(slog.DiscardHandler)
	dir, err := os.MkdirTemp("", "pdvault-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	pass := randomPassphrase()
	// The demo organization's web site is on loopback, so the vault may
	// call loopback addresses over plain HTTP here (never by default).
	v, err := vault.Create(ctx, dir, []byte(pass), vault.Options{Logger: log, AllowLoopbackHTTP: true, Courier: api.NewCourier(true, 5*time.Second)})
	if err != nil {
		return err
	}
	defer v.Close()
	if err := loadSamples(ctx, v); err != nil {
		return err
	}
	hs, err := startHTTP(v, httpOptions{addr: *addr}, log)
	if err != nil {
		return err
	}
	defer hs.stop(log)

	out := a.stdout
	step := 0
	say := func(who, format string, args ...any) {
		step++
		fmt.Fprintf(out, "\n%d. [%s] %s\n", step, who, fmt.Sprintf(format, args...))
	}
	show := func(format string, args ...any) { fmt.Fprintf(out, "     "+format+"\n", args...) }

	fmt.Fprintf(out, "pdvault demo: a throwaway vault at %s with sample records.\n", hs.url)
	owner, err := client.NewOwner(hs.url, "", nil)
	if err != nil {
		return err
	}
	if _, _, err := owner.Login(ctx, pass); err != nil {
		return err
	}
	key, err := client.GenerateKey("EdDSA")
	if err != nil {
		return err
	}
	org, err := client.NewOrg(hs.url, key, nil)
	if err != nil {
		return err
	}

	site, err := startOrgSite()
	if err != nil {
		return err
	}
	defer site.close()

	say("owner", "The owner imports the bank statement they downloaded (OFX), as `pdvault data import` does.")
	sum := sha256.Sum256(demoStatement)
	imp, err := owner.ImportData(ctx, bytes.NewReader(demoStatement), sum[:], client.ImportOptions{Name: "statement-2026-10.ofx"})
	if err != nil {
		return err
	}
	show("%s: %d added (%s -> %s), each with its provenance", imp.File, imp.Added, imp.Format, imp.Collection)
	again, err := owner.ImportData(ctx, bytes.NewReader(demoStatement), sum[:], client.ImportOptions{Name: "statement-2026-10.ofx"})
	if err != nil {
		return err
	}
	show("imported again: %d added, %d duplicates", again.Added, again.Duplicates)

	say("owner", "The owner proffers an IEEE 7012 (MyTerms) agreement from the Customer Commons roster with her terms: by id, URL and the hash of its text.")
	cur, err := owner.Terms(ctx)
	if err != nil {
		return err
	}
	var pt policy.Terms
	if err := json.Unmarshal(cur.Terms, &pt); err != nil {
		return err
	}
	// The demo has no network: the hash is of a stand-in text, said so.
	standIn := sha256.Sum256([]byte("SD-BASE: stand-in for the roster's text in this offline demo"))
	sdBase := policy.AgreementRef{ID: "SD-BASE", URL: "https://customercommons.org/p7012/SD-BASE", SHA256: hex.EncodeToString(standIn[:])}
	pt.Agreements = []policy.AgreementRef{sdBase}
	tb, _ := json.Marshal(pt)
	if _, err := owner.SetTerms(ctx, tb); err != nil {
		return err
	}
	show("proffered SD-BASE (service delivery only), sha256 %s… (of a stand-in text: the demo is offline); published at /.well-known/myterms", sdBase.SHA256[:12])

	say("org", "Acme Bikes discovers the vault and reads the owner's terms.")
	md, err := org.Metadata(ctx)
	if err != nil {
		return err
	}
	terms, err := org.Terms(ctx)
	if err != nil {
		return err
	}
	show("issuer %s, token endpoint %s", md.Issuer, md.TokenEndpoint)
	show("terms hash %s: %s", terms.Hash, firstLine(terms.Text))

	say("org", "Acme signs an access request (RFC 9101) with its own key and sends it.")
	ask := client.AccessRequest{
		ClientName: "Acme Bikes", ClientURI: site.url, Purpose: "service_delivery",
		PurposeText: "deliver the bicycle you ordered", CallbackURI: site.url + "/notices",
		AuthorizationDetails: []client.AuthorizationDetail{
			client.Detail("profile", "name", "email", "address", "birth_date"),
			client.Detail("transactions", "date", "amount"),
		},
		Duration: 30 * 24 * 3600, TermsHash: terms.Hash,
		MyTerms: &policy.MyTermsAnswer{Response: policy.MyTermsAccept, Agreement: &sdBase},
	}
	tk, err := org.Request(ctx, ask)
	if err != nil {
		return err
	}
	show("IEEE 7012: Acme accepts SD-BASE in its signed request; the vault countersigned the bilateral agreement record (%s, %d bytes)",
		policy.TypAgreementRecord, len(tk.AgreementRecord))
	show("asks for profile[name,email,address,birth_date] and transactions[date,amount] for 30 days")
	show("request id %s; poll every %ds", tk.RequestID, tk.Interval)
	if _, err := org.Poll(ctx, tk.RequestID); err != nil {
		show("polls the token endpoint: %s", errCode(err))
	}

	say("org", "Acme proves it controls its domain: it publishes the vault's challenge on its site.")
	ch, err := org.StartVerification(ctx)
	if err != nil {
		return err
	}
	site.setChallenge(ch.Challenge)
	domain, err := org.CheckVerification(ctx)
	if err != nil {
		return err
	}
	show("challenge published at %s; the vault fetched it: verified %s", ch.URL, domain)

	say("owner", "The owner reviews the request and approves less than was asked.")
	r, err := owner.GetRequest(ctx, tk.RequestID)
	if err != nil {
		return err
	}
	rel, err := owner.GetRelationship(ctx, r.ClientID)
	if err != nil {
		return err
	}
	show("%s (verified: %s, key %s…) wants it for %q", r.ClientName, rel.VerifiedDomain, r.ClientID[:12], r.PurposeText)
	r, err = owner.Approve(ctx, tk.RequestID, client.Approval{
		Details:  []client.AuthorizationDetail{client.Detail("profile", "name", "address"), client.Detail("transactions", "date", "amount")},
		Duration: 7 * 24 * 3600,
	})
	if err != nil {
		return err
	}
	show("approved profile[name,address] and transactions[date,amount] only, for 7 days: no email, no birth date, no counterparties")

	say("org", "Acme polls again and collects its grant: a DPoP-bound at+jwt signed by the vault.")
	tok, err := org.Poll(ctx, tk.RequestID)
	if err != nil {
		return err
	}
	show("token_type %s, expires in %s, grant %s", tok.TokenType, time.Duration(tok.ExpiresIn)*time.Second, tok.GrantID)
	show("with it, a consent receipt signed by the vault (Kantara %s, typ consent-receipt+jwt, %d bytes)", receiptVersion(tok.ConsentReceipt), len(tok.ConsentReceipt))

	say("org", "Acme reads the profile with the grant and a fresh DPoP proof.")
	page, err := org.ReadCollection(ctx, tok.AccessToken, "profile", 0, "")
	if err != nil {
		return err
	}
	for _, rec := range page.Records {
		fields := make([]string, 0, len(rec.Data))
		for k, v := range rec.Data {
			fields = append(fields, k+"="+string(v))
		}
		show("record %s: %s", rec.ID, strings.Join(fields, " "))
	}
	txs, err := org.ReadCollection(ctx, tok.AccessToken, "transactions", 0, "")
	if err != nil {
		return err
	}
	fieldSet := map[string]bool{}
	for _, rec := range txs.Records {
		for k := range rec.Data {
			fieldSet[k] = true
		}
	}
	fieldNames := slices.Sorted(maps.Keys(fieldSet))
	show("reading transactions: %s, fields %s only", plural(int64(len(txs.Records)), "record"), strings.Join(fieldNames, ","))
	_, err = org.ReadCollection(ctx, tok.AccessToken, "health", 0, "")
	show("reading health: %s (not granted looks the same as not there)", errCode(err))

	say("owner", "The owner revokes the grant.")
	if _, err := owner.Revoke(ctx, tok.GrantID); err != nil {
		return err
	}
	show("grant %s revoked", tok.GrantID)

	say("org", "Acme tries to read again.")
	_, err = org.ReadCollection(ctx, tok.AccessToken, "profile", 0, "")
	if err == nil {
		return fmt.Errorf("demo: a revoked grant still reads")
	}
	show("refused: %s", errCode(err))

	say("vault", "The vault sends Acme a signed revocation notice at its callback.")
	if _, err := v.DeliverNotices(ctx); err != nil {
		return err
	}
	signed, err := site.nextNotice(5 * time.Second)
	if err != nil {
		return err
	}
	jwks, err := org.JWKS(ctx)
	if err != nil {
		return err
	}
	notice, err := client.VerifyNotice(signed, jwks, md.Issuer, key.Thumbprint())
	if err != nil {
		return err
	}
	show("Acme verifies it with the vault's JWKS: %s for grant %s; deletion receipt due by %s",
		notice.Event, notice.GrantID, time.Unix(notice.DeletionDeadline, 0).UTC().Format("2006-01-02"))

	say("org", "Acme deletes the data and sends a signed deletion receipt.")
	res, err := org.SendReceipt(ctx, client.ReceiptClaims{GrantID: tok.GrantID, Deleted: []string{"profile", "transactions"}, Statement: "erased from our order system"})
	if err != nil {
		return err
	}
	show("receipt %s accepted; complete: %v", res.ReceiptID, res.Complete)
	rel, err = owner.GetRelationship(ctx, r.ClientID)
	if err != nil {
		return err
	}
	show("the owner's view of Acme: %d read(s), notice %s, deletion %s", rel.Reads, rel.Notices[0].Status, rel.Deletion)
	cr, err := owner.ConsentReceipt(ctx, tok.GrantID)
	if err != nil {
		return err
	}
	var steps []string
	for _, ev := range cr.Record.Events {
		steps = append(steps, ev.Type)
	}
	show("the consent record (ISO/IEC TS 27560, DPV; Kantara v1.1): %s; state %s", strings.Join(steps, " → "), cr.State)

	say("org", "A bar needs to know the owner is over 18 — not the birth date. It asks for a derived claim.")
	barKey, _ := client.GenerateKey("ES256")
	bar, err := client.NewOrg(hs.url, barKey, nil)
	if err != nil {
		return err
	}
	btk, err := bar.Request(ctx, client.AccessRequest{ClientName: "Bar Kreuzberg", ClientURI: "https://bar.example", Purpose: "identity_verification",
		AuthorizationDetails: []client.AuthorizationDetail{{Collection: "profile", Claims: []string{"age_over:18"}}}, Duration: 600})
	if err != nil {
		return err
	}
	br, err := owner.GetRequest(ctx, btk.RequestID)
	if err != nil {
		return err
	}
	for _, c := range br.ClaimsPreview {
		show("the owner's review says: it would learn %q: %s", c.Description, c.Answer)
	}
	if _, err := owner.Approve(ctx, btk.RequestID, client.Approval{}); err != nil {
		return err
	}
	btok, err := bar.Poll(ctx, btk.RequestID)
	if err != nil {
		return err
	}
	cl, err := bar.ReadClaims(ctx, btok.AccessToken)
	if err != nil {
		return err
	}
	st, err := client.VerifyClaims(cl.Statement, jwks, md.Issuer, barKey.Thumbprint(), time.Now())
	if err != nil {
		return err
	}
	show("the bar gets a statement signed by the vault: age_over:18 = %v (valid %ds, bound to the bar's key)", st.Claims["age_over:18"], cl.ExpiresIn)
	if _, err := client.VerifyClaims(cl.Statement, jwks, md.Issuer, key.Thumbprint(), time.Now()); err != nil {
		show("presented by anyone else it is refused: %v", err)
	}

	say("owner", "The owner states a need to the market, without saying who they are.")
	in, err := owner.PublishIntent(ctx, client.IntentInput{Title: "Looking for: a child seat for a bicycle", Category: "bicycles",
		Budget: &client.Budget{Max: 120, Currency: "EUR"}, Region: "Berlin", ValidFor: "14d"})
	if err != nil {
		return err
	}
	show("intent %s is public at %s/v1/intents (and .atom), signed by a key made for it alone", in.ID, hs.url)

	say("org", "Acme reads the feed, checks the intent's signature and sends a signed offer.")
	feed, err := org.Intents(ctx)
	if err != nil {
		return err
	}
	if _, err := client.VerifyIntent(feed[0].Signed); err != nil {
		return err
	}
	var oc client.OfferClaims
	oc.IntentID, oc.Offer, oc.Price = in.ID, "Child seat, rear mount, fitted for free", &client.Price{Amount: 99, Currency: "EUR"}
	oc.ClientName, oc.ClientURI, oc.Purpose, oc.Duration = "Acme Bikes", site.url, "service_delivery", 3*24*3600
	oc.AuthorizationDetails = []client.AuthorizationDetail{client.Detail("profile", "name", "address")}
	ot, err := org.SendOffer(ctx, oc)
	if err != nil {
		return err
	}
	show("offer %s: %q for 99 EUR; it would need profile[name,address] for 3 days", ot.OfferID, oc.Offer)

	say("owner", "The owner accepts the offer: it becomes an access request, which the owner approves.")
	ar, err := owner.AcceptOffer(ctx, ot.OfferID)
	if err != nil {
		return err
	}
	if _, err := owner.Approve(ctx, ar.ID, client.Approval{}); err != nil {
		return err
	}
	otok, err := org.Poll(ctx, ot.OfferID)
	if err != nil {
		return err
	}
	op, err := org.ReadCollection(ctx, otok.AccessToken, "profile", 0, "")
	if err != nil {
		return err
	}
	show("Acme collects the grant and reads the delivery address: %s", op.Records[0].Data["address"])

	say("owner", "The owner checks the tamper-evident audit log.")
	p, err := owner.ListAudit(ctx, 100, "")
	if err != nil {
		return err
	}
	for i := len(p.Entries) - 1; i >= 0; i-- {
		show("%s", auditLine(p.Entries[i]))
	}
	rep, err := owner.VerifyAudit(ctx)
	if err != nil {
		return err
	}
	if !rep.OK {
		return fmt.Errorf("demo: the audit log does not verify")
	}
	show("verified: %d entries, every hash and signed tree head checked, head %s", rep.Entries, rep.Head)
	fmt.Fprintln(out, "\nDone. The demo vault is deleted.")
	return nil
}

// orgSite is the demo organization's web site: it takes notices and
// serves a domain challenge.
type orgSite struct {
	url     string
	srv     *http.Server
	notices chan string
	mu      sync.Mutex
	chal    string
}

func startOrgSite() (*orgSite, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &orgSite{url: "http://" + ln.Addr().String(), notices: make(chan string, 10)}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /notices", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(io.LimitReader(r.Body, 64<<10))
		s.notices <- string(b)
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /.well-known/pdvault-challenge", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		io.WriteString(w, s.chal+"\n")
	})
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go s.srv.Serve(ln)
	return s, nil
}

func (s *orgSite) setChallenge(c string) {
	s.mu.Lock()
	s.chal = c
	s.mu.Unlock()
}

func (s *orgSite) nextNotice(wait time.Duration) (string, error) {
	select {
	case n := <-s.notices:
		return n, nil
	case <-time.After(wait):
		return "", fmt.Errorf("demo: no notice arrived")
	}
}

func (s *orgSite) close() { s.srv.Close() }

func errCode(err error) string {
	var ce *client.Error
	if errorsAs(err, &ce) {
		return fmt.Sprintf("%d %s (%s)", ce.Status, ce.Code, ce.Description)
	}
	if err == nil {
		return "ok"
	}
	return err.Error()
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

func errorsAs(err error, target any) bool { return errors.As(err, target) }

// demoStatement is a small OFX 1.02 statement written for the demo from
// the OFX specification.
//
//go:embed statement.ofx
var demoStatement []byte

// receiptVersion reads the Kantara version out of a signed receipt's
// payload, for display only (the organization verifies it with the JWKS).
func receiptVersion(signed string) string {
	parts := strings.Split(signed, ".")
	if len(parts) != 3 {
		return "?"
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "?"
	}
	var k struct {
		Version string `json:"version"`
	}
	json.Unmarshal(b, &k)
	return k.Version
}
