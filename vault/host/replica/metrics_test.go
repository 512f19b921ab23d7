package replica

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pdvault/pdvault/internal/s3test"
)

// Every vector forgetMetrics names is one Litestream registered, exactly:
// an upgrade that renames one fails here instead of leaking again.
func TestMetricsMatchLitestream(t *testing.T) {
	for _, m := range litestreamVecs {
		if _, err := m.registered(); err != nil {
			t.Errorf("%s: %v", m.name, err)
		}
	}
}

// seriesOf counts the default registry's series labelled with path.
func seriesOf(t *testing.T, path string) int {
	t.Helper()
	mfs, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "db" && l.GetValue() == path {
					n++
				}
			}
		}
	}
	return n
}

// A vault's replication leaves no Litestream series behind once it stops.
func TestMetricsForgotten(t *testing.T) {
	srv := s3test.Start(t)
	ctx := t.Context()
	a := newHost(t, newStore(t, srv, "host-a", 6*time.Second, testKey))
	hd, err := a.Create(ctx, "erin", []byte(pass))
	if err != nil {
		t.Fatal(err)
	}
	hd.Release()
	write(t, a, "erin", 3)
	hd, err = a.Acquire(ctx, "erin")
	if err != nil {
		t.Fatal(err)
	}
	c := claimOf(t, hd)
	c.mu.Lock()
	path := c.ldb.Path()
	c.mu.Unlock()
	hd.Release()
	if !strings.HasSuffix(path, "/erin/vault.db") {
		t.Fatalf("replicated path %q", path)
	}
	if n := seriesOf(t, path); n < 5 {
		t.Fatalf("%d Litestream series for the open vault; the test would prove nothing", n)
	}
	if _, err := a.Release(ctx, "erin"); err != nil {
		t.Fatal(err)
	}
	if n := seriesOf(t, path); n != 0 {
		t.Fatalf("%d Litestream series left after the vault's replication stopped", n)
	}
}
