package main

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/crypto/argon2"

	"github.com/pdvault/pdvault/api/client"
	"github.com/pdvault/pdvault/vault"
)

// cmdBench is the load tool of docs/benchmarks.md. It builds a vault with
// N records, starts `pdvault serve` on it as a separate process (so the
// server's CPU time can be read from /proc), sets up an organization with
// an approved grant, and drives concurrent grant-authorized reads, each
// with a fresh DPoP proof. It reports throughput, latency percentiles,
// server CPU per read against one Ed25519 verification measured in the
// same run, the server's peak memory, and checks afterwards that every
// acknowledged read is in the audit log and that the log verifies.
func (a *app) cmdBench(ctx context.Context, args []string) error {
	fs := a.flags("bench", "bench [--records N] [--clients C] [--duration D]")
	records := fs.Int("records", 1000, "records in the collection read")
	clients := fs.Int("clients", 64, "concurrent clients")
	duration := fs.Duration("duration", 10*time.Second, "how long to measure")
	warmup := fs.Duration("warmup", 2*time.Second, "load before measuring")
	flood := fs.Bool("flood", false, "instead: the flood benchmark of the limits (genuine relationships, then floods of requests and proofs from fresh keys)")
	rels := fs.Int("relationships", 1000, "with --flood: genuine relationships")
	floodReqs := fs.Int("flood-requests", 20000, "with --flood: padded requests from fresh keys")
	floodProofs := fs.Int("flood-proofs", 150000, "with --flood: DPoP proofs from fresh keys")
	if err := a.parse(fs, args); err != nil {
		return err
	}
	if *flood {
		return a.floodBench(ctx, max(*rels, 1), *floodReqs, *floodProofs, 5*time.Second)
	}
	if *records < 1 || *clients < 1 || *duration <= 0 {
		return usageError{"--records, --clients and --duration must be positive", ""}
	}
	out := a.stdout
	dir, err := os.MkdirTemp("", "pdvault-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	pass := randomPassphrase()

	// 1. A vault with N records.
	start := time.Now()
	v, err := vault.Create(ctx, dir, []byte(pass), vault.Options{})
	if err != nil {
		return err
	}
	for done := 0; done < *records; {
		n := min(5000, *records-done)
		batch := make([][]byte, n)
		for i := range batch {
			batch[i] = fmt.Appendf(nil, `{"name":"Person %d","email":"p%d@example.org","birth_date":"1990-04-12","phone":"+49 30 %07d"}`, done+i, done+i, done+i)
		}
		if _, err := v.CreateRecords(ctx, "profile", batch); err != nil {
			v.Close()
			return err
		}
		done += n
	}
	v.Close()
	fmt.Fprintf(out, "vault: %d records written in %s\n", *records, time.Since(start).Round(time.Millisecond))

	// 2. Unlock time, and how much of it is Argon2id.
	start = time.Now()
	v, err = vault.Open(ctx, dir, []byte(pass), vault.Options{})
	if err != nil {
		return err
	}
	openTime := time.Since(start)
	v.Close()
	p := vault.DefaultKDFParams()
	start = time.Now()
	argon2.IDKey([]byte(pass), p.Salt, p.Time, p.Memory, p.Threads, 32)
	kdf := time.Since(start)
	fmt.Fprintf(out, "unlock: %s in all, of which Argon2id %s: start-up after unlock %s\n",
		openTime.Round(time.Millisecond), kdf.Round(time.Millisecond), max(0, openTime-kdf).Round(time.Millisecond))

	// 3. The server, as its own process.
	srv, err := startBenchServer(ctx, dir, pass)
	if err != nil {
		return err
	}
	defer srv.stop()
	fmt.Fprintf(out, "server: pid %d at %s\n", srv.cmd.Process.Pid, srv.url)

	// 4. An organization with an approved grant.
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConns: *clients * 2, MaxIdleConnsPerHost: *clients * 2}}
	owner, err := client.NewOwner(srv.url, "", hc)
	if err != nil {
		return err
	}
	if _, _, err := owner.Login(ctx, pass); err != nil {
		return err
	}
	key, _ := client.GenerateKey("EdDSA")
	org, err := client.NewOrg(srv.url, key, hc)
	if err != nil {
		return err
	}
	tk, err := org.Request(ctx, client.AccessRequest{ClientName: "Bench", ClientURI: "https://bench.example", Purpose: "service_delivery",
		AuthorizationDetails: []client.AuthorizationDetail{client.Detail("profile", "name", "email")}, Duration: 3600})
	if err != nil {
		return err
	}
	if _, err := owner.Approve(ctx, tk.RequestID, client.Approval{}); err != nil {
		return err
	}
	tok, err := org.Poll(ctx, tk.RequestID)
	if err != nil {
		return err
	}
	page, err := org.ReadCollection(ctx, tok.AccessToken, "profile", 500, "")
	if err != nil {
		return err
	}
	ids := make([]string, len(page.Records))
	for i, r := range page.Records {
		ids[i] = r.ID
	}

	// 5. One Ed25519 verification, measured in this run: before the load
	// here, and after it below; the mean of the two is the yardstick.
	verifyBefore := ed25519Cost()

	// 6. Load.
	var (
		ok, failed atomic.Int64
		mu         sync.Mutex
		lat        []time.Duration
		measuring  atomic.Bool
		firstErr   atomic.Value
	)
	lctx, stop := context.WithTimeout(ctx, *warmup+*duration)
	defer stop()
	var wg sync.WaitGroup
	for c := range *clients {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(c), 1))
			local := make([]time.Duration, 0, 4096)
			for lctx.Err() == nil {
				id := ids[rng.IntN(len(ids))]
				t0 := time.Now()
				_, err := org.ReadRecord(lctx, tok.AccessToken, "profile", id)
				d := time.Since(t0)
				if !measuring.Load() {
					continue
				}
				if err != nil {
					if lctx.Err() == nil {
						failed.Add(1)
						firstErr.CompareAndSwap(nil, err.Error())
					}
					continue
				}
				ok.Add(1)
				local = append(local, d)
			}
			mu.Lock()
			lat = append(lat, local...)
			mu.Unlock()
		})
	}
	time.Sleep(*warmup)
	cpu0, _ := srv.cpu()
	t0 := time.Now()
	measuring.Store(true)
	peak := int64(0)
	sampler := time.NewTicker(200 * time.Millisecond)
	for lctx.Err() == nil {
		select {
		case <-sampler.C:
			if rss, err := srv.rss(); err == nil {
				peak = max(peak, rss)
			}
		case <-lctx.Done():
		}
	}
	sampler.Stop()
	elapsed := time.Since(t0)
	cpu1, _ := srv.cpu()
	wg.Wait()
	verifyAfter := ed25519Cost()
	verify := (verifyBefore + verifyAfter) / 2
	fmt.Fprintf(out, "ed25519: one verification %s (before the load %s, after %s)\n", verify.Round(100*time.Nanosecond),
		verifyBefore.Round(100*time.Nanosecond), verifyAfter.Round(100*time.Nanosecond))

	n := ok.Load()
	slices.Sort(lat)
	pct := func(q float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(q*float64(len(lat))))]
	}
	serverCPU := cpu1 - cpu0
	perRead := time.Duration(0)
	if n > 0 {
		perRead = serverCPU / time.Duration(n)
	}
	fmt.Fprintf(out, "\nload: %d clients, %s measured after %s warm-up, %d records\n", *clients, elapsed.Round(time.Millisecond), *warmup, *records)
	fmt.Fprintf(out, "reads: %d ok, %d failed: %.0f reads/s\n", n, failed.Load(), float64(n)/elapsed.Seconds())
	if e := firstErr.Load(); e != nil {
		fmt.Fprintf(out, "first failure: %s\n", e)
	}
	fmt.Fprintf(out, "latency: p50 %s  p90 %s  p99 %s  max %s\n", pct(0.50).Round(10*time.Microsecond), pct(0.90).Round(10*time.Microsecond),
		pct(0.99).Round(10*time.Microsecond), pct(1).Round(10*time.Microsecond))
	fmt.Fprintf(out, "server CPU: %s in all, %s per read = %.1f x one Ed25519 verification\n", serverCPU.Round(time.Millisecond),
		perRead.Round(100*time.Nanosecond), float64(perRead)/float64(verify))
	fmt.Fprintf(out, "server memory: peak RSS %.1f MiB (sampled), high-water %.1f MiB\n", float64(peak)/(1<<20), float64(srv.hwm())/(1<<20))

	// 7. Durability: every acknowledged read is in the log, which verifies.
	srv.stop()
	v, err = vault.Open(ctx, dir, []byte(pass), vault.Options{})
	if err != nil {
		return err
	}
	defer v.Close()
	start = time.Now()
	rep, err := v.VerifyAudit(ctx)
	if err != nil {
		return err
	}
	vt := time.Since(start)
	reads, err := v.CountAudit(ctx, vault.EvDataRead)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "audit: %d entries, verified %v in %s (%.0f entries/s); %d data.read entries >= %d acknowledged reads: %v\n",
		rep.Entries, rep.OK, vt.Round(time.Millisecond), float64(rep.Entries)/vt.Seconds(), reads, n, reads >= n)
	if !rep.OK || reads < n {
		return errors.New("bench: the audit log lost acknowledged reads or does not verify")
	}
	return nil
}

