package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestProgressLine(t *testing.T) {
	now := time.Unix(1000, 0)
	clock := func() time.Time { return now }
	var out bytes.Buffer
	data := bytes.Repeat([]byte("x"), 4<<20)
	p := newProgress(bytes.NewReader(data), &out, "st\x1b[2Jmt.csv", int64(len(data)), clock)
	buf := make([]byte, 1<<20)
	p.Read(buf) // 1 MiB after 1 s
	now = now.Add(time.Second)
	p.Read(buf) // 2 MiB after 1 s: printed
	if got := out.String(); !strings.Contains(got, "\rst\\u001b[2Jmt.csv   50%  2.0 MiB of 4.0 MiB  2.0 MiB/s  ETA 1s") {
		t.Fatalf("line %q", got)
	}
	if strings.Contains(out.String(), "\x1b") {
		t.Fatal("an escape sequence from the file name reached the terminal")
	}
	io.Copy(io.Discard, p)
	if !strings.Contains(out.String(), "100%  4.0 MiB of 4.0 MiB") {
		t.Fatalf("end %q", out.String())
	}
	p.clear()
	if !strings.HasSuffix(out.String(), "\r") {
		t.Fatal("the line is not cleared")
	}
}

// On a terminal, data import shows progress; the summary is unchanged.
func TestDataImportProgressOnTerminal(t *testing.T) {
	c := devVault(t)
	f := filepath.Join(t.TempDir(), "p.vcf")
	os.WriteFile(f, []byte("BEGIN:VCARD\nVERSION:4.0\nFN:P\nEND:VCARD\n"), 0o600)
	var out, errb, tty syncBuffer
	a := c.app(&out, &errb)
	a.tty = &tty
	if code := a.run(t.Context(), []string{"data", "import", f}); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if !strings.Contains(tty.String(), "p.vcf  100%") || !strings.Contains(out.String(), "p.vcf: 1 added") {
		t.Fatalf("tty %q out %q", tty.String(), out.String())
	}
}
