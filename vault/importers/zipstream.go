package importers

import (
	"bufio"
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"hash"
	"hash/crc32"
	"io"
)

// zipStream reads a zip archive front to back from its local file headers
// (APPNOTE.TXT §4.3.7), as it arrives: archive/zip needs random access to
// the central directory at the end, and an import is a stream. Entries
// compressed with deflate (method 8) are found even when their sizes are
// only in the data descriptor after them (flag bit 3), because a deflate
// stream ends by itself. Stored entries (method 0) need their size up
// front. The central directory is not read: the first entry with the
// wanted name wins.
type zipStream struct {
	r *bufio.Reader
	// out counts decompressed bytes against maxZipOut: a small archive
	// must not make the vault inflate without end.
	out int64
}

// maxZipOut bounds what one archive may inflate to, all entries together.
const maxZipOut = 64 << 30

// zip errors, as importer codes.
var (
	errZipNotFound    = errors.New("zip: no such entry")
	errZipUnsupported = errors.New("zip: unsupported entry")
	errZipCorrupt     = errors.New("zip: corrupt")
	errZipTooLarge    = errors.New("zip: inflates past 64 GiB")
)

type zipEntry struct {
	name       string
	method     uint16
	flags      uint16
	crc        uint32
	size       uint64 // compressed, if not in a data descriptor
	zip64      bool
	descriptor bool
}

func newZipStream(r io.Reader) *zipStream {
	if br, ok := r.(*bufio.Reader); ok {
		return &zipStream{r: br}
	}
	return &zipStream{r: bufio.NewReaderSize(r, 64<<10)}
}

// open skips entries until one whose name match accepts and returns a
// reader of its content; check, called once that reader is at EOF,
// verifies its CRC-32.
func (z *zipStream) open(match func(string) bool) (io.Reader, func() error, error) {
	for {
		e, err := z.header()
		if err != nil {
			return nil, nil, err
		}
		if e.flags&1 != 0 {
			return nil, nil, errZipUnsupported // encrypted
		}
		body, err := z.body(e)
		if err != nil {
			return nil, nil, err
		}
		crc := crc32.NewIEEE()
		r := io.TeeReader(body, crc)
		if match(e.name) {
			return r, func() error { return z.finish(e, crc) }, nil
		}
		if _, err := io.Copy(io.Discard, r); err != nil {
			return nil, nil, z.inflateErr(err)
		}
		if err := z.finish(e, crc); err != nil {
			return nil, nil, err
		}
	}
}

// header reads one local file header; a central directory header means
// there are no more entries.
func (z *zipStream) header() (zipEntry, error) {
	var h [30]byte
	if _, err := io.ReadFull(z.r, h[:4]); err != nil {
		return zipEntry{}, errZipCorrupt
	}
	switch binary.LittleEndian.Uint32(h[:4]) {
	case 0x04034b50:
	case 0x02014b50, 0x06054b50: // central directory, end of it
		return zipEntry{}, errZipNotFound
	default:
		return zipEntry{}, errZipCorrupt
	}
	if _, err := io.ReadFull(z.r, h[4:]); err != nil {
		return zipEntry{}, errZipCorrupt
	}
	le := binary.LittleEndian
	e := zipEntry{flags: le.Uint16(h[6:]), method: le.Uint16(h[8:]), crc: le.Uint32(h[14:]), size: uint64(le.Uint32(h[18:]))}
	e.descriptor = e.flags&8 != 0
	nameLen, extraLen := int(le.Uint16(h[26:])), int(le.Uint16(h[28:]))
	name := make([]byte, nameLen)
	extra := make([]byte, extraLen)
	if _, err := io.ReadFull(z.r, name); err != nil {
		return zipEntry{}, errZipCorrupt
	}
	if _, err := io.ReadFull(z.r, extra); err != nil {
		return zipEntry{}, errZipCorrupt
	}
	e.name = string(name)
	// ZIP64 extended information (header 0x0001): 8-byte sizes, the
	// uncompressed one first, each present only if its 4-byte field is
	// all ones.
	for len(extra) >= 4 {
		id, n := le.Uint16(extra), int(le.Uint16(extra[2:]))
		if 4+n > len(extra) {
			break
		}
		if id == 0x0001 {
			e.zip64 = true
			f := extra[4 : 4+n]
			if le.Uint32(h[22:]) == 0xffffffff && len(f) >= 8 {
				f = f[8:]
			}
			if le.Uint32(h[18:]) == 0xffffffff && len(f) >= 8 {
				e.size = le.Uint64(f)
			}
		}
		extra = extra[4+n:]
	}
	return e, nil
}

func (z *zipStream) body(e zipEntry) (io.Reader, error) {
	switch e.method {
	case 8:
		// flate reads no further than its stream's end from an
		// io.ByteReader (bufio.Reader is one).
		return &zipCount{r: flate.NewReader(z.r), z: z}, nil
	case 0:
		if e.descriptor {
			return nil, errZipUnsupported // a stored entry of unknown length
		}
		return &zipCount{r: io.LimitReader(z.r, int64(e.size)), z: z}, nil
	}
	return nil, errZipUnsupported
}

// finish reads the data descriptor, if any, and checks the CRC-32.
func (z *zipStream) finish(e zipEntry, crc hash.Hash32) error {
	want := e.crc
	if e.descriptor {
		// crc-32, compressed and uncompressed sizes (8 bytes each for
		// ZIP64), after an optional signature.
		if sig, err := z.r.Peek(4); err == nil && bytes.Equal(sig, []byte("PK\x07\x08")) {
			z.r.Discard(4)
		}
		n := 12
		if e.zip64 {
			n = 20
		}
		d := make([]byte, n)
		if _, err := io.ReadFull(z.r, d); err != nil {
			return errZipCorrupt
		}
		want = binary.LittleEndian.Uint32(d)
	}
	if crc.Sum32() != want {
		return errZipCorrupt
	}
	return nil
}

func (z *zipStream) inflateErr(err error) error {
	if errors.Is(err, errZipTooLarge) {
		return err
	}
	var ce flate.CorruptInputError
	if errors.As(err, &ce) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return errZipCorrupt
	}
	return err
}

// zipCount counts an entry's decompressed bytes into its archive's total.
type zipCount struct {
	r io.Reader
	z *zipStream
}

func (c *zipCount) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.z.out += int64(n)
	if c.z.out > maxZipOut {
		return n, errZipTooLarge
	}
	if err != nil && err != io.EOF {
		return n, c.z.inflateErr(err)
	}
	return n, err
}
