package vault

import (
	"crypto/ed25519"
	"fmt"
	"path/filepath"
	"testing"
)

// Benchmarks for the paths docs/benchmarks.md reports. Run with
//
//	go test ./vault -run '^$' -bench . -benchtime 2s
//
// Compare ratios within one run: the machines are noisy.

func benchVault(b *testing.B) *Vault {
	b.Helper()
	v, err := Create(b.Context(), filepath.Join(b.TempDir(), "v"), []byte(testPass), Options{RatePerOrg: -1})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { v.Close() })
	return v
}

// BenchmarkUnlockKDF is one Argon2id derivation at the default cost: the
// price of every unlock and login.
func BenchmarkUnlockKDF(b *testing.B) {
	p := DefaultKDFParams()
	for b.Loop() {
		if _, err := deriveKEK([]byte(testPass), p); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRecordCreate(b *testing.B) {
	v := benchVault(b)
	ctx := b.Context()
	for b.Loop() {
		if _, err := v.CreateRecord(ctx, "transactions", []byte(`{"amount":12.5,"merchant":"Shop","date":"2026-11-23"}`)); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRecordGet(b *testing.B) {
	v := benchVault(b)
	ctx := b.Context()
	r, _ := v.CreateRecord(ctx, "profile", []byte(`{"name":"Ada","email":"a@x"}`))
	for b.Loop() {
		if _, err := v.GetRecord(ctx, "profile", r.ID); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEd25519Verify is the unit the read path is measured against.
func BenchmarkEd25519Verify(b *testing.B) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	msg := make([]byte, 300)
	sig := ed25519.Sign(priv, msg)
	for b.Loop() {
		if !ed25519.Verify(pub, msg, sig) {
			b.Fatal("bad signature")
		}
	}
}

// BenchmarkGrantRead is an organization's grant-authorized read of one
// record, in process: proof verification, grant (cached), projection, and
// the durable audit append. Proofs are made outside the timer.
func BenchmarkGrantRead(b *testing.B) {
	v := benchVault(b)
	ctx := b.Context()
	r, _ := v.CreateRecord(ctx, "profile", []byte(`{"name":"Ada","email":"a@x","phone":"1"}`))
	o := newOrg(b)
	tok := o.grant(b, v, Approval{})
	orgID := v.orgRecordID(o.jkt, r.ID) // the id this organization sees
	path := "/v1/data/profile/" + orgID
	b.StopTimer()
	proofs := make([]string, b.N)
	for i := range proofs {
		proofs[i], _ = o.proof(b, v, "GET", path, tok.AccessToken)
	}
	hc := HTTPContext{Method: "GET", URL: v.Issuer() + path}
	b.StartTimer()
	for i := range b.N {
		if _, err := v.ReadRecord(ctx, Access{Grant: tok.AccessToken, Proof: proofs[i], HTTP: hc}, "profile", orgID); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAuditVerify reports entries verified per second.
func BenchmarkAuditVerify(b *testing.B) {
	for _, n := range []int{10000, 200000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			v := benchVault(b)
			ctx := b.Context()
			// Fill the log directly, in batches, as reads would.
			// A read's entry, as the server writes it.
			e := AuditEntry{Event: EvDataRead, Actor: "1x5oJhAFFnhTl-SgHjNxPxhw9u55Gk0e8CEs6gVM-n0", ClientID: "1x5oJhAFFnhTl-SgHjNxPxhw9u55Gk0e8CEs6gVM-n0",
				ClientName: "Acme Bikes", Outcome: OutcomeAllowed, GrantID: newID(), Collection: "profile", RecordIDs: []string{newID()}, Fields: []string{"name", "email"}}
			for i := 0; i < n; i += 1000 {
				tx, _ := v.db.w.BeginTx(ctx, nil)
				for j := 0; j < 1000 && i+j < n; j++ {
					if err := v.appendAudit(ctx, tx, e); err != nil {
						b.Fatal(err)
					}
				}
				if err := tx.Commit(); err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			for b.Loop() {
				rep, err := v.VerifyAudit(ctx)
				if err != nil || !rep.OK {
					b.Fatalf("%+v %v", rep, err)
				}
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "entries/s")
		})
	}
}

// BenchmarkListPage: a page costs the same at the start and deep in a
// large collection (one index range scan).
func BenchmarkListPage(b *testing.B) {
	v := benchVault(b)
	ctx := b.Context()
	const n = 100000
	for done := 0; done < n; done += 5000 {
		batch := make([][]byte, 5000)
		for i := range batch {
			batch[i] = []byte(`{"amount":1}`)
		}
		if _, err := v.CreateRecords(ctx, "transactions", batch); err != nil {
			b.Fatal(err)
		}
	}
	deep := encodeCursor(int64(n - 100)) // near the end
	for _, tc := range []struct{ name, cursor string }{{"first", ""}, {"deep", deep}} {
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				p, err := v.ListRecords(ctx, "transactions", 50, tc.cursor)
				if err != nil || len(p.Records) != 50 {
					b.Fatalf("%d %v", len(p.Records), err)
				}
			}
		})
	}
}
