// Package importers turns the files people get from banks, doctors and
// address books into records in the shared vocabulary (docs/vocabulary.md).
// An importer only parses: it streams its input and hands each item to the
// caller, which seals, deduplicates and stores it (vault.ImportData). It
// never sees keys or the database.
package importers

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
)

// Item is one thing found in a source file.
type Item struct {
	// Collection is where the item belongs (contacts, transactions, ...).
	Collection string
	// Key identifies the item within its source account, stably across
	// re-exports: a vCard UID, an OFX FITID with its account. Importing an
	// item whose key was imported before adds nothing.
	Key string
	// Ref says where in the file the item is ("card 3", "line 12"), for
	// provenance and errors.
	Ref string
	// Data is the record, in the vocabulary's field names.
	Data map[string]any
}

// Format is one importer.
type Format struct {
	Name        string   // as given to --format
	Version     string   // bumped when its output changes; kept in provenance
	Description string   // one line, for "pdvault data formats"
	Collections []string // where its items go
	Extensions  []string // usual file name endings, lower case
	// Detect reports whether head (the first bytes of a file, at most
	// HeadSize) looks like this format.
	Detect func(head []byte) bool
	// Parse streams r and calls emit for each item, in file order. An
	// error from emit stops it and is returned as is.
	Parse func(r io.Reader, emit func(Item) error) error
	// ParseWith is Parse for importers that take options (--map); Options
	// lists their names.
	ParseWith func(r io.Reader, opt map[string]string, emit func(Item) error) error
	Options   []string
}

// Run parses r with the format and options.
func (f Format) Run(r io.Reader, opt map[string]string, emit func(Item) error) error {
	for k := range opt {
		if !slices.Contains(f.Options, k) {
			return &Error{Format: f.Name, Code: "unsupported_option", Msg: fmt.Sprintf("this importer takes no option %q", clip(k))}
		}
	}
	if f.ParseWith != nil {
		return f.ParseWith(r, opt, emit)
	}
	return f.Parse(r, emit)
}

// HeadSize is how much of a file detection looks at.
const HeadSize = 4096

// MaxLine bounds one line of a text format: a longer one is refused
// instead of being held in memory.
const MaxLine = 1 << 20

var formats = []Format{vcardFormat, ofxFormat, camtFormat, icalFormat, fhirFormat, appleFormat, formFormat, csvFormat}

// Formats lists the importers by name.
func Formats() []Format {
	out := slices.Clone(formats)
	slices.SortFunc(out, func(a, b Format) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Lookup finds an importer by name.
func Lookup(name string) (Format, bool) {
	for _, f := range formats {
		if f.Name == name {
			return f, true
		}
	}
	return Format{}, false
}

// Detect finds the importer for a file from its first bytes.
func Detect(head []byte) (Format, bool) {
	for _, f := range formats {
		if f.Detect(head) {
			return f, true
		}
	}
	return Format{}, false
}

// Error is a problem with the content of a source file: where it is and
// what is wrong, with a code that names the malformation.
type Error struct {
	Format string
	Ref    string // "card 2", "line 14"; empty for the file as a whole
	Code   string // e.g. vcard_unterminated
	Msg    string
}

func (e *Error) Error() string {
	if e.Ref == "" {
		return fmt.Sprintf("%s: %s (%s)", e.Format, e.Msg, e.Code)
	}
	return fmt.Sprintf("%s: %s: %s (%s)", e.Format, e.Ref, e.Msg, e.Code)
}

// ErrLineTooLong is returned by a lineLimit reader.
var ErrLineTooLong = errors.New("a line is longer than 1 MiB")

// lineLimit fails a read once a line runs past MaxLine bytes, so that a
// text parser reading whole lines holds at most that much.
type lineLimit struct {
	r   io.Reader
	run int
}

func (l *lineLimit) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	for _, c := range p[:n] {
		if c == '\n' {
			l.run = 0
		} else if l.run++; l.run > MaxLine {
			return 0, ErrLineTooLong
		}
	}
	return n, err
}

// textHead returns head without a UTF-8 byte-order mark and leading
// blank space, for detection by first keyword.
func textHead(head []byte) string {
	s := strings.TrimPrefix(string(head), "\ufeff")
	return strings.TrimLeft(s, " \t\r\n")
}

// newLineReader wraps r for a line-based parser.
func newLineReader(r io.Reader) *bufio.Reader {
	return bufio.NewReaderSize(&lineLimit{r: r}, 64<<10)
}

// canonDecimal writes a decimal ("-0012.50") in the vocabulary's form:
// no leading zeros, no trailing fractional zeros, no "-0" ("-12.5").
func canonDecimal(s string) (string, bool) {
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(strings.TrimPrefix(s, "-"), "+")
	intPart, frac, hasFrac := strings.Cut(s, ".")
	if (intPart == "" && frac == "") || !allDigits(intPart) || !allDigits(frac) || (hasFrac && frac == "" && intPart == "") {
		return "", false
	}
	intPart = strings.TrimLeft(intPart, "0")
	frac = strings.TrimRight(frac, "0")
	if intPart == "" {
		intPart = "0"
	}
	out := intPart
	if frac != "" {
		out += "." + frac
	}
	if neg && out != "0" {
		out = "-" + out
	}
	return out, true
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// contentKey identifies an item without an id of its own by its fields:
// SHA-256 over each value, length-prefixed, in hex.
func contentKey(parts ...any) string {
	h := sha256.New()
	var n [8]byte
	for _, p := range parts {
		s, _ := p.(string)
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// repeats numbers items that have no id of their own and repeat exactly
// (the same sample twice in an export), so that each gets a key. It
// remembers at most maxRepeats contents and then starts over: a counter per
// item of a multi-GB export would grow with the file, and repeats sit close
// together in the files that have them (sorted by type and time), so the
// numbering stays the same on every export of the same data.
type repeats map[string]int

const maxRepeats = 1 << 16

func (r repeats) next(content string) int {
	if len(r) >= maxRepeats {
		clear(r)
	}
	r[content]++
	return r[content]
}
