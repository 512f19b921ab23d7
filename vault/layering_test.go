package vault

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestLayering checks the floors of docs/architecture.md: each package
// imports only the floors below it, and the organization client does not
// drag in the vault's storage.
func TestLayering(t *testing.T) {
	const mod = "github.com/pdvault/pdvault/"
	rules := map[string][]string{
		"./policy":     {"net/http", "database/sql", "github.com/mattn/go-sqlite3", mod + "vault", mod + "api"},
		"./vault":      {mod + "api", mod + "api/client"},
		"./api/client": {mod + "vault", "github.com/mattn/go-sqlite3", "database/sql"},
	}
	// The vault does not speak HTTP: none of its packages imports
	// net/http. (It is linked all the same: ofxgo, whose parser the OFX
	// importer uses, also holds an OFX client.) One exception, named here:
	// vault/host/replica is the vault's storage when hosts share vaults,
	// and object storage is spoken over HTTP (the S3 SDK).
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}: {{join .Imports " "}}`, "../vault/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pkg, imports, _ := strings.Cut(line, ": ")
		if slices.Contains(strings.Fields(imports), "net/http") && pkg != mod+"vault/host/replica" {
			t.Errorf("%s imports net/http", pkg)
		}
	}
	for pkg, forbidden := range rules {
		out, err := exec.Command("go", "list", "-deps", "../"+strings.TrimPrefix(pkg, "./")).Output()
		if err != nil {
			t.Fatalf("go list %s: %v", pkg, err)
		}
		deps := strings.Fields(string(out))
		for _, f := range forbidden {
			if slices.Contains(deps, f) {
				t.Errorf("%s depends on %s", pkg, f)
			}
		}
	}
}
