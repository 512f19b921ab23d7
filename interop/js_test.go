package interop

import (
	"bufio"
	"encoding/json"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The organization flow in JavaScript with oauth4webapi and jose,
// unchanged (js/flow.mjs, run with Node; scripts/test.sh installs Node and
// the packages with npm ci). The vault's certificate is trusted through
// NODE_EXTRA_CA_CERTS, so no insecure-transport switch is used. The owner
// approves only after the client has heard authorization_pending once.
func TestJavaScriptLibraries(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node is not installed: run scripts/test.sh, which installs it")
	}
	if _, err := os.Stat("js/node_modules/oauth4webapi"); err != nil {
		t.Fatal("js/node_modules is missing: run (cd interop/js && npm ci), as scripts/test.sh does")
	}
	e := newEnv(t)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: e.srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), node, "flow.mjs")
	cmd.Dir = "js"
	cmd.Env = append(os.Environ(), "PDVAULT_ISSUER="+e.srv.URL, "NODE_EXTRA_CA_CERTS="+ca)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var deviceCode, result string
	var approved <-chan error
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line := sc.Text()
		switch verb, rest, _ := strings.Cut(line, " "); verb {
		case "DEVICE_CODE":
			deviceCode = rest
		case "PENDING":
			if approved == nil {
				approved = e.approveWhenAsked(t, deviceCode, 100*time.Millisecond)
			}
		case "RESULT":
			result = rest
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("node: %v\n%s", err, stderr.String())
	}
	if approved == nil {
		t.Fatal("the client never heard authorization_pending")
	}
	if err := <-approved; err != nil {
		t.Fatal(err)
	}
	var res struct {
		Records []struct {
			ID   string         `json:"id"`
			Data map[string]any `json:"data"`
		} `json:"records"`
		Pending      int    `json:"pending"`
		UserCode     string `json:"user_code"`
		AfterRelease int    `json:"after_release"`
	}
	if err := json.Unmarshal([]byte(result), &res); err != nil {
		t.Fatalf("result %q: %v\n%s", result, err, stderr.String())
	}
	if len(res.Records) != 1 || res.Records[0].Data["name"] != "Ada Lovelace" || res.Records[0].Data["birth_date"] != nil || res.Pending < 1 || res.AfterRelease != 401 {
		t.Fatalf("result %s", result)
	}
}
