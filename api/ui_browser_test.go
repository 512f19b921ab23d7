package api

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/pdvault/pdvault/api/client"
)

// The owner's web UI, driven in a real headless Chromium (chromedp). The
// test command in README.md installs Chromium; without it this test fails,
// it does not skip.
//
// PDVAULT_SCREENSHOTS=DIR writes the screenshots there (docs/screenshots
// holds the current ones); otherwise they go to a temporary directory.

func chromium(t *testing.T) string {
	for _, p := range []string{os.Getenv("CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if p != "" {
			if _, err := exec.LookPath(p); err == nil {
				return p
			}
		}
	}
	t.Fatal("Chromium not found: run the README's test command (bash scripts/test.sh), which installs it, or set CHROMIUM")
	return ""
}

func newBrowser(t *testing.T) context.Context {
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1200, 900),
	)
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelB := chromedp.NewContext(actx)
	ctx, cancelC := context.WithTimeout(ctx, 2*time.Minute)
	t.Cleanup(func() { cancelC(); cancelB(); cancelA() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting Chromium: %v", err)
	}
	return ctx
}

func screenshotDir(t *testing.T) string {
	if d := os.Getenv("PDVAULT_SCREENSHOTS"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.TempDir()
}

func shot(dir, name string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		buf, err := chromedp.FullScreenshot(100)(ctx, t)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, name+".png"), buf, 0o644)
	})
}

// into runs an action that returns a value and keeps the value.
func into[T any](dst *T, a chromedp.Action[T]) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		v, err := a(ctx, t)
		*dst = v
		return err
	})
}

