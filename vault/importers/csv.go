package importers

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math/big"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/text/encoding/charmap"
)

// Bank and card CSV exports into transactions. Banks agree on nothing:
// the delimiter, the encoding, the header names and language, the date
// order, the decimal mark and whether money out is a negative amount or a
// separate column. The importer finds the header row by the names banks
// use (csvSynonyms: the built-in profiles), sniffs the rest, and takes
// --map for anything it cannot know.
var csvFormat = Format{
	Name:        "csv",
	Version:     "1",
	Description: "bank and card statements as CSV (header names in EN/DE/FR, ; , or tab; --map for other layouts)",
	Collections: []string{"transactions"},
	Extensions:  []string{".csv", ".txt"},
	Detect:      csvDetect,
	ParseWith:   parseCSV,
	Options:     []string{"date", "valueDate", "amount", "debit", "credit", "currency", "counterparty", "description", "reference", "account", "category", "decimal", "dateformat", "encoding", "delimiter"},
}

// csvSynonyms maps each field to the header names banks use for it, in
// order of preference; names are compared case-insensitively.
var csvSynonyms = []struct {
	field string
	names []string
}{
	{"date", []string{"buchungstag", "buchungsdatum", "booking date", "date", "datum", "transaction date", "posted date", "date de comptabilisation", "date de valeur"}},
	{"valueDate", []string{"wertstellung", "valuta", "valutadatum", "value date", "date de valeur"}},
	{"amount", []string{"betrag", "betrag (eur)", "amount", "montant", "umsatz"}},
	{"debit", []string{"debit", "withdrawal", "débit", "soll", "ausgang"}},
	{"credit", []string{"credit", "deposit", "crédit", "haben", "eingang"}},
	{"currency", []string{"währung", "waehrung", "currency", "monn.", "devise", "ccy"}},
	{"counterparty", []string{"auftraggeber/empfänger", "beguenstigter/zahlungspflichtiger", "begünstigter/zahlungspflichtiger", "empfänger", "name", "payee", "description 2", "description"}},
	{"description", []string{"verwendungszweck", "reason", "memo", "description 1", "buchungstext", "posting text"}},
	{"reference", []string{"n° de transaction", "transaction id", "reference", "sepa reference", "referenz", "kundenreferenz"}},
	{"account", []string{"kontonummer", "iban", "account", "produit", "card no."}},
	{"category", []string{"category", "kategorie", "catégorie"}},
	{"type", []string{"type", "transaction type"}},
	{"status", []string{"status"}},
	{"checkNumber", []string{"checknumber", "check number"}},
	{"balance", []string{"kontostand", "saldo", "runningbalance", "running balance", "solde", "balance"}},
}

// csvMoreText are columns whose text is appended to the description
// (purpose lines split over columns: VWZ1..VWZ14, Description 3).
var csvMoreText = regexp.MustCompile(`(?i)^(vwz\d+|description \d+|verwendungszweck ?\d+)$`)

func csvErr(ref, code, format string, args ...any) error {
	return &Error{Format: "csv", Ref: ref, Code: code, Msg: fmt.Sprintf(format, args...)}
}

func csvDetect(head []byte) bool {
	text := head
	if !utf8.Valid(trimPartialRune(head)) {
		var err error
		if text, err = charmap.Windows1252.NewDecoder().Bytes(head); err != nil {
			return false
		}
	}
	if bytes.IndexByte(text, 0) >= 0 {
		return false
	}
	for _, line := range strings.Split(string(text), "\n")[:min(20, strings.Count(string(text), "\n")+1)] {
		cols := splitHeader(line)
		if len(cols) < 2 {
			continue
		}
		var date, money bool
		for _, c := range cols {
			switch csvFieldOf(c) {
			case "date", "valueDate":
				date = true
			case "amount", "debit", "credit":
				money = true
			}
		}
		if date && money {
			return true
		}
	}
	return false
}

// trimPartialRune drops a rune cut off at the end of a detection head.
func trimPartialRune(b []byte) []byte {
	for i := 0; i < 3 && len(b) > 0; i++ {
		if r, _ := utf8.DecodeLastRune(b); r != utf8.RuneError {
			break
		}
		b = b[:len(b)-1]
	}
	return b
}

