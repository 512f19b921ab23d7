package vault

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pdvault/pdvault/policy"
)

// splitExport cuts a v2 export into its head (magic, header, MAC line)
// and its chunks (each with its length prefix).
func splitExport(t *testing.T, file []byte) ([]byte, [][]byte) {
	t.Helper()
	i := bytes.Index(file, []byte("\n--- "))
	j := bytes.IndexByte(file[i+1:], '\n') + i + 2
	head, rest := file[:j], file[j:]
	var chunks [][]byte
	for len(rest) > 0 {
		n := int(binary.BigEndian.Uint32(rest[:4]))
		chunks = append(chunks, rest[:4+n])
		rest = rest[4+n:]
	}
	return head, chunks
}

func joinExport(head []byte, chunks ...[]byte) []byte {
	return append(bytes.Clone(head), bytes.Join(chunks, nil)...)
}

func importErr(t *testing.T, file []byte) error {
	t.Helper()
	d := filepath.Join(t.TempDir(), "x")
	_, err := Import(t.Context(), bytes.NewReader(file), d, []byte(testPass), Options{})
	if err != nil {
		if ents, _ := os.ReadDir(d); len(ents) != 0 {
			t.Fatalf("a failed import left files: %v", ents)
		}
	}
	return err
}

// The attacks on the v1 format, each refused by v2: two exports made
// under the same passphrase used to share a key, so a frame of an older
// export opened at the same place in a newer one, and one record could be
// rolled back inside an otherwise newer export.
func TestExportV2RefusesSplicing(t *testing.T) {
	v, _, c := newTestVault(t)
	ctx := t.Context()
	r, _ := v.CreateRecord(ctx, "profile", []byte(`{"name":"Ada","salary":"100"}`))
	var a bytes.Buffer
	if _, err := v.Export(ctx, &a); err != nil {
		t.Fatal(err)
	}
	c.Add(time.Minute)
	if _, err := v.UpdateRecord(ctx, "profile", r.ID, []byte(`{"name":"Ada","salary":"200"}`), 0); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if _, err := v.Export(ctx, &b); err != nil {
		t.Fatal(err)
	}
	ha, ca := splitExport(t, a.Bytes())
	hb, cb := splitExport(t, b.Bytes())
	if bytes.Equal(ha, hb) {
		t.Fatal("two exports have the same header (no per-file nonce)")
	}
	// Every chunk differs in bytes (another key): splice each of A's into
	// B at the same place.
	for i := range min(len(ca), len(cb)) {
		spliced := append([][]byte{}, cb...)
		spliced[i] = ca[i]
		if err := importErr(t, joinExport(hb, spliced...)); !errors.Is(err, ErrBadExport) || !strings.Contains(err.Error(), "from another export") {
			t.Fatalf("chunk %d of an older export spliced in: %v", i, err)
		}
	}
	if err := importErr(t, joinExport(hb)); !errors.Is(err, ErrBadExport) {
		t.Fatalf("no chunks: %v", err)
	}
	for name, file := range map[string][]byte{
		"reordered":                  joinExport(hb, append([][]byte{cb[1], cb[0]}, cb[2:]...)...),
		"end chunk dropped":          joinExport(hb, cb[:len(cb)-1]...),
		"a chunk appended after end": joinExport(hb, append(append([][]byte{}, cb...), cb[len(cb)-1])...),
		"header of A, chunks of B":   joinExport(ha, cb...),
	} {
		if err := importErr(t, file); !errors.Is(err, ErrBadExport) {
			t.Errorf("%s: got %v", name, err)
		}
	}
	// A header field the master-key wrapping does not cover (created) is
	// still covered by the header MAC, checked before any chunk is read.
	var h exportHeader
	line := bytes.SplitN(hb, []byte("\n"), 3)[1]
	json.Unmarshal(line, &h)
	h.Created++
	changed, _ := json.Marshal(h)
	file := bytes.Replace(b.Bytes(), line, changed, 1)
	if err := importErr(t, file); !errors.Is(err, ErrBadExport) || !strings.Contains(err.Error(), "header failed its integrity check") {
		t.Fatalf("header changed: %v", err)
	}
	// And B as it is imports, with the newer record.
	d := filepath.Join(t.TempDir(), "ok")
	st, err := Import(ctx, bytes.NewReader(b.Bytes()), d, []byte(testPass), Options{})
	if err != nil || st.Format != 2 {
		t.Fatalf("import: %+v %v", st, err)
	}
}

