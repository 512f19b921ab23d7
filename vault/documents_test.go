package vault

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pdvault/pdvault/policy"
)

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func addDoc(t *testing.T, v *Vault, content []byte, in DocumentInput) Record {
	t.Helper()
	rec, err := v.AddDocument(t.Context(), bytes.NewReader(content), in)
	if err != nil {
		t.Fatalf("AddDocument: %v", err)
	}
	return rec
}

func readDoc(t *testing.T, v *Vault, id string) ([]byte, error) {
	t.Helper()
	_, d, err := v.OpenDocument(t.Context(), id)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	return io.ReadAll(d)
}

func TestDocumentRoundTripAndMetadata(t *testing.T) {
	v, _, _ := newTestVault(t)
	for _, n := range []int{0, 1, docChunk - 1, docChunk, docChunk + 1, 3*docChunk + 17} {
		content := randomBytes(n)
		rec := addDoc(t, v, content, DocumentInput{FileName: "scan.bin", Title: "Scan", Kind: "letter", Date: "2026-10-01"})
		got, err := readDoc(t, v, rec.ID)
		if err != nil || !bytes.Equal(got, content) {
			t.Fatalf("size %d: read back %d bytes, %v", n, len(got), err)
		}
		m, err := DocumentMedia(rec)
		sum := sha256.Sum256(content)
		if err != nil || m.ContentSize != int64(n) || m.SHA256 != hex.EncodeToString(sum[:]) || m.Kind != "letter" ||
			m.EncodingFormat != "application/octet-stream" || m.FileName != "scan.bin" {
			t.Fatalf("size %d: metadata %+v %v", n, m, err)
		}
		var chunks int
		v.db.r.QueryRow(`SELECT count(*) FROM document_chunks WHERE doc_id = ?`, rec.ID).Scan(&chunks)
		if want := max(1, (n+docChunk-1)/docChunk); chunks != want {
			t.Fatalf("size %d: %d chunks, want %d", n, chunks, want)
		}
	}
	// The media type comes from the first bytes, then the name.
	pdf := addDoc(t, v, []byte("%PDF-1.7\n..."), DocumentInput{FileName: "contract"})
	png := addDoc(t, v, []byte("plain words"), DocumentInput{FileName: "notes.txt"})
	given := addDoc(t, v, []byte("%PDF-1.7"), DocumentInput{MediaType: "Text/Plain; charset=UTF-8"})
	for rec, want := range map[string]string{pdf.ID: "application/pdf", png.ID: "text/plain; charset=utf-8", given.ID: "text/plain; charset=UTF-8"} {
		r, _ := v.GetRecord(t.Context(), DocumentsCollection, rec)
		m, _ := DocumentMedia(r)
		if m.EncodingFormat != want {
			t.Errorf("media type %q, want %q", m.EncodingFormat, want)
		}
	}
}

func TestDocumentSeek(t *testing.T) {
	v, _, _ := newTestVault(t)
	content := randomBytes(5*docChunk + 100)
	rec := addDoc(t, v, content, DocumentInput{})
	_, d, err := v.OpenDocument(t.Context(), rec.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for _, r := range [][2]int64{{0, 10}, {docChunk - 5, 10}, {3*docChunk + 1, 2 * docChunk}, {int64(len(content)) - 1, 1}, {4 * docChunk, docChunk + 100}} {
		if _, err := d.Seek(r[0], io.SeekStart); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, r[1])
		if _, err := io.ReadFull(d, got); err != nil || !bytes.Equal(got, content[r[0]:r[0]+r[1]]) {
			t.Fatalf("range %v: %v", r, err)
		}
	}
	if n, err := d.Seek(0, io.SeekEnd); n != d.Size() || err != nil {
		t.Fatalf("seek end: %d %v", n, err)
	}
	if _, err := d.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("read at the end: %v", err)
	}
}

// No byte of a document's plaintext, nor its name or title, is anywhere
// in the vault directory, open or closed.
func TestDocumentNoPlaintextOnDisk(t *testing.T) {
	v, dir, _ := newTestVault(t)
	marker := "DOCMARKER-" + newID()
	content := bytes.Repeat([]byte(marker+" "), 3*docChunk/len(marker))
	addDoc(t, v, content, DocumentInput{Title: "title " + marker, FileName: marker + ".txt", Counterparty: "cp " + marker})
	search := func(when string) { noPlaintext(t, dir, when, marker[10:]) }
	search("while open")
	v.Close()
	search("after close")
}

