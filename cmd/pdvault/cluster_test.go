package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pdvault/pdvault/api/client"
	"github.com/pdvault/pdvault/internal/s3test"
)

// The two-host test of docs/operations.md, "Beyond one host", with real
// parts: two pdvault host processes, a Versity S3 Gateway holding the
// replicas and leases, and HAProxy (Debian's) routing each vault's name to
// its host through a map the test edits over HAProxy's runtime API, as an
// orchestrator would. It moves a vault while an organization reads,
// SIGKILLs the serving host and restores the vault on the other, and
// brings a stale host back to show that it cannot write. The figures it
// logs (unavailability windows, what a SIGKILL lost) are the ones in
// docs/benchmarks.md.
func TestTwoHostsBehindHAProxy(t *testing.T) {
	ctx := t.Context()
	cl := startCluster(t, "    use_backend %[req.hdr(host),field(1,:),lower,map(VAULTS,host_a)]\n")
	s3, bin, hp := cl.s3, cl.bin, cl.port
	a, b := cl.a, cl.b
	start := cl.start
	route := func(backend string) { t.Helper(); cl.haproxy("set map VAULTS alice.vaults.test " + backend) }
	start(a)
	start(b)

	// Everything goes through HAProxy, whatever the name resolves to.
	hc := dialOnly(hp, 30*time.Second)
	base := fmt.Sprintf("http://alice.vaults.test:%d", hp)

	// Alice signs up (on host A, the map's default) and an organization
	// gets a grant to read her notes.
	body := `{"name":"alice","passphrase":"correct horse battery staple"}`
	res, err := hc.Post(fmt.Sprintf("http://vaults.test:%d/v1/host/vaults", hp), "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var signup struct {
		Token string `json:"access_token"`
	}
	json.NewDecoder(res.Body).Decode(&signup)
	res.Body.Close()
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("sign-up: %d", res.StatusCode)
	}
	owner, err := client.NewOwner(base, signup.Token, hc)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		if _, err := owner.CreateRecord(ctx, "notes", fmt.Appendf(nil, `{"n":%d}`, i)); err != nil {
			t.Fatal(err)
		}
	}
	key2, _ := client.GenerateKey("ES256")
	org, err := client.NewOrg(base, key2, hc)
	if err != nil {
		t.Fatal(err)
	}
	tk, err := org.Request(ctx, client.AccessRequest{ClientName: "Acme Bikes", ClientURI: "https://bikes.example", Purpose: "service_delivery",
		PurposeText: "deliver your bicycle", AuthorizationDetails: []client.AuthorizationDetail{client.Detail("notes", "n")}, Duration: 3600})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := owner.Approve(ctx, tk.RequestID, client.Approval{}); err != nil {
		t.Fatal(err)
	}
	grant, err := org.Poll(ctx, tk.RequestID)
	if err != nil {
		t.Fatal(err)
	}

	// The organization reads without pause; each read's outcome is kept.
	reader := startReader(org, grant.AccessToken)

	// 1. Move alice from A to B: route to B, then release on A.
	time.Sleep(300 * time.Millisecond)
	route("host_b")
	moveStart := time.Now()
	out, err := exec.Command(bin, "host", "release", "alice", "--root", a.root).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Released vault alice") {
		t.Fatalf("host release: %v\n%s", err, out)
	}
	released := time.Since(moveStart)
	servedAt := reader.waitOK(t, moveStart.Add(released), 30*time.Second)
	window := reader.window(moveStart)
	t.Logf("move A→B: release took %v; first read served by B %v after the release began; unavailability window %v (%d reads refused)",
		released.Round(time.Millisecond), servedAt.Sub(moveStart).Round(time.Millisecond), window.Round(time.Millisecond), reader.failedSince(moveStart))
	if got := holder(t, s3, "alice"); got != "host-b" {
		t.Fatalf("lease holder after the move: %q", got)
	}
	// The owner's session stayed on A (sessions do not move); she logs in
	// again, and her vault has everything.
	if _, _, err := owner.Login(ctx, "correct horse battery staple"); err != nil {
		t.Fatal(err)
	}
	if p, err := owner.ListRecords(ctx, "notes", 100, ""); err != nil || len(p.Records) != 20 {
		t.Fatalf("records on B: %d, %v", len(p.Records), err)
	}

	// 2. SIGKILL B while the owner writes; restore on A.
	// One write every 10 ms for two seconds, each acknowledged at a known
	// time; the kill comes right after the last.
	var acked []int
	ackedAt := map[int]time.Time{}
	start2 := time.Now()
	for i := 100; i < 300; i++ {
		if _, err := owner.CreateRecord(ctx, "notes", fmt.Appendf(nil, `{"n":%d}`, i)); err != nil {
			t.Fatal(err)
		}
		acked = append(acked, i)
		ackedAt[i] = time.Now()
		time.Sleep(10 * time.Millisecond)
	}
	perWriteAsync := time.Since(start2) / time.Duration(len(acked))
	readsBefore := reader.okCount()
	b.cmd.Process.Kill()
	b.cmd.Wait()
	killedAt := time.Now()
	readsAcked := reader.okCount()
	route("host_a")
	// A may take the vault once B's lease runs out; it arrives sealed (no
	// handover from a dead host) until its owner unlocks it.
	var loginErr error
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if _, _, loginErr = owner.Login(ctx, "correct horse battery staple"); loginErr == nil {
			break
		}
	}
	if loginErr != nil {
		t.Fatalf("unlock on A after B died: %v", loginErr)
	}
	unlocked := time.Since(killedAt)
	servedAgain := reader.waitOK(t, killedAt, 30*time.Second)
	present := noteNumbers(t, owner)
	// What was lost is a suffix of what was acknowledged: the newest
	// writes, never one from before a write that survived.
	lost, oldestLost := 0, time.Duration(0)
	for i, n := range acked {
		if !contains(present, n) {
			if lost == 0 {
				oldestLost = killedAt.Sub(ackedAt[n])
			}
			lost++
		} else if lost > 0 {
			t.Fatalf("write %d survived but %d, acknowledged before it, was lost", n, acked[i-lost])
		}
	}
	audited := countReads(t, owner)
	t.Logf("SIGKILL B: A took over and its owner unlocked it %v after the kill; reads served again after %v; acknowledged writes lost: %d of %d (those acknowledged in the last %v before the kill); reads acknowledged before the kill %d, read entries in A's audit log %d",
		unlocked.Round(time.Millisecond), servedAgain.Sub(killedAt).Round(time.Millisecond), lost, len(acked), oldestLost.Round(time.Millisecond), readsAcked, audited)
	if oldestLost > 2*time.Second {
		t.Fatalf("writes acknowledged %v before the kill were lost; --replica-sync is 200ms", oldestLost)
	}
	if len(present) < 20 {
		t.Fatalf("the restore lost records written long before the kill: %d present", len(present))
	}
	if int64(audited) < readsBefore/2 {
		t.Fatalf("audit entries of reads: %d, reads served before the kill: %d", audited, readsBefore)
	}

	// 3. A stale host: B comes back (same directory, same name) while A
	// holds the vault. Asked directly, bypassing the router, it must not
	// serve or write alice. (It comes back replicating synchronously, for
	// step 4.)
	start(b, "--replica-confirm")
	ownerAtB, _ := client.NewOwner(base, owner.Token(), dialOnly(b.port, 10*time.Second))
	_, err = ownerAtB.CreateRecord(ctx, "notes", []byte(`{"n":-1}`))
	if !client.IsCode(err, "vault_elsewhere") {
		t.Fatalf("a write at the stale host: %v, want vault_elsewhere", err)
	}
	// And a host frozen past its lease (SIGSTOP: a paused VM, a long GC)
	// finds on waking that it may not write either.
	a.cmd.Process.Signal(syscall.SIGSTOP)
	time.Sleep(7 * time.Second) // the lease (6s) runs out
	route("host_b")
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if _, _, loginErr = owner.Login(ctx, "correct horse battery staple"); loginErr == nil {
			break
		}
	}
	if loginErr != nil {
		t.Fatalf("unlock on B after A froze: %v", loginErr)
	}
	a.cmd.Process.Signal(syscall.SIGCONT)
	orgAtA, _ := client.NewOrg(base, key2, dialOnly(a.port, 10*time.Second))
	_, err = orgAtA.ReadCollection(ctx, grant.AccessToken, "notes", 10, "")
	if !client.IsCode(err, "vault_not_held") && !client.IsCode(err, "vault_elsewhere") {
		t.Fatalf("a read at the woken stale host: %v, want vault_not_held or vault_elsewhere", err)
	}
	if got := holder(t, s3, "alice"); got != "host-b" {
		t.Fatalf("lease holder after the stale host woke: %q", got)
	}
	if _, err := owner.CreateRecord(ctx, "notes", []byte(`{"n":1000}`)); err != nil {
		t.Fatalf("a write at the new holder: %v", err)
	}

	// 4. SIGKILL B again, now replicating synchronously (--replica-confirm):
	// A restores every acknowledged write, and an audit entry for every
	// read the organization was answered.
	audited0 := countReads(t, owner) // before reads0: an entry counted here is a read counted there
	reads0 := reader.okCount()
	acked = acked[:0]
	start4 := time.Now()
	for i := 2000; i < 2100; i++ {
		if _, err := owner.CreateRecord(ctx, "notes", fmt.Appendf(nil, `{"n":%d}`, i)); err != nil {
			t.Fatalf("write with --replica-confirm: %v", err)
		}
		acked = append(acked, i)
		time.Sleep(10 * time.Millisecond)
	}
	perWrite := time.Since(start4) / time.Duration(len(acked))
	b.cmd.Process.Kill()
	b.cmd.Wait()
	killedAt = time.Now()
	reader.stop() // no read after the kill: A's log then holds B's reads only
	readsAcked = reader.okCount() - reads0
	route("host_a")
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if _, _, loginErr = owner.Login(ctx, "correct horse battery staple"); loginErr == nil {
			break
		}
	}
	if loginErr != nil {
		t.Fatalf("unlock on A after B died: %v", loginErr)
	}
	unlocked = time.Since(killedAt)
	present = noteNumbers(t, owner)
	lost = 0
	for _, n := range acked {
		if !contains(present, n) {
			lost++
		}
	}
	audited = countReads(t, owner) - audited0
	t.Logf("SIGKILL B with --replica-confirm: %v per write, %v without (each followed by 10 ms of sleep); A unlocked %v after the kill; acknowledged writes lost: %d of %d; reads B answered %d, read entries of those in A's audit log %d",
		perWrite.Round(100*time.Microsecond), perWriteAsync.Round(100*time.Microsecond), unlocked.Round(time.Millisecond), lost, len(acked), readsAcked, audited)
	if lost != 0 {
		t.Fatalf("%d writes acknowledged under --replica-confirm were lost", lost)
	}
	if int64(audited) < readsAcked {
		t.Fatalf("reads answered %d, read entries in the restored audit log %d: an answered read's entry was lost", readsAcked, audited)
	}
}

