package main

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"time"
)

// progress reports an upload on a terminal: one line, rewritten at most
// four times a second, with bytes, percentage, rate and time left. After
// the upload, an import's phase is shown the same way from the job the
// vault reports (bytes read by the importer, items found).
type progress struct {
	r           io.Reader
	w           io.Writer
	name        string
	stage       string // "" while uploading
	total, done int64
	items       int64
	start, last time.Time
	now         func() time.Time
	width       int
}

func newProgress(r io.Reader, w io.Writer, name string, total int64, now func() time.Time) *progress {
	t := now()
	return &progress{r: r, w: w, name: safeString(name), total: total, start: t, now: now}
}

func (p *progress) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.done += int64(n)
	if t := p.now(); t.Sub(p.last) >= 250*time.Millisecond || err == io.EOF {
		p.last = t
		p.print(t)
	}
	return n, err
}

// phase starts a new stage (e.g. "importing"): rate and ETA start over.
func (p *progress) phase(stage string) {
	p.stage, p.done, p.items, p.start = stage, 0, 0, p.now()
}

// update shows a stage's progress as the vault reports it.
func (p *progress) update(done, items int64) {
	p.done, p.items = done, items
	p.print(p.now())
}

func (p *progress) print(t time.Time) {
	el := t.Sub(p.start).Seconds()
	rate := 0.0
	if el > 0 {
		rate = float64(p.done) / el
	}
	pct := 100
	if p.total > 0 {
		pct = int(p.done * 100 / p.total)
	}
	eta := "-"
	if rate > 0 && p.total >= p.done {
		eta = time.Duration(float64(p.total-p.done) / rate * float64(time.Second)).Round(time.Second).String()
	}
	line := fmt.Sprintf("%s  %3d%%  %s of %s  %s/s  ETA %s", p.name, pct, mib(float64(p.done)), mib(float64(p.total)), mib(rate), eta)
	if p.stage != "" {
		line = fmt.Sprintf("%s  %s %3d%%  %d items  %s/s  ETA %s", p.name, p.stage, pct, p.items, mib(rate), eta)
	}
	pad := max(0, p.width-len(line))
	p.width = len(line)
	fmt.Fprintf(p.w, "\r%s%s", line, strings.Repeat(" ", pad))
}

// clear removes the progress line before the summary is printed.
func (p *progress) clear() {
	fmt.Fprintf(p.w, "\r%s\r", strings.Repeat(" ", p.width))
}

func mib(n float64) string { return fmt.Sprintf("%.1f MiB", n/(1<<20)) }

// safeString is s as safeWriter would print it.
func safeString(s string) string {
	var b bytes.Buffer
	(&safeWriter{w: &b}).Write([]byte(s))
	return b.String()
}
