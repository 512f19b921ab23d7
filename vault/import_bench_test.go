package vault

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

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
		db, err := sql.Open("sqlite3", dsnFor(filepath.Join(b.TempDir(), "plain.db"), modeWrite))
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
