// Package s3test starts a real S3-compatible server for tests: Versity S3
// Gateway (posix backend), built from the Go module proxy, or the binary
// named by PDVAULT_VERSITYGW.
package s3test

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Version is the Versity gateway the tests run.
const Version = "v1.8.0"

// Server is a running gateway with one bucket.
type Server struct {
	Endpoint  string // http://127.0.0.1:PORT
	AccessKey string
	SecretKey string
	Bucket    string
	Root      string // its backing directory: bucket/key files
	// Process is the gateway's process (a test may stop and continue it
	// to stall the store).
	Process *os.Process
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// Binary returns the gateway's executable, building it once per process.
func Binary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("PDVAULT_VERSITYGW"); p != "" {
		return p
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "pdvault-versitygw-")
		if err != nil {
			buildErr = err
			return
		}
		cmd := exec.Command("go", "install", "github.com/versity/versitygw/cmd/versitygw@"+Version)
		cmd.Dir, cmd.Env = dir, append(os.Environ(), "GOBIN="+dir, "GOFLAGS=")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go install versitygw: %v\n%s", err, out)
			return
		}
		binPath = filepath.Join(dir, "versitygw")
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// Start runs a gateway on loopback until the test ends, with one bucket.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := Binary(t)
	root := t.TempDir()
	s := &Server{AccessKey: "pdvault-test", SecretKey: "pdvault-test-secret-key", Bucket: "vaults", Root: root}
	if err := os.Mkdir(filepath.Join(root, s.Bucket), 0o700); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	s.Endpoint = "http://" + addr
	logf, err := os.Create(filepath.Join(t.TempDir(), "versitygw.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--port", addr, "--access", s.AccessKey, "--secret", s.SecretKey, "posix", root)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s.Process = cmd.Process
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait(); logf.Close() })
	for deadline := time.Now().Add(30 * time.Second); ; {
		if res, err := http.Get(s.Endpoint + "/"); err == nil {
			res.Body.Close()
			break // any answer (403 without a signature) means it listens
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(logf.Name())
			t.Fatalf("versitygw did not start:\n%s", b)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return s
}

// URL is the replica location pdvault takes (--replica).
func (s *Server) URL(prefix string) string {
	return "s3://" + s.Bucket + "/" + strings.Trim(prefix, "/") + "?endpoint=" + s.Endpoint
}

// Env is the credentials as environment variables.
func (s *Server) Env() []string {
	return []string{"AWS_ACCESS_KEY_ID=" + s.AccessKey, "AWS_SECRET_ACCESS_KEY=" + s.SecretKey}
}
