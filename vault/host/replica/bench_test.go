package replica

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/benbjohnson/litestream"

	"github.com/pdvault/pdvault/internal/s3test"
	"github.com/pdvault/pdvault/vault"
	"github.com/pdvault/pdvault/vault/host"
)

// Figures of docs/benchmarks.md, "Issue 14: beyond one host". Both run
// against a real Versity S3 Gateway on loopback (its disk is this
// machine's).

// envInt is a whole number from the environment, def if unset or not one
// (0 counts where a caller gives it a meaning).
func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n >= 0 {
		return n
	}
	return def
}

// BenchmarkMove: a vault of PDVAULT_BENCH_MB MiB (one document) is
// released by host A (final flush, lease given up) and served by host B
// (lease, restore from the replica, open): the time of each, and the
// restore's rate.
func BenchmarkMove(b *testing.B) {
	mb := envInt("PDVAULT_BENCH_MB", 64)
	srv := s3test.Start(b)
	ctx := b.Context()
	sa, sb := benchStore(b, srv, "host-a", time.Second), benchStore(b, srv, "host-b", time.Second)
	ha, _ := benchHost(b, sa)
	hb, rootB := benchHost(b, sb)
	hd, err := ha.Create(ctx, "alice", []byte(pass))
	if err != nil {
		b.Fatal(err)
	}
	if _, err := hd.Vault.AddDocument(ctx, io.LimitReader(rand.Reader, int64(mb)<<20), vault.DocumentInput{Title: "scan", MediaType: "application/octet-stream"}); err != nil {
		b.Fatal(err)
	}
	// Let the replica catch up before the move, as it would in steady use.
	if err := claimOf(b, hd).Flush(ctx); err != nil {
		b.Fatal(err)
	}
	hd.Release()
	b.ResetTimer()
	t0 := time.Now()
	if ok, err := ha.Release(ctx, "alice"); err != nil || !ok {
		b.Fatal(ok, err)
	}
	released := time.Since(t0)
	t1 := time.Now()
	hd, err = hb.Acquire(ctx, "alice")
	if err != nil {
		b.Fatal(err)
	}
	served := time.Since(t1)
	hd.Release()
	b.StopTimer()
	fi, err := os.Stat(filepath.Join(rootB, "vaults", "alice", vault.DBFile))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(fi.Size())/(1<<20), "vault-MiB")
	b.ReportMetric(released.Seconds(), "release-s")
	b.ReportMetric(served.Seconds(), "restore+open-s")
	b.ReportMetric(float64(fi.Size())/(1<<20)/served.Seconds(), "restore-MiB/s")
}

