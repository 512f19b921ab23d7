package vault

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestSigningKeyRotation(t *testing.T) {
	v, _, c := newTestVault(t)
	ctx := t.Context()
	v.CreateRecord(ctx, "profile", []byte(`{"name":"Ada","email":"a@x"}`))
	o := newOrg(t)
	oldTok := o.grant(t, v, Approval{}) // 1 hour
	// Enough reads for a signed checkpoint under the old key.
	for range checkpointEvery {
		if _, err := o.read(t, v, oldTok.AccessToken, "profile"); err != nil {
			t.Fatal(err)
		}
	}
	oldKid := v.signer().kid
	res, err := v.RotateKeys(ctx, true, false)
	if err != nil || res.RetiredKey != oldKid || res.SigningKey == oldKid {
		t.Fatalf("rotate: %+v %v", res, err)
	}
	newTok := o.grant(t, v, Approval{})
	kidOf := func(tok string) string {
		if _, err := v.verifyGrant(tok); err != nil {
			t.Fatal(err)
		}
		kid, err := parseHeaderKid(tok)
		if err != nil {
			t.Fatal(err)
		}
		return kid
	}
	if kidOf(newTok.AccessToken) != res.SigningKey {
		t.Fatal("new grants are not signed with the new key")
	}
	// The old grant still reads, and both keys are published.
	if _, err := o.read(t, v, oldTok.AccessToken, "profile"); err != nil {
		t.Fatalf("old grant after rotation: %v", err)
	}
	published := func() map[string]bool {
		st, _ := v.KeyStatus(ctx)
		m := map[string]bool{}
		for _, k := range st.PublishedKeys {
			m[k] = true
		}
		return m
	}
	if p := published(); !p[oldKid] || !p[res.SigningKey] {
		t.Fatalf("published %v", p)
	}
	// Once its grants have ended (and a day has passed) the old key leaves
	// the JWKS, but old checkpoints still verify.
	c.Add(25 * time.Hour)
	if p := published(); p[oldKid] || !p[res.SigningKey] {
		t.Fatalf("published after the old grants ended: %v", p)
	}
	rep, err := v.VerifyAudit(ctx)
	if err != nil || !rep.OK || rep.Checkpoints == 0 {
		t.Fatalf("audit after rotation: %+v %v", rep, err)
	}
}

func parseHeaderKid(tok string) (string, error) {
	var h struct {
		Kid string `json:"kid"`
	}
	parts := splitDots(tok)
	b, err := b64.DecodeString(parts[0])
	if err != nil {
		return "", err
	}
	if err := jsonUnmarshal(b, &h); err != nil {
		return "", err
	}
	return h.Kid, nil
}

