package api

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pdvault/pdvault/api/client"
	"github.com/pdvault/pdvault/vault"
	"github.com/pdvault/pdvault/vault/host"
)

// Host figures (docs/benchmarks.md, "Many vaults on one host"). Run with
// the benchmark-only KDF floor, e.g.
//
//	PDVAULT_BENCH_VAULTS=100000 go test -tags pdvault_cheapkdf ./api -run '^$' -bench HostScale -benchtime 1x
//	PDVAULT_BENCH_VAULTS=10000 go test -tags pdvault_cheapkdf ./api -run '^$' -bench HostReads -benchtime 1x

func benchVaults(b *testing.B, def int) int {
	n := def
	if s := os.Getenv("PDVAULT_BENCH_VAULTS"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	if n > 200 && !vault.CheapKDF {
		b.Fatalf("%d vaults at 64 MiB Argon2id each: build with -tags pdvault_cheapkdf", n)
	}
	return n
}

func procStatus(field string) int64 {
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			f := strings.Fields(v)
			n, _ := strconv.ParseInt(f[0], 10, 64)
			return n << 10
		}
	}
	return 0
}

func openFDs() int {
	des, _ := os.ReadDir("/proc/self/fd")
	return len(des)
}

func heapInUse() int64 {
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapInuse)
}

func dirBytes(root string) int64 {
	var n int64
	filepath.Walk(root, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			n += fi.Size()
		}
		return nil
	})
	return n
}

func pct(d []time.Duration, p float64) time.Duration {
	slices.Sort(d)
	return d[min(len(d)-1, int(float64(len(d))*p))]
}

// provision creates n vaults on h, using both cores.
func provision(b *testing.B, h *host.Host, n int) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				hd, err := h.Create(context.Background(), fmt.Sprintf("v%06d", i), []byte(testPass))
				if err != nil {
					b.Error(err)
					return
				}
				hd.Release()
			}
		})
	}
	wg.Wait()
}

func BenchmarkHostScale(b *testing.B) {
	n := benchVaults(b, 1000)
	open := min(n, 1000)
	root := filepath.Join(b.TempDir(), "host")
	clk := time.Now
	h, err := host.New(host.Options{Root: root, MaxOpen: open, IdleAfter: time.Hour, Vault: vault.Options{Now: clk},
		IssuerFor: func(name string) string { return "https://" + name + ".vaults.example" }, Attach: VaultHandler(Config{})})
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close(context.Background())
	heap0, fd0 := heapInUse(), openFDs()
	start := time.Now()
	provision(b, h, n)
	took := time.Since(start)
	h.CloseIdle(time.Now().Add(time.Hour))
	heap1, rss1, fd1 := heapInUse(), procStatus("VmRSS"), openFDs()
	b.Logf("provisioned %d vaults in %s (%.0f/s), %.1f KiB on disk each", n, took.Round(time.Second), float64(n)/took.Seconds(), float64(dirBytes(root))/float64(n)/1024)
	b.Logf("all closed: heap %+.1f MiB (%.0f bytes per idle vault: its keeper), RSS %.1f MiB, fds %d (at start %d)",
		float64(heap1-heap0)/(1<<20), float64(heap1-heap0)/float64(n), float64(rss1)/(1<<20), fd1, fd0)

	// Open `open` vaults, cold (each reopened by its keeper), one at a time.
	lat := make([]time.Duration, 0, open)
	perm := rand.Perm(n)[:open]
	for _, i := range perm {
		t0 := time.Now()
		hd, err := h.Acquire(context.Background(), fmt.Sprintf("v%06d", i))
		if err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
		hd.Release()
	}
	heap2, rss2, fd2 := heapInUse(), procStatus("VmRSS"), openFDs()
	b.Logf("cold open (keeper's key, no Argon2id) of %d vaults: p50 %s p99 %s", open, pct(lat, .5).Round(time.Microsecond), pct(lat, .99).Round(time.Microsecond))
	b.Logf("%d open: RSS %.1f MiB (%+.1f MiB, %.0f KiB per open vault), heap %+.1f MiB, fds %d (%.1f per open vault), open %d",
		open, float64(rss2)/(1<<20), float64(rss2-rss1)/(1<<20), float64(rss2-rss1)/float64(open)/1024, float64(heap2-heap1)/(1<<20), fd2, float64(fd2-fd1)/float64(open), h.Open())
	// One more than the bound: the least recently used closes.
	if n > open {
		for _, i := range rand.Perm(n)[:100] {
			hd, err := h.Acquire(context.Background(), fmt.Sprintf("v%06d", i))
			if err != nil {
				b.Fatal(err)
			}
			hd.Release()
		}
		b.Logf("after 100 more acquisitions: open %d (bound %d), fds %d", h.Open(), open, openFDs())
	}
	b.ReportMetric(float64(pct(lat, .99).Microseconds()), "cold-open-p99-µs")
	b.ReportMetric(float64(rss2-rss1)/float64(open)/1024, "KiB/open-vault")
}