func splitHeader(line string) []string {
	d := sniffDelimiter(line)
	r := csv.NewReader(strings.NewReader(line))
	r.Comma, r.LazyQuotes, r.FieldsPerRecord = d, true, -1
	rec, err := r.Read()
	if err != nil {
		return nil
	}
	return rec
}

func sniffDelimiter(line string) rune {
	best, n := ',', 0
	for _, d := range []rune{';', ',', '\t', '|'} {
		if c := strings.Count(line, string(d)); c > n {
			best, n = d, c
		}
	}
	return best
}

func csvFieldOf(header string) string {
	f, _ := csvFieldRank(header)
	return f
}

// csvFieldRank is the field a header names and how preferred that name
// is (lower is better).
func csvFieldRank(header string) (string, int) {
	h := strings.ToLower(strings.TrimSpace(strings.TrimPrefix(header, "\ufeff")))
	for _, s := range csvSynonyms {
		if i := slices.Index(s.names, h); i >= 0 {
			return s.field, i
		}
	}
	return "", 0
}

type csvLayout struct {
	cols       map[string]int // field -> column
	more       []int          // extra description columns
	decimal    byte           // ',' or '.', 0 = per value
	hint       byte           // the mark for an ambiguous "1,000": ',' in ';' files
	dateFormat string
}

func parseCSV(r io.Reader, opt map[string]string, emit func(Item) error) error {
	br := bufio.NewReaderSize(&lineLimit{r: r}, 64<<10)
	head, _ := br.Peek(64 << 10)
	var src io.Reader = br
	switch enc := strings.ToLower(opt["encoding"]); {
	case enc == "windows-1252" || enc == "iso-8859-1" || enc == "latin1" || (enc == "" && !utf8.Valid(trimPartialRune(head))):
		src = charmap.Windows1252.NewDecoder().Reader(br)
	case enc == "" || enc == "utf-8":
	default:
		return csvErr("", "csv_bad_map", "encoding must be utf-8, windows-1252 or iso-8859-1")
	}
	cr := csv.NewReader(src)
	cr.FieldsPerRecord = -1
	cr.Comma = sniffDelimiter(strings.SplitN(string(head), "\n", 2)[0])
	if d := opt["delimiter"]; d != "" {
		switch d {
		case ";", ",", "|":
			cr.Comma = rune(d[0])
		case "tab", "\\t":
			cr.Comma = '\t'
		default:
			return csvErr("", "csv_bad_map", "delimiter must be ; , | or tab")
		}
	}
	// The header is the first row (of the first 20) that names a date and
	// an amount, or the columns --map names.
	var lay *csvLayout
	var header []string
	for i := 0; i < 20 && lay == nil; i++ {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return csvReadError(err)
		}
		if l, err := csvHeader(rec, opt); err != nil {
			return err
		} else if l != nil {
			lay, header = l, rec
		}
	}
	if lay == nil {
		if header == nil && len(head) == 0 {
			return csvErr("", "csv_empty", "the file is empty")
		}
		return csvErr("", "csv_unknown_layout", "no header row names a date and an amount (or debit/credit) column; name them with --map date=COLUMN,amount=COLUMN")
	}
	lay.decimal = 0
	switch opt["decimal"] {
	case "comma", ",":
		lay.decimal = ','
	case "point", "dot", ".":
		lay.decimal = '.'
	case "":
		lay.hint = '.'
		if cr.Comma == ';' {
			lay.hint = ',' // ';' separates because ',' is the decimal mark
		}
	default:
		return csvErr("", "csv_bad_map", "decimal must be comma or point")
	}
	lay.dateFormat = opt["dateformat"]
	seen := map[string]int{}
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return csvReadError(err)
		}
		line, _ := cr.FieldPos(0)
		ref := fmt.Sprintf("line %d", line)
		if len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
			continue
		}
		it, err := csvItem(rec, header, lay, ref, seen)
		if err != nil {
			return err
		}
		if err := emit(it); err != nil {
			return err
		}
	}
}

func csvReadError(err error) error {
	var pe *csv.ParseError
	switch {
	case errors.Is(err, ErrLineTooLong):
		return csvErr("", "line_too_long", "a line is longer than 1 MiB")
	case errors.As(err, &pe):
		return csvErr(fmt.Sprintf("line %d", pe.Line), "csv_syntax", "malformed CSV (%s)", pe.Err)
	}
	return err
}

