package vault

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	fx "github.com/pdvault/pdvault/internal/fixtures"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pdvault/pdvault/policy"
	"github.com/pdvault/pdvault/vault/importers"
)

func fixture(t *testing.T, parts ...string) []byte { return fx.Read(t, parts...) }

func importBytes(v *Vault, name string, b []byte, in DataImport) (ImportResult, error) {
	sum := sha256.Sum256(b)
	in.Name = name
	if in.SHA256 == nil {
		in.SHA256 = sum[:]
	}
	return v.ImportData(context.Background(), bytes.NewReader(b), in)
}

func countRecords(t *testing.T, v *Vault, coll string) []Record {
	t.Helper()
	p, err := v.ListRecords(t.Context(), coll, MaxPageSize, "")
	if err != nil {
		t.Fatal(err)
	}
	return p.Records
}

func card(name string) string {
	return "BEGIN:VCARD\r\nVERSION:4.0\r\nFN:" + name + "\r\nEND:VCARD\r\n"
}

func TestImportVCardFixtureWithProvenance(t *testing.T) {
	v, _, _ := newTestVault(t)
	b := fixture(t, "vcard", "ez-vcard-issue114.vcf")
	res, err := importBytes(v, "issue114.vcf", b, DataImport{})
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	if res.Added != 1 || res.Duplicates != 0 || res.Format != "vcard" || res.Collection != "contacts" || res.Bytes != int64(len(b)) {
		t.Fatalf("result %+v", res)
	}
	recs := countRecords(t, v, "contacts")
	if len(recs) != 1 {
		t.Fatalf("%d records", len(recs))
	}
	var d struct {
		Name       string            `json:"name"`
		Provenance map[string]string `json:"provenance"`
	}
	if err := json.Unmarshal(recs[0].Data, &d); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"importer": "vcard", "importerVersion": "1", "source": "issue114.vcf",
		"sourceSha256": res.SHA256, "item": "card 1", "sourceDocument": res.Document}
	if d.Name != "Dummy, Dummy" || len(d.Provenance) != len(want) {
		t.Fatalf("data %s", recs[0].Data)
	}
	for k, w := range want {
		if d.Provenance[k] != w {
			t.Errorf("provenance %s = %q, want %q", k, d.Provenance[k], w)
		}
	}
	if res.SHA256 != strings.ToLower(string(hexOf(sum[:]))) {
		t.Errorf("sha256 %s", res.SHA256)
	}
}

func hexOf(b []byte) []byte {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return out
}

// Importing a file twice adds nothing; a later export of the same address
// book with one more contact adds only that one.
func TestImportIdempotent(t *testing.T) {
	v, _, _ := newTestVault(t)
	first := card("Ann") + card("Bob")
	if res, err := importBytes(v, "a.vcf", []byte(first), DataImport{}); err != nil || res.Added != 2 {
		t.Fatalf("first: %+v %v", res, err)
	}
	res, err := importBytes(v, "a.vcf", []byte(first), DataImport{})
	if err != nil || res.Added != 0 || res.Duplicates != 2 {
		t.Fatalf("again: %+v %v", res, err)
	}
	res, err = importBytes(v, "b.vcf", []byte(card("Bob")+card("Cy")+card("Ann")), DataImport{})
	if err != nil || res.Added != 1 || res.Duplicates != 2 {
		t.Fatalf("re-export: %+v %v", res, err)
	}
	if n := len(countRecords(t, v, "contacts")); n != 3 {
		t.Fatalf("%d records, want 3", n)
	}
	// The same item into another collection is another item.
	if res, err := importBytes(v, "a.vcf", []byte(first), DataImport{Collection: "people"}); err != nil || res.Added != 2 {
		t.Fatalf("other collection: %+v %v", res, err)
	}
	if n := len(countRecords(t, v, "people")); n != 2 {
		t.Fatalf("people: %d", n)
	}
}

