package importers

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math/big"
	"regexp"
	"strings"
	"time"

	"golang.org/x/text/encoding/charmap"
)

// ISO 20022 camt.053 (bank-to-customer statement), versions 001.02 to
// 001.13, into transactions. There is no maintained Go library; this reads
// the published schema's elements with encoding/xml, one entry (Ntry) at a
// time, so memory does not grow with the statement.
var camtFormat = Format{
	Name:        "camt053",
	Version:     "1",
	Description: "ISO 20022 camt.053 bank statements, 001.02 to 001.13 (.xml)",
	Collections: []string{"transactions", "accounts"},
	Extensions:  []string{".xml", ".camt"},
	Detect: func(head []byte) bool {
		return strings.Contains(string(head), camtNS)
	},
	Parse: parseCamt,
}

const camtNS = "urn:iso:std:iso:20022:tech:xsd:camt.053.001."

var camtVersionRE = regexp.MustCompile(`^urn:iso:std:iso:20022:tech:xsd:camt\.053\.001\.(0[2-9]|1[0-3])$`)

func camtErr(ref, code, format string, args ...any) error {
	return &Error{Format: "camt053", Ref: ref, Code: code, Msg: fmt.Sprintf(format, args...)}
}

// camtParty is a party in either shape: Nm directly (001.02 to 001.07) or
// inside Pty (001.08 on).
type camtParty struct {
	Nm  string `xml:"Nm"`
	Pty struct {
		Nm string `xml:"Nm"`
	} `xml:"Pty"`
}

func (p camtParty) name() string {
	if p.Nm != "" {
		return strings.TrimSpace(p.Nm)
	}
	return strings.TrimSpace(p.Pty.Nm)
}

type camtAcctID struct {
	IBAN string `xml:"Id>IBAN"`
	Othr string `xml:"Id>Othr>Id"`
}

func (a camtAcctID) id() string {
	if a.IBAN != "" {
		return a.IBAN
	}
	return a.Othr
}

type camtAmt struct {
	Value string `xml:",chardata"`
	Ccy   string `xml:"Ccy,attr"`
}

type camtDate struct {
	Dt   string `xml:"Dt"`
	DtTm string `xml:"DtTm"`
}

func (d camtDate) date() string {
	if d.Dt != "" {
		return strings.TrimSpace(d.Dt)
	}
	if len(strings.TrimSpace(d.DtTm)) >= 10 {
		return strings.TrimSpace(d.DtTm)[:10]
	}
	return ""
}

type camtEntry struct {
	Amt       camtAmt `xml:"Amt"`
	CdtDbtInd string  `xml:"CdtDbtInd"`
	RvslInd   string  `xml:"RvslInd"`
	Sts       struct {
		Text string `xml:",chardata"` // 001.02 to 001.07
		Cd   string `xml:"Cd"`        // 001.08 on
	} `xml:"Sts"`
	BookgDt     camtDate `xml:"BookgDt"`
	ValDt       camtDate `xml:"ValDt"`
	NtryRef     string   `xml:"NtryRef"`
	AcctSvcrRef string   `xml:"AcctSvcrRef"`
	AddtlInf    string   `xml:"AddtlNtryInf"`
	DomainCd    string   `xml:"BkTxCd>Domn>Cd"`
	FamilyCd    string   `xml:"BkTxCd>Domn>Fmly>Cd"`
	SubFamilyCd string   `xml:"BkTxCd>Domn>Fmly>SubFmlyCd"`
	PrtryCd     string   `xml:"BkTxCd>Prtry>Cd"`
	Tx          []struct {
		EndToEndID string     `xml:"Refs>EndToEndId"`
		Dbtr       camtParty  `xml:"RltdPties>Dbtr"`
		Cdtr       camtParty  `xml:"RltdPties>Cdtr"`
		DbtrAcct   camtAcctID `xml:"RltdPties>DbtrAcct"`
		CdtrAcct   camtAcctID `xml:"RltdPties>CdtrAcct"`
		Ustrd      []string   `xml:"RmtInf>Ustrd"`
		CdtrRef    string     `xml:"RmtInf>Strd>CdtrRefInf>Ref"`
	} `xml:"NtryDtls>TxDtls"`
}

var camtAmountRE = regexp.MustCompile(`^\d{1,18}(\.\d{1,5})?$`)
var camtCcyRE = regexp.MustCompile(`^[A-Z]{3}$`)