func TestRecordKeyRotation(t *testing.T) {
	v, dir, c := newTestVault(t)
	ctx := t.Context()
	var ids []string
	for i := range 450 {
		r, err := v.CreateRecord(ctx, "transactions", []byte(fmt.Sprintf(`{"i":%d}`, i)))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.ID)
	}
	res, err := v.RotateKeys(ctx, false, true)
	if err != nil || res.RecordKeyID != 2 || res.RecordsToRewrite != 450 {
		t.Fatalf("rotate: %+v %v", res, err)
	}
	// New writes use the new key; old records still read.
	fresh, _ := v.CreateRecord(ctx, "transactions", []byte(`{"new":true}`))
	var kid uint32
	v.db.r.QueryRow(`SELECT key_id FROM records WHERE id = ?`, fresh.ID).Scan(&kid)
	if kid != 2 {
		t.Fatalf("new record under key %d", kid)
	}
	if _, err := v.GetRecord(ctx, "transactions", ids[0]); err != nil {
		t.Fatal(err)
	}
	// Re-encrypt part of it, then "crash" (close) and reopen: it resumes.
	if n, err := v.reencryptBatch(ctx, 200); err != nil || n != 200 {
		t.Fatalf("batch: %d %v", n, err)
	}
	v.Close()
	v2, err := Open(ctx, dir, []byte(testPass), Options{Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer v2.Close()
	if left, _ := v2.recordsToRewrite(ctx); left != 250 {
		t.Fatalf("after a crash, %d left, want 250", left)
	}
	// Reads and writes go on while the rest is rewritten.
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			n, err := v2.reencryptBatch(ctx, 50)
			if err != nil {
				t.Error(err)
				return
			}
			if n == 0 {
				return
			}
		}
	})
	for _, id := range ids {
		if _, err := v2.GetRecord(ctx, "transactions", id); err != nil {
			t.Fatalf("read during re-encryption: %v", err)
		}
	}
	if _, err := v2.UpdateRecord(ctx, "transactions", ids[7], []byte(`{"i":"changed"}`), 0); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if left, _ := v2.recordsToRewrite(ctx); left != 0 {
		t.Fatalf("%d records left under the old key", left)
	}
	for _, id := range ids {
		if _, err := v2.GetRecord(ctx, "transactions", id); err != nil {
			t.Fatalf("after re-encryption: %v", err)
		}
	}
	// The rotated key survives an export and import.
	out := filepath.Join(t.TempDir(), "x.pdv")
	f, _ := os.Create(out)
	if _, err := v2.Export(ctx, f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	f, _ = os.Open(out)
	defer f.Close()
	d3 := filepath.Join(t.TempDir(), "r")
	if _, err := Import(ctx, f, d3, []byte(testPass), Options{}); err != nil {
		t.Fatal(err)
	}
	v3, err := Open(ctx, d3, []byte(testPass), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer v3.Close()
	if got, err := v3.GetRecord(ctx, "transactions", fresh.ID); err != nil || string(got.Data) != `{"new":true}` {
		t.Fatalf("record under the rotated key after import: %v", err)
	}
}

// A backup taken while writes go on is one consistent snapshot that
// restores, opens and verifies.
func TestOnlineBackupAndRestore(t *testing.T) {
	v, dir, _ := newTestVault(t)
	ctx := t.Context()
	o := newOrg(t)
	v.CreateRecord(ctx, "profile", []byte(`{"name":"Ada"}`))
	tok := o.grant(t, v, Approval{})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			v.CreateRecord(ctx, "transactions", []byte(fmt.Sprintf(`{"i":%d}`, i)))
			o.read(t, v, tok.AccessToken, "profile")
		}
	})
	time.Sleep(100 * time.Millisecond)
	out := filepath.Join(t.TempDir(), "backup.db")
	info, err := Backup(ctx, dir, out)
	close(stop)
	wg.Wait()
	if err != nil || info.Bytes == 0 {
		t.Fatalf("backup: %+v %v", info, err)
	}
	if _, err := Backup(ctx, dir, out); !errorsIs(err, ErrBackupExists) {
		t.Fatalf("second backup to the same file: %v", err)
	}
	d2 := filepath.Join(t.TempDir(), "restored")
	if err := Restore(ctx, out, d2, []byte("wrong passphrase"), Options{}); !errorsIs(err, ErrWrongPassphrase) {
		t.Fatalf("restore with a wrong passphrase: %v", err)
	}
	if _, err := os.Stat(filepath.Join(d2, DBFile)); err == nil {
		t.Fatal("a failed restore left a vault")
	}
	if err := Restore(ctx, out, d2, []byte(testPass), Options{}); err != nil {
		t.Fatal(err)
	}
	if err := Restore(ctx, out, d2, []byte(testPass), Options{}); !errorsIs(err, ErrVaultExists) {
		t.Fatalf("restore over a vault: %v", err)
	}
	v2, err := Open(ctx, d2, []byte(testPass), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer v2.Close()
	p, _ := v2.ListRecords(ctx, "transactions", 500, "")
	if len(p.Records) == 0 {
		t.Fatal("the backup holds no records")
	}
	// A damaged backup is refused.
	b, _ := os.ReadFile(out)
	for i := 4096; i < len(b) && i < 4096*6; i++ {
		b[i] ^= 0xff
	}
	bad := filepath.Join(t.TempDir(), "bad.db")
	os.WriteFile(bad, b, 0o600)
	if err := Restore(ctx, bad, filepath.Join(t.TempDir(), "x"), []byte(testPass), Options{}); err == nil {
		t.Fatal("a damaged backup was restored")
	}
}

var b64 = base64.RawURLEncoding

func splitDots(s string) []string { return strings.Split(s, ".") }

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

func errorsIs(err, target error) bool { return errors.Is(err, target) }