// A file that fails part way keeps nothing: no record, no mark (so the
// good part imports later), no audit entry.
func TestImportAllOrNothing(t *testing.T) {
	v, _, _ := newTestVault(t)
	before, err := v.ListAudit(t.Context(), 500, "")
	if err != nil {
		t.Fatal(err)
	}
	bad := card("Ann") + card("Bob") + "BEGIN:VCARD\r\nVERSION:4.0\r\nFN:Cy\r\n"
	_, err = importBytes(v, "bad.vcf", []byte(bad), DataImport{})
	wantErr(t, err, ErrImportFailed)
	var ie *importers.Error
	if !errors.As(err, &ie) || ie.Code != "vcard_unterminated" || ie.Ref != "card 3" {
		t.Fatalf("error %v", err)
	}
	var pe *policy.Error
	errors.As(err, &pe)
	if !strings.Contains(pe.Msg, "bad.vcf") || !strings.Contains(pe.Msg, "card 3") || len(pe.Reasons) != 1 || pe.Reasons[0] != "vcard_unterminated" {
		t.Errorf("message %q reasons %v", pe.Msg, pe.Reasons)
	}
	if n := len(countRecords(t, v, "contacts")); n != 0 {
		t.Fatalf("%d records kept from a bad file", n)
	}
	after, _ := v.ListAudit(t.Context(), 500, "")
	if len(after.Entries) != len(before.Entries) {
		t.Errorf("audit grew from %d to %d", len(before.Entries), len(after.Entries))
	}
	if res, err := importBytes(v, "good.vcf", []byte(card("Ann")+card("Bob")), DataImport{}); err != nil || res.Added != 2 {
		t.Fatalf("good part after a failed import: %+v %v", res, err)
	}
}

func TestImportDigest(t *testing.T) {
	v, _, _ := newTestVault(t)
	b := []byte(card("Ann"))
	other := sha256.Sum256([]byte("something else"))
	_, err := importBytes(v, "x.vcf", b, DataImport{SHA256: other[:]})
	wantErr(t, err, ErrDigestMismatch)
	_, err = importBytes(v, "x.vcf", b, DataImport{SHA256: other[:], DryRun: true})
	wantErr(t, err, ErrDigestMismatch)
	if n := len(countRecords(t, v, "contacts")) + len(countRecords(t, v, DocumentsCollection)); n != 0 {
		t.Fatalf("%d records kept under a wrong digest", n)
	}
	noStagedChunks(t, v)
	// Without a declared digest the vault computes it while the file
	// arrives, and provenance names it all the same.
	res, err := v.ImportData(t.Context(), bytes.NewReader(b), DataImport{Name: "x.vcf"})
	sum := sha256.Sum256(b)
	if err != nil || res.Added != 1 || res.SHA256 != hex.EncodeToString(sum[:]) {
		t.Fatalf("no digest declared: %+v %v", res, err)
	}
}

// noStagedChunks fails if an upload left chunks or an upload row behind.
func noStagedChunks(t *testing.T, v *Vault) {
	t.Helper()
	var chunks, uploads int
	v.db.r.QueryRow(`SELECT (SELECT count(*) FROM document_chunks WHERE doc_id NOT IN (SELECT id FROM documents)), (SELECT count(*) FROM document_uploads)`).Scan(&chunks, &uploads)
	if chunks != 0 || uploads != 0 {
		t.Fatalf("%d stray chunks, %d upload rows left behind", chunks, uploads)
	}
}

