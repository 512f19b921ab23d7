package vault

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"golang.org/x/crypto/chacha20poly1305"
)

// patternReader yields n bytes of a fixed random 1 MiB block, repeated:
// incompressible enough, and free to produce.
type patternReader struct {
	block []byte
	left  int64
	off   int
}

func newPattern(n int64) *patternReader { return &patternReader{block: randomBytes(1 << 20), left: n} }

func (p *patternReader) Read(b []byte) (int, error) {
	if p.left == 0 {
		return 0, io.EOF
	}
	if int64(len(b)) > p.left {
		b = b[:p.left]
	}
	n := copy(b, p.block[p.off:])
	p.off = (p.off + n) % len(p.block)
	p.left -= int64(n)
	return n, nil
}

// BenchmarkDocuments adds and reads one document of PDVAULT_BENCH_MB
// megabytes (default 64; docs/benchmarks.md uses 1024) and, in the same
// run, seals the same bytes in 64 KiB chunks with XChaCha20-Poly1305 and
// nothing else: the ratio is the figure. maxrss-MiB is the process's peak
// resident memory, which must not grow with the document.
func BenchmarkDocuments(b *testing.B) {
	mb := int64(64)
	if n, err := strconv.Atoi(os.Getenv("PDVAULT_BENCH_MB")); err == nil && n > 0 {
		mb = int64(n)
	}
	size := mb << 20
	b.Run("raw-xchacha20poly1305", func(b *testing.B) {
		b.SetBytes(size)
		aead, _ := chacha20poly1305.NewX(randomBytes(32))
		nonce := randomBytes(chacha20poly1305.NonceSizeX)
		buf := make([]byte, docChunk)
		out := make([]byte, 0, docChunk+aead.Overhead())
		for b.Loop() {
			r := newPattern(size)
			for {
				n, err := io.ReadFull(r, buf)
				if n > 0 {
					out = aead.Seal(out[:0], nonce, buf[:n], nil)
				}
				if err != nil {
					break
				}
			}
		}
	})
	v, err := Create(context.Background(), filepath.Join(b.TempDir(), "v"), []byte(testPass), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer v.Close()
	var id string
	b.Run("add", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			rec, err := v.AddDocument(context.Background(), newPattern(size), DocumentInput{})
			if err != nil {
				b.Fatal(err)
			}
			id = rec.ID
		}
	})
	b.Run("read", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			_, d, err := v.OpenDocument(context.Background(), id)
			if err != nil {
				b.Fatal(err)
			}
			if n, err := io.Copy(io.Discard, d); err != nil || n != size {
				b.Fatal(n, err)
			}
			d.Close()
		}
		var ru syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		b.ReportMetric(float64(ru.Maxrss)/1024, "maxrss-MiB")
	})
}
