package api

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/pdvault/pdvault/vault"
)

const metricsToken = "0123456789abcdef-metrics"

func scrape(t *testing.T, url, token string) (int, map[string]*dto.MetricFamily) {
	t.Helper()
	req, _ := http.NewRequest("GET", url+"/metrics", nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		io.Copy(io.Discard, res.Body)
		return res.StatusCode, nil
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(res.Body)
	if err != nil {
		t.Fatalf("metrics do not parse: %v", err)
	}
	return 200, fams
}

// value finds a sample by its labels (a histogram's sample count).
func value(fams map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.Metric {
		have := map[string]string{}
		for _, l := range m.Label {
			have[l.GetName()] = l.GetValue()
		}
		for i := 0; i < len(labels); i += 2 {
			if have[labels[i]] != labels[i+1] {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

func TestMetrics(t *testing.T) {
	e := newEnv(t)
	m := NewMetrics(e.v)
	srv := httptest.NewServer(New(e.v, Config{RatePerAddress: -1, Metrics: m, MetricsToken: metricsToken}))
	defer srv.Close()
	e.v.SetIssuer(srv.URL)
	e.srv = srv
	e.record("profile", `{"name":"Ada"}`)
	o := e.org("ES256")
	tok := e.grantFor(o, askProfile("name"), vault.Approval{})
	if _, err := o.ReadCollection(t.Context(), tok.AccessToken, "profile", 10, ""); err != nil {
		t.Fatal(err)
	}
	_, err := o.ReadCollection(t.Context(), "not-a-grant", "profile", 10, "")
	wantCode(t, err, "invalid_token")
	if _, err := e.v.VerifyAudit(t.Context()); err != nil {
		t.Fatal(err)
	}

	if code, _ := scrape(t, srv.URL, ""); code != http.StatusUnauthorized {
		t.Fatalf("metrics without the token: %d", code)
	}
	if code, _ := scrape(t, srv.URL, metricsToken+"x"); code != http.StatusUnauthorized {
		t.Fatalf("metrics with a wrong token: %d", code)
	}
	_, fams := scrape(t, srv.URL, metricsToken)
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"pdvault_reads_total", []string{"outcome", "ok"}, 1},
		{"pdvault_reads_total", []string{"outcome", "invalid_token"}, 1},
		{"pdvault_access_requests", []string{"state", "collected"}, 1},
		{"pdvault_access_requests", []string{"state", "pending"}, 0},
		{"pdvault_http_request_duration_seconds", []string{"route", "data.collection", "code", "200"}, 1},
		{"pdvault_http_errors_total", []string{"route", "data.collection", "error", "invalid_token"}, 1},
		{"pdvault_commit_batch_size", nil, 1},
		{"pdvault_audit_last_verification_ok", nil, 1},
		{"pdvault_vault_unlocked", nil, 1},
	} {
		if got, ok := value(fams, c.name, c.labels...); !ok || got != c.want {
			t.Errorf("%s%v = %v (found %v), want %v", c.name, c.labels, got, ok, c.want)
		}
	}
	if n, _ := value(fams, "pdvault_audit_entries"); n < 4 {
		t.Errorf("audit entries %v", n)
	}
	if _, ok := fams["go_goroutines"]; !ok {
		t.Error("no Go runtime metrics")
	}
	// Nothing about who: no organization name, no record value.
	req, _ := http.NewRequest("GET", srv.URL+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+metricsToken)
	res, _ := http.DefaultClient.Do(req)
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	for _, leak := range []string{"Acme", "Ada", o.Key().Thumbprint()} {
		if strings.Contains(string(body), leak) {
			t.Errorf("metrics mention %q", leak)
		}
	}
}

// Without a token, /metrics is not on the vault's handler at all.
func TestMetricsNotOnPublicPortWithoutToken(t *testing.T) {
	e := newEnv(t)
	srv := httptest.NewServer(New(e.v, Config{RatePerAddress: -1, Metrics: NewMetrics(e.v)}))
	defer srv.Close()
	e.v.SetIssuer(srv.URL)
	if code, _ := scrape(t, srv.URL, ""); code != http.StatusNotFound {
		t.Fatalf("/metrics without a token configured: %d", code)
	}
}

func TestReadyz(t *testing.T) {
	e := newEnv(t)
	if r := e.do("GET", "/readyz", "", nil); r.status != 200 {
		t.Fatalf("readyz: %d %s", r.status, r.body)
	}
	e.v.Close()
	r := e.do("GET", "/readyz", "", nil)
	if r.status != http.StatusServiceUnavailable || r.errCode(t) != "vault_locked" {
		t.Fatalf("readyz when locked: %d %s", r.status, r.body)
	}
	if r := e.do("GET", "/healthz", "", nil); r.status != 200 {
		t.Fatalf("healthz when locked: %d", r.status)
	}
}
