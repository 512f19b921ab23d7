package vault

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"
)

type countingNotifier struct {
	mu   sync.Mutex
	sent []Notification
}

func (c *countingNotifier) Send(_ context.Context, _ ChannelConfig, n Notification, _ VAPIDKeys) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sent = append(c.sent, n)
	return nil
}

// A pending request is announced when it arrives and once more within
// the hour before it expires undecided — once, however often the loop looks.
func TestNotifyRequestAndExpiry(t *testing.T) {
	v, _, clk := newTestVault(t)
	cn := &countingNotifier{}
	v.opts.Notifier, v.opts.AllowLoopbackHTTP = cn, true
	if _, err := v.AddChannel(t.Context(), ChannelConfig{Kind: ChannelNtfy, URL: "https://ntfy.example/topic"}); err != nil {
		t.Fatal(err)
	}
	o := newOrg(t)
	tk, err := v.SubmitRequest(t.Context(), o.request(t, v, nil), "")
	if err != nil {
		t.Fatal(err)
	}
	deliver := func() {
		t.Helper()
		v.warnExpiring(t.Context())
		if _, err := v.DeliverNotifications(t.Context(), nil); err != nil {
			t.Fatal(err)
		}
	}
	deliver()
	clk.Add(RequestLifetime - 30*time.Minute)
	deliver()
	deliver()
	cn.mu.Lock()
	defer cn.mu.Unlock()
	var events []string
	for _, n := range cn.sent {
		events = append(events, n.Event)
		if !strings.HasSuffix(n.Link, "/ui/requests/"+tk.RequestID) {
			t.Errorf("%s links to %q", n.Event, n.Link)
		}
	}
	if got := strings.Join(events, " "); got != EventRequest+" "+EventRequestExpires {
		t.Fatalf("events %q", got)
	}
}