// Every way of changing a document's stored bytes is caught when they are
// read: altered, swapped, dropped, cut short, taken from another document,
// and a key row changed.
func TestDocumentTamperingIsRefused(t *testing.T) {
	v, _, _ := newTestVault(t)
	ctx := t.Context()
	content := randomBytes(4*docChunk + 10)
	other := addDoc(t, v, randomBytes(4*docChunk+10), DocumentInput{})
	for name, attack := range map[string]string{
		"byte flipped": `UPDATE document_chunks SET sealed = CAST(substr(sealed, 1, 20) AS BLOB) || x'00' || substr(sealed, 22) WHERE doc_id = :id AND n = 1`,
		"chunks swapped": `UPDATE document_chunks SET n = -1 WHERE doc_id = :id AND n = 1;
			UPDATE document_chunks SET n = 1 WHERE doc_id = :id AND n = 2;
			UPDATE document_chunks SET n = 2 WHERE doc_id = :id AND n = -1`,
		"middle chunk dropped":    `DELETE FROM document_chunks WHERE doc_id = :id AND n = 2`,
		"spliced from another":    `UPDATE document_chunks SET sealed = (SELECT sealed FROM document_chunks WHERE doc_id = :other AND n = 1) WHERE doc_id = :id AND n = 1`,
		"size changed in the row": `UPDATE documents SET size = size - 10 WHERE id = :id`,
		"chunk count cut (truncation)": `DELETE FROM document_chunks WHERE doc_id = :id AND n = 4;
			UPDATE documents SET size = 4 * 65536, chunks = 4 WHERE id = :id`,
		"key of another document": `UPDATE documents SET wrapped = (SELECT wrapped FROM documents WHERE id = :other) WHERE id = :id`,
	} {
		t.Run(name, func(t *testing.T) {
			rec := addDoc(t, v, content, DocumentInput{})
			q := strings.NewReplacer(":other", "'"+other.ID+"'", ":id", "'"+rec.ID+"'").Replace(attack)
			if _, err := v.db.w.ExecContext(ctx, q); err != nil {
				t.Fatal(err)
			}
			got, err := readDoc(t, v, rec.ID)
			if !errors.Is(err, ErrTampered) {
				t.Fatalf("read %d bytes, err %v; want tampered", len(got), err)
			}
		})
	}
	// The other document is untouched and still reads.
	if _, err := readDoc(t, v, other.ID); err != nil {
		t.Fatal(err)
	}
}

