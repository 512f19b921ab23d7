package vault

import (
	"strings"
	"testing"
	"time"
)

func TestTransactionsView(t *testing.T) {
	v, _, _ := newTestVault(t)
	ctx := t.Context()
	for _, r := range []string{
		`{"date":"2026-09-30","amount":"2500.00","currency":"EUR","counterparty":"Employer","account":{"id":"DE01"}}`,
		`{"date":"2026-10-02","amount":"-850.00","currency":"EUR","counterparty":"Landlord","description":"rent October","account":{"id":"DE01"}}`,
		`{"date":"2026-10-02","amount":"-12.35","currency":"EUR","counterparty":"Bakery","account":{"id":"DE01"}}`,
		`{"date":"2026-10-15","amount":"-0.10","currency":"EUR","counterparty":"Bank","account":{"id":"DE02"}}`,
		`{"date":"2026-10-20","amount":"not a number","currency":"EUR","counterparty":"?","account":{"id":"DE01"}}`,
	} {
		if _, err := v.CreateRecord(ctx, "transactions", []byte(r)); err != nil {
			t.Fatal(err)
		}
	}
	all, err := v.TransactionsView(ctx, TxFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if all.Count != 5 || all.In != "2500.00" || all.Out != "862.45" || all.Net != "1637.55" || all.UnreadableRows != 1 ||
		strings.Join(all.Accounts, ",") != "DE01,DE02" || all.Currency != "EUR" {
		t.Fatalf("view %+v", all)
	}
	// Newest first, each with the balance after it (exact decimals).
	var bal []string
	for _, r := range all.Rows {
		bal = append(bal, r.Date+"="+r.Balance)
	}
	if got := strings.Join(bal, " "); got != "2026-10-20=1637.55 2026-10-15=1637.55 2026-10-02=1637.65 2026-10-02=1650.00 2026-09-30=2500.00" {
		t.Fatalf("running balances %s", got)
	}
	if len(all.Months) != 2 || all.Months[0].Month != "2026-09" || all.Months[0].In != "2500.00" || all.Months[1].Out != "862.45" {
		t.Fatalf("months %+v", all.Months)
	}
	for f, want := range map[TxFilter]int{{Account: "DE02"}: 1, {Month: "2026-09"}: 1, {Counterparty: "RENT"}: 1, {Counterparty: "nobody"}: 0} {
		got, err := v.TransactionsView(ctx, f)
		if err != nil || got.Count != want {
			t.Errorf("filter %+v: %d rows, %v", f, got.Count, err)
		}
	}
	if _, err := v.TransactionsView(ctx, TxFilter{Month: "October"}); err == nil || !strings.Contains(err.Error(), "YYYY-MM") {
		t.Fatalf("bad month: %v", err)
	}
}

func TestSummarizeAndSearch(t *testing.T) {
	v, _, _ := newTestVault(t)
	ctx := t.Context()
	mk := func(coll, data string) Record {
		r, err := v.CreateRecord(ctx, coll, []byte(data))
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	for _, c := range []struct {
		rec                 Record
		title, detail, when string
	}{
		{mk("contacts", `{"name":"Ada Lovelace","email":[{"value":"ada@example.org"}],"telephone":[{"value":"+44 1"}]}`), "Ada Lovelace", "ada@example.org · +44 1", ""},
		{mk("health", `{"resourceType":"Observation","code":{"coding":[{"display":"Heart rate"}]},"valueQuantity":{"value":62,"unit":"/min"},"effectiveDateTime":"2026-10-01T08:00:00Z"}`), "Observation: Heart rate", "62 /min", "2026-10-01T08:00:00Z"},
		{mk("calendar", `{"summary":"Dentist","location":"Main St","start":"2026-11-30T09:00:00+01:00"}`), "Dentist", "Main St", "2026-11-30T09:00:00+01:00"},
		{mk("transactions", `{"date":"2026-10-02","amount":"-12.35","currency":"EUR","counterparty":"Bäckerei Müller","provenance":{"importer":"csv","source":"giro.csv","item":"line 7","sourceSha256":"x"}}`), "-12.35 EUR Bäckerei Müller", "", "2026-10-02"},
		{mk("hobbies", `{"x":1}`), "", "", ""},
	} {
		s := Summarize(c.rec)
		if c.title == "" {
			if !strings.HasPrefix(s.Title, "Record ") {
				t.Errorf("free-form title %q", s.Title)
			}
			continue
		}
		if s.Title != c.title || s.Detail != c.detail || s.When != c.when {
			t.Errorf("%s: %+v", c.rec.Collection, s)
		}
	}
	res, err := v.SearchRecords(ctx, "müller")
	if err != nil || len(res.Hits) != 1 || res.Hits[0].Record.Collection != "transactions" ||
		!strings.Contains(res.Hits[0].Snippet, "Bäckerei Müller") || !strings.HasPrefix(res.Hits[0].Provenance, "imported from giro.csv (line 7) by the csv importer") {
		t.Fatalf("search: %+v %v", res, err)
	}
	if res, _ := v.SearchRecords(ctx, "LOVELACE"); len(res.Hits) != 1 {
		t.Fatalf("case-insensitive: %+v", res)
	}
	if _, err := v.SearchRecords(ctx, "a"); err == nil || !strings.Contains(err.Error(), "2 to 200") {
		t.Fatalf("short query: %v", err)
	}
}

// Records the owner typed with a number for the amount or a text account
// are read, not skipped.
func TestTransactionsViewReadsOwnerTypedRecords(t *testing.T) {
	v, _, _ := newTestVault(t)
	v.CreateRecord(t.Context(), "transactions", []byte(`{"date":"2026-10-01","amount":-42.17,"account":"cash"}`))
	view, err := v.TransactionsView(t.Context(), TxFilter{})
	if err != nil || view.Count != 1 || view.Out != "42.17" || view.Accounts[0] != "cash" {
		t.Fatalf("%+v %v", view, err)
	}
}

// Odd shapes an owner may type do not hide a transaction from the view.
func TestTransactionsViewToleratesOddFields(t *testing.T) {
	v, _, _ := newTestVault(t)
	v.CreateRecord(t.Context(), "transactions", []byte(`{"date":"2026-10-02","amount":"5","provenance":"typed by hand","counterparty":{"name":"x"},"account":{"id":7}}`))
	view, err := v.TransactionsView(t.Context(), TxFilter{})
	if err != nil || view.Count != 1 || view.In != "5.00" || len(view.Accounts) != 1 || view.Accounts[0] != "7" || view.Rows[0].Provenance != "" {
		t.Fatalf("%+v %v", view, err)
	}
}

// The view's cache of decoded transactions follows every write of
// records, and goes when unused or when the vault locks.
func TestTransactionsViewCache(t *testing.T) {
	v, _, clk := newTestVault(t)
	ctx := t.Context()
	count := func() int {
		t.Helper()
		view, err := v.TransactionsView(ctx, TxFilter{})
		if err != nil {
			t.Fatal(err)
		}
		return view.Count
	}
	a, _ := v.CreateRecord(ctx, "transactions", []byte(`{"date":"2026-10-01","amount":"-1"}`))
	if count() != 1 {
		t.Fatal("first view")
	}
	b, _ := v.CreateRecord(ctx, "transactions", []byte(`{"date":"2026-10-02","amount":"-2"}`))
	if count() != 2 {
		t.Fatal("a created record is not in the next view")
	}
	v.UpdateRecord(ctx, "transactions", a.ID, []byte(`{"date":"2026-10-01","amount":"-10"}`), 0)
	if view, _ := v.TransactionsView(ctx, TxFilter{}); view.Out != "12.00" {
		t.Fatalf("an update is not in the next view: out %s", view.Out)
	}
	v.DeleteRecord(ctx, "transactions", b.ID, 0)
	if count() != 1 {
		t.Fatal("a deleted record is still in the view")
	}
	if _, err := importBytes(v, "s.csv", []byte("Buchungstag;Betrag\n01.10.2026;-3,00\n"), DataImport{}); err != nil {
		t.Fatal(err)
	}
	if count() != 2 {
		t.Fatal("imported records are not in the next view")
	}
	if !v.txCache.ok {
		t.Fatal("nothing cached")
	}
	clk.Add(txCacheTTL + time.Second)
	v.txCache.expire(v.opts.Now)()
	if v.txCache.ok || v.txCache.txs != nil {
		t.Fatal("an unused cache outlives its time")
	}
	count()
	v.Close()
	if v.txCache.ok || v.txCache.txs != nil {
		t.Fatal("the cache outlives the lock")
	}
}

// A view cached before records were added is caught up by decoding only
// the new rows, and shows exactly what a full read would: same order
// (same-day rows in stored order), balances, months and accounts.
func TestTransactionsViewCatchUpEqualsFullRead(t *testing.T) {
	v, _, _ := newTestVault(t)
	ctx := t.Context()
	add := func(date, amount, account string) {
		t.Helper()
		if _, err := v.CreateRecord(ctx, "transactions", []byte(`{"date":"`+date+`","amount":"`+amount+`","currency":"EUR","account":{"id":"`+account+`"}}`)); err != nil {
			t.Fatal(err)
		}
	}
	render := func(view TxView) string {
		var b strings.Builder
		for _, r := range view.Rows {
			b.WriteString(r.ID + " " + r.Date + " " + r.Amount + " " + r.Balance + "\n")
		}
		for _, m := range view.Months {
			b.WriteString(m.Month + " " + m.In + " " + m.Out + "\n")
		}
		return b.String() + strings.Join(view.Accounts, ",") + " " + view.Net
	}
	viewNow := func() string {
		t.Helper()
		view, err := v.TransactionsView(ctx, TxFilter{})
		if err != nil {
			t.Fatal(err)
		}
		return render(view)
	}
	add("2026-10-05", "-5", "A")
	add("2026-10-07", "100", "A")
	viewNow()
	// After the last date, on the same day as the last row, before
	// the first row, between two rows, in an account not seen yet; then
	// past the view's bound, where the oldest rows stored leave the view
	// (and account B with them).
	defer func(n int) { maxViewRecords = n }(maxViewRecords)
	maxViewRecords = 7
	for _, r := range [][3]string{{"2026-10-09", "-1", "A"}, {"2026-10-09", "-2", "A"}, {"2026-09-30", "7", "B"}, {"2026-10-06", "-3", "A"},
		{"2026-10-05", "-4", "C"}, {"2026-10-08", "-8", "A"}, {"2026-10-01", "9", "A"}, {"2026-10-11", "-10", "A"}, {"2026-10-11", "-11", "A"}, {"2026-10-01", "-12", "A"}} {
		add(r[0], r[1], r[2])
		cached := viewNow()
		v.txCache.drop()
		full := viewNow()
		if cached != full {
			t.Fatalf("after adding %v the cached view is\n%s\nbut a full read gives\n%s", r, cached, full)
		}
	}
	if !strings.HasSuffix(viewNow(), "A,C -39.00") {
		t.Fatalf("the view past its bound: %s", viewNow())
	}
	reads := v.txCache.reads
	add("2026-10-10", "-6", "A")
	viewNow()
	if v.txCache.reads != reads {
		t.Fatal("an added record made the view read everything again")
	}
	// A change to an existing record cannot be caught up: a full read.
	page, err := v.ListRecords(ctx, "transactions", 1, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.UpdateRecord(ctx, "transactions", page.Records[0].ID, []byte(`{"date":"2026-10-10","amount":"-60","currency":"EUR"}`), 0); err != nil {
		t.Fatal(err)
	}
	viewNow()
	if v.txCache.reads != reads+1 {
		t.Fatalf("an updated record did not make the view read again (%d reads)", v.txCache.reads-reads)
	}
}
