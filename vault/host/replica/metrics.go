package replica

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Litestream v0.3.13 registers its metrics in Prometheus's default
// registry with a "db" label per database path, and never deletes a
// series. A host opens and closes many vaults over its life: left alone,
// every vault ever opened would keep about a dozen series in memory.
// pdvault's /metrics does not show the default registry, so these series
// are deleted when a vault's replication stops.
//
// The vectors are unexported in Litestream; registering an identical
// vector hands back the registered one (AlreadyRegisteredError), through
// which its series for one path can be deleted. TestMetricsMatchLitestream
// fails if an upgrade changes a name, help text or label.
type litestreamVec struct {
	name, help string
	labels     []string
	gauge      bool
}

var litestreamVecs = []litestreamVec{
	{"litestream_db_size", "The current size of the real DB", []string{"db"}, true},
	{"litestream_wal_size", "The current size of the real WAL", []string{"db"}, true},
	{"litestream_total_wal_bytes", "Total number of bytes written to shadow WAL", []string{"db"}, false},
	{"litestream_shadow_wal_index", "The current index of the shadow WAL", []string{"db"}, true},
	{"litestream_shadow_wal_size", "Current size of shadow WAL, in bytes", []string{"db"}, true},
	{"litestream_sync_count", "Number of sync operations performed", []string{"db"}, false},
	{"litestream_sync_error_count", "Number of sync errors that have occurred", []string{"db"}, false},
	{"litestream_sync_seconds", "Time spent syncing shadow WAL, in seconds", []string{"db"}, false},
	{"litestream_checkpoint_count", "Number of checkpoint operations performed", []string{"db", "mode"}, false},
	{"litestream_checkpoint_error_count", "Number of checkpoint errors that have occurred", []string{"db", "mode"}, false},
	{"litestream_checkpoint_seconds", "Time spent checkpointing WAL, in seconds", []string{"db", "mode"}, false},
	{"litestream_replica_wal_bytes", "The number wal bytes written", []string{"db", "name"}, false},
	{"litestream_replica_wal_index", "The current WAL index", []string{"db", "name"}, true},
	{"litestream_replica_wal_offset", "The current WAL offset", []string{"db", "name"}, true},
	{"litestream_replica_validation_total", "The number of validations performed", []string{"db", "name", "status"}, false},
}

// errNotLitestreams: no such vector was registered (Litestream renamed it).
var errNotLitestreams = errors.New("not registered by Litestream")

// registered is Litestream's own vector m, obtained by registering an
// identical one.
func (m litestreamVec) registered() (prometheus.Collector, error) {
	var c prometheus.Collector
	if m.gauge {
		c = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: m.name, Help: m.help}, m.labels)
	} else {
		c = prometheus.NewCounterVec(prometheus.CounterOpts{Name: m.name, Help: m.help}, m.labels)
	}
	err := prometheus.DefaultRegisterer.Register(c)
	var are prometheus.AlreadyRegisteredError
	switch {
	case errors.As(err, &are):
		return are.ExistingCollector, nil
	case err == nil:
		prometheus.DefaultRegisterer.Unregister(c)
		return nil, errNotLitestreams
	}
	return nil, err
}

// forgetMetrics deletes Litestream's series of the database at path.
func forgetMetrics(path string) {
	for _, m := range litestreamVecs {
		c, _ := m.registered()
		switch v := c.(type) {
		case *prometheus.GaugeVec:
			v.DeletePartialMatch(prometheus.Labels{"db": path})
		case *prometheus.CounterVec:
			v.DeletePartialMatch(prometheus.Labels{"db": path})
		}
	}
}
