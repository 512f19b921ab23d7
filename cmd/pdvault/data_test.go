package main

import (
	"context"
	fx "github.com/pdvault/pdvault/internal/fixtures"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// devVault serves a throwaway dev vault and returns a CLI set up to talk
// to it.
func devVault(t *testing.T) *cli {
	t.Helper()
	c := &cli{t: t, env: map[string]string{}}
	var out, errb syncBuffer
	a := c.app(&out, &errb)
	ctx, cancel := context.WithCancel(t.Context())
	urlc := make(chan string, 1)
	a.listening = func(u string) { urlc <- u }
	done := make(chan int, 1)
	go func() { done <- a.run(ctx, []string{"serve", "--dev", "--addr", "127.0.0.1:0"}) }()
	url := <-urlc
	t.Cleanup(func() { cancel(); <-done })
	var token string
	for _, line := range strings.Split(out.String(), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "owner token" {
			token = strings.TrimSpace(v)
		}
	}
	return &cli{t: t, env: map[string]string{"PDVAULT_ADDR": url, "PDVAULT_TOKEN": token}}
}

func fixtureDir(t *testing.T) string { return fx.Path(t) }

func TestDataImportCLI(t *testing.T) {
	c := devVault(t)
	fx := fixtureDir(t)
	files := []string{filepath.Join(fx, "vcard", "ez-vcard-fullcontact.vcf"), filepath.Join(fx, "vcard", "ez-vcard-gmail-single2.vcf")}

	expect(t, c.run(append([]string{"data", "import", "--dry-run"}, files...)...), 0, "")
	r := c.run("record", "list", "contacts")
	if strings.Contains(r.stdout, "provenance") {
		t.Fatalf("dry run kept records: %s", r.stdout)
	}
	// Flags may come after the files.
	r = c.run(append(append([]string{"data", "import"}, files...), "--collection", "contacts")...)
	expect(t, r, 0, "")
	if strings.Count(r.stdout, ": 1 added, 0 duplicates (vcard -> contacts") != 2 || strings.Count(r.stdout, "original kept as document ") != 2 {
		t.Fatalf("summary: %q", r.stdout)
	}
	r = c.run("data", "import", files[0])
	expect(t, r, 0, "")
	if !strings.Contains(r.stdout, "0 added, 1 duplicates") {
		t.Fatalf("second import: %q", r.stdout)
	}
	r = c.run("record", "list", "contacts")
	if strings.Count(r.stdout, `"importer": "vcard"`) != 2 || !strings.Contains(r.stdout, `"source": "ez-vcard-gmail-single2.vcf"`) {
		t.Fatalf("records: %s", r.stdout)
	}

	// A bad file among good ones: named, with where and what; the others
	// still import; exit 1.
	bad := filepath.Join(t.TempDir(), "broken.vcf")
	os.WriteFile(bad, []byte("BEGIN:VCARD\nVERSION:4.0\nFN:X\nEND:VCARD\nBEGIN:VCARD\nVERSION:9\nFN:Y\nEND:VCARD\n"), 0o600)
	good := filepath.Join(t.TempDir(), "good.vcf")
	os.WriteFile(good, []byte("BEGIN:VCARD\nVERSION:4.0\nFN:Zed\nEND:VCARD\n"), 0o600)
	r = c.run("data", "import", bad, good)
	expect(t, r, 1, "broken.vcf: vcard: card 2: VERSION is not 2.1, 3.0 or 4.0 (vcard_bad_version)")
	if !strings.Contains(r.stdout, "good.vcf: 1 added") || !strings.Contains(r.stderr, "1 of 2 files not imported") {
		t.Fatalf("mixed: %+v", r)
	}
	expect(t, c.run("data", "import", filepath.Join(t.TempDir(), "missing.vcf")), 1, "missing.vcf: no such file")
	expect(t, c.run("data", "import"), 2, "needs at least one FILE")
	expect(t, c.run("data", "frobnicate"), 2, "unknown data subcommand")
	r = c.run("data", "formats")
	expect(t, r, 0, "")
	if !strings.Contains("\n"+r.stdout, "\nofx ") || !strings.Contains("\n"+r.stdout, "\nvcard ") {
		t.Fatalf("formats: %q", r.stdout)
	}
	expect(t, c.run("data", "-h"), 0, "")

	// A CSV layout no profile knows, named with --map after the file.
	odd := filepath.Join(t.TempDir(), "odd.csv")
	os.WriteFile(odd, []byte("Tag|Summe\n31/12/2026|-4,50\n"), 0o600)
	expect(t, c.run("data", "import", odd), 1, "format_not_detected")
	r = c.run("data", "import", odd, "--format", "csv", "--discard-original", "--map", "date=Tag,amount=Summe,dateformat=02/01/2006,delimiter=|")
	expect(t, r, 0, "")
	if !strings.Contains(r.stdout, "odd.csv: 1 added, 0 duplicates (csv -> transactions") || strings.Contains(r.stdout, "original kept") {
		t.Fatalf("mapped csv: %+v", r)
	}
}

func TestAgreementsCLI(t *testing.T) {
	c := devVault(t)
	expect(t, c.run("agreements", "export"), 2, "takes one agreement record ID")
	expect(t, c.run("agreements", "export", "aaaaaaaaaaaaaaaaaaaaaaaaaa"), 1, "not_found")
	expect(t, c.run("agreements", "frob", "x"), 2, "unknown agreements subcommand")
	r := c.run("agreements", "-h")
	expect(t, r, 0, "")
	if !strings.Contains(r.stdout, "dispute bundle") {
		t.Fatalf("help: %q", r.stdout)
	}
}
