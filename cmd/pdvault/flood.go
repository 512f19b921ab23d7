package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pdvault/pdvault/api/client"
	"github.com/pdvault/pdvault/vault"
)

// floodBench is `pdvault bench --flood` (docs/benchmarks.md, the limits of
// issue 10): a vault with genuine relationships is flooded by strangers
// — requests padded to the size limit from fresh keys, then DPoP proofs
// from fresh keys against a copied grant — and it measures what the issue
// asks: the database's growth, the owner's pages' latency afterwards, the
// server's memory, and the genuine organization's read throughput during
// the proof flood against before it.
func (a *app) floodBench(ctx context.Context, rels, requests, proofs int, readFor time.Duration) error {
	out := a.stdout
	fv, err := startFloodVault(ctx)
	if err != nil {
		return err
	}
	defer fv.close()
	srv, owner, hc := fv.srv, fv.owner, fv.hc
	ask := client.AccessRequest{ClientName: "Genuine", ClientURI: "https://genuine.example", Purpose: "service_delivery",
		AuthorizationDetails: []client.AuthorizationDetail{client.Detail("profile", "name", "email")}, Duration: 3600}

	// 1. Genuine relationships, each with a collected grant.
	start := time.Now()
	var first *client.Org
	var grant string
	var failed atomic.Int64
	parallel(16, rels, func(i int) {
		key, _ := client.GenerateKey("EdDSA")
		o, _ := client.NewOrg(srv.url, key, hc)
		tk, err := o.Request(ctx, ask)
		if err == nil {
			_, err = owner.Approve(ctx, tk.RequestID, client.Approval{})
		}
		var tok client.Token
		if err == nil {
			tok, err = o.Poll(ctx, tk.RequestID)
		}
		if err != nil {
			failed.Add(1)
			return
		}
		if i == 0 {
			first, grant = o, tok.AccessToken
		}
	})
	if first == nil || failed.Load() > 0 {
		return fmt.Errorf("flood: %d genuine relationships failed to set up", failed.Load())
	}
	fmt.Fprintf(out, "genuine: %d relationships with a grant in %s\n", rels, time.Since(start).Round(time.Millisecond))

	// 2. The genuine organization's reads, before any flood.
	page, err := first.ReadCollection(ctx, grant, "profile", 1, "")
	if err != nil {
		return err
	}
	recID := page.Records[0].ID
	readLoad := func(stop <-chan struct{}) *atomic.Int64 {
		var n atomic.Int64
		for range 4 {
			go func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					if _, err := first.ReadRecord(ctx, grant, "profile", recID); err == nil {
						n.Add(1)
					}
				}
			}()
		}
		return &n
	}
	stop := make(chan struct{})
	n := readLoad(stop)
	time.Sleep(readFor)
	close(stop)
	before := float64(n.Load()) / readFor.Seconds()
	fmt.Fprintf(out, "reads before the flood: %.0f/s (4 clients)\n", before)

	// 3. A flood of requests from fresh keys.
	stranger := ask
	stranger.ClientName = "Flood"
	acc, ref, oth, took := requestFlood(ctx, srv.url, hc, stranger, requests)
	fmt.Fprintf(out, "request flood: %d requests from fresh keys in %s: %d accepted, %d refused (429), %d other\n",
		requests, took.Round(time.Millisecond), acc, ref, oth)

	// 4. A flood of proofs from fresh keys against a copied grant, while
	// the genuine organization reads. The attacker's proofs are made
	// beforehand, so that their signing (which happens on the attacker's
	// machine) does not take this machine's CPU during the measurement.
	target := srv.url + "/v1/data/profile/" + recID
	forged := make([]string, proofs)
	parallel(2, proofs, func(i int) {
		key, _ := client.GenerateKey("EdDSA")
		forged[i], _ = key.Proof("GET", target, grant, time.Now().Add(30*time.Second))
	})
	send := func(batch []string) {
		parallel(4, len(batch), func(i int) {
			req, _ := http.NewRequestWithContext(ctx, "GET", target, nil)
			req.Header.Set("Authorization", "DPoP "+grant)
			req.Header.Set("DPoP", batch[i])
			if res, err := hc.Do(req); err == nil {
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
			}
		})
	}
	// The server's cost of one stranger's proof, alone.
	alone := forged[:proofs/4]
	cpu0, _ := srv.cpu()
	send(alone)
	cpu1, _ := srv.cpu()
	fmt.Fprintf(out, "proof flood alone: server CPU %.1f µs per stranger's proof (%d proofs)\n",
		float64((cpu1-cpu0).Microseconds())/float64(len(alone)), len(alone))
	rest := forged[proofs/4:]
	stop = make(chan struct{})
	n = readLoad(stop)
	start = time.Now()
	send(rest)
	var sent atomic.Int64
	sent.Store(int64(len(rest)))
	elapsed := time.Since(start)
	close(stop)
	during := float64(n.Load()) / elapsed.Seconds()
	fmt.Fprintf(out, "proof flood: %d proofs from fresh keys in %s (%.0f/s); genuine reads during it %.0f/s = %.0f%% of before\n",
		sent.Load(), elapsed.Round(time.Millisecond), float64(sent.Load())/elapsed.Seconds(), during, 100*during/before)
	fmt.Fprintf(out, "server memory: high-water %.1f MiB, now %.1f MiB\n", float64(srv.hwm())/(1<<20), float64(srv.status("VmRSS"))/(1<<20))

	// 5. What the owner looks at, after all that.
	if err := ownerViews(ctx, out, srv.url, owner.Token(), hc); err != nil {
		return err
	}

	// 6. A flood of requests padded to the size limit, on a fresh vault:
	// how much can strangers make it grow?
	fv2, err := startFloodVault(ctx)
	if err != nil {
		return err
	}
	defer fv2.close()
	padded := stranger
	padded.PurposeText = strings.Repeat("p", 1000)
	padded.AuthorizationDetails = nil
	long := strings.Repeat("f", 55)
	for c := range 7 {
		var fields []string
		for f := range 100 {
			fields = append(fields, fmt.Sprintf("%s%03d", long, f))
		}
		padded.AuthorizationDetails = append(padded.AuthorizationDetails, client.Detail(fmt.Sprintf("col%d", c), fields...))
	}
	size0 := dbSize(fv2.dir)
	acc, ref, oth, took = requestFlood(ctx, fv2.srv.url, fv2.hc, padded, requests)
	growth := dbSize(fv2.dir) - size0
	fmt.Fprintf(out, "padded request flood (58 KiB each) on a fresh vault: %d in %s: %d accepted, %d refused, %d other; database growth %.1f MiB\n",
		requests, took.Round(time.Millisecond), acc, ref, oth, float64(growth)/(1<<20))
	return ownerViews(ctx, out, fv2.srv.url, fv2.owner.Token(), fv2.hc)
}