// BenchmarkReplicationLag: four goroutines commit to a replicated vault
// (the load organizations' reads put on the database: each read commits
// an audit entry; here each commit is a record), PDVAULT_BENCH_LOAD
// commits a second in all (default 100; 0: as fast as they can), while the
// owner writes a record every 50 ms; for each of those writes, the time
// from its commit to the replica holding it. PDVAULT_BENCH_SYNC_MS sets
// --replica-sync (default 1000); PDVAULT_BENCH_WRITES the number of
// writes (default 100); PDVAULT_BENCH_MAX_LAG_MS --replica-max-lag
// (default 5000; 0: no bound). Commits refused while the replica is behind
// are retried after 50 ms and counted.
func BenchmarkReplicationLag(b *testing.B) {
	syncMS := envInt("PDVAULT_BENCH_SYNC_MS", 1000)
	maxLag := time.Duration(envInt("PDVAULT_BENCH_MAX_LAG_MS", 5000)) * time.Millisecond
	if maxLag == 0 {
		maxLag = -1
	}
	writes := max(1, envInt("PDVAULT_BENCH_WRITES", 100))
	load := envInt("PDVAULT_BENCH_LOAD", 100)
	srv := s3test.Start(b)
	ctx := b.Context()
	s := benchStore(b, srv, "host-a", time.Duration(syncMS)*time.Millisecond)
	s.cfg.MaxLag = maxLag
	h, _ := benchHost(b, s)
	hd, err := h.Create(ctx, "alice", []byte(pass))
	if err != nil {
		b.Fatal(err)
	}
	defer hd.Release()
	v, c := hd.Vault, claimOf(b, hd)
	for range 20 {
		if _, err := v.CreateRecord(ctx, "notes", []byte(`{"n":0}`)); err != nil {
			b.Fatal(err)
		}
	}
	var stop atomic.Bool
	var reads, refused atomic.Int64
	// commit retries while the replica is behind.
	commit := func(coll string) error {
		for {
			_, err := v.CreateRecord(ctx, coll, []byte(`{"n":2}`))
			if !errors.Is(err, vault.ErrReplicaBehind) {
				return err
			}
			refused.Add(1)
			time.Sleep(50 * time.Millisecond)
		}
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var tick *time.Ticker
			if load > 0 {
				tick = time.NewTicker(time.Second * 4 / time.Duration(load))
				defer tick.Stop()
			}
			for !stop.Load() {
				if tick != nil {
					<-tick.C
				}
				if err := commit("load"); err != nil {
					b.Error(err)
					return
				}
				reads.Add(1)
			}
		}()
	}
	c.mu.Lock()
	ldb := c.ldb
	c.mu.Unlock()
	r := ldb.Replicas[0]
	var lags []time.Duration
	b.ResetTimer()
	start := time.Now()
	for range writes {
		before, _ := ldb.Pos()
		if err := commit("notes"); err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		var target litestream.Pos
		for {
			if p, _ := ldb.Pos(); p != before {
				target = p
				break
			}
			time.Sleep(time.Millisecond)
		}
		for beyond(target, r.Pos()) {
			time.Sleep(time.Millisecond)
		}
		lags = append(lags, time.Since(t0))
		time.Sleep(50 * time.Millisecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	stop.Store(true)
	wg.Wait()
	slices.Sort(lags)
	b.ReportMetric(float64(lags[len(lags)/2].Milliseconds()), "p50-ms")
	b.ReportMetric(float64(lags[len(lags)*99/100].Milliseconds()), "p99-ms")
	b.ReportMetric(float64(lags[len(lags)-1].Milliseconds()), "max-ms")
	b.ReportMetric(float64(reads.Load())/elapsed.Seconds(), "load-commits/s")
	b.ReportMetric(float64(refused.Load()), "refused")
	b.Log(fmt.Sprintf("sync interval %dms, max lag %v, load %d commits/s (0: unbounded), %d writes", syncMS, maxLag, load, writes))
}

func benchStore(b *testing.B, srv *s3test.Server, holder string, sync time.Duration) *Store {
	cfg, err := ParseURL(srv.URL("bench"))
	if err != nil {
		b.Fatal(err)
	}
	cfg.AccessKey, cfg.SecretKey, cfg.Holder, cfg.SyncInterval, cfg.HandoverKey = srv.AccessKey, srv.SecretKey, holder, sync, testKey
	s, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	return s
}

func benchHost(b *testing.B, s *Store) (*host.Host, string) {
	root := b.TempDir()
	h, err := host.New(host.Options{Root: root, Placement: s, IssuerFor: func(n string) string { return "https://" + n + ".vaults.example" }})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { h.Close(context.Background()) })
	return h, root
}

// BenchmarkConfirmedWrites: PDVAULT_BENCH_CLIENTS writers (default 8) at
// one vault for PDVAULT_BENCH_SECONDS (default 5), with asynchronous
// replication and then with Config.Confirm, in the same run: writes a
// second and the time to each acknowledgement, p50/p99.
func BenchmarkConfirmedWrites(b *testing.B) {
	clients, secs := envInt("PDVAULT_BENCH_CLIENTS", 8), envInt("PDVAULT_BENCH_SECONDS", 5)
	srv := s3test.Start(b)
	ctx := b.Context()
	rates := map[bool]float64{}
	for _, confirm := range []bool{false, true} {
		s := benchStore(b, srv, fmt.Sprint("host-", confirm), time.Second)
		s.cfg.Confirm = confirm
		h, _ := benchHost(b, s)
		name := map[bool]string{false: "async", true: "sync"}[confirm]
		hd, err := h.Create(ctx, name, []byte(pass))
		if err != nil {
			b.Fatal(err)
		}
		var mu sync.Mutex
		var lat []time.Duration
		var refused atomic.Int64
		end := time.Now().Add(time.Duration(secs) * time.Second)
		var wg sync.WaitGroup
		for range clients {
			wg.Go(func() {
				for time.Now().Before(end) {
					t0 := time.Now()
					if _, err := hd.Vault.CreateRecord(ctx, "notes", []byte(`{"n":1}`)); err != nil {
						refused.Add(1)
						continue
					}
					d := time.Since(t0)
					mu.Lock()
					lat = append(lat, d)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		hd.Release()
		slices.Sort(lat)
		rates[confirm] = float64(len(lat)) / float64(secs)
		b.Logf("%s: %d clients, %.0f writes/s, acknowledged after p50 %v, p99 %v; %d refused", name, clients, rates[confirm],
			lat[len(lat)/2].Round(10*time.Microsecond), lat[len(lat)*99/100].Round(10*time.Microsecond), refused.Load())
	}
	b.ReportMetric(rates[true]/rates[false], "sync/async")
}