func parseCamt(r io.Reader, emit func(Item) error) error {
	dec := xml.NewDecoder(newLineReader(r))
	dec.CharsetReader = func(cs string, in io.Reader) (io.Reader, error) {
		switch strings.ToLower(cs) {
		case "iso-8859-1", "latin1", "windows-1252", "cp1252":
			return charmap.Windows1252.NewDecoder().Reader(in), nil
		}
		return nil, camtErr("", "camt_encoding", "the declared encoding is not UTF-8, ISO-8859-1 or Windows-1252")
	}
	var (
		inStmt  bool
		account camtAcctID
		acctCcy string
		stmtID  string
		closing *camtBalance
		n       int
		seen    = repeats{}
		root    bool
	)
	for {
		line, _ := dec.InputPos()
		tok, err := dec.Token()
		if err == io.EOF {
			if !root {
				return camtErr("", "camt_not_053", "the file is not a camt.053 document")
			}
			return nil
		}
		if err != nil {
			return camtXMLError(err, line)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if !root {
				if t.Name.Local != "Document" || !camtVersionRE.MatchString(t.Name.Space) {
					return camtErr("", "camt_not_053", "the root is not a camt.053.001.02-13 Document")
				}
				root = true
				continue
			}
			switch t.Name.Local {
			case "Stmt":
				inStmt, account, acctCcy, stmtID, closing = true, camtAcctID{}, "", "", nil
			case "Bal":
				if inStmt {
					var b camtBalance
					if err := dec.DecodeElement(&b, &t); err != nil {
						return camtXMLError(err, line)
					}
					// The closing booked balance is the account's balance
					// as of the statement (ISO 20022 BalanceType12Code).
					if b.Type == "CLBD" {
						b.ref = fmt.Sprintf("line %d", line)
						closing = &b
					}
				}
			case "Id":
				if inStmt && stmtID == "" && account.id() == "" {
					var s string
					if err := dec.DecodeElement(&s, &t); err != nil {
						return camtXMLError(err, line)
					}
					stmtID = strings.TrimSpace(s)
				}
			case "Acct":
				if inStmt {
					var a struct {
						camtAcctID
						Ccy string `xml:"Ccy"`
					}
					if err := dec.DecodeElement(&a, &t); err != nil {
						return camtXMLError(err, line)
					}
					account, acctCcy = a.camtAcctID, a.Ccy
				}
			case "Ntry":
				if !inStmt {
					return camtErr(fmt.Sprintf("line %d", line), "camt_structure", "an entry outside a statement")
				}
				var e camtEntry
				if err := dec.DecodeElement(&e, &t); err != nil {
					return camtXMLError(err, line)
				}
				n++
				it, err := camtItem(e, account.id(), acctCcy, fmt.Sprintf("line %d", line), seen)
				if err != nil {
					return err
				}
				if err := emit(it); err != nil {
					return err
				}
			}
		case xml.EndElement:
			if t.Name.Local == "Stmt" {
				if account.id() == "" {
					return camtErr(fmt.Sprintf("line %d", line), "camt_no_account", "a statement without an account id")
				}
				inStmt = false
				if closing != nil {
					it, err := camtBalanceItem(*closing, account, acctCcy)
					if err != nil {
						return err
					}
					if err := emit(it); err != nil {
						return err
					}
				}
			}
		}
	}
}

type camtBalance struct {
	Type      string   `xml:"Tp>CdOrPrtry>Cd"`
	Amt       camtAmt  `xml:"Amt"`
	CdtDbtInd string   `xml:"CdtDbtInd"`
	Dt        camtDate `xml:"Dt"`
	ref       string
}

// camtBalanceItem makes a statement's closing balance an accounts record:
// the account as of that date (each date its own record, so statements
// build a history).
func camtBalanceItem(b camtBalance, acct camtAcctID, acctCcy string) (Item, error) {
	v := strings.TrimSpace(b.Amt.Value)
	if !camtAmountRE.MatchString(v) {
		return Item{}, camtErr(b.ref, "camt_bad_amount", "the closing balance is not an amount")
	}
	amount, _ := canonDecimal(v)
	switch b.CdtDbtInd {
	case "DBIT":
		if amount != "0" {
			amount = "-" + amount
		}
	case "CRDT":
	default:
		return Item{}, camtErr(b.ref, "camt_no_direction", "CdtDbtInd of the closing balance is not CRDT or DBIT")
	}
	date := b.Dt.date()
	if _, err := time.Parse(time.DateOnly, date); err != nil {
		return Item{}, camtErr(b.ref, "camt_no_date", "the closing balance has no date YYYY-MM-DD")
	}
	d := map[string]any{"id": acct.id(), "balance": amount, "balanceDate": date}
	if acct.IBAN != "" {
		d["iban"] = acct.IBAN
	}
	ccy := cmp.Or(strings.TrimSpace(b.Amt.Ccy), acctCcy)
	if ccy != "" {
		if !camtCcyRE.MatchString(ccy) {
			return Item{}, camtErr(b.ref, "camt_bad_currency", "the closing balance's currency is not ISO 4217")
		}
		d["currency"] = ccy
	}
	return Item{Collection: "accounts", Key: "balance:" + acct.id() + ":" + date, Ref: b.ref, Data: d}, nil
}