func ed25519Cost() time.Duration {
	pub, priv, _ := ed25519.GenerateKey(nil)
	msg := make([]byte, 400)
	sig := ed25519.Sign(priv, msg)
	const n = 3000
	start := time.Now()
	for range n {
		ed25519.Verify(pub, msg, sig)
	}
	return time.Since(start) / n
}

type benchServer struct {
	cmd  *exec.Cmd
	url  string
	once sync.Once
}

// startBenchServer runs `pdvault serve` on dir in a child process.
func startBenchServer(ctx context.Context, dir, pass string) (*benchServer, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	pf := filepath.Join(dir, "bench-passphrase")
	if err := os.WriteFile(pf, []byte(pass), 0o600); err != nil {
		return nil, err
	}
	// One address and one organization key drive all the load here, so the
	// per-address and per-organization limits are off.
	args := []string{"serve", "--dir", dir, "--addr", "127.0.0.1:0", "--passphrase-file", pf, "--log-level", "warn",
		"--rate-limit-address", "0", "--rate-limit-org", "0"}
	if p := os.Getenv("PDVAULT_BENCH_CPUPROFILE"); p != "" {
		args = append(args, "--cpuprofile", p)
	}
	cmd := exec.CommandContext(ctx, exe, args...)
	cmd.Env = append(os.Environ(), "PDVAULT_PASSPHRASE=")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &benchServer{cmd: cmd}
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if i := strings.Index(sc.Text(), " at http://"); i >= 0 {
			s.url, _, _ = strings.Cut(sc.Text()[i+4:], " ")
			break
		}
	}
	if s.url == "" {
		s.stop()
		return nil, errors.New("bench: the server did not start")
	}
	go func() {
		for sc.Scan() {
		}
	}()
	return s, nil
}

func (s *benchServer) stop() {
	s.once.Do(func() {
		s.cmd.Process.Signal(syscall.SIGTERM)
		s.cmd.Wait()
	})
}

// cpu is the server's user+system CPU time, from /proc/PID/stat.
func (s *benchServer) cpu() (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", s.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name, which is in parentheses.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	const hz = 100 // USER_HZ on Linux
	return time.Duration(ut+st) * time.Second / hz, nil
}

func (s *benchServer) status(field string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, field+":") {
			f := strings.Fields(line)
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

func (s *benchServer) rss() (int64, error) { return s.status("VmRSS"), nil }
func (s *benchServer) hwm() int64          { return s.status("VmHWM") }