// dialOnly is a client that reaches 127.0.0.1:port whatever the URL's
// host name (which stays in the Host header).
// cluster is the two-host setup: a Versity S3 Gateway, HAProxy (Debian's)
// with backends host_a and host_b, and two pdvault hosts sharing the
// bucket and a handover key, each started with start.
type cluster struct {
	t        *testing.T
	s3       *s3test.Server
	bin      string
	work     string
	port     int    // HAProxy's
	sock     string // HAProxy's runtime API
	maps     map[string]string
	keyFile  string
	a, b     *hostProc
	hostArgs []string // added to every host's serve flags
}

type hostProc struct {
	name, root string
	port       int
	cmd        *exec.Cmd
	log        *lockedWriter
}

// startCluster starts the store and the router; frontend is the
// frontend's routing lines, where VAULTS and DOMAINS stand for the paths
// of two map files (vaults.map starts with alice.vaults.test host_a).
func startCluster(t *testing.T, frontend string) *cluster {
	haproxy, err := exec.LookPath("haproxy")
	if err != nil {
		t.Fatal("haproxy is not installed (scripts/test.sh installs Debian's package haproxy)")
	}
	cl := &cluster{t: t, s3: s3test.Start(t), bin: buildPdvault(t), work: t.TempDir()}
	cl.keyFile = filepath.Join(cl.work, "handover.key")
	key := make([]byte, 32)
	rand.Read(key)
	os.WriteFile(cl.keyFile, []byte(base64.StdEncoding.EncodeToString(key)), 0o600)

	hp, pa, pb := freePort(t), freePort(t), freePort(t)
	cl.port, cl.sock = hp, filepath.Join(cl.work, "haproxy.sock")
	cl.maps = map[string]string{"VAULTS": filepath.Join(cl.work, "vaults.map"), "DOMAINS": filepath.Join(cl.work, "domains.map")}
	os.WriteFile(cl.maps["VAULTS"], []byte("alice.vaults.test host_a\n"), 0o600)
	os.WriteFile(cl.maps["DOMAINS"], nil, 0o600)
	cfg := fmt.Sprintf(`global
    stats socket %s mode 600 level admin
defaults
    mode http
    option forwardfor
    timeout connect 2s
    timeout client 60s
    timeout server 60s
frontend vaults
    bind 127.0.0.1:%d
%sbackend host_a
    server a 127.0.0.1:%d
backend host_b
    server b 127.0.0.1:%d
`, cl.sock, hp, cl.expand(frontend), pa, pb)
	cfgFile := filepath.Join(cl.work, "haproxy.cfg")
	os.WriteFile(cfgFile, []byte(cfg), 0o600)
	hap := exec.Command(haproxy, "-db", "-f", cfgFile)
	hapLog, _ := os.Create(filepath.Join(cl.work, "haproxy.log"))
	hap.Stdout, hap.Stderr = hapLog, hapLog
	if err := hap.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hap.Process.Kill(); hap.Wait() })
	waitListening(t, hp)

	cl.a = &hostProc{name: "host-a", root: filepath.Join(cl.work, "a"), port: pa}
	cl.b = &hostProc{name: "host-b", root: filepath.Join(cl.work, "b"), port: pb}
	t.Cleanup(func() {
		for _, p := range []*hostProc{cl.a, cl.b} {
			if p.cmd != nil && p.cmd.ProcessState == nil {
				p.cmd.Process.Signal(syscall.SIGCONT)
				p.cmd.Process.Kill()
				p.cmd.Wait()
			}
		}
		if t.Failed() {
			b, _ := os.ReadFile(hapLog.Name())
			t.Logf("host-a log:\n%s\nhost-b log:\n%s\nhaproxy log:\n%s", cl.a.log, cl.b.log, b)
		}
	})
	return cl
}