// An export whose audit log does not verify is refused on import, as a
// backup is on restore.
func TestImportVerifiesTheAuditLog(t *testing.T) {
	v, _ := populatedLog(t)
	if _, err := v.db.w.Exec(`UPDATE audit SET entry = replace(entry, '"allowed"', '"denied"') WHERE seq = 3`); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := v.Export(t.Context(), &buf); err != nil {
		t.Fatal(err)
	}
	err := importErr(t, buf.Bytes())
	if !errors.Is(err, ErrBadExport) || !strings.Contains(err.Error(), "audit log does not verify") {
		t.Fatalf("got %v", err)
	}
}

// A v1 export (made by the release before, from the schema-5 vault in
// testdata) still imports, is upgraded, and says it was format 1.
func TestImportReadsV1Exports(t *testing.T) {
	file, err := os.ReadFile(filepath.Join("testdata", "schema5", "export-v1.pdv"))
	if err != nil {
		t.Fatal(err)
	}
	d := filepath.Join(t.TempDir(), "v1")
	st, err := Import(t.Context(), bytes.NewReader(file), d, []byte(testPass), Options{})
	if err != nil || st.Format != 1 || st.Records != 3 {
		t.Fatalf("import v1: %+v %v", st, err)
	}
	v, err := Open(t.Context(), d, []byte(testPass), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if rep, err := v.VerifyAudit(t.Context()); err != nil || !rep.OK {
		t.Fatalf("audit: %+v %v", rep, err)
	}
}

// An export imports whole: every row of every table, including empty
// blobs (an intent's sealed column is empty by design), which the export's
// JSON once dropped, so that a vault with an intent could not be restored
// from its export (found by the README tour test).
func TestExportImportKeepsEveryRow(t *testing.T) {
	v, _, _ := newTestVault(t)
	ctx := t.Context()
	v.CreateRecord(ctx, "profile", []byte(`{"name":"Ada"}`))
	if _, err := v.PublishIntent(ctx, policy.IntentInput{Title: "Looking for: a city bike"}); err != nil {
		t.Fatal(err)
	}
	if _, err := v.AddDocument(ctx, strings.NewReader("%PDF-1.4\n"), DocumentInput{FileName: "lease.pdf", Kind: "contract"}); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := v.Export(ctx, &buf); err != nil {
		t.Fatal(err)
	}
	d := filepath.Join(t.TempDir(), "imported")
	st, err := Import(ctx, bytes.NewReader(buf.Bytes()), d, []byte(testPass), Options{})
	if err != nil {
		t.Fatalf("import of a vault with an intent and a document: %v", err)
	}
	w, err := Open(ctx, d, []byte(testPass), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	tables, err := tableNames(ctx, v.db.r)
	if err != nil {
		t.Fatal(err)
	}
	var rows int64
	for _, tb := range tables {
		var a, b int64
		v.db.r.QueryRow(`SELECT count(*) FROM ` + quoteIdent(tb)).Scan(&a)
		w.db.r.QueryRow(`SELECT count(*) FROM ` + quoteIdent(tb)).Scan(&b)
		if a != b {
			t.Errorf("table %s: %d rows, %d after import", tb, a, b)
		}
		rows += a
	}
	if st.Rows == 0 || rows == 0 {
		t.Fatalf("nothing compared: %+v", st)
	}
	ins, err := w.OwnerIntents(ctx)
	if err != nil || len(ins) != 1 {
		t.Fatalf("intents after import: %v %v", ins, err)
	}
}