// csvHeader returns the layout if rec is the header row.
func csvHeader(rec []string, opt map[string]string) (*csvLayout, error) {
	lay := &csvLayout{cols: map[string]int{}}
	rank := map[string]int{}
	for i, h := range rec {
		if f, r := csvFieldRank(h); f != "" {
			if _, dup := lay.cols[f]; !dup || r < rank[f] {
				if dup && csvMoreText.MatchString(strings.TrimSpace(rec[lay.cols[f]])) {
					lay.more = append(lay.more, lay.cols[f])
				}
				lay.cols[f], rank[f] = i, r
			}
		} else if csvMoreText.MatchString(strings.TrimSpace(h)) {
			lay.more = append(lay.more, i)
		}
	}
	// "Date de valeur" may serve as both; a column is one field only
	// when the other has its own.
	if lay.cols["date"] == lay.cols["valueDate"] {
		if _, ok := lay.cols["valueDate"]; ok {
			delete(lay.cols, "valueDate")
		}
	}
	if lay.cols["counterparty"] == lay.cols["description"] {
		if _, ok := lay.cols["description"]; ok {
			delete(lay.cols, "description")
		}
	}
	mapped := false
	for _, s := range csvSynonyms {
		name, ok := opt[s.field]
		if !ok {
			continue
		}
		mapped = true
		i := slices.IndexFunc(rec, func(h string) bool { return strings.EqualFold(strings.TrimSpace(h), name) })
		if i < 0 {
			return nil, nil // not this row
		}
		lay.cols[s.field] = i
	}
	_, date := lay.cols["date"]
	_, amt := lay.cols["amount"]
	_, deb := lay.cols["debit"]
	_, cred := lay.cols["credit"]
	if !date || !(amt || deb || cred) {
		if mapped {
			return nil, nil
		}
		return nil, nil
	}
	return lay, nil
}

var (
	amountJunk = strings.NewReplacer("$", "", "€", "", "£", "", "CHF", "", "EUR", "", "USD", "", " ", "", "\u00a0", "", "'", "", "’", "")
	amountRE   = regexp.MustCompile(`^[+-]?[0-9.,]*[0-9][0-9.,]*$`)
)

// csvAmount reads an amount as written by a bank: currency signs, spaces
// and apostrophes (11'373.94) dropped; (12.00) and 12.00- negative; the
// decimal mark given, or the last of ',' '.' when both appear.
func csvAmount(s string, decimal, hint byte) (string, bool) {
	s = amountJunk.Replace(strings.TrimSpace(s))
	neg := false
	if strings.HasPrefix(s, "(") && strings.HasSuffix(s, ")") {
		s, neg = s[1:len(s)-1], true
	}
	if strings.HasSuffix(s, "-") {
		s, neg = s[:len(s)-1], true
	}
	if s == "" {
		return "", true
	}
	if !amountRE.MatchString(s) {
		return "", false
	}
	d := decimal
	if d == 0 {
		lc, ld := strings.LastIndexByte(s, ','), strings.LastIndexByte(s, '.')
		switch {
		case lc >= 0 && ld >= 0 && lc > ld:
			d = ','
		case lc >= 0 && ld < 0 && (len(s)-lc-1 != 3 || hint == ','):
			d = ','
		default:
			d = '.'
		}
	}
	thousands := byte('.')
	if d == '.' {
		thousands = ','
	}
	buf := make([]byte, 0, len(s)+1)
	if neg {
		buf = append(buf, '-')
	}
	seenMark := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == thousands:
		case c == d:
			if seenMark {
				return "", false
			}
			seenMark = true
			buf = append(buf, '.')
		default:
			buf = append(buf, c)
		}
	}
	return canonDecimal(string(buf))
}

var csvDateFormats = []string{"2006-01-02", "02.01.2006", "2.1.2006", "02.01.06", "2.1.06", "01/02/2006", "1/2/2006", "1/2/06", "2006/01/02", "20060102", "02-01-2006"}