func (cl *cluster) expand(s string) string {
	for k, v := range cl.maps {
		s = strings.ReplaceAll(s, k, v)
	}
	return s
}

// haproxy sends one command to HAProxy's runtime API (VAULTS and DOMAINS
// expanded), as an orchestrator would; it must answer nothing.
func (cl *cluster) haproxy(command string) {
	cl.t.Helper()
	c, err := net.Dial("unix", cl.sock)
	if err != nil {
		cl.t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "%s\n", cl.expand(command))
	reply, _ := bufio.NewReader(c).ReadString('\n')
	if strings.TrimSpace(reply) != "" {
		cl.t.Fatalf("haproxy %s: %q", command, reply)
	}
}

// start runs a host serving vaults.test behind the router, sharing the
// bucket, with flags added to the common ones.
func (cl *cluster) start(hpr *hostProc, flags ...string) {
	t := cl.t
	t.Helper()
	hpr.log = &lockedWriter{w: &bytes.Buffer{}}
	args := append([]string{"host", "serve", "--root", hpr.root, "--domain", "vaults.test",
		"--addr", fmt.Sprintf("127.0.0.1:%d", hpr.port), "--public-url", fmt.Sprintf("http://vaults.test:%d", cl.port),
		"--signup", "open", "--trusted-proxy", "127.0.0.1", "--rate-limit-address", "0", "--rate-limit-org", "0",
		"--replica", cl.s3.URL("vaults"), "--host-id", hpr.name, "--lease-ttl", "6s", "--replica-sync", "200ms",
		"--log-level", "info"}, cl.hostArgs...)
	if !slices.Contains(flags, "--no-handover") {
		args = append(args, "--handover-key-file", cl.keyFile)
	}
	hpr.cmd = exec.Command(cl.bin, append(args, slices.DeleteFunc(slices.Clone(flags), func(f string) bool { return f == "--no-handover" })...)...)
	hpr.cmd.Env = append(os.Environ(), cl.s3.Env()...)
	hpr.cmd.Stdout, hpr.cmd.Stderr = hpr.log, hpr.log
	if err := hpr.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitListening(t, hpr.port)
}

