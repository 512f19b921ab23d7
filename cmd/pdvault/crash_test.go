package main

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pdvault/pdvault/api/client"
	"github.com/pdvault/pdvault/vault"
)

// TestMain lets the test binary stand in for the pdvault binary: the crash
// test runs it as a server process it can kill.
func TestMain(m *testing.M) {
	if os.Getenv("PDVAULT_TEST_AS_PDVAULT") == "1" {
		os.Exit((&app{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv,
			readPassword: func(string) (string, error) { return "", errNoTerminal }}).run(context.Background(), os.Args[1:]))
	}
	os.Exit(m.Run())
}

// startServer runs `pdvault serve` in a child process.
func startServer(t *testing.T, dir, passFile string) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "serve", "--dir", dir, "--addr", "127.0.0.1:0", "--passphrase-file", passFile,
		"--log-level", "error", "--rate-limit-address", "0", "--rate-limit-org", "0")
	cmd.Env = append(os.Environ(), "PDVAULT_TEST_AS_PDVAULT=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if i := strings.Index(sc.Text(), " at http://"); i >= 0 {
			go func() {
				for sc.Scan() {
				}
			}()
			u, _, _ := strings.Cut(sc.Text()[i+4:], " ")
			return cmd, u
		}
	}
	cmd.Process.Kill()
	cmd.Wait()
	t.Fatal("server did not start")
	return nil, ""
}

// Kill the server with SIGKILL in the middle of writes and reads, again and
// again. After every kill the file is sound, the audit log verifies, every
// acknowledged write is there, and every acknowledged read is in the log.
func TestCrashSafety(t *testing.T) {
	ctx := t.Context()
	dir := filepath.Join(t.TempDir(), "v")
	v, err := vault.Create(ctx, dir, []byte(testPass), vault.Options{})
	if err != nil {
		t.Fatal(err)
	}
	v.CreateRecord(ctx, "profile", []byte(`{"name":"Ada"}`))
	v.Close()
	passFile := filepath.Join(t.TempDir(), "pass")
	os.WriteFile(passFile, []byte(testPass), 0o600)

	key, _ := client.GenerateKey("EdDSA")
	var grant, recID string
	var acked []string // record ids whose creation was acknowledged
	var ackedReads int64
	hc := &http.Client{Timeout: 5 * time.Second}

	for round := range 4 {
		cmd, url := startServer(t, dir, passFile)
		owner, _ := client.NewOwner(url, "", hc)
		if _, _, err := owner.Login(ctx, testPass); err != nil {
			t.Fatalf("round %d: login: %v", round, err)
		}
		org, _ := client.NewOrg(url, key, hc)
		// Grants are bound to the issuer; the server's address (and so its
		// issuer) changes every round, so the organization asks again.
		tk, err := org.Request(ctx, client.AccessRequest{ClientName: "Crash", ClientURI: "https://crash.example", Purpose: "service_delivery",
			AuthorizationDetails: []client.AuthorizationDetail{client.Detail("profile", "name")}, Duration: 3600})
		if err != nil {
			t.Fatal(err)
		}
		owner.Approve(ctx, tk.RequestID, client.Approval{})
		tok, err := org.Poll(ctx, tk.RequestID)
		if err != nil {
			t.Fatal(err)
		}
		grant = tok.AccessToken
		page, err := org.ReadCollection(ctx, grant, "profile", 1, "")
		if err != nil {
			t.Fatal(err)
		}
		recID = page.Records[0].ID
		ackedReads++

		var mu sync.Mutex
		var reads atomic.Int64
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for w := range 6 {
			wg.Go(func() {
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					if w%2 == 0 {
						r, err := owner.CreateRecord(ctx, "transactions", fmt.Appendf(nil, `{"round":%d,"w":%d,"i":%d}`, round, w, i))
						if err == nil {
							mu.Lock()
							acked = append(acked, r.ID)
							mu.Unlock()
						}
					} else if _, err := org.ReadRecord(ctx, grant, "profile", recID); err == nil {
						reads.Add(1)
					}
				}
			})
		}
		time.Sleep(time.Duration(300+rand.IntN(500)) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		close(stop)
		wg.Wait()
		ackedReads += reads.Load()

		// Check the vault on disk, as the next start would find it.
		v, err := vault.Open(ctx, dir, []byte(testPass), vault.Options{})
		if err != nil {
			t.Fatalf("round %d: reopen after SIGKILL: %v", round, err)
		}
		if res, err := v.IntegrityCheck(ctx); err != nil || res != "ok" {
			t.Fatalf("round %d: integrity_check: %q %v", round, res, err)
		}
		rep, err := v.VerifyAudit(ctx)
		if err != nil || !rep.OK {
			t.Fatalf("round %d: audit: %+v %v", round, rep, err)
		}
		for _, id := range acked {
			if _, err := v.GetRecord(ctx, "transactions", id); err != nil {
				t.Fatalf("round %d: acknowledged record %s lost: %v", round, id, err)
			}
		}
		n, _ := v.CountAudit(ctx, vault.EvDataRead)
		if n < ackedReads {
			t.Fatalf("round %d: %d acknowledged reads, %d in the log", round, ackedReads, n)
		}
		v.Close()
		t.Logf("round %d: killed with %d acknowledged writes and %d acknowledged reads in all; all present", round, len(acked), ackedReads)
	}
	if len(acked) == 0 || ackedReads < 10 {
		t.Fatalf("the load did too little to test anything: %d writes, %d reads", len(acked), ackedReads)
	}
}