func csvDate(s, format string) (string, bool) {
	s = strings.TrimSpace(s)
	if format != "" {
		t, err := time.Parse(format, s)
		return t.Format("2006-01-02"), err == nil
	}
	if len(s) >= 19 && s[10] == 'T' {
		s = s[:10]
	}
	// The common shapes first, without time.Parse.
	if len(s) == 10 && s[4] == '-' && s[7] == '-' && allDigitsNonEmpty(s[:4]) && allDigitsNonEmpty(s[5:7]) && allDigitsNonEmpty(s[8:]) {
		if _, err := time.Parse("2006-01-02", s); err == nil {
			return s, true
		}
		return "", false
	}
	if len(s) == 10 && s[2] == '.' && s[5] == '.' && allDigitsNonEmpty(s[:2]) && allDigitsNonEmpty(s[3:5]) && allDigitsNonEmpty(s[6:]) {
		iso := s[6:] + "-" + s[3:5] + "-" + s[:2]
		if _, err := time.Parse("2006-01-02", iso); err == nil {
			return iso, true
		}
		return "", false
	}
	for _, f := range csvDateFormats {
		if t, err := time.Parse(f, s); err == nil {
			return t.Format("2006-01-02"), true
		}
	}
	return "", false
}

func allDigitsNonEmpty(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return len(s) > 0
}

func csvItem(rec, header []string, lay *csvLayout, ref string, seen map[string]int) (Item, error) {
	get := func(f string) string {
		if i, ok := lay.cols[f]; ok && i < len(rec) {
			return strings.TrimSpace(rec[i])
		}
		return ""
	}
	date, ok := csvDate(get("date"), lay.dateFormat)
	if !ok {
		return Item{}, csvErr(ref, "csv_bad_date", "the %s column is not a date this importer reads; give --map dateformat=LAYOUT (Go layout, e.g. 02/01/2006)", clip(header[lay.cols["date"]]))
	}
	d := map[string]any{"date": date}
	var amount string
	if _, ok := lay.cols["amount"]; ok {
		if amount, ok = csvAmount(get("amount"), lay.decimal, lay.hint); !ok || amount == "" {
			return Item{}, csvErr(ref, "csv_bad_amount", "the amount is not a number")
		}
	} else {
		deb, ok1 := csvAmount(get("debit"), lay.decimal, lay.hint)
		cred, ok2 := csvAmount(get("credit"), lay.decimal, lay.hint)
		if !ok1 || !ok2 || (deb == "" && cred == "") {
			return Item{}, csvErr(ref, "csv_bad_amount", "neither debit nor credit is a number")
		}
		var r, x big.Rat
		if cred != "" {
			r.SetString(cred)
		}
		if deb != "" {
			x.SetString(deb)
			r.Sub(&r, x.Abs(&x)) // money out, whichever sign the bank wrote
		}
		amount = decimalString(r.FloatString(18))
	}
	d["amount"] = amount
	if v := get("valueDate"); v != "" {
		vd, ok := csvDate(v, lay.dateFormat)
		if !ok {
			return Item{}, csvErr(ref, "csv_bad_date", "the value date is not a date this importer reads")
		}
		d["valueDate"] = vd
	}
	for _, f := range []string{"currency", "counterparty", "description", "reference", "category", "type", "status", "checkNumber"} {
		if v := get(f); v != "" {
			d[f] = v
		}
	}
	var more []string
	for _, i := range lay.more {
		if i < len(rec) && strings.TrimSpace(rec[i]) != "" {
			more = append(more, strings.TrimSpace(rec[i]))
		}
	}
	if len(more) > 0 {
		if desc, ok := d["description"].(string); ok {
			more = append([]string{desc}, more...)
		}
		d["description"] = strings.Join(more, " ")
	}
	if s, ok := d["status"].(string); ok {
		d["status"] = strings.ToLower(s)
	}
	account := get("account")
	if account != "" {
		d["account"] = map[string]any{"id": account}
	}
	if b := get("balance"); b != "" {
		if bal, ok := csvAmount(b, lay.decimal, lay.hint); ok && bal != "" {
			d["balance"] = bal
		}
	}
	// A bank reference identifies the row; without one, its content and
	// running balance do, numbered when they repeat.
	key := ""
	if refv := get("reference"); refv != "" {
		key = "ref:" + account + ":" + refv
	} else {
		c := contentKey(account, d["date"], d["valueDate"], d["amount"], d["currency"], d["counterparty"], d["description"], d["balance"])
		seen[c]++
		key = fmt.Sprintf("content:%s:%d", c, seen[c])
	}
	return Item{Collection: "transactions", Key: key, Ref: ref, Data: d}, nil
}