func camtXMLError(err error, line int) error {
	var ie *Error
	if errors.As(err, &ie) {
		return err
	}
	var se *xml.SyntaxError
	if errors.As(err, &se) {
		if strings.Contains(se.Msg, "unexpected EOF") {
			return camtErr(fmt.Sprintf("line %d", se.Line), "camt_truncated", "the file ends inside an element")
		}
		return camtErr(fmt.Sprintf("line %d", se.Line), "camt_syntax", "the XML is malformed")
	}
	if errors.Is(err, ErrLineTooLong) {
		return camtErr(fmt.Sprintf("line %d", line), "line_too_long", "a line is longer than 1 MiB")
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return camtErr(fmt.Sprintf("line %d", line), "camt_truncated", "the file ends inside an element")
	}
	return err
}

// decimalString writes an exact decimal without trailing zeros, as the
// OFX importer does ("-7.00" and "-7" are the same amount).
func decimalString(s string) string {
	var r big.Rat
	if _, ok := r.SetString(s); !ok {
		return s
	}
	out := strings.TrimRight(strings.TrimRight(r.FloatString(18), "0"), ".")
	if out == "-0" {
		out = "0"
	}
	return out
}

func camtItem(e camtEntry, account, acctCcy, ref string, seen repeats) (Item, error) {
	amt := strings.TrimSpace(e.Amt.Value)
	if !camtAmountRE.MatchString(amt) {
		return Item{}, camtErr(ref, "camt_bad_amount", "Amt is not a non-negative decimal")
	}
	ccy := strings.TrimSpace(e.Amt.Ccy)
	if ccy == "" {
		ccy = acctCcy
	}
	if !camtCcyRE.MatchString(ccy) {
		return Item{}, camtErr(ref, "camt_bad_currency", "Amt has no ISO 4217 currency (Ccy)")
	}
	var sign string
	switch strings.TrimSpace(e.CdtDbtInd) {
	case "CRDT":
	case "DBIT":
		sign = "-"
	default:
		return Item{}, camtErr(ref, "camt_no_direction", "CdtDbtInd is not CRDT or DBIT")
	}
	date := e.BookgDt.date()
	if date == "" {
		date = e.ValDt.date()
	}
	if len(date) != 10 {
		return Item{}, camtErr(ref, "camt_no_date", "the entry has no booking or value date")
	}
	d := map[string]any{
		"date":     date,
		"amount":   decimalString(sign + amt),
		"currency": ccy,
		"account":  map[string]any{"id": account},
	}
	put := func(k, v string) {
		if v = strings.TrimSpace(v); v != "" && v != "NOTPROVIDED" {
			d[k] = v
		}
	}
	put("valueDate", e.ValDt.date())
	put("transactionId", e.AcctSvcrRef)
	put("entryReference", e.NtryRef)
	st := e.Sts.Cd
	if st == "" {
		st = e.Sts.Text
	}
	put("status", strings.ToLower(strings.TrimSpace(st)))
	if strings.TrimSpace(e.RvslInd) == "true" {
		d["reversal"] = true
	}
	switch {
	case e.DomainCd != "":
		put("type", strings.Trim(e.DomainCd+"/"+e.FamilyCd+"/"+e.SubFamilyCd, "/"))
	case e.PrtryCd != "":
		put("type", e.PrtryCd)
	}
	var desc []string
	if len(e.Tx) > 0 {
		tx := e.Tx[0]
		// The counterparty is the other side: the debtor of money in, the
		// creditor of money out.
		party, acct := tx.Dbtr, tx.DbtrAcct
		if sign == "-" {
			party, acct = tx.Cdtr, tx.CdtrAcct
		}
		put("counterparty", party.name())
		put("counterpartyAccount", acct.id())
		put("reference", tx.EndToEndID)
		put("creditorReference", tx.CdtrRef)
		for _, t := range e.Tx {
			desc = append(desc, t.Ustrd...)
		}
	}
	if len(desc) == 0 && e.AddtlInf != "" {
		desc = []string{e.AddtlInf}
	}
	put("description", strings.Join(desc, " "))

	// The bank's reference for the entry identifies it across statements;
	// without one, its content does, numbered when the same content occurs
	// again (two equal coffees on one day).
	id := strings.TrimSpace(e.AcctSvcrRef)
	if id == "" {
		id = strings.TrimSpace(e.NtryRef)
	}
	key := "ref:" + account + ":" + id
	if id == "" {
		h := sha256.Sum256([]byte(fmt.Sprintf("%q", []any{d["date"], d["amount"], d["currency"], d["counterparty"], d["description"], d["reference"]})))
		c := hex.EncodeToString(h[:])
		key = fmt.Sprintf("content:%s:%s:%d", account, c, seen.next(c))
	}
	return Item{Collection: "transactions", Key: key, Ref: ref, Data: d}, nil
}
