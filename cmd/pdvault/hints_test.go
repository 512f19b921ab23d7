package main

import (
	"fmt"
	"testing"
	"time"

	"github.com/pdvault/pdvault/api/client"
)

// The errors a new user meets first come with what to do next.
func TestHintsForCommonErrors(t *testing.T) {
	port := freePort(t)
	c := &cli{t: t, env: map[string]string{"PDVAULT_ADDR": fmt.Sprintf("http://127.0.0.1:%d", port), "PDVAULT_TOKEN": "x"}}
	r := c.run("record", "list", "profile")
	expect(t, r, 1, "pdvault: hint: no vault is listening at http://127.0.0.1:")

	dev := devVault(t)
	dev.env["PDVAULT_TOKEN"] = "not-a-session"
	r = dev.run("record", "list", "profile")
	expect(t, r, 1, `log in again: eval "$(pdvault login)"`)
	delete(dev.env, "PDVAULT_TOKEN")
	r = dev.run("record", "list", "profile")
	expect(t, r, 1, "pdvault login makes one")
}

func TestHintForThrottling(t *testing.T) {
	a := (&cli{t: t, env: map[string]string{}}).app(&syncBuffer{}, &syncBuffer{})
	err := fmt.Errorf("login: %w", &client.Error{Status: 429, Code: "slow_down", RetryAfter: 31 * time.Second})
	if h := a.adviceFor(err); h != "too many requests; try again in 31s" {
		t.Fatalf("hint %q", h)
	}
}