// BenchmarkHostReads compares grant-authorized reads at one vault with the
// same reads spread over many vaults, in one run over real HTTP, with
// PDVAULT_BENCH_CLIENTS concurrent clients (default 4).
func BenchmarkHostReads(b *testing.B) {
	n := benchVaults(b, 200)
	dur := 10 * time.Second
	if s := os.Getenv("PDVAULT_BENCH_SECONDS"); s != "" {
		d, _ := strconv.Atoi(s)
		dur = time.Duration(d) * time.Second
	}
	clients := 4
	if s := os.Getenv("PDVAULT_BENCH_CLIENTS"); s != "" {
		clients, _ = strconv.Atoi(s)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	url := func(name string) string { return "http://" + name + ".vaults.test:" + port }
	h, err := host.New(host.Options{Root: filepath.Join(b.TempDir(), "host"), MaxOpen: n + 10, IdleAfter: time.Hour,
		Vault: vault.Options{RatePerOrg: -1}, IssuerFor: url, Attach: VaultHandler(Config{RatePerAddress: -1})})
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close(context.Background())
	srv := &http.Server{Handler: NewHost(h, HostConfig{Config: Config{RatePerAddress: -1}, Domain: "vaults.test"})}
	go srv.Serve(ln)
	defer srv.Close()
	var rt http.RoundTripper = &http.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, ln.Addr().String())
		}}
	if os.Getenv("PDVAULT_BENCH_POOLED") != "" {
		// As behind a proxy that reuses its connections to the host
		// whatever the name (HAProxy, Caddy): the clients' connections
		// are shared by all vaults instead of one pool per vault's name.
		rt = pooled{rt, ln.Addr().String()}
	}
	hc := &http.Client{Transport: rt}
	provision(b, h, n)

	type target struct {
		o   *client.Org
		tok string
	}
	k, _ := client.GenerateKey("EdDSA")
	targets := make([]target, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				name := fmt.Sprintf("v%06d", i)
				hd, err := h.Acquire(context.Background(), name)
				if err != nil {
					b.Error(err)
					return
				}
				hd.Vault.CreateRecord(context.Background(), "profile", []byte(`{"name":"Ada","email":"ada@example.org"}`))
				hd.Release()
				o, _ := client.NewOrg(url(name), k, hc)
				tk, err := o.Request(context.Background(), askNotes())
				if err != nil {
					b.Error(err)
					return
				}
				hd, _ = h.Acquire(context.Background(), name)
				hd.Vault.Approve(context.Background(), tk.RequestID, vault.Approval{})
				hd.Release()
				tok, err := o.Poll(context.Background(), tk.RequestID)
				if err != nil {
					b.Error(err)
					return
				}
				targets[i] = target{o, tok.AccessToken}
			}
		})
	}
	wg.Wait()
	if b.Failed() {
		return
	}
	run := func(pick func() target) float64 {
		var count atomic.Int64
		stop := time.Now().Add(dur)
		var wg sync.WaitGroup
		for range clients {
			wg.Go(func() {
				for time.Now().Before(stop) {
					t := pick()
					if _, err := t.o.ReadCollection(context.Background(), t.tok, "profile", 10, ""); err != nil {
						b.Error(err)
						return
					}
					count.Add(1)
				}
			})
		}
		wg.Wait()
		return float64(count.Load()) / dur.Seconds()
	}
	// First reads at each vault pay for its connections, statements and
	// grant cache: measured apart, then the steady state.
	t0 := time.Now()
	for _, t := range targets {
		if _, err := t.o.ReadCollection(context.Background(), t.tok, "profile", 10, ""); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("first read at each of %d vaults (one client): %.0f/s", n, float64(n)/time.Since(t0).Seconds())
	one := run(func() target { return targets[0] })
	stopProfile := profileIf(b, "PDVAULT_BENCH_PROFILE_SPREAD")
	spread := run(func() target { return targets[rand.IntN(n)] })
	stopProfile()
	one2 := run(func() target { return targets[0] })
	b.Logf("%d clients, reads/s: one vault %.0f, spread over %d vaults %.0f, one vault again %.0f: spread/one = %.2f (open %d, fds %d)",
		clients, one, n, spread, one2, spread/((one+one2)/2), h.Open(), openFDs())
	b.ReportMetric(spread/((one+one2)/2), "spread/one")
}

// profileIf writes a CPU profile of what runs until the returned function
// is called to the file named by env, if set: to see where one phase of a
// benchmark spends its time, without the setup in the profile.
func profileIf(b *testing.B, env string) func() {
	path := os.Getenv(env)
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		b.Fatal(err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }
}

// pooled sends every request over connections to addr, keeping its Host.
type pooled struct {
	rt   http.RoundTripper
	addr string
}

func (p pooled) RoundTrip(r *http.Request) (*http.Response, error) {
	r2 := r.Clone(r.Context())
	r2.Host = r.URL.Host
	r2.URL.Host = p.addr
	return p.rt.RoundTrip(r2)
}