// A failed upload leaves nothing: a digest that does not match, a source
// that fails mid-way, bad metadata; and chunks of an upload cut off by a
// crash are gone after the next start.
func TestDocumentFailuresLeaveNothing(t *testing.T) {
	v, dir, _ := newTestVault(t)
	ctx := t.Context()
	count := func() (docs, chunks, uploads, records int) {
		v.db.r.QueryRow(`SELECT count(*) FROM documents`).Scan(&docs)
		v.db.r.QueryRow(`SELECT count(*) FROM document_chunks`).Scan(&chunks)
		v.db.r.QueryRow(`SELECT count(*) FROM document_uploads`).Scan(&uploads)
		v.db.r.QueryRow(`SELECT count(*) FROM records`).Scan(&records)
		return
	}
	empty := func(when string) {
		t.Helper()
		if d, c, u, r := count(); d+c+u+r != 0 {
			t.Fatalf("%s: %d documents, %d chunks, %d uploads, %d records left", when, d, c, u, r)
		}
	}
	wrong := sha256.Sum256([]byte("something else"))
	_, err := v.AddDocument(ctx, bytes.NewReader(randomBytes(3*docChunk)), DocumentInput{SHA256: wrong[:]})
	wantErr(t, err, errDocDigest)
	empty("after a digest mismatch")

	boom := errors.New("connection reset")
	_, err = v.AddDocument(ctx, io.MultiReader(bytes.NewReader(randomBytes(2*chunksPerTx*docChunk)), errReader{boom}), DocumentInput{})
	var pe *policy.Error
	if !errors.As(err, &pe) || pe.Code != "unreadable_source" {
		t.Fatalf("source failing mid-way: %v", err)
	}
	empty("after a failed read")

	_, err = v.AddDocument(ctx, strings.NewReader("x"), DocumentInput{Kind: "Contract!", Date: "1 May", MediaType: "pdf", Title: "a\x00b"})
	if !errors.As(err, &pe) || pe.Code != "invalid_document" || len(pe.Reasons) != 4 {
		t.Fatalf("bad metadata: %v (%+v)", err, pe)
	}
	empty("after bad metadata")

	// A crash mid-upload: the upload row and its chunks are still there.
	v.db.w.Exec(`INSERT INTO document_uploads (id, started) VALUES ('crashed', 0)`)
	v.db.w.Exec(`INSERT INTO document_chunks (doc_id, n, sealed) VALUES ('crashed', 0, x'00')`)
	v.Close()
	v2, err := Open(ctx, dir, []byte(testPass), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer v2.Close()
	v = v2
	empty("after a restart")
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

func TestDocumentDelete(t *testing.T) {
	v, _, _ := newTestVault(t)
	ctx := t.Context()
	a := addDoc(t, v, randomBytes(2*docChunk), DocumentInput{})
	b := addDoc(t, v, randomBytes(2*docChunk), DocumentInput{})
	if err := v.DeleteDocument(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	wantErr(t, v.DeleteDocument(ctx, a.ID), ErrDocumentNotFound)
	// Deleting the metadata record through the records API takes the
	// bytes too.
	if err := v.DeleteRecord(ctx, DocumentsCollection, b.ID, 0); err != nil {
		t.Fatal(err)
	}
	var n int
	v.db.r.QueryRow(`SELECT (SELECT count(*) FROM document_chunks) + (SELECT count(*) FROM documents)`).Scan(&n)
	if n != 0 {
		t.Fatalf("%d rows left after deleting both documents", n)
	}
	if _, err := readDoc(t, v, a.ID); !errors.Is(err, ErrDocumentNotFound) {
		t.Fatalf("read a deleted document: %v", err)
	}
}

// Rotating the record key re-wraps document keys (not their chunks); the
// documents read throughout and after; the old key wraps none.
func TestDocumentKeyRotation(t *testing.T) {
	v, _, _ := newTestVault(t)
	ctx := t.Context()
	content := randomBytes(2*docChunk + 3)
	rec := addDoc(t, v, content, DocumentInput{})
	var before []byte
	v.db.r.QueryRow(`SELECT sealed FROM document_chunks WHERE doc_id = ? AND n = 0`, rec.ID).Scan(&before)
	res, err := v.RotateKeys(ctx, false, true)
	if err != nil || res.RecordsToRewrite != 2 { // the metadata record and the document key
		t.Fatalf("rotate: %+v %v", res, err)
	}
	if got, err := readDoc(t, v, rec.ID); err != nil || !bytes.Equal(got, content) {
		t.Fatalf("read before re-encryption: %v", err)
	}
	if n, err := v.reencryptBatch(ctx, 200); err != nil || n != 2 {
		t.Fatalf("re-encrypt: %d %v", n, err)
	}
	var keyID uint32
	var after []byte
	v.db.r.QueryRow(`SELECT key_id FROM documents WHERE id = ?`, rec.ID).Scan(&keyID)
	v.db.r.QueryRow(`SELECT sealed FROM document_chunks WHERE doc_id = ? AND n = 0`, rec.ID).Scan(&after)
	if keyID != res.RecordKeyID || !bytes.Equal(before, after) {
		t.Fatalf("key id %d (want %d); chunks rewritten: %v", keyID, res.RecordKeyID, !bytes.Equal(before, after))
	}
	if got, err := readDoc(t, v, rec.ID); err != nil || !bytes.Equal(got, content) {
		t.Fatalf("read after re-encryption: %v", err)
	}
	if st, _ := v.KeyStatus(ctx); st.RecordsToRewrite != 0 {
		t.Fatalf("left to rewrite: %d", st.RecordsToRewrite)
	}
}

// Documents travel with backups and exports, and read the same after a
// restore or an import.
func TestDocumentsInBackupAndExport(t *testing.T) {
	v, dir, _ := newTestVault(t)
	ctx := t.Context()
	content := randomBytes(3*docChunk + 5)
	rec := addDoc(t, v, content, DocumentInput{Title: "Lease"})
	backup := filepath.Join(t.TempDir(), "b.db")
	if _, err := Backup(ctx, dir, backup); err != nil {
		t.Fatal(err)
	}
	var exp bytes.Buffer
	if _, err := v.Export(ctx, &exp); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(exp.Bytes(), content[:64]) {
		t.Fatal("the export holds document plaintext")
	}
	check := func(name, d string) {
		t.Helper()
		v2, err := Open(ctx, d, []byte(testPass), Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer v2.Close()
		got, err := readDoc(t, v2, rec.ID)
		if err != nil || !bytes.Equal(got, content) {
			t.Fatalf("%s: %v", name, err)
		}
	}
	d1 := filepath.Join(t.TempDir(), "restored")
	if err := Restore(ctx, backup, d1, []byte(testPass), Options{}); err != nil {
		t.Fatal(err)
	}
	check("restore", d1)
	d2 := filepath.Join(t.TempDir(), "imported")
	if _, err := Import(ctx, bytes.NewReader(exp.Bytes()), d2, []byte(testPass), Options{}); err != nil {
		t.Fatal(err)
	}
	check("import", d2)
}

// An organization reads a document's bytes only with a grant naming the
// field "content" of documents (and its kind, if the grant names kinds);
// each read is audited; other documents and ungranted ones look absent.
func TestOrgReadsDocuments(t *testing.T) {
	v, _, _ := newTestVault(t)
	ctx := t.Context()
	contract := randomBytes(docChunk + 9)
	c := addDoc(t, v, contract, DocumentInput{Kind: "contract", Title: "Phone contract"})
	p := addDoc(t, v, randomBytes(10), DocumentInput{Kind: "payslip"})
	o := newOrg(t)
	grant := func(fields []string, kinds []string) string {
		t.Helper()
		return o.grantFor(t, v, func(c *policy.RequestClaims) {
			c.AuthorizationDetails = []policy.AuthorizationDetail{{Type: policy.DetailType, Collection: DocumentsCollection, Fields: fields, Kinds: kinds}}
		}, Approval{}).AccessToken
	}
	content := func(tok, orgID string) ([]byte, error) {
		pr, hc := o.proof(t, v, "GET", "/v1/data/documents/"+orgID+"/content", tok)
		_, d, err := v.ReadDocument(ctx, Access{Grant: tok, Proof: pr, HTTP: hc}, orgID)
		if err != nil {
			return nil, err
		}
		defer d.Close()
		return io.ReadAll(d)
	}
	orgIDs := func(tok string) map[string]string { // kind -> org id
		page, err := o.read(t, v, tok, DocumentsCollection)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for _, r := range page.Records {
			var k string
			json.Unmarshal(r.Data["kind"], &k)
			out[k] = r.ID
		}
		return out
	}
	all := grant([]string{"title", "kind", ContentField}, nil)
	ids := orgIDs(all)
	if len(ids) != 2 || ids["contract"] == c.ID || ids["payslip"] == p.ID {
		t.Fatalf("org sees %v (ids must be pairwise)", ids)
	}
	got, err := content(all, ids["contract"])
	if err != nil || !bytes.Equal(got, contract) {
		t.Fatalf("org read: %v", err)
	}
	last, _ := v.ListAudit(ctx, 1, "")
	if len(last.Entries) != 1 || last.Entries[0].Event != EvDataRead || last.Entries[0].RecordIDs[0] != c.ID ||
		strings.Join(last.Entries[0].Fields, ",") != ContentField {
		t.Fatalf("last audit entry %+v", last.Entries)
	}
	if _, err := content(all, c.ID); !errors.Is(err, ErrDataNotFound) {
		t.Fatalf("the owner's id: %v", err)
	}

	meta := grant([]string{"title", "kind"}, nil)
	if _, err := content(meta, orgIDs(meta)["contract"]); !errors.Is(err, ErrDataNotFound) {
		t.Fatalf("metadata-only grant read content: %v", err)
	}

	contracts := grant([]string{"kind", ContentField}, []string{"contract"})
	ids = orgIDs(contracts)
	if len(ids) != 1 || ids["contract"] == "" {
		t.Fatalf("kind-limited grant lists %v", ids)
	}
	if _, err := content(contracts, ids["contract"]); err != nil {
		t.Fatal(err)
	}
	payslip := orgIDs(all)["payslip"] // same org, same pairwise id space
	if _, err := content(contracts, payslip); !errors.Is(err, ErrDataNotFound) {
		t.Fatalf("kind outside the grant: %v", err)
	}

	// When the grant ends, the organization owes a receipt naming
	// documents; one naming anything else leaves it missing.
	gs, _ := v.ListGrants(ctx, PageQuery{})
	var gid string
	for _, g := range gs.Grants {
		if g.Details[0].Kinds == nil && len(g.Details[0].Fields) == 3 {
			gid = g.ID
		}
	}
	if _, err := v.Revoke(ctx, gid); err != nil {
		t.Fatal(err)
	}
	receipt := func(deleted ...string) ReceiptResult {
		rc := o.sign(t, policy.TypReceipt, policy.ReceiptClaims{Audience: v.Issuer(), GrantID: gid, Deleted: deleted,
			DeletedAt: v.opts.Now().Unix(), IssuedAt: v.opts.Now().Unix(), ID: newID()})
		res, err := v.SubmitReceipt(ctx, rc)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	if r := receipt("profile"); r.Complete || len(r.Missing) != 1 || r.Missing[0] != DocumentsCollection {
		t.Fatalf("receipt without documents: %+v", r)
	}
	if r := receipt(DocumentsCollection); !r.Complete {
		t.Fatalf("receipt naming documents: %+v", r)
	}
}

// The owner can narrow a grant to named documents: she names them by her
// ids, the grant (and the organization's token) holds the organization's
// pairwise ids, and nothing else of the collection is visible.
func TestGrantByDocumentID(t *testing.T) {
	v, _, _ := newTestVault(t)
	ctx := t.Context()
	c1 := addDoc(t, v, randomBytes(100), DocumentInput{Kind: "contract", Title: "Phone"})
	c2 := addDoc(t, v, randomBytes(100), DocumentInput{Kind: "contract", Title: "Rent"})
	o := newOrg(t)
	asked := []policy.AuthorizationDetail{{Type: policy.DetailType, Collection: DocumentsCollection, Fields: []string{"title", ContentField}}}
	// A request cannot name records.
	_, err := v.SubmitRequest(ctx, o.request(t, v, func(c *policy.RequestClaims) {
		c.AuthorizationDetails = []policy.AuthorizationDetail{{Type: policy.DetailType, Collection: DocumentsCollection, Fields: []string{"title"}, IDs: []string{c1.ID}}}
	}), "")
	if pe := (*policy.Error)(nil); !errors.As(err, &pe) || !strings.Contains(strings.Join(pe.Reasons, " "), "ids are set by the owner") {
		t.Fatalf("request naming ids: %v", err)
	}
	tk, err := v.SubmitRequest(ctx, o.request(t, v, func(c *policy.RequestClaims) { c.AuthorizationDetails = asked }), "")
	if err != nil {
		t.Fatal(err)
	}
	narrowed := []policy.AuthorizationDetail{{Type: policy.DetailType, Collection: DocumentsCollection, Fields: []string{"title", ContentField}, IDs: []string{c1.ID}}}
	if _, err := v.Approve(ctx, tk.RequestID, Approval{Details: narrowed}); err != nil {
		t.Fatal(err)
	}
	pr, hc := o.proof(t, v, "POST", "/v1/token", "")
	tok, err := v.CollectGrant(ctx, tk.RequestID, pr, hc)
	if err != nil {
		t.Fatal(err)
	}
	ids := tok.AuthorizationDetails[0].IDs
	if len(ids) != 1 || ids[0] == c1.ID {
		t.Fatalf("token names %v: the organization's id, never the owner's", ids)
	}
	page, err := o.read(t, v, tok.AccessToken, DocumentsCollection)
	if err != nil || len(page.Records) != 1 || page.Records[0].ID != ids[0] {
		t.Fatalf("listing %+v %v", page, err)
	}
	var title string
	json.Unmarshal(page.Records[0].Data["title"], &title)
	if title != "Phone" {
		t.Fatalf("listed %q", title)
	}
	read := func(orgID string) error {
		pr, hc := o.proof(t, v, "GET", "/v1/data/documents/"+orgID+"/content", tok.AccessToken)
		_, d, err := v.ReadDocument(ctx, Access{Grant: tok.AccessToken, Proof: pr, HTTP: hc}, orgID)
		if err == nil {
			d.Close()
		}
		return err
	}
	if err := read(ids[0]); err != nil {
		t.Fatalf("named document: %v", err)
	}
	req, _ := v.GetRequest(ctx, tk.RequestID)
	if err := read(v.orgRecordID(req.RelationshipID, c2.ID)); !errors.Is(err, ErrDataNotFound) {
		t.Fatalf("the other contract: %v", err)
	}
}

// Chunk batches commit with synchronous=NORMAL on the writer connection;
// the connection must be back to FULL for everyone after them.
func TestChunkBatchesLeaveWriterDurable(t *testing.T) {
	v, _, _ := newTestVault(t)
	addDoc(t, v, randomBytes(3*docChunk), DocumentInput{Title: "x"})
	var mode int
	if err := v.db.w.QueryRow(`PRAGMA synchronous`).Scan(&mode); err != nil || mode != 2 {
		t.Fatalf("writer synchronous = %d (%v), want 2 (FULL)", mode, err)
	}
}