// The source file is kept as an encrypted document, committed with the
// records it made and named by their provenance; a file that adds
// nothing, a failed import and DiscardOriginal keep no document.
func TestImportKeepsOriginal(t *testing.T) {
	v, _, _ := newTestVault(t)
	b := []byte(card("Ann") + card("Bob"))
	res, err := importBytes(v, "people.vcf", b, DataImport{})
	if err != nil || res.Document == "" {
		t.Fatalf("%+v %v", res, err)
	}
	rec, d, err := v.OpenDocument(t.Context(), res.Document)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(d)
	d.Close()
	if err != nil || !bytes.Equal(got, b) {
		t.Fatalf("kept source differs: %v", err)
	}
	m, _ := DocumentMedia(rec)
	if m.Kind != ImportKind || m.FileName != "people.vcf" || m.SHA256 != res.SHA256 {
		t.Fatalf("kept source metadata %+v", m)
	}
	for _, r := range countRecords(t, v, "contacts") {
		var p struct {
			Provenance map[string]any `json:"provenance"`
		}
		json.Unmarshal(r.Data, &p)
		if p.Provenance["sourceDocument"] != res.Document || p.Provenance["sourceSha256"] != res.SHA256 {
			t.Fatalf("provenance %v", p.Provenance)
		}
	}
	// Again: nothing added, no second copy.
	again, err := importBytes(v, "people.vcf", b, DataImport{})
	if err != nil || again.Added != 0 || again.Document != "" {
		t.Fatalf("second import %+v %v", again, err)
	}
	// Discarded on request.
	res, err = importBytes(v, "cy.vcf", []byte(card("Cy")), DataImport{DiscardOriginal: true})
	if err != nil || res.Added != 1 || res.Document != "" {
		t.Fatalf("discard: %+v %v", res, err)
	}
	// A failed import keeps no source either.
	_, err = importBytes(v, "bad.vcf", []byte(card("Di")+"BEGIN:VCARD\r\nFN:x\r\n"), DataImport{})
	wantErr(t, err, ErrImportFailed)
	if n := len(countRecords(t, v, DocumentsCollection)); n != 1 {
		t.Fatalf("%d documents, want the one kept source", n)
	}
	noStagedChunks(t, v)
}

// StartImport answers once the file is stored; the job then reports
// progress and the outcome, failures included.
func TestStartImportJobs(t *testing.T) {
	v, _, _ := newTestVault(t)
	b := []byte(card("Ann") + card("Bob") + card("Cy"))
	j, err := v.StartImport(t.Context(), bytes.NewReader(b), DataImport{Name: "a.vcf", Size: int64(len(b))})
	if err != nil || j.ID == "" || j.File != "a.vcf" || (j.State != jobImporting && j.State != jobDone) || j.Format != "vcard" {
		t.Fatalf("%+v %v", j, err)
	}
	j = waitJob(t, v, j.ID)
	if j.State != jobDone || j.Result == nil || j.Result.Added != 3 || j.Items != 3 || j.Bytes != int64(len(b)) || j.Total != int64(len(b)) || j.Finished == nil {
		t.Fatalf("finished job %+v", j)
	}
	bad, err := v.StartImport(t.Context(), strings.NewReader(card("Di")+"BEGIN:VCARD\r\nFN:x\r\n"), DataImport{Name: "bad.vcf"})
	if err != nil {
		t.Fatal(err)
	}
	bad = waitJob(t, v, bad.ID)
	wantErr(t, bad.Err, ErrImportFailed)
	if jobs := v.ImportJobs(); len(jobs) != 2 || jobs[0].ID != bad.ID || jobs[1].ID != j.ID {
		t.Fatalf("jobs %+v", jobs)
	}
	_, err = v.ImportJob("nope")
	wantErr(t, err, ErrImportNotFound)
	// Refused before anything is read: a bad format name.
	_, err = v.StartImport(t.Context(), strings.NewReader(card("E")), DataImport{Name: "e.vcf", Format: "nope"})
	wantErr(t, err, ErrUnknownFormat)
	v.Close()
	_, err = v.StartImport(t.Context(), strings.NewReader(card("E")), DataImport{Name: "e.vcf"})
	wantErr(t, err, ErrLocked)
}

