package crypt

import (
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"

	"golang.org/x/crypto/chacha20poly1305"
)

// STREAM (Hoang, Reyhanitabar, Rogaway, Vizár 2015), as age uses it: a
// file is cut into chunks, each sealed with ChaCha20-Poly1305 under the
// file's own key and the nonce
//
//	11-byte big-endian chunk counter ‖ 1 byte: 0x01 on the last chunk, else 0x00
//
// A fixed, counting nonce is safe here because the key is used for this
// one file only (FileKeys derives it from a fresh random nonce in the
// header). Reordering chunks changes their counters, dropping the tail
// leaves no chunk marked last, appending after the last chunk is refused,
// and a chunk from another file (another key) does not open: truncation,
// reordering and splicing all fail, not just tampering.

// Labels of the export format (current scheme, prefix-free with the rest).
const (
	ExportKey     Label = "pdvault.org/v2/export-key"
	ExportPayload Label = "pdvault.org/v2/export-payload"
	ExportHeader  Label = "pdvault.org/v2/export-header"
)

// FileKeys derives one file's payload key and header MAC key from a
// long-lived key and the file's random nonce (the HKDF salt).
func FileKeys(key, nonce []byte) (payload, header []byte) {
	derive := func(l Label) []byte {
		k, err := hkdf.Key(sha256.New, key, nonce, string(lp(nil, []byte(l))), KeySize)
		if err != nil {
			panic(err)
		}
		return k
	}
	return derive(ExportPayload), derive(ExportHeader)
}

// HeaderMAC authenticates a file's header (age: checked before anything
// else is read, so a changed header is refused at once).
func HeaderMAC(key, header []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(header)
	return m.Sum(nil)
}

// CheckHeaderMAC compares in constant time.
func CheckHeaderMAC(key, header, mac []byte) bool { return hmac.Equal(HeaderMAC(key, header), mac) }

// Stream seals or opens the chunks of one file in order.
type Stream struct {
	aead cipher.AEAD
	n    uint64
	done bool
}

// Errors of a stream.
var (
	ErrStreamOrder = errors.New("stream: a chunk is out of place, altered, or from another file")
	ErrStreamEnded = errors.New("stream: data after the last chunk")
)

// NewStream starts a stream under a file key.
func NewStream(key []byte) *Stream {
	aead, err := chacha20poly1305.New(key)
	if err != nil {
		panic(err) // key length is fixed by construction
	}
	return &Stream{aead: aead}
}

func (s *Stream) nonce(last bool) []byte { return nonceAt(s.n, last) }

func nonceAt(c uint64, last bool) []byte {
	var n [chacha20poly1305.NonceSize]byte
	binary.BigEndian.PutUint64(n[3:11], c) // 11-byte counter; 2^64 chunks is beyond any file
	if last {
		n[11] = 1
	}
	return n[:]
}

// Seal seals the next chunk; last marks the final one.
func (s *Stream) Seal(plaintext []byte, last bool) ([]byte, error) {
	if s.done {
		return nil, ErrStreamEnded
	}
	ct := s.aead.Seal(nil, s.nonce(last), plaintext, nil)
	s.n++
	s.done = last
	return ct, nil
}

// Open opens the next chunk and says whether it was the last. The flag is
// part of the nonce, so trying both is safe: a chunk sealed as not-last
// never opens as last, and the other way round.
func (s *Stream) Open(ct []byte) (plaintext []byte, last bool, err error) {
	if s.done {
		return nil, false, ErrStreamEnded
	}
	if len(ct) < s.aead.Overhead() {
		return nil, false, ErrStreamOrder
	}
	for _, last := range []bool{false, true} {
		if pt, err := s.aead.Open(nil, s.nonce(last), ct, nil); err == nil {
			s.n++
			s.done = last
			return pt, last, nil
		}
	}
	return nil, false, ErrStreamOrder
}

// OpenAt opens chunk n of a stream out of order, for random access (a
// Range read of a document). The caller says whether n is the final
// chunk, from a chunk count it has authenticated: the flag is in the
// nonce, so a stream cut short fails when its new "last" chunk is read,
// and a chunk moved to another position fails because its counter does
// not match. The plaintext is appended to dst (ct[:0] decrypts in place;
// a reused buffer spares an allocation per chunk).
func (s *Stream) OpenAt(dst []byte, n uint64, last bool, ct []byte) ([]byte, error) {
	if len(ct) < s.aead.Overhead() {
		return nil, ErrStreamOrder
	}
	pt, err := s.aead.Open(dst, nonceAt(n, last), ct, nil)
	if err != nil {
		return nil, ErrStreamOrder // Open has zeroed what it wrote
	}
	return pt, nil
}
