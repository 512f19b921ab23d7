//go:build diskfull

package api

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pdvault/pdvault/vault"
)

// A full disk, for real: the vault lives on a 3 MiB tmpfs. Writes fail with
// 507 and leave nothing half-written; reads keep working; once space is
// freed, writes work again. Needs root (to mount); scripts/test.sh runs it
// with: go test -tags diskfull -run TestDiskFull ./api
func TestDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("mounting a tmpfs needs root: run as root (CI does), or sudo")
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", mnt).Run() })

	dir := filepath.Join(mnt, "v")
	v, err := vault.Create(t.Context(), dir, []byte(testPass), vault.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	e := newEnvFor(t, v)
	// Take most of the room with a file we can delete later.
	filler := filepath.Join(mnt, "filler")
	if err := os.WriteFile(filler, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	body := `{"blob":"` + strings.Repeat("x", 16<<10) + `"}`
	var created []string
	var last resp
	for i := 0; i < 1000; i++ {
		last = e.do("POST", "/v1/owner/records/files", e.token, strings.NewReader(body))
		if last.status != 201 {
			break
		}
		var rec vault.Record
		last.json(t, &rec)
		created = append(created, rec.ID)
	}
	if last.status != 507 || last.errCode(t) != "insufficient_storage" {
		t.Fatalf("when the disk filled: %d %s", last.status, last.body)
	}
	if len(created) == 0 {
		t.Fatal("the disk was full from the start; nothing was tested")
	}
	// Nothing partial: exactly the acknowledged records are there, and they read.
	p, err := v.ListRecords(t.Context(), "files", 500, "")
	if err != nil || len(p.Records) != len(created) {
		t.Fatalf("after the failure: %d records listed, %d acknowledged, %v", len(p.Records), len(created), err)
	}
	if r := e.do("GET", "/v1/owner/records/files/"+created[0], e.token, nil); r.status != 200 {
		t.Fatalf("read on a full disk: %d", r.status)
	}
	// Free the space: writes work again.
	os.Remove(filler)
	if r := e.do("POST", "/v1/owner/records/files", e.token, strings.NewReader(body)); r.status != 201 {
		t.Fatalf("after freeing space: %d %s", r.status, r.body)
	}
	if res, err := v.IntegrityCheck(t.Context()); err != nil || res != "ok" {
		t.Fatalf("integrity: %q %v", res, err)
	}
	rep, err := v.VerifyAudit(t.Context())
	if err != nil || !rep.OK {
		t.Fatalf("audit: %+v %v", rep, err)
	}
}
