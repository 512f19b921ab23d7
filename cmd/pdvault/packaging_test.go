package main

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The systemd unit in packaging/ is checked by systemd's own tool
// (installed by scripts/test.sh): no unknown or misspelt directive, and a
// hardening ("exposure") score of at most 2.0 of 10.
func TestSystemdUnit(t *testing.T) {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatal("systemd-analyze is not installed (scripts/test.sh installs the systemd package)")
	}
	unit, err := os.ReadFile("../../packaging/pdvault.service")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Type=notify", "WatchdogSec=", "ProtectSystem=strict", "NoNewPrivileges=yes", "User=pdvault", "LoadCredential=passphrase:", "--config /etc/pdvault/pdvault.toml"} {
		if !strings.Contains(string(unit), want) {
			t.Fatalf("the unit lacks %q", want)
		}
	}
	// verify wants ExecStart's program to exist: any executable will do.
	exe, _ := os.Executable()
	p := filepath.Join(t.TempDir(), "pdvault.service")
	os.WriteFile(p, []byte(strings.ReplaceAll(string(unit), "/usr/local/bin/pdvault", exe)), 0o644)
	out, err := exec.Command(sa, "verify", p).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	// The threshold is on systemd's internal 0-100 scale (20 = 2.0).
	out, err = exec.Command(sa, "security", "--offline=true", "--threshold=20", p).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze security: exposure above 2.0 (%v)\n%s", err, out)
	}
}

// The example config in packaging/ is valid: every key known, every value
// well-formed.
func TestExampleConfig(t *testing.T) {
	c := &cli{t: t, env: map[string]string{"PDVAULT_PASSPHRASE": testPass}}
	dir := initVault(t, c)
	c.env["PDVAULT_DIR"] = dir // the example's /var/lib/pdvault is not here
	r := c.run("config", "check", "--config", "../../packaging/pdvault.toml", "--backup-dir", t.TempDir())
	expect(t, r, 0, "")
	for _, want := range []string{"domain", "vault.example.org", "backup-keep", "(config)", "env PDVAULT_DIR"} {
		if !strings.Contains(r.stdout, want) {
			t.Fatalf("config check of the example lacks %q:\n%s", want, r.stdout)
		}
	}
}

// The Dockerfile's build of pdvault, run as written (no Docker daemon
// here to build the image itself): the binary must come out static (no
// ELF interpreter: it runs on distroless/static, which has no libc) and
// run. The image's shape is checked as text: distroless, non-root, the
// vault directory a volume.
func TestDockerfileStaticBuild(t *testing.T) {
	df, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"FROM gcr.io/distroless/static", "USER nonroot", `VOLUME ["/var/lib/pdvault"]`, "ENV PDVAULT_DIR=/var/lib/pdvault"} {
		if !strings.Contains(string(df), want) {
			t.Fatalf("the Dockerfile lacks %q", want)
		}
	}
	// The RUN line that builds ./cmd/pdvault, continuation lines joined.
	text := strings.ReplaceAll(string(df), "\\\n", " ")
	var build string
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, "RUN CGO_ENABLED=1 go build") {
			build, _, _ = strings.Cut(strings.TrimPrefix(l, "RUN "), "&&")
		}
	}
	if build == "" {
		t.Fatal("no RUN CGO_ENABLED=1 go build line in the Dockerfile")
	}
	out := filepath.Join(t.TempDir(), "pdvault")
	build = strings.Replace(build, "-o /out/pdvault", "-o "+out, 1)
	cmd := exec.Command("sh", "-c", build)
	cmd.Dir = "../.."
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", build, err, b)
	} else if strings.Contains(string(b), "warning") {
		t.Fatalf("the static link warns (it may fail at run time):\n%s", b)
	}
	f, err := elf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Fatal("the binary needs a dynamic loader: it would not run on distroless/static")
		}
	}
	f.Close()
	if b, err := exec.Command(out, "version").CombinedOutput(); err != nil || !strings.HasPrefix(string(b), "pdvault ") {
		t.Fatalf("the static binary: %v %s", err, b)
	}
}
