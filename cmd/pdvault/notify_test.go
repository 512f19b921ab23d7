package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// The CLI adds a webhook, prints its secret once, sends a test message
// that the receiver verifies, and lists the delivery.
func TestNotifyCLI(t *testing.T) {
	type msg struct {
		body []byte
		h    http.Header
	}
	got := make(chan msg, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- msg{b, r.Header.Clone()}
	}))
	defer srv.Close()
	c := devVault(t)
	r := c.run("notify", "add", "webhook", srv.URL+"/hook")
	secret := regexp.MustCompile(`whsec_[A-Za-z0-9+/=]+`).FindString(r.stdout)
	id := regexp.MustCompile(`channel (\S+) `).FindStringSubmatch(r.stdout)
	if r.code != 0 || secret == "" || id == nil {
		t.Fatalf("notify add: %+v", r)
	}
	if r := c.run("notify", "test", id[1]); r.code != 0 {
		t.Fatalf("notify test: %+v", r)
	}
	select {
	case m := <-got:
		wh, _ := standardwebhooks.NewWebhook(secret)
		if err := wh.Verify(m.body, m.h); err != nil || !strings.Contains(string(m.body), `"pdvault.test"`) {
			t.Fatalf("test message %s: %v", m.body, err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("no test message")
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		r := c.run("notify", "list")
		if r.code == 0 && strings.Contains(r.stdout, "webhook") && regexp.MustCompile(`webhook\s+127\.0\.0\.1:\d+\s+1\s+0\s+0`).MatchString(r.stdout) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("notify list: %+v", r)
		}
	}
	if r := c.run("notify", "add", "sms", "x"); r.code != 2 || !strings.Contains(r.stderr, "unknown channel kind") {
		t.Fatalf("bad kind: %+v", r)
	}
	if r := c.run("notify", "remove", id[1]); r.code != 0 {
		t.Fatalf("remove: %+v", r)
	}
}