func dialOnly(port int, timeout time.Duration) *http.Client {
	c := dialOnlyAddr(fmt.Sprintf("127.0.0.1:%d", port))
	c.Timeout = timeout
	return c
}

func dialOnlyAddr(addr string) *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		}}}
}

func contains(xs []int, x int) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// buildPdvault builds the command for tests that run it as a process.
func buildPdvault(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "pdvault")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// noteNumbers is the "n" of every record in the owner's "notes".
func noteNumbers(t *testing.T, o *client.Owner) []int {
	t.Helper()
	var ns []int
	for cursor := ""; ; {
		p, err := o.ListRecords(t.Context(), "notes", 500, cursor)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range p.Records {
			var v struct{ N int }
			json.Unmarshal(r.Data, &v)
			ns = append(ns, v.N)
		}
		if cursor = p.NextCursor; cursor == "" {
			return ns
		}
	}
}

// countReads is how many organization reads the owner's audit log holds.
func countReads(t *testing.T, o *client.Owner) int {
	t.Helper()
	n := 0
	for cursor := ""; ; {
		p, err := o.ListAudit(t.Context(), 500, cursor)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range p.Entries {
			if e.Event == "data.read" && e.Outcome == "allowed" {
				n++
			}
		}
		if cursor = p.NextCursor; cursor == "" {
			return n
		}
	}
}