func waitJob(t *testing.T, v *Vault, id string) ImportJob {
	t.Helper()
	for range 1000 {
		j, err := v.ImportJob(id)
		if err != nil {
			t.Fatal(err)
		}
		if j.State == jobDone || j.State == jobFailed {
			return j
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("import did not finish in 10 s")
	return ImportJob{}
}

// At most four imports run at once: each holds a staged file.
func TestImportsBounded(t *testing.T) {
	v, _, _ := newTestVault(t)
	var ws []*io.PipeWriter
	errs := make(chan error, maxRunningImports)
	for i := range maxRunningImports {
		pr, pw := io.Pipe()
		ws = append(ws, pw)
		go func() {
			_, err := v.ImportData(context.Background(), pr, DataImport{Name: fmt.Sprintf("%d.vcf", i)})
			errs <- err
		}()
	}
	for range 1000 {
		if len(v.ImportJobs()) == maxRunningImports {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	_, err := v.ImportData(t.Context(), strings.NewReader(card("X")), DataImport{Name: "x.vcf"})
	wantErr(t, err, ErrTooManyImports)
	for i, w := range ws {
		w.Write([]byte(card(fmt.Sprint("P", i))))
		w.Close()
	}
	for range ws {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if _, err := importBytes(v, "x.vcf", []byte(card("X")), DataImport{}); err != nil {
		t.Fatalf("after the others finished: %v", err)
	}
}

func TestImportOptions(t *testing.T) {
	v, _, _ := newTestVault(t)
	b := []byte(card("Ann"))
	res, err := importBytes(v, "x.vcf", b, DataImport{DryRun: true})
	if err != nil || res.Added != 1 || !res.DryRun {
		t.Fatalf("dry run: %+v %v", res, err)
	}
	if n := len(countRecords(t, v, "contacts")); n != 0 {
		t.Fatal("dry run kept records")
	}
	if res, err := importBytes(v, "x.vcf", b, DataImport{}); err != nil || res.Added != 1 {
		t.Fatalf("after dry run: %+v %v", res, err)
	}
	_, err = importBytes(v, "x.vcf", b, DataImport{Format: "nope"})
	wantErr(t, err, ErrUnknownFormat)
	_, err = importBytes(v, "x.txt", []byte("hello, world\n"), DataImport{})
	wantErr(t, err, ErrUndetected)
	_, err = importBytes(v, "x.vcf", nil, DataImport{})
	wantErr(t, err, ErrUndetected)
	_, err = importBytes(v, "x.vcf", b, DataImport{Collection: "Bad Name"})
	if pe := (*policy.Error)(nil); !errors.As(err, &pe) || pe.Code != "invalid_collection" {
		t.Fatalf("bad collection: %v", err)
	}
	_, err = importBytes(v, strings.Repeat("n", 300), b, DataImport{})
	if pe := (*policy.Error)(nil); !errors.As(err, &pe) || pe.Code != "invalid_file_name" {
		t.Fatalf("long name: %v", err)
	}
}

// No plaintext of an imported item, nor the file's name, on disk.
func TestImportNoPlaintextOnDisk(t *testing.T) {
	v, dir, _ := newTestVault(t)
	marker := "MARKER" + newID()
	name := "file-" + newID() + ".vcf"
	if _, err := importBytes(v, name, []byte(card(marker)), DataImport{}); err != nil {
		t.Fatal(err)
	}
	v.Close()
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, _ := os.ReadFile(p)
		if bytes.Contains(b, []byte(marker)) || bytes.Contains(b, []byte(name)) {
			t.Errorf("plaintext in %s", filepath.Base(p))
		}
		return nil
	})
}

func TestImportOFXFixtures(t *testing.T) {
	v, _, _ := newTestVault(t)
	b := fixture(t, "ofx", "ofxparse-checking.ofx")
	res, err := importBytes(v, "checking.ofx", b, DataImport{})
	// Three transactions and the statement's balance.
	if err != nil || res.Added != 4 || res.Format != "ofx" || res.Collection != "transactions" {
		t.Fatalf("%+v %v", res, err)
	}
	if n := len(countRecords(t, v, "accounts")); n != 1 {
		t.Fatalf("%d account balances", n)
	}
	if res, err = importBytes(v, "checking.ofx", b, DataImport{}); err != nil || res.Added != 0 || res.Duplicates != 4 {
		t.Fatalf("again: %+v %v", res, err)
	}
	_, err = importBytes(v, "test.qfx", fixture(t, "ofx", "qfxparser-test.qfx"), DataImport{})
	wantErr(t, err, ErrImportFailed)
	var ie *importers.Error
	if !errors.As(err, &ie) || ie.Code != "ofx_bad_amount" {
		t.Fatalf("error %v", err)
	}
	if n := len(countRecords(t, v, "transactions")); n != 3 {
		t.Fatalf("%d transactions, want the 3 of the good file only", n)
	}
}

func TestImportCamtFixture(t *testing.T) {
	v, _, _ := newTestVault(t)
	b := fixture(t, "camt053", "genkgo-camt053.v2.multi.statement.xml")
	res, err := importBytes(v, "stmt.xml", b, DataImport{})
	// Two entries; both statements close the same account on the same
	// day: one balance record, the second a duplicate.
	if err != nil || res.Added != 3 || res.Duplicates != 1 || res.Format != "camt053" || res.Collection != "transactions" {
		t.Fatalf("%+v %v", res, err)
	}
	if res, err = importBytes(v, "stmt.xml", b, DataImport{}); err != nil || res.Added != 0 || res.Duplicates != 4 {
		t.Fatalf("again: %+v %v", res, err)
	}
}

func TestImportICalFixture(t *testing.T) {
	v, _, _ := newTestVault(t)
	b := fixture(t, "ical", "icalendar-america_new_york.ics")
	res, err := importBytes(v, "ny.ics", b, DataImport{})
	if err != nil || res.Added != 1 || res.Format != "ical" || res.Collection != "calendar" {
		t.Fatalf("%+v %v", res, err)
	}
	recs := countRecords(t, v, "calendar")
	if len(recs) != 1 || !strings.Contains(string(recs[0].Data), `"start":"2014-08-29T08:00:00-04:00"`) {
		t.Fatalf("records %v", recs)
	}
}

func TestImportCSVWithMap(t *testing.T) {
	v, _, _ := newTestVault(t)
	in := []byte("Tag|Summe\n31/12/2026|-4,50\n")
	_, err := importBytes(v, "x.csv", in, DataImport{Format: "csv"})
	wantErr(t, err, ErrImportFailed)
	res, err := importBytes(v, "x.csv", in, DataImport{Format: "csv", Options: map[string]string{"date": "Tag", "amount": "Summe", "dateformat": "02/01/2006", "delimiter": "|"}})
	if err != nil || res.Added != 1 {
		t.Fatalf("%+v %v", res, err)
	}
	b := fixture(t, "csv", "csv2ofx-gls.csv")
	if res, err := importBytes(v, "gls.csv", b, DataImport{}); err != nil || res.Added != 1 || res.Format != "csv" {
		t.Fatalf("gls: %+v %v", res, err)
	}
}

func TestImportFHIRFixture(t *testing.T) {
	v, _, _ := newTestVault(t)
	b := fixture(t, "fhir", "smart-generated-Buster_Hoeger.json")
	res, err := importBytes(v, "buster.json", b, DataImport{})
	if err != nil || res.Added != 66 || res.Format != "fhir" || res.Collection != "health" {
		t.Fatalf("%+v %v", res, err)
	}
	if res, err = importBytes(v, "buster.json", b, DataImport{}); err != nil || res.Added != 0 || res.Duplicates != 66 {
		t.Fatalf("again: %+v %v", res, err)
	}
}

func TestImportAppleHealthFixture(t *testing.T) {
	v, _, _ := newTestVault(t)
	b := fixture(t, "applehealth", "healthkit-to-sqlite-export.xml")
	res, err := importBytes(v, "export.xml", b, DataImport{})
	if err != nil || res.Added != 6 || res.Format != "applehealth" || res.Collection != "health" {
		t.Fatalf("%+v %v", res, err)
	}
	if res, err = importBytes(v, "export.xml", b, DataImport{}); err != nil || res.Added != 0 || res.Duplicates != 6 {
		t.Fatalf("again: %+v %v", res, err)
	}
}