func TestUIInBrowser(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	rec := e.record("profile", `{"name":"Alex Example","email":"alex@example.org","birth_date":"1990-04-12"}`)
	e.record("transactions", `{"amount":-42.17,"merchant":"Biomarkt"}`)
	o := e.org("EdDSA")
	req := askProfile("name", "email", "birth_date")
	req.AuthorizationDetails = req.AuthorizationDetails[:1]
	tk, err := o.Request(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	dir := screenshotDir(t)
	b := newBrowser(t)
	base := e.srv.URL
	var text, loc string

	// Sign in.
	err = chromedp.Do(b,
		chromedp.Navigate(base+"/ui/"),
		chromedp.WaitVisible(chromedp.ID("passphrase")),
		shot(dir, "login"),
		chromedp.SendKeys(chromedp.ID("passphrase"), "wrong passphrase"),
		chromedp.Submit(chromedp.ID("passphrase")),
		chromedp.WaitVisible(chromedp.CSS(".error")),
		into(&text, chromedp.Text(chromedp.CSS(".error"))),
	)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text, "The passphrase is wrong") {
		t.Fatalf("wrong passphrase: %q", text)
	}
	err = chromedp.Do(b,
		chromedp.SetValue(chromedp.ID("passphrase"), testPass),
		chromedp.Submit(chromedp.ID("passphrase")),
		chromedp.WaitVisible(chromedp.ID("pending-h")),
		into(&text, chromedp.Text(chromedp.CSS("main"))),
		shot(dir, "overview"),
	)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text, "Acme Bikes asks for profile:name,email,birth_date") {
		t.Fatalf("overview: %q", text)
	}

	// Review the request in plain language and approve fewer fields, for
	// less time, with the keyboard's space bar on the checkbox.
	err = chromedp.Do(b,
		chromedp.Navigate(base+"/ui/requests/"+tk.RequestID),
		chromedp.WaitVisible(chromedp.ID("approve")),
		into(&text, chromedp.Text(chromedp.CSS("dl.facts"))),
		shot(dir, "request"),
	)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Acme Bikes", "domain not verified", "Provide a product or service I asked for", "deliver your bicycle", "1 hour", "your current terms"} {
		if !strings.Contains(text, want) {
			t.Errorf("request page lacks %q: %q", want, text)
		}
	}
	err = chromedp.Do(b,
		chromedp.Focus(chromedp.CSS(`input[value="profile.birth_date"]`)),
		chromedp.KeyEvent(" "),
		chromedp.Click(chromedp.ID("approve")),
		chromedp.WaitVisible(chromedp.CSS(".flash")),
		into(&text, chromedp.Text(chromedp.CSS("main"))),
	)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text, "You granted: profile:name,email") {
		t.Fatalf("after approve: %q", text)
	}

	// The organization collects and reads: only name and email.
	tok, err := o.Poll(ctx, tk.RequestID)
	if err != nil {
		t.Fatal(err)
	}
	page, err := o.ReadCollection(ctx, tok.AccessToken, "profile", 0, "")
	if err != nil {
		t.Fatal(err)
	}
	if got := page.Records[0].Data; len(got) != 2 || got["birth_date"] != nil || got["email"] == nil {
		t.Fatalf("the organization read %v", got)
	}

	// Revoke from the relationship page, with the confirmation step.
	rel := o.Key().Thumbprint()
	err = chromedp.Do(b,
		chromedp.Navigate(base+"/ui/relationships/"+rel),
		chromedp.WaitVisible(chromedp.ID("revoke-"+tok.GrantID)),
		shot(dir, "relationship"),
		chromedp.Click(chromedp.ID("revoke-"+tok.GrantID)),
		chromedp.WaitVisible(chromedp.ID("confirm-revoke")),
		chromedp.Click(chromedp.ID("confirm-revoke")),
		chromedp.WaitVisible(chromedp.CSS(".flash")),
		into(&text, chromedp.Text(chromedp.CSS(".flash"))),
	)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text, "Revoked") {
		t.Fatalf("after revoke: %q", text)
	}
	if _, err := o.ReadCollection(ctx, tok.AccessToken, "profile", 0, ""); !client.IsCode(err, "invalid_token") {
		t.Fatalf("read after UI revoke: %v", err)
	}

	// Edit a record: a bad edit is refused with the reason and changes
	// nothing; a good one is saved.
	err = chromedp.Do(b,
		chromedp.Navigate(base+"/ui/records/profile"),
		chromedp.WaitVisible(chromedp.ID("rec-"+rec.ID)),
		shot(dir, "records"),
		chromedp.Click(chromedp.ID("rec-"+rec.ID)),
		chromedp.WaitVisible(chromedp.ID("data")),
		chromedp.SetValue(chromedp.ID("data"), `["not", "an object"]`),
		chromedp.Click(chromedp.ID("save")),
		chromedp.WaitVisible(chromedp.CSS(".error")),
		into(&text, chromedp.Text(chromedp.CSS(".error"))),
	)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text, "a record must be a JSON object") {
		t.Fatalf("bad edit: %q", text)
	}
	err = chromedp.Do(b,
		chromedp.SetValue(chromedp.ID("data"), `{"name": "Alex B. Example", "email": "alex@example.org"}`),
		chromedp.Click(chromedp.ID("save")),
		chromedp.WaitVisible(chromedp.CSS(".flash")),
		shot(dir, "record"),
	)
	if err != nil {
		t.Fatal(err)
	}
	got, err := e.v.GetRecord(ctx, "profile", rec.ID)
	if err != nil || got.Version != 2 || !strings.Contains(string(got.Data), "Alex B. Example") {
		t.Fatalf("record after UI edit: %s v%d %v", got.Data, got.Version, err)
	}

	// Terms: preview an edit without saving it.
	err = chromedp.Do(b,
		chromedp.Navigate(base+"/ui/terms"),
		chromedp.WaitVisible(chromedp.ID("terms")),
		into(&text, chromedp.Value(chromedp.ID("terms"))),
	)
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(text, `"90d"`, `"45d"`, 1)
	err = chromedp.Do(b,
		chromedp.SetValue(chromedp.ID("terms"), edited),
		chromedp.Click(chromedp.CSS(`button[value="preview"]`)),
		chromedp.WaitVisible(chromedp.ID("pre-h")),
		into(&text, chromedp.Text(chromedp.CSS(".preview"))),
		shot(dir, "terms"),
	)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text, "A grant lasts at most 45 days") || strings.Contains(e.v.CurrentTerms().Text, "45 days") {
		t.Fatalf("terms preview: %q", text)
	}

	// The audit timeline shows each step, and verifies.
	err = chromedp.Do(b,
		chromedp.Navigate(base+"/ui/audit"),
		chromedp.WaitVisible(chromedp.ID("verify")),
		chromedp.Click(chromedp.ID("verify")),
		chromedp.WaitVisible(chromedp.ID("verify-result")),
		into(&text, chromedp.Text(chromedp.CSS("main"))),
		shot(dir, "audit"),
	)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"The log is intact", "request.received", "request.approved", "grant.issued", "data.read", "grant.revoked", "data.refused", "the grant has been revoked", "[name, email]"} {
		if !strings.Contains(text, want) {
			t.Errorf("audit page lacks %q", want)
		}
	}

	// Intents: an offer arrives and the owner turns it into a request.
	in, err := e.v.PublishIntent(ctx, bikeIntent())
	if err != nil {
		t.Fatal(err)
	}
	ot, err := o.SendOffer(ctx, bikeOffer(in.ID))
	if err != nil {
		t.Fatal(err)
	}
	err = chromedp.Do(b,
		chromedp.Navigate(base+"/ui/intents"),
		chromedp.WaitVisible(chromedp.ID("accept-"+ot.OfferID)),
		shot(dir, "intents"),
		chromedp.Click(chromedp.ID("accept-"+ot.OfferID)),
		chromedp.WaitVisible(chromedp.ID("approve")),
		into(&text, chromedp.Text(chromedp.CSS(".flash"))),
	)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text, "Offer accepted") {
		t.Fatalf("after accepting the offer: %q", text)
	}

	// Views a person can read: transactions as a table with a chart,
	// health as a timeline, contacts as cards, documents uploaded through
	// the form and downloaded, and search.
	for _, r := range []string{
		`{"date":"2026-08-29","amount":"2480.00","currency":"EUR","counterparty":"Acme GmbH","description":"Salary August","account":{"id":"DE89370400440532013000"}}`,
		`{"date":"2026-09-01","amount":"-850.00","currency":"EUR","counterparty":"Wohnbau GmbH","description":"Rent September","account":{"id":"DE89370400440532013000"}}`,
		`{"date":"2026-09-12","amount":"-64.20","currency":"EUR","counterparty":"Biomarkt","description":"Groceries","account":{"id":"DE89370400440532013000"}}`,
		`{"date":"2026-09-29","amount":"2480.00","currency":"EUR","counterparty":"Acme GmbH","description":"Salary September","account":{"id":"DE89370400440532013000"}}`,
		`{"date":"2026-10-01","amount":"-850.00","currency":"EUR","counterparty":"Wohnbau GmbH","description":"Rent October","account":{"id":"DE89370400440532013000"},"provenance":{"importer":"camt053","importerVersion":"1","source":"statement-2026-10.xml","item":"entry 1","sourceSha256":"00"}}`,
		`{"date":"2026-10-17","amount":"-1210.99","currency":"EUR","counterparty":"Bike shop","description":"New bicycle","account":{"id":"DE89370400440532013000"}}`,
	} {
		e.record("transactions", r)
	}
	e.record("health", `{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8867-4","display":"Heart rate"}]},"valueQuantity":{"value":58,"unit":"/min"},"effectiveDateTime":"2026-10-03T07:30:00+02:00"}`)
	e.record("health", `{"resourceType":"Immunization","status":"completed","vaccineCode":{"text":"Tetanus, diphtheria"},"occurrenceDateTime":"2026-06-14"}`)
	e.record("health", `{"resourceType":"Condition","code":{"text":"Hay fever"},"onsetDateTime":"2009-04-01"}`)
	e.record("contacts", `{"name":"Ada Lovelace","email":[{"value":"ada@example.org"}],"telephone":[{"value":"+44 20 7946 0000"}]}`)
	e.record("contacts", `{"name":"Grace Hopper","email":[{"value":"grace@example.org"}]}`)
	pdf := filepath.Join(t.TempDir(), "lease.pdf")
	os.WriteFile(pdf, []byte("%PDF-1.4\n% a lease\n"), 0o600)
	var rows int
	err = chromedp.Do(b,
		chromedp.Navigate(base+"/ui/records/transactions"),
		chromedp.WaitVisible(chromedp.CSS("figure.chart svg")),
		into(&rows, chromedp.Evaluate[int](`document.querySelectorAll("tbody tr").length`)),
		shot(dir, "transactions"),
		chromedp.Navigate(base+"/ui/records/transactions?counterparty=rent"),
		chromedp.WaitVisible(chromedp.CSS("figure.chart")),
		into(&text, chromedp.Text(chromedp.CSS("main"))),
	)
	if err != nil {
		t.Fatal(err)
	}
	if rows != 7 || !strings.Contains(text, "2 transaction(s)") || strings.Contains(text, "Bike shop") {
		t.Fatalf("transactions view: %d rows; filtered page %q", rows, text)
	}
	err = chromedp.Do(b,
		chromedp.Navigate(base+"/ui/records/health"),
		chromedp.WaitVisible(chromedp.CSS("ul.timeline")),
		into(&text, chromedp.Text(chromedp.CSS("ul.timeline"))),
		shot(dir, "health"),
		chromedp.Navigate(base+"/ui/records/contacts"),
		chromedp.WaitVisible(chromedp.CSS("ul.cards")),
		shot(dir, "contacts"),
	)
	if err != nil {
		t.Fatal(err)
	}
	if i, j := strings.Index(text, "Observation: Heart rate"), strings.Index(text, "Condition: Hay fever"); i < 0 || j < i {
		t.Fatalf("health timeline (newest first): %q", text)
	}
	err = chromedp.Do(b,
		chromedp.Navigate(base+"/ui/documents"),
		chromedp.WaitVisible(chromedp.ID("upload")),
		chromedp.SetValue(chromedp.ID("title"), "Lease"),
		chromedp.SetValue(chromedp.ID("kind"), "contract"),
		chromedp.SetUploadFiles(chromedp.ID("file"), []string{pdf}),
		chromedp.Click(chromedp.CSS("#upload button")),
		chromedp.WaitVisible(chromedp.CSS(".flash")),
		into(&text, chromedp.Text(chromedp.CSS("main table"))),
		shot(dir, "documents"),
		chromedp.Navigate(base+"/ui/search?q=wohnbau"),
		chromedp.WaitVisible(chromedp.CSS("ul.cards")),
		shot(dir, "search"),
		into(&rows, chromedp.Evaluate[int](`document.querySelectorAll("ul.cards li").length`)),
	)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text, "Lease") || !strings.Contains(text, "contract") || !strings.Contains(text, "Preview") || rows != 2 {
		t.Fatalf("documents %q; search hits %d", text, rows)
	}

	// Import through the form: the job page reloads itself until the
	// import ends, then says what was added and links the kept original.
	vcf := filepath.Join(t.TempDir(), "friends.vcf")
	os.WriteFile(vcf, []byte("BEGIN:VCARD\r\nVERSION:4.0\r\nFN:Katherine Johnson\r\nEMAIL:kj@example.org\r\nEND:VCARD\r\n"), 0o600)
	err = chromedp.Do(b,
		chromedp.Navigate(base+"/ui/imports"),
		chromedp.WaitVisible(chromedp.ID("import")),
		chromedp.SetUploadFiles(chromedp.ID("file"), []string{vcf}),
		chromedp.Click(chromedp.CSS("#import button")),
		chromedp.WaitVisible(chromedp.ID("job")),
	)
	if err != nil {
		t.Fatal(err)
	}
	for range 50 {
		if err := chromedp.Do(b, into(&text, chromedp.Text(chromedp.ID("job")))); err == nil && strings.Contains(text, "added") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := chromedp.Do(b, shot(dir, "import")); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text, "1 record(s) added") || !strings.Contains(text, "contacts") || !strings.Contains(text, "kept, encrypted") {
		t.Fatalf("import job page %q", text)
	}

	// Phone-sized screen: the request list fits without horizontal scroll
	// of the page, and keyboard focus starts at the skip link.
	var scrollW, clientW int
	var active string
	err = chromedp.Do(b,
		chromedp.EmulateViewport(375, 812, chromedp.EmulateScale(2), chromedp.EmulateMobile),
		chromedp.Navigate(base+"/ui/relationships/"+rel),
		chromedp.WaitVisible(chromedp.CSS("h1")),
		into(&scrollW, chromedp.Evaluate[int](`document.documentElement.scrollWidth`)),
		into(&clientW, chromedp.Evaluate[int](`document.documentElement.clientWidth`)),
		shot(dir, "phone-relationship"),
		chromedp.KeyEvent("\t"),
		into(&active, chromedp.Evaluate[string](`document.activeElement.textContent`)),
	)
	if err != nil {
		t.Fatal(err)
	}
	if scrollW > clientW+1 {
		wide, _ := chromedp.Run(b, chromedp.Evaluate[string](`[...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > document.documentElement.clientWidth + 1).map(e => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right)).slice(0, 8).join('; ')`))
		t.Errorf("the page scrolls sideways on a phone: %d > %d (%s)", scrollW, clientW, wide)
	}
	if active != "Skip to content" {
		t.Errorf("first Tab focuses %q", active)
	}

	// Sign out: the session cookie no longer works.
	err = chromedp.Do(b,
		chromedp.EmulateReset(),
		chromedp.Navigate(base+"/ui/"),
		chromedp.Click(chromedp.CSS(".logout button")),
		chromedp.WaitVisible(chromedp.ID("passphrase")),
		into(&loc, chromedp.Location()),
	)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(loc, "/ui/login") {
		t.Fatalf("after sign-out: %s", loc)
	}
}