// holder reads the vault's lease in object storage.
func holder(t *testing.T, s3 *s3test.Server, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(s3.Root, s3.Bucket, "vaults", name, "lease.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d struct{ Holder string }
	json.Unmarshal(b, &d)
	return d.Holder
}

func waitListening(t *testing.T, port int) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing listens on %d", port)
		}
	}
}

type lockedWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.String()
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// reader is an organization reading in a loop.
type reader struct {
	mu      sync.Mutex
	results []readResult
	ok      atomic.Int64
	done    chan struct{}
	wg      sync.WaitGroup
}

type readResult struct {
	at time.Time
	ok bool
}

func startReader(org *client.Org, grant string) *reader {
	r := &reader{done: make(chan struct{})}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		for {
			select {
			case <-r.done:
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_, err := org.ReadCollection(ctx, grant, "notes", 5, "")
			cancel()
			r.mu.Lock()
			r.results = append(r.results, readResult{time.Now(), err == nil})
			r.mu.Unlock()
			if err == nil {
				r.ok.Add(1)
			} else {
				time.Sleep(20 * time.Millisecond)
			}
		}
	}()
	return r
}

func (r *reader) okCount() int64 { return r.ok.Load() }

func (r *reader) stop() { close(r.done); r.wg.Wait() }

// waitOK waits for a successful read after since that follows a failure
// after since (or any success if none failed), and returns its time.
func (r *reader) waitOK(t *testing.T, since time.Time, d time.Duration) time.Time {
	t.Helper()
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		r.mu.Lock()
		var at time.Time
		for _, x := range r.results {
			if x.at.After(since) && x.ok {
				at = x.at
			}
		}
		r.mu.Unlock()
		if !at.IsZero() {
			return at
		}
	}
	t.Fatalf("no read succeeded within %v", d)
	return time.Time{}
}

// window is the time from the last success before the first failure after
// since to the first success after the last failure.
func (r *reader) window(since time.Time) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	var xs []readResult
	for _, x := range r.results {
		if x.at.After(since.Add(-time.Second)) {
			xs = append(xs, x)
		}
	}
	sort.Slice(xs, func(i, j int) bool { return xs[i].at.Before(xs[j].at) })
	first, last := -1, -1
	for i, x := range xs {
		if !x.ok && x.at.After(since) {
			if first < 0 {
				first = i
			}
			last = i
		}
	}
	if first < 0 {
		return 0
	}
	from := since
	if first > 0 {
		from = xs[first-1].at
	}
	for _, x := range xs[last+1:] {
		if x.ok {
			return x.at.Sub(from)
		}
	}
	return time.Since(from)
}

func (r *reader) failedSince(since time.Time) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, x := range r.results {
		if !x.ok && x.at.After(since) {
			n++
		}
	}
	return n
}
