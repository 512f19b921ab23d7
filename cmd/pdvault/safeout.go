package main

import (
	"fmt"
	"io"
	"unicode/utf8"
)

// Organizations choose their names, URLs, purposes and offers, and those
// reach the owner's terminal. A name holding ESC or OSC sequences could
// rewrite the screen (hide a line, fake a prompt, set the window title),
// CR could overwrite what was printed, and bidi controls such as U+202E
// could reverse what the owner reads. The commands that print what
// organizations sent write through safeWriter, which shows every such
// character as a visible \uXXXX escape instead. In JSON output that is
// the same string (a JSON escape); in text it is plainly visible.

// unsafeRune reports a rune that must not reach a terminal as itself.
func unsafeRune(r rune) bool {
	switch {
	case r == '\n' || r == '\t':
		return false
	case r < 0x20 || r == 0x7f: // C0 controls (ESC, CR, BEL, ...) and DEL
		return true
	case r >= 0x80 && r <= 0x9f: // C1 controls (CSI, OSC as single bytes)
		return true
	case r == 0x061c || r == 0x200e || r == 0x200f: // bidi marks
		return true
	case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069: // bidi embeddings, overrides, isolates
		return true
	case r == utf8.RuneError:
		return true
	}
	return false
}

type safeWriter struct {
	w    io.Writer
	tail []byte // an incomplete UTF-8 sequence from the last Write
}

func (s *safeWriter) Write(p []byte) (int, error) {
	b := append(s.tail, p...)
	s.tail = nil
	out := make([]byte, 0, len(b))
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		if r == utf8.RuneError && n <= 1 && !utf8.FullRune(b) {
			s.tail = append([]byte(nil), b...) // wait for the rest of the rune
			break
		}
		if unsafeRune(r) {
			if r == utf8.RuneError {
				out = fmt.Appendf(out, `\x%02x`, b[0])
			} else {
				out = fmt.Appendf(out, `\u%04x`, r)
			}
		} else {
			out = append(out, b[:n]...)
		}
		b = b[n:]
	}
	if _, err := s.w.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}

// safe returns the app with its output made safe for org-supplied text.
func (a *app) safe() *app {
	c := *a
	c.stdout, c.stderr = &safeWriter{w: a.stdout}, &safeWriter{w: a.stderr}
	return &c
}
