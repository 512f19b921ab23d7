package vault

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pdvault/pdvault/policy"
)

const testPass = "correct horse battery staple"

// clock is a settable clock for tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)} }
func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newTestVault(t *testing.T) (*Vault, string, *clock) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "vault")
	c := newClock()
	v, err := Create(t.Context(), dir, []byte(testPass), Options{Now: c.Now})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	t.Cleanup(func() { v.Close() })
	return v, dir, c
}

// snapshot hashes every file under dir, to prove that nothing changed.
func snapshot(t *testing.T, dir string) map[string][32]byte {
	t.Helper()
	m := map[string][32]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		m[p] = sha256.Sum256(b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func sameSnapshot(a, b map[string][32]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func wantErr(t *testing.T, err error, want *policy.Error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("error = %v, want %s (%s)", err, want.Code, want.Kind)
	}
}

func TestCreateOpenRoundTrip(t *testing.T) {
	v, dir, _ := newTestVault(t)
	ctx := t.Context()
	r, err := v.CreateRecord(ctx, "profile", []byte(`{"name":"Ada","born":"1815-12-10"}`))
	if err != nil {
		t.Fatal(err)
	}
	if r.Version != 1 || r.Collection != "profile" || !policy.ValidateRecordID(r.ID) {
		t.Fatalf("unexpected record %+v", r)
	}
	v.Close()

	v2, err := Open(ctx, dir, []byte(testPass), Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer v2.Close()
	if v2.ID() != v.ID() {
		t.Fatalf("vault id changed: %s != %s", v2.ID(), v.ID())
	}
	got, err := v2.GetRecord(ctx, "profile", r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Data) != `{"born":"1815-12-10","name":"Ada"}` {
		t.Fatalf("data = %s", got.Data)
	}
}

func TestOpenWrongPassphraseChangesNothing(t *testing.T) {
	v, dir, _ := newTestVault(t)
	if _, err := v.CreateRecord(t.Context(), "profile", []byte(`{"a":1}`)); err != nil {
		t.Fatal(err)
	}
	v.Close()
	before := snapshot(t, dir)
	_, err := Open(t.Context(), dir, []byte("not the passphrase"), Options{})
	wantErr(t, err, ErrWrongPassphrase)
	if !sameSnapshot(before, snapshot(t, dir)) {
		t.Fatal("a failed unlock changed files in the vault directory")
	}
}

func TestOpenMissingVault(t *testing.T) {
	_, err := Open(t.Context(), t.TempDir(), []byte(testPass), Options{})
	wantErr(t, err, ErrNoVault)
}

func TestCreateTwiceRefuses(t *testing.T) {
	v, dir, _ := newTestVault(t)
	if _, err := v.CreateRecord(t.Context(), "profile", []byte(`{"a":1}`)); err != nil {
		t.Fatal(err)
	}
	v.Close()
	before := snapshot(t, dir)
	_, err := Create(t.Context(), dir, []byte("another passphrase"), Options{})
	wantErr(t, err, ErrVaultExists)
	if !sameSnapshot(before, snapshot(t, dir)) {
		t.Fatal("a refused init changed files in the vault directory")
	}
	// The original passphrase still opens it.
	v2, err := Open(t.Context(), dir, []byte(testPass), Options{})
	if err != nil {
		t.Fatal(err)
	}
	v2.Close()
}

func TestCreateRefusesWeakPassphraseAndWeakParams(t *testing.T) {
	dir := t.TempDir()
	_, err := Create(t.Context(), dir, []byte("short"), Options{})
	wantErr(t, err, ErrWeakPassphrase)
	weak := DefaultKDFParams()
	weak.Memory = 16 * 1024
	_, err = Create(t.Context(), dir, []byte(testPass), Options{KDF: &weak})
	wantErr(t, err, ErrBadKDFParams)
	if _, err := os.Stat(filepath.Join(dir, DBFile)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("refused Create left a database behind: %v", err)
	}
}

// Parameters above the caps (or below the floor) in a tampered vault are
// refused before Argon2id runs, so they cannot exhaust memory or time.
func TestStoredKDFParamsOutOfBoundsRefused(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*KDFParams)
	}{
		{"memory above cap", func(p *KDFParams) { p.Memory = 4 << 20 }},
		{"time above cap", func(p *KDFParams) { p.Time = 1000 }},
		{"threads above cap", func(p *KDFParams) { p.Threads = 255 }},
		{"memory below floor", func(p *KDFParams) { p.Memory = 8 }},
		{"time below floor", func(p *KDFParams) { p.Time = 1 }},
		{"short salt", func(p *KDFParams) { p.Salt = p.Salt[:4] }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, dir, _ := newTestVault(t)
			m, err := loadMeta(t.Context(), v.db.r)
			if err != nil {
				t.Fatal(err)
			}
			tc.edit(&m.kdf)
			b, _ := json.Marshal(m.kdf)
			if _, err := v.db.w.Exec(`UPDATE meta SET kdf = ?`, string(b)); err != nil {
				t.Fatal(err)
			}
			v.Close()
			_, err = Open(t.Context(), dir, []byte(testPass), Options{})
			wantErr(t, err, ErrBadKDFParams)
		})
	}
}

