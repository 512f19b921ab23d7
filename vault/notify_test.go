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

// A grant that ended without a deletion receipt is announced once when
// its deadline passes; a grant with a receipt, or still within its
// deadline, is not. A tampered row is announced once.
func TestNotifyReceiptOverdueAndTampered(t *testing.T) {
	v, _, clk := newTestVault(t)
	ctx := t.Context()
	cn := &countingNotifier{}
	v.opts.Notifier, v.opts.AllowLoopbackHTTP = cn, true
	if _, err := v.AddChannel(ctx, ChannelConfig{Kind: ChannelNtfy, URL: "https://ntfy.example/topic"}); err != nil {
		t.Fatal(err)
	}
	v.CreateRecord(ctx, "profile", []byte(`{"name":"Ada"}`))
	o := newOrg(t)
	tok := o.grant(t, v, Approval{})
	g, err := v.verifyGrant(tok.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Revoke(ctx, g.ID); err != nil {
		t.Fatal(err)
	}
	look := func() {
		t.Helper()
		v.warnOverdue(ctx)
		v.warnTampered(ctx)
		if _, err := v.DeliverNotifications(ctx, nil); err != nil {
			t.Fatal(err)
		}
	}
	events := func() []string {
		cn.mu.Lock()
		defer cn.mu.Unlock()
		var ev []string
		for _, n := range cn.sent {
			if n.Event == EventReceiptOverdue || n.Event == EventTampered {
				ev = append(ev, n.Event)
			}
		}
		return ev
	}
	look() // just revoked: the deadline is ahead
	if ev := events(); len(ev) != 0 {
		t.Fatalf("told before the deadline: %v", ev)
	}
	var retention int64
	v.db.r.QueryRow(`SELECT retention FROM grants WHERE id = ?`, g.ID).Scan(&retention)
	clk.Add(time.Duration(retention)*time.Second + overdueEvery + time.Minute)
	look()
	look()
	clk.Add(overdueEvery + time.Minute)
	look()
	if ev := events(); len(ev) != 1 || ev[0] != EventReceiptOverdue {
		t.Fatalf("after the deadline: %v, want one %s", ev, EventReceiptOverdue)
	}
	cn.mu.Lock()
	last := cn.sent[len(cn.sent)-1]
	cn.mu.Unlock()
	if !strings.Contains(last.Body, g.ID) || !strings.Contains(last.Link, "/ui/relationships/") {
		t.Fatalf("overdue message: %+v", last)
	}

	// A row altered on disk: the read is refused, the owner told once.
	id := mustOnlyID(t, v, "profile")
	sqlExec(t, v, `UPDATE records SET version = version + 1`)
	for range 3 {
		_, err := v.GetRecord(ctx, "profile", id)
		wantErr(t, err, ErrTampered)
	}
	look()
	look()
	if ev := events(); len(ev) != 2 || ev[1] != EventTampered {
		t.Fatalf("after tampering: %v", ev)
	}
}