// floodVault is a vault served by its own process, with the owner logged in.
type floodVault struct {
	dir   string
	srv   *benchServer
	owner *client.Owner
	hc    *http.Client
}

func startFloodVault(ctx context.Context) (*floodVault, error) {
	dir, err := os.MkdirTemp("", "pdvault-flood-")
	if err != nil {
		return nil, err
	}
	pass := randomPassphrase()
	v, err := vault.Create(ctx, dir, []byte(pass), vault.Options{})
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	batch := make([][]byte, 100)
	for i := range batch {
		batch[i] = fmt.Appendf(nil, `{"name":"Person %d","email":"p%d@example.org"}`, i, i)
	}
	_, err = v.CreateRecords(ctx, "profile", batch)
	v.Close()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	srv, err := startBenchServer(ctx, dir, pass)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	hc := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConns: 64, MaxIdleConnsPerHost: 64}}
	owner, _ := client.NewOwner(srv.url, "", hc)
	if _, _, err := owner.Login(ctx, pass); err != nil {
		srv.stop()
		os.RemoveAll(dir)
		return nil, err
	}
	return &floodVault{dir: dir, srv: srv, owner: owner, hc: hc}, nil
}

func (f *floodVault) close() {
	f.srv.stop()
	os.RemoveAll(f.dir)
}

// requestFlood sends n requests like ask, each from a fresh key.
func requestFlood(ctx context.Context, url string, hc *http.Client, ask client.AccessRequest, n int) (acc, ref, oth int64, took time.Duration) {
	var accepted, refused, other atomic.Int64
	start := time.Now()
	parallel(16, n, func(int) {
		key, _ := client.GenerateKey("EdDSA")
		o, _ := client.NewOrg(url, key, hc)
		_, err := o.Request(ctx, ask)
		switch {
		case err == nil:
			accepted.Add(1)
		case client.IsCode(err, "too_many_requests"):
			refused.Add(1)
		default:
			other.Add(1)
		}
	})
	return accepted.Load(), refused.Load(), other.Load(), time.Since(start)
}

// ownerViews measures the owner's pages and API listings: 100 GETs each.
func ownerViews(ctx context.Context, out io.Writer, base, tok string, hc *http.Client) error {
	for _, path := range []string{"/v1/owner/requests?status=pending", "/v1/owner/requests", "/v1/owner/relationships", "/ui/", "/ui/requests", "/ui/relationships"} {
		var lat []time.Duration
		for range 100 {
			req, _ := http.NewRequestWithContext(ctx, "GET", base+path, nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			req.AddCookie(&http.Cookie{Name: "pdvault_session", Value: tok})
			t0 := time.Now()
			res, err := hc.Do(req)
			if err != nil {
				return err
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode != 200 {
				return fmt.Errorf("%s: HTTP %d", path, res.StatusCode)
			}
			lat = append(lat, time.Since(t0))
		}
		slices.Sort(lat)
		fmt.Fprintf(out, "  owner view %-34s p50 %6.2f ms  p99 %6.2f ms\n", path, ms(lat[49]), ms(lat[98]))
	}
	return nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// parallel runs f(0..n-1) on w goroutines.
func parallel(w, n int, f func(i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range w {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				f(i)
			}
		})
	}
	wg.Wait()
}

// dbSize is the vault's database with its WAL.
func dbSize(dir string) int64 {
	var n int64
	for _, s := range []string{"", "-wal"} {
		if fi, err := os.Stat(filepath.Join(dir, vault.DBFile+s)); err == nil {
			n += fi.Size()
		}
	}
	return n
}
