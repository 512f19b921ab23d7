package vault

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/pdvault/pdvault/policy"
)

// A vault whose fence closes refuses every write with vault_not_held and
// keeps nothing of it, whatever path the write takes; reads still answer.
func TestFenceRefusesCommits(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	var lost atomic.Bool
	opts := Options{Now: newClock().Now}
	opts.Fence = func() error {
		if lost.Load() {
			return errors.New("lease lost")
		}
		return nil
	}
	v, err := Create(ctx, dir, []byte(testPass), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if _, err := v.CreateRecord(ctx, "notes", []byte(`{"a":1}`)); err != nil {
		t.Fatalf("write with the fence open: %v", err)
	}
	before, err := v.ListRecords(ctx, "notes", 100, "")
	if err != nil {
		t.Fatal(err)
	}
	lost.Store(true)
	_, err = v.CreateRecord(ctx, "notes", []byte(`{"b":2}`))
	if policy.CodeOf(err) != "vault_not_held" {
		t.Fatalf("write with the fence closed: %v, want vault_not_held", err)
	}
	// A write that does not go through the store's transaction helper.
	if _, err := v.db.w.ExecContext(ctx, `INSERT INTO terms (hash, body, created) VALUES ('x', '{}', 0)`); err == nil {
		t.Fatal("a direct write committed past the fence")
	}
	after, err := v.ListRecords(ctx, "notes", 100, "")
	if err != nil {
		t.Fatalf("read with the fence closed: %v", err)
	}
	if len(after.Records) != len(before.Records) {
		t.Fatalf("records: %d before, %d after a refused write", len(before.Records), len(after.Records))
	}
	lost.Store(false)
	if _, err := v.CreateRecord(ctx, "notes", []byte(`{"c":3}`)); err != nil {
		t.Fatalf("write with the fence open again: %v", err)
	}
}