// No plaintext record content anywhere in the vault directory: database,
// WAL, shared memory, while the vault is open and after it is closed.
func TestNoPlaintextOnDisk(t *testing.T) {
	v, dir, _ := newTestVault(t)
	ctx := t.Context()
	marker := "MARKER-" + newID()
	r, err := v.CreateRecord(ctx, "health", []byte(`{"note":"`+marker+`","`+"field_"+marker[7:]+`":true}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.UpdateRecord(ctx, "health", r.ID, []byte(`{"note":"`+marker+` v2"}`), 0); err != nil {
		t.Fatal(err)
	}
	search := func(when string) { noPlaintext(t, dir, when, marker, marker[7:]) }
	search("while open")
	if _, err := os.Stat(filepath.Join(dir, DBFile+"-wal")); err != nil {
		t.Fatalf("expected a WAL file while open: %v", err)
	}
	v.Close()
	search("after close")
}

// noPlaintext fails if any file under dir holds one of the markers.
func noPlaintext(t *testing.T, dir, when string, markers ...string) {
	t.Helper()
	n := 0
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		n++
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range markers {
			if bytes.Contains(b, []byte(m)) {
				t.Errorf("%s: plaintext marker found in %s", when, filepath.Base(p))
			}
		}
		return nil
	})
	if n == 0 {
		t.Fatalf("%s: no files searched", when)
	}
}

func TestTamperedCiphertextIsAnError(t *testing.T) {
	v, _, _ := newTestVault(t)
	ctx := t.Context()
	a, _ := v.CreateRecord(ctx, "profile", []byte(`{"name":"A"}`))
	b, _ := v.CreateRecord(ctx, "profile", []byte(`{"name":"B"}`))
	sealedOf := func(id string) []byte {
		var s []byte
		if err := v.db.r.QueryRow(`SELECT sealed FROM records WHERE id = ?`, id).Scan(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := v.db.w.Exec(q, args...); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("bit flip", func(t *testing.T) {
		s := sealedOf(a.ID)
		for _, i := range []int{0, 30, len(s) - 1} { // nonce, body, tag
			s2 := bytes.Clone(s)
			s2[i] ^= 1
			exec(`UPDATE records SET sealed = ? WHERE id = ?`, s2, a.ID)
			_, err := v.GetRecord(ctx, "profile", a.ID)
			wantErr(t, err, ErrTampered)
		}
		exec(`UPDATE records SET sealed = ? WHERE id = ?`, s, a.ID)
		if _, err := v.GetRecord(ctx, "profile", a.ID); err != nil {
			t.Fatalf("restored ciphertext should open: %v", err)
		}
	})
	t.Run("truncated", func(t *testing.T) {
		exec(`UPDATE records SET sealed = ? WHERE id = ?`, []byte{1, 2, 3}, b.ID)
		_, err := v.GetRecord(ctx, "profile", b.ID)
		wantErr(t, err, ErrTampered)
	})
	t.Run("moved to another row", func(t *testing.T) {
		c, _ := v.CreateRecord(ctx, "profile", []byte(`{"name":"C"}`))
		exec(`UPDATE records SET sealed = ? WHERE id = ?`, sealedOf(a.ID), c.ID)
		_, err := v.GetRecord(ctx, "profile", c.ID)
		wantErr(t, err, ErrTampered)
	})
	t.Run("moved to another collection", func(t *testing.T) {
		d, _ := v.CreateRecord(ctx, "profile", []byte(`{"name":"D"}`))
		exec(`UPDATE records SET collection = 'health' WHERE id = ?`, d.ID)
		_, err := v.GetRecord(ctx, "health", d.ID)
		wantErr(t, err, ErrTampered)
	})
	t.Run("moved to another version", func(t *testing.T) {
		e, _ := v.CreateRecord(ctx, "profile", []byte(`{"name":"E1"}`))
		v1 := sealedOf(e.ID)
		if _, err := v.UpdateRecord(ctx, "profile", e.ID, []byte(`{"name":"E2"}`), 1); err != nil {
			t.Fatal(err)
		}
		exec(`UPDATE records SET sealed = ? WHERE id = ?`, v1, e.ID) // version stays 2
		_, err := v.GetRecord(ctx, "profile", e.ID)
		wantErr(t, err, ErrTampered)
	})
	t.Run("other key id", func(t *testing.T) {
		f, _ := v.CreateRecord(ctx, "profile", []byte(`{"name":"F"}`))
		exec(`UPDATE records SET key_id = 2 WHERE id = ?`, f.ID)
		_, err := v.GetRecord(ctx, "profile", f.ID)
		wantErr(t, err, ErrTampered)
	})
	t.Run("listing fails too", func(t *testing.T) {
		_, err := v.ListRecords(ctx, "profile", 100, "")
		wantErr(t, err, ErrTampered)
	})
}

func TestRecordCRUD(t *testing.T) {
	v, _, c := newTestVault(t)
	ctx := t.Context()
	r, err := v.CreateRecord(ctx, "transactions", []byte(` {"amount": 12.5, "payee":"Shop"} `))
	if err != nil {
		t.Fatal(err)
	}
	c.Add(90 * time.Second)
	u, err := v.UpdateRecord(ctx, "transactions", r.ID, []byte(`{"amount":13}`), 1)
	if err != nil {
		t.Fatal(err)
	}
	if u.Version != 2 || !u.Created.Equal(r.Created) || u.Updated.Sub(r.Created) != 90*time.Second {
		t.Fatalf("update = %+v", u)
	}
	_, err = v.UpdateRecord(ctx, "transactions", r.ID, []byte(`{"amount":14}`), 1)
	wantErr(t, err, ErrVersionConflict)
	got, err := v.GetRecord(ctx, "transactions", r.ID)
	if err != nil || string(got.Data) != `{"amount":13}` || got.Version != 2 {
		t.Fatalf("after conflict: %+v %v", got, err)
	}
	// The same id in another collection is not found.
	_, err = v.GetRecord(ctx, "profile", r.ID)
	wantErr(t, err, ErrRecordNotFound)
	wantErr(t, v.DeleteRecord(ctx, "transactions", r.ID, 1), ErrVersionConflict)
	if err := v.DeleteRecord(ctx, "transactions", r.ID, 2); err != nil {
		t.Fatal(err)
	}
	_, err = v.GetRecord(ctx, "transactions", r.ID)
	wantErr(t, err, ErrRecordNotFound)
	wantErr(t, v.DeleteRecord(ctx, "transactions", r.ID, 0), ErrRecordNotFound)
	_, err = v.UpdateRecord(ctx, "transactions", r.ID, []byte(`{}`), 0)
	wantErr(t, err, ErrRecordNotFound)
	_, err = v.GetRecord(ctx, "transactions", "not-an-id")
	wantErr(t, err, ErrRecordNotFound)
}

func TestRecordBadInput(t *testing.T) {
	v, _, _ := newTestVault(t)
	ctx := t.Context()
	for _, tc := range []struct {
		coll, body, code string
	}{
		{"Profile", `{}`, "invalid_collection"},
		{"", `{}`, "invalid_collection"},
		{"a/b", `{}`, "invalid_collection"},
		{strings.Repeat("a", 64), `{}`, "invalid_collection"},
		{"profile", `{"a":`, "invalid_json"},
		{"profile", `[1,2]`, "invalid_record"},
		{"profile", `"text"`, "invalid_record"},
		{"profile", `null`, "invalid_record"},
		{"profile", ``, "invalid_record"},
		{"profile", `{"a":1} {"b":2}`, "invalid_json"},
		{"profile", `{"bad key":1}`, "invalid_record"},
	} {
		_, err := v.CreateRecord(ctx, tc.coll, []byte(tc.body))
		if policy.CodeOf(err) != tc.code || policy.KindOf(err) != policy.KindInvalid {
			t.Errorf("CreateRecord(%q, %q) = %v, want %s", tc.coll, tc.body, err, tc.code)
		}
	}
	p, err := v.ListRecords(ctx, "profile", 10, "")
	if err != nil || len(p.Records) != 0 {
		t.Fatalf("bad input stored something: %+v %v", p, err)
	}
}

func TestListPaging(t *testing.T) {
	v, _, _ := newTestVault(t)
	ctx := t.Context()
	var want []string
	for i := range 23 {
		r, err := v.CreateRecord(ctx, "memberships", []byte(`{"n":`+strings.Repeat("1", i+1)+`}`))
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, r.ID)
		if _, err := v.CreateRecord(ctx, "contracts", []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	cursor, pages := "", 0
	for {
		p, err := v.ListRecords(ctx, "memberships", 10, cursor)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, r := range p.Records {
			got = append(got, r.ID)
		}
		if p.Next == "" {
			break
		}
		cursor = p.Next
	}
	if pages != 3 || strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("pages=%d got %d ids, want 23 in creation order", pages, len(got))
	}
	// Exactly one page's worth: no empty trailing page.
	p, err := v.ListRecords(ctx, "memberships", 23, "")
	if err != nil || len(p.Records) != 23 || p.Next != "" {
		t.Fatalf("full page: %d records, next %q, %v", len(p.Records), p.Next, err)
	}
	for _, bad := range []string{"x", "!!!!", encodeCursor(5)[:5], "AAAAAAAAAAAA"} {
		_, err := v.ListRecords(ctx, "memberships", 10, bad)
		wantErr(t, err, ErrBadCursor)
	}
	for _, lim := range []int{-1, 501} {
		_, err := v.ListRecords(ctx, "memberships", lim, "")
		wantErr(t, err, ErrBadLimit)
	}
	p, err = v.ListRecords(ctx, "nothing-here", 0, "")
	if err != nil || len(p.Records) != 0 || p.Next != "" {
		t.Fatalf("empty collection: %+v %v", p, err)
	}
}

func TestConcurrentWritersLoseNothing(t *testing.T) {
	v, _, _ := newTestVault(t)
	ctx := t.Context()
	r, err := v.CreateRecord(ctx, "profile", []byte(`{"n":0}`))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for range 100 {
		wg.Go(func() {
			if _, err := v.CreateRecord(ctx, "transactions", []byte(`{"x":1}`)); err != nil {
				errs <- err
			}
			// An unconditional update always succeeds: writers queue.
			if _, err := v.UpdateRecord(ctx, "profile", r.ID, []byte(`{"n":1}`), 0); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent write failed: %v", err)
	}
	p, _ := v.ListRecords(ctx, "transactions", 500, "")
	got, _ := v.GetRecord(ctx, "profile", r.ID)
	if len(p.Records) != 100 || got.Version != 101 {
		t.Fatalf("records=%d version=%d, want 100 and 101", len(p.Records), got.Version)
	}
}

func TestPassphraseChange(t *testing.T) {
	v, dir, _ := newTestVault(t)
	ctx := t.Context()
	r, _ := v.CreateRecord(ctx, "profile", []byte(`{"name":"Ada"}`))
	sess := v.NewSession()
	m0, _ := loadMeta(ctx, v.db.r)

	wantErr(t, v.ChangePassphrase(ctx, []byte("wrong old passphrase"), []byte("new passphrase 123")), ErrWrongPassphrase)
	wantErr(t, v.ChangePassphrase(ctx, []byte(testPass), []byte("short")), ErrWeakPassphrase)
	if err := v.ChangePassphrase(ctx, []byte(testPass), []byte("new passphrase 123")); err != nil {
		t.Fatal(err)
	}
	m1, _ := loadMeta(ctx, v.db.r)
	if bytes.Equal(m0.kdf.Salt, m1.kdf.Salt) {
		t.Fatal("salt was not renewed")
	}
	wantErr(t, v.Authenticate(sess.Token), ErrNoSession)
	v.Close()

	_, err := Open(ctx, dir, []byte(testPass), Options{})
	wantErr(t, err, ErrWrongPassphrase)
	v2, err := Open(ctx, dir, []byte("new passphrase 123"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer v2.Close()
	got, err := v2.GetRecord(ctx, "profile", r.ID)
	if err != nil || string(got.Data) != `{"name":"Ada"}` {
		t.Fatalf("record after rewrap: %+v %v", got, err)
	}
}

func TestLoginSessionsAndThrottle(t *testing.T) {
	v, _, c := newTestVault(t)
	ctx := t.Context()
	src := LoginSource{Address: "192.0.2.1"}
	s, err := v.Login(ctx, []byte(testPass), src)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Authenticate(s.Token); err != nil {
		t.Fatal(err)
	}
	wantErr(t, v.Authenticate(s.Token+"x"), ErrNoSession)
	wantErr(t, v.Authenticate(""), ErrNoSession)

	for range freeFailures + 1 {
		_, err := v.Login(ctx, []byte("wrong passphrase!"), src)
		wantErr(t, err, ErrWrongPassphrase)
	}
	// The next try, even with the right passphrase, must wait.
	_, err = v.Login(ctx, []byte(testPass), src)
	wantErr(t, err, ErrThrottled)
	var pe *policy.Error
	if !errors.As(err, &pe) || pe.RetryAfter != time.Second {
		t.Fatalf("RetryAfter = %v, want 1s", pe.RetryAfter)
	}
	c.Add(time.Second)
	_, err = v.Login(ctx, []byte("wrong passphrase!"), src)
	wantErr(t, err, ErrWrongPassphrase)
	_, err = v.Login(ctx, []byte(testPass), src)
	if !errors.As(err, &pe) || pe.Code != "slow_down" || pe.RetryAfter != 2*time.Second {
		t.Fatalf("second backoff: %v", err)
	}
	c.Add(2 * time.Second)
	if _, err := v.Login(ctx, []byte(testPass), src); err != nil {
		t.Fatalf("login after backoff: %v", err)
	}
	// Success resets the counter.
	_, err = v.Login(ctx, []byte("wrong passphrase!"), src)
	wantErr(t, err, ErrWrongPassphrase)

	// Sessions expire.
	c.Add(12*time.Hour + time.Second)
	wantErr(t, v.Authenticate(s.Token), ErrNoSession)
	s2 := v.NewSession()
	v.Logout(s2.Token)
	wantErr(t, v.Authenticate(s2.Token), ErrNoSession)
}

func TestExportImportRoundTrip(t *testing.T) {
	v, _, c := newTestVault(t)
	ctx := t.Context()
	var made []Record
	for i, coll := range []string{"profile", "transactions", "health", "memberships", "contracts"} {
		r, err := v.CreateRecord(ctx, coll, []byte(`{"i":`+string(rune('0'+i))+`,"blob":"\u00e9\u0000x"}`))
		if err != nil {
			t.Fatal(err)
		}
		c.Add(time.Minute)
		if i%2 == 0 {
			if r, err = v.UpdateRecord(ctx, coll, r.ID, []byte(`{"i":"updated"}`), 0); err != nil {
				t.Fatal(err)
			}
		}
		made = append(made, r)
	}
	var buf bytes.Buffer
	st, err := v.Export(ctx, &buf)
	if err != nil {
		t.Fatal(err)
	}
	if st.Records != 5 {
		t.Fatalf("exported %d records", st.Records)
	}
	if bytes.Contains(buf.Bytes(), []byte("updated")) {
		t.Fatal("export holds plaintext")
	}
	file := buf.Bytes()

	dir2 := filepath.Join(t.TempDir(), "restored")
	st2, err := Import(ctx, bytes.NewReader(file), dir2, []byte(testPass), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if st2 != st {
		t.Fatalf("import stats %+v != export stats %+v", st2, st)
	}
	v2, err := Open(ctx, dir2, []byte(testPass), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer v2.Close()
	if v2.ID() != v.ID() {
		t.Fatal("vault id not kept")
	}
	for _, r := range made {
		got, err := v2.GetRecord(ctx, r.Collection, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		a, _ := json.Marshal(got)
		b, _ := json.Marshal(r)
		if string(a) != string(b) {
			t.Fatalf("restored %s\n      want %s", a, b)
		}
	}
	// The restored vault works for writes too.
	if _, err := v2.CreateRecord(ctx, "profile", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	files, _ := os.ReadDir(dir2)
	var names []string
	for _, f := range files {
		names = append(names, f.Name())
	}
	sort.Strings(names)
	if strings.Contains(strings.Join(names, " "), "importing") {
		t.Fatalf("temporary import file left behind: %v", names)
	}

	t.Run("into an existing vault", func(t *testing.T) {
		_, err := Import(ctx, bytes.NewReader(file), dir2, []byte(testPass), Options{})
		wantErr(t, err, ErrVaultExists)
	})
	t.Run("wrong passphrase", func(t *testing.T) {
		d := filepath.Join(t.TempDir(), "x")
		_, err := Import(ctx, bytes.NewReader(file), d, []byte("wrong passphrase"), Options{})
		wantErr(t, err, ErrWrongPassphrase)
	})
	hdrEnd := bytes.IndexByte(file[len(exportMagic):], '\n') + len(exportMagic) + 1
	damaged := map[string][]byte{
		"empty":           {},
		"not an export":   []byte("hello\n"),
		"truncated":       file[:len(file)-10],
		"cut after frame": file[:hdrEnd+100],
		"bit flip in body": func() []byte {
			b := bytes.Clone(file)
			b[len(b)-20] ^= 0x40
			return b
		}(),
		"extra data": append(bytes.Clone(file), 0),
		"header vault id changed": func() []byte {
			return bytes.Replace(bytes.Clone(file), []byte(v.ID()), []byte(newID()), 1)
		}(),
	}
	for name, b := range damaged {
		t.Run(name, func(t *testing.T) {
			d := filepath.Join(t.TempDir(), "x")
			_, err := Import(ctx, bytes.NewReader(b), d, []byte(testPass), Options{})
			if name == "header vault id changed" {
				// The master key wrapping binds the vault id.
				wantErr(t, err, ErrWrongPassphrase)
			} else {
				wantErr(t, err, ErrBadExport)
			}
			if _, err := os.Stat(filepath.Join(d, DBFile)); !errors.Is(err, fs.ErrNotExist) {
				t.Fatal("a failed import left a vault behind")
			}
			if ents, _ := os.ReadDir(d); len(ents) != 0 {
				t.Fatalf("a failed import left files: %v", ents)
			}
		})
	}
}

func TestRecordIDsAreUniqueAndWellFormed(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id := newID()
		if !policy.ValidateRecordID(id) || seen[id] {
			t.Fatalf("bad or repeated id %q", id)
		}
		seen[id] = true
	}
}

// Concurrent wrong guesses used to all be evaluated (the back-off was
// checked before Argon2id and counted after); now each attempt is counted
// before it derives, so at most freeFailures+1 run.
func TestLoginReservesBeforeDeriving(t *testing.T) {
	v, _, _ := newTestVault(t)
	src := LoginSource{Address: "192.0.2.7"}
	var wrong, throttled atomic.Int32
	var wg sync.WaitGroup
	for range 24 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := v.Login(t.Context(), []byte("wrong passphrase!"), src)
			switch {
			case errors.Is(err, ErrWrongPassphrase):
				wrong.Add(1)
			case errors.Is(err, ErrThrottled):
				throttled.Add(1)
			default:
				t.Errorf("unexpected %v", err)
			}
		}()
	}
	wg.Wait()
	if wrong.Load() > freeFailures+1 || throttled.Load() < 24-freeFailures-1 {
		t.Fatalf("%d guesses evaluated, %d throttled", wrong.Load(), throttled.Load())
	}
}

// Throttling is per source, with a global budget of failures that a
// device which logged in before is exempt from: a guesser cannot lock the
// owner out.
func TestLoginThrottlePerSourceGlobalAndDevice(t *testing.T) {
	c := newClock()
	const budget = 8
	v, err := Create(t.Context(), filepath.Join(t.TempDir(), "v"), []byte(testPass), Options{Now: c.Now, LoginFailuresPerMinute: budget})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	ctx := t.Context()
	owner := LoginSource{Address: "192.0.2.10"}
	res, err := v.Login(ctx, []byte(testPass), owner)
	if err != nil || res.Device == "" {
		t.Fatalf("login: %+v %v", res, err)
	}
	// One source throttled does not throttle another.
	for range freeFailures + 1 {
		v.Login(ctx, []byte("wrong passphrase!"), LoginSource{Address: "198.51.100.1"})
	}
	if _, err := v.Login(ctx, []byte("x"), LoginSource{Address: "198.51.100.1"}); !errors.Is(err, ErrThrottled) {
		t.Fatalf("the guessing source: %v", err)
	}
	if _, err := v.Login(ctx, []byte(testPass), owner); err != nil {
		t.Fatalf("another source: %v", err)
	}
	// Many sources spend the global budget...
	for i := range budget {
		v.Login(ctx, []byte("wrong passphrase!"), LoginSource{Address: fmt.Sprintf("203.0.113.%d", i)})
	}
	if _, err := v.Login(ctx, []byte(testPass), LoginSource{Address: "192.0.2.99"}); !errors.Is(err, ErrThrottled) {
		t.Fatalf("a fresh source after the global budget is spent: %v", err)
	}
	// ...but the owner's device gets in, and keeps its token.
	again, err := v.Login(ctx, []byte(testPass), LoginSource{Address: "192.0.2.99", Device: res.Device})
	if err != nil || again.Device != res.Device {
		t.Fatalf("the owner's device: %+v %v", again, err)
	}
	// A made-up device token is no device.
	if _, err := v.Login(ctx, []byte(testPass), LoginSource{Address: "192.0.2.98", Device: "made-up"}); !errors.Is(err, ErrThrottled) {
		t.Fatalf("unknown device: %v", err)
	}
	c.Add(time.Minute)
	if _, err := v.Login(ctx, []byte(testPass), LoginSource{Address: "192.0.2.98"}); err != nil {
		t.Fatalf("after the budget refills: %v", err)
	}
}

// A login that proved the old passphrase while it was being changed gets
// no session: sessions are only issued against the current passphrase.
func TestLoginRacingAPassphraseChange(t *testing.T) {
	v, _, _ := newTestVault(t)
	ctx := t.Context()
	_, gen, err := v.checkPassphrase(ctx, []byte(testPass), LoginSource{Address: "192.0.2.1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := v.ChangePassphrase(ctx, []byte(testPass), []byte("a brand new passphrase")); err != nil {
		t.Fatal(err)
	}
	if _, err := v.sessions.issue(gen); !errors.Is(err, ErrPassphraseChanged) {
		t.Fatalf("session from before the change: %v", err)
	}
}

// New vaults use 16 KiB pages (fewer overflow pages per document chunk).
func TestNewVaultPageSize(t *testing.T) {
	v, _, _ := newTestVault(t)
	var ps int
	if err := v.db.r.QueryRow(`PRAGMA page_size`).Scan(&ps); err != nil || ps != defaultPageSize || defaultPageSize != 16384 {
		t.Fatalf("page size %d (%v)", ps, err)
	}
}
