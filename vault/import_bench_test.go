package vault

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/pdvault/pdvault/vault/importers"
)

// benchRows is the size of the generated statement; PDVAULT_BENCH_ROWS
// overrides it (docs/benchmarks.md uses 1,000,000).
func benchRows() int {
	if n, err := strconv.Atoi(os.Getenv("PDVAULT_BENCH_ROWS")); err == nil && n > 0 {
		return n
	}
	return 20000
}

// benchCSV is a bank CSV export of n rows, each one distinct.
func benchCSV(n int) []byte {
	var b bytes.Buffer
	b.WriteString("Buchungstag;Wertstellung;Auftraggeber/Empfänger;Verwendungszweck;Betrag;Währung\n")
	for i := range n {
		fmt.Fprintf(&b, "%02d.%02d.2026;%02d.%02d.2026;Händler %d;Kartenzahlung %d;-%d,%02d;EUR\n", i%28+1, i%12+1, i%28+1, i%12+1, i%500, i, i%300, i%100)
	}
	return b.Bytes()
}

// BenchmarkImportCSV imports the whole statement once per iteration into a
// fresh vault: parse, key, seal, store, all in one transaction.
func BenchmarkImportCSV(b *testing.B) {
	n := benchRows()
	data := benchCSV(n)
	sum := sha256.Sum256(data)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		b.StopTimer()
		dir := filepath.Join(b.TempDir(), "v")
		v, err := Create(context.Background(), dir, []byte(testPass), Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		res, err := v.ImportData(context.Background(), bytes.NewReader(data), DataImport{Name: "bench.csv", SHA256: sum[:]})
		if err != nil || res.Added != n {
			b.Fatalf("%+v %v", res, err)
		}
		b.StopTimer()
		v.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}

// BenchmarkPlainSQLiteCSV is the baseline: the same rows parsed by the
// same importer and inserted as JSON, unencrypted, in one transaction
// into a plain SQLite table with the vault's connection settings.
func BenchmarkPlainSQLiteCSV(b *testing.B) {
	n := benchRows()
	data := benchCSV(n)
	f, _ := importers.Lookup("csv")
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		b.StopTimer()
		path := filepath.Join(b.TempDir(), "plain.db")
		if err := setPageSize(path, defaultPageSize); err != nil { // the vault's page size too
			b.Fatal(err)
		}
		db, err := sql.Open("sqlite3", dsnFor(path, modeWrite))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := db.Exec(`CREATE TABLE records (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, collection TEXT NOT NULL, data BLOB NOT NULL)`); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		tx, _ := db.Begin()
		stmt, _ := tx.Prepare(`INSERT INTO records (id, collection, data) VALUES (?, ?, ?)`)
		err = f.Run(bytes.NewReader(data), nil, func(it importers.Item) error {
			raw, err := json.Marshal(it.Data)
			if err != nil {
				return err
			}
			_, err = stmt.Exec(newID(), it.Collection, raw)
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
		stmt.Close()
		if err := tx.Commit(); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		db.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}

// BenchmarkImportAppleHealth imports a generated export.xml of
// PDVAULT_BENCH_MB megabytes (default 8) streamed from disk and reports
// the process's peak resident memory (getrusage), which must not grow
// with the file (docs/benchmarks.md).
func BenchmarkImportAppleHealth(b *testing.B) {
	mb := 8
	if n, err := strconv.Atoi(os.Getenv("PDVAULT_BENCH_MB")); err == nil && n > 0 {
		mb = n
	}
	path := filepath.Join(b.TempDir(), "export.xml")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	h := sha256.New()
	w := io.MultiWriter(f, h)
	fmt.Fprint(w, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<HealthData locale=\"en_US\">\n")
	rows := 0
	for size := 0; size < mb<<20; rows++ {
		n, _ := fmt.Fprintf(w, "<Record type=\"HKQuantityTypeIdentifierHeartRate\" sourceName=\"Watch\" unit=\"count/min\" creationDate=\"2026-01-01 10:00:00 +0100\" startDate=\"2026-01-01 %02d:%02d:%02d +0100\" endDate=\"2026-01-01 %02d:%02d:%02d +0100\" value=\"%d\"/>\n",
			rows/3600%24, rows/60%60, rows%60, rows/3600%24, rows/60%60, rows%60, 40+rows%150+rows/86400)
		size += n
	}
	fmt.Fprint(w, "</HealthData>\n")
	f.Close()
	sum := h.Sum(nil)
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		v, err := Create(context.Background(), filepath.Join(b.TempDir(), "v"), []byte(testPass), Options{})
		if err != nil {
			b.Fatal(err)
		}
		in, _ := os.Open(path)
		b.StartTimer()
		res, err := v.ImportData(context.Background(), in, DataImport{Name: "export.xml", SHA256: sum})
		b.StopTimer()
		in.Close()
		if err != nil || res.Added == 0 {
			b.Fatalf("%+v %v", res, err)
		}
		v.Close()
		b.StartTimer()
	}
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	b.ReportMetric(float64(ru.Maxrss)/1024, "maxrss-MiB")
	b.ReportMetric(float64(rows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}

// BenchmarkTransactionsView times one transactions view and one search
// (the owner's web pages) over a vault holding PDVAULT_BENCH_ROWS
// transactions (docs/benchmarks.md uses 1,000,000). Each reads at most
// the newest 20,000 records; ns/op is one page.
func BenchmarkTransactionsView(b *testing.B) {
	n := benchRows()
	data := benchCSV(n)
	sum := sha256.Sum256(data)
	v, err := Create(context.Background(), filepath.Join(b.TempDir(), "v"), []byte(testPass), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer v.Close()
	if _, err := v.ImportData(context.Background(), bytes.NewReader(data), DataImport{Name: "bench.csv", SHA256: sum[:]}); err != nil {
		b.Fatal(err)
	}
	// Each page's latency is recorded: p50 and p99 are reported next to
	// the mean (the target is a p99).
	timed := func(b *testing.B, fn func()) {
		var lat []time.Duration
		for b.Loop() {
			t0 := time.Now()
			fn()
			lat = append(lat, time.Since(t0))
		}
		slices.Sort(lat)
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	}
	view := func(f TxFilter) {
		if _, err := v.TransactionsView(context.Background(), f); err != nil {
			b.Fatal(err)
		}
	}
	// Cold: the cache dropped before every page (as after an update or a
	// delete), so each one decrypts and decodes up to maxViewRecords.
	b.Run("view-cold", func(b *testing.B) { timed(b, func() { v.txCache.drop(); view(TxFilter{}) }) })
	// After a write: a new transaction stored before every page, which
	// the cached view catches up with.
	b.Run("view-after-write", func(b *testing.B) {
		timed(b, func() {
			if _, err := v.CreateRecord(context.Background(), "transactions", []byte(`{"date":"2026-12-01","amount":"-1.00","currency":"EUR","counterparty":"Bakery"}`)); err != nil {
				b.Fatal(err)
			}
			view(TxFilter{})
		})
	})
	// Warm: pages, filters and months browsed with no write between them.
	b.Run("view", func(b *testing.B) { timed(b, func() { view(TxFilter{}) }) })
	b.Run("view-filtered", func(b *testing.B) { timed(b, func() { view(TxFilter{Counterparty: "Händler 42"}) }) })
	b.Run("view-month", func(b *testing.B) { timed(b, func() { view(TxFilter{Month: "2026-03"}) }) })
	b.Run("search", func(b *testing.B) {
		timed(b, func() {
			if _, err := v.SearchRecords(context.Background(), "Kartenzahlung 999"); err != nil {
				b.Fatal(err)
			}
		})
	})
}
