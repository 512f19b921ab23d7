package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pdvault/pdvault/vault"
)

// Prometheus metrics (docs/operations.md, "Metrics"), with the official
// client library. Labels are route names, status codes and error codes:
// bounded sets, never a path, an organization or a record.

// StatsSource is the vault's side of the metrics.
type StatsSource interface {
	Stats(ctx context.Context) (vault.Stats, error)
}

// Metrics is one registry of the vault's metrics.
type Metrics struct {
	src        atomic.Pointer[StatsSource]
	reg        *prometheus.Registry
	duration   *prometheus.HistogramVec
	errors     *prometheus.CounterVec
	reads      *prometheus.CounterVec
	deliveries *prometheus.CounterVec
}

// NewMetrics registers the HTTP metrics, the vault's counts (read at each
// scrape) and the Go runtime's.
func NewMetrics(src StatsSource) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "pdvault_http_request_duration_seconds", Help: "Time to answer a request, by route and status code.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10},
		}, []string{"route", "code"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pdvault_http_errors_total", Help: "Requests answered with an error, by route and error code.",
		}, []string{"route", "error"}),
		reads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pdvault_reads_total", Help: "Reads by organizations (records, claims, documents), by outcome: ok or the error code of the refusal.",
		}, []string{"outcome"}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pdvault_notification_deliveries_total", Help: "Notifications to the owner, by channel and outcome.",
		}, []string{"channel", "outcome"}),
	}
	m.src.Store(&src)
	m.reg.MustRegister(m.duration, m.errors, m.reads, m.deliveries, vaultCollector{m},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Attach sets the vault whose counts are reported (NewMetrics(nil) when
// the metrics exist before the vault is open).
func (m *Metrics) Attach(src StatsSource) { m.src.Store(&src) }

func (m *Metrics) observe(route string, status int, errCode string, d time.Duration) {
	if status == 0 {
		status = http.StatusOK
	}
	m.duration.WithLabelValues(route, strconv.Itoa(status)).Observe(d.Seconds())
	if errCode != "" {
		m.errors.WithLabelValues(route, errCode).Inc()
	}
	if strings.HasPrefix(route, "data.") || route == "claims" {
		outcome := "ok"
		if errCode != "" {
			outcome = errCode
		}
		m.reads.WithLabelValues(outcome).Inc()
	}
}

// Delivered counts a notification delivery attempt.
func (m *Metrics) Delivered(channel string, ok bool) {
	outcome := "ok"
	if !ok {
		outcome = "failed"
	}
	m.deliveries.WithLabelValues(channel, outcome).Inc()
}

// Handler serves the metrics in the Prometheus text format. With a
// token, only a request bearing it (RFC 6750) is answered: that is what
// makes it safe on the vault's public port.
func (m *Metrics) Handler(token string) http.Handler {
	h := promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
	if token == "" {
		return h
	}
	want := sha256.Sum256([]byte("Bearer " + token))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := sha256.Sum256([]byte(r.Header.Get("Authorization")))
		if subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="metrics"`)
			writeJSON(w, http.StatusUnauthorized, errorBody{Error: "invalid_token", Description: "metrics need the metrics bearer token"})
			return
		}
		h.ServeHTTP(w, r)
	})
}

// lastOutcome reports when something last ran and whether it succeeded,
// once it has run.
func lastOutcome(ch chan<- prometheus.Metric, at time.Time, ok bool, descAt, descOK *prometheus.Desc) {
	if at.IsZero() {
		return
	}
	v := 0.0
	if ok {
		v = 1
	}
	ch <- prometheus.MustNewConstMetric(descOK, prometheus.GaugeValue, v)
	ch <- prometheus.MustNewConstMetric(descAt, prometheus.GaugeValue, float64(at.Unix()))
}

// vaultCollector reads the vault's counts at each scrape.
type vaultCollector struct{ m *Metrics }

var (
	descUnlocked  = prometheus.NewDesc("pdvault_vault_unlocked", "1 while the vault is unlocked and serving.", nil, nil)
	descRequests  = prometheus.NewDesc("pdvault_access_requests", "Access requests by state.", []string{"state"}, nil)
	descAudit     = prometheus.NewDesc("pdvault_audit_entries", "Entries in the audit log.", nil, nil)
	descVerifyOK  = prometheus.NewDesc("pdvault_audit_last_verification_ok", "1 if the last verification of the audit log since start succeeded, 0 if it found problems.", nil, nil)
	descVerifyAt  = prometheus.NewDesc("pdvault_audit_last_verification_timestamp_seconds", "When the audit log was last verified since start.", nil, nil)
	descBackupOK  = prometheus.NewDesc("pdvault_backup_last_ok", "1 if the last scheduled backup since start was made and verified, 0 if it failed.", nil, nil)
	descBackupAt  = prometheus.NewDesc("pdvault_backup_last_timestamp_seconds", "When a scheduled backup was last attempted since start.", nil, nil)
	descBatchSize = prometheus.NewDesc("pdvault_commit_batch_size", "Grant uses committed together (group commit), per batch.", nil, nil)
)

func (vaultCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descUnlocked, descRequests, descAudit, descVerifyOK, descVerifyAt, descBackupOK, descBackupAt, descBatchSize} {
		ch <- d
	}
}

func (c vaultCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	src := c.m.src.Load()
	if src == nil || *src == nil {
		ch <- prometheus.MustNewConstMetric(descUnlocked, prometheus.GaugeValue, 0)
		return
	}
	st, err := (*src).Stats(ctx)
	if err != nil {
		ch <- prometheus.MustNewConstMetric(descUnlocked, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(descUnlocked, prometheus.GaugeValue, 1)
	for state, n := range st.Requests {
		ch <- prometheus.MustNewConstMetric(descRequests, prometheus.GaugeValue, float64(n), state)
	}
	ch <- prometheus.MustNewConstMetric(descAudit, prometheus.GaugeValue, float64(st.AuditEntries))
	lastOutcome(ch, st.LastVerify, st.LastVerifyOK, descVerifyAt, descVerifyOK)
	lastOutcome(ch, st.LastBackup, st.LastBackupOK, descBackupAt, descBackupOK)
	buckets := map[float64]uint64{}
	var count uint64
	for i, n := range st.CommitBatches {
		count += uint64(n)
		buckets[math.Exp2(float64(i))] = count
	}
	ch <- prometheus.MustNewConstHistogram(descBatchSize, count, float64(st.CommitUses), buckets)
}
