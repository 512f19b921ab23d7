package importers

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/aclindsa/ofxgo"
	"golang.org/x/text/encoding/charmap"
)

// OFX 1.x (SGML), 2.x (XML) and QFX bank and credit-card statements into
// transactions (docs/vocabulary.md). Parsing is ofxgo's; the fallbacks
// for what banks really send (2.x headers over SGML bodies, Windows-1252
// text) and the mapping are ours.
var ofxFormat = Format{
	Name:        "ofx",
	Version:     "1",
	Description: "OFX 1.x/2.x and QFX bank and card statements (.ofx, .qfx)",
	Collections: []string{"transactions", "accounts"},
	Extensions:  []string{".ofx", ".qfx"},
	Detect: func(head []byte) bool {
		h := strings.ToUpper(textHead(head))
		return strings.HasPrefix(h, "OFXHEADER:") || strings.HasPrefix(h, "<OFX>") ||
			(strings.HasPrefix(h, "<?XML") && strings.Contains(h, "<?OFX"))
	},
	Parse: parseOFX,
}

// MaxOFX bounds an OFX file: ofxgo holds the whole statement in memory,
// and real statements are kilobytes to a few megabytes.
const MaxOFX = 64 << 20

func ofxErr(ref, code, format string, args ...any) error {
	return &Error{Format: "ofx", Ref: ref, Code: code, Msg: fmt.Sprintf(format, args...)}
}

var (
	xmlLineRE  = regexp.MustCompile(`XML syntax error on line (\d+)`)
	trnAmtRE   = regexp.MustCompile(`(?i)<TRNAMT>\s*([^<\r\n]*)`)
	decimalRE  = regexp.MustCompile(`^[+-]?(\d+([.,]\d*)?|[.,]\d+)$`)
	xmlHeadRE  = regexp.MustCompile(`(?s)^\s*<\?xml[^>]*\?>\s*<\?OFX([^>]*)\?>`)
	xmlVerRE   = regexp.MustCompile(`VERSION="(\d+)"`)
	charsetRE  = regexp.MustCompile(`(?i)CHARSET:\s*([\w-]+)`)
	encodingRE = regexp.MustCompile(`(?i)encoding="([\w-]+)"`)
)

func parseOFX(r io.Reader, emit func(Item) error) error {
	b, err := io.ReadAll(io.LimitReader(r, MaxOFX+1))
	if err != nil {
		return err
	}
	if len(b) > MaxOFX {
		return ofxErr("", "ofx_too_large", "the file is over 64 MiB")
	}
	b = bytes.TrimPrefix(b, []byte("\ufeff"))
	if b, err = ofxText(b); err != nil {
		return err
	}
	// Name a bad amount with its line: ofxgo's error does not say where.
	for _, m := range trnAmtRE.FindAllSubmatchIndex(b, -1) {
		if v := strings.TrimSpace(string(b[m[2]:m[3]])); !decimalRE.MatchString(v) {
			return ofxErr(fmt.Sprintf("line %d", bytes.Count(b[:m[0]], []byte("\n"))+1), "ofx_bad_amount", "TRNAMT is not a number")
		}
	}
	resp, err := ofxgo.ParseResponse(bytes.NewReader(b))
	if err != nil && xmlHeadRE.Match(b) {
		// A 2.x header over an SGML body (leaf elements left open), as
		// some banks send: read the body as 1.x SGML.
		if resp2, err2 := ofxgo.ParseResponse(bytes.NewReader(ofxAsSGML(b))); err2 == nil {
			resp, err = resp2, nil
		}
	}
	if err != nil {
		return ofxParseError(err)
	}
	n := 0
	for _, m := range resp.Bank {
		s, ok := m.(*ofxgo.StatementResponse)
		if !ok {
			continue
		}
		acct := map[string]any{"id": string(s.BankAcctFrom.AcctID), "type": strings.ToLower(s.BankAcctFrom.AcctType.String())}
		if s.BankAcctFrom.BankID != "" {
			acct["bankId"] = string(s.BankAcctFrom.BankID)
		}
		if s.BankAcctFrom.BranchID != "" {
			acct["branchId"] = string(s.BankAcctFrom.BranchID)
		}
		for _, t := range ofxTransactions(s.BankTranList) {
			n++
			if err := emit(ofxItem(t, acct, s.CurDef.String(), n)); err != nil {
				return err
			}
		}
		if err := emitOFXBalance(emit, acct, s.CurDef.String(), s.BalAmt, s.DtAsOf); err != nil {
			return err
		}
	}
	for _, m := range resp.CreditCard {
		s, ok := m.(*ofxgo.CCStatementResponse)
		if !ok {
			continue
		}
		acct := map[string]any{"id": string(s.CCAcctFrom.AcctID), "type": "creditcard"}
		for _, t := range ofxTransactions(s.BankTranList) {
			n++
			if err := emit(ofxItem(t, acct, s.CurDef.String(), n)); err != nil {
				return err
			}
		}
		if err := emitOFXBalance(emit, acct, s.CurDef.String(), s.BalAmt, s.DtAsOf); err != nil {
			return err
		}
	}
	return nil
}

// ofxTransactions lists a statement's transactions; a statement may have
// none (balances only).
func ofxTransactions(l *ofxgo.TransactionList) []ofxgo.Transaction {
	if l == nil {
		return nil
	}
	return l.Transactions
}

// emitOFXBalance makes the statement's ledger balance (LEDGERBAL, required
// by OFX) an accounts record: the account as of that date. Each statement
// date is a record of its own, so a later statement adds the newer balance
// and the older one stays as history.
func emitOFXBalance(emit func(Item) error, acct map[string]any, cur string, bal ofxgo.Amount, asOf ofxgo.Date) error {
	if asOf.IsZero() {
		return nil
	}
	amount, ok := canonDecimal(bal.String())
	if !ok {
		return nil
	}
	d := make(map[string]any, len(acct)+3)
	for k, v := range acct {
		d[k] = v
	}
	d["balance"], d["balanceDate"] = amount, asOf.Format("2006-01-02")
	if cur != "" {
		d["currency"] = cur
	}
	key := fmt.Sprintf("balance:%s:%s:%s", acct["type"], acct["id"], d["balanceDate"])
	return emit(Item{Collection: "accounts", Key: key, Ref: "LEDGERBAL " + d["balanceDate"].(string), Data: d})
}

// ofxText returns the file as UTF-8. OFX 1.x declares CHARSET (1252,
// ISO-8859-1, NONE...) and 2.x an XML encoding; banks often send Latin-1
// bytes under any of them. Text that is already UTF-8 is left alone;
// otherwise it is read as Windows-1252 (a superset of Latin-1's printable
// range) when the file declares a single-byte set or nothing usable.
func ofxText(b []byte) ([]byte, error) {
	if utf8.Valid(b) {
		return b, nil
	}
	cs := ""
	if m := charsetRE.FindSubmatch(b); m != nil {
		cs = strings.ToUpper(string(m[1]))
	} else if m := encodingRE.FindSubmatch(b); m != nil {
		cs = strings.ToUpper(string(m[1]))
	}
	switch cs {
	case "", "1252", "NONE", "ISO-8859-1", "8859-1", "WINDOWS-1252", "US-ASCII", "USASCII":
		out, err := charmap.Windows1252.NewDecoder().Bytes(b)
		if err != nil {
			return nil, ofxErr("", "ofx_encoding", "the text is neither UTF-8 nor Windows-1252")
		}
		return out, nil
	}
	return nil, ofxErr("", "ofx_encoding", "the text is not UTF-8 and its declared character set is not supported")
}

// ofxAsSGML replaces a 2.x XML header with the equivalent 1.x SGML one.
func ofxAsSGML(b []byte) []byte {
	m := xmlHeadRE.FindSubmatchIndex(b)
	ver := "102"
	if v := xmlVerRE.FindSubmatch(b[m[2]:m[3]]); v != nil && len(v[1]) == 3 && v[1][0] == '1' {
		ver = string(v[1])
	}
	head := "OFXHEADER:100\r\nDATA:OFXSGML\r\nVERSION:" + ver + "\r\nSECURITY:NONE\r\nENCODING:UTF-8\r\nCHARSET:NONE\r\nCOMPRESSION:NONE\r\nOLDFILEUID:NONE\r\nNEWFILEUID:NONE\r\n\r\n"
	return append([]byte(head), b[m[1]:]...)
}

func ofxParseError(err error) error {
	msg := err.Error()
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), strings.Contains(msg, "unexpected EOF"):
		return ofxErr("", "ofx_truncated", "the file ends before the OFX element is closed")
	case strings.Contains(msg, "XML syntax error"):
		ref := ""
		if m := xmlLineRE.FindStringSubmatch(msg); m != nil {
			ref = "line " + m[1]
		}
		return ofxErr(ref, "ofx_syntax", "the OFX markup is malformed")
	case strings.Contains(msg, "headers"), strings.Contains(msg, "OFXHEADER"), strings.Contains(msg, "header"):
		return ofxErr("", "ofx_header", "the OFX header is malformed")
	case strings.Contains(msg, "Missing opening OFX"), strings.Contains(msg, "SIGNONMSGSRSV1"):
		return ofxErr("", "ofx_structure", "the file lacks the OFX or SIGNONMSGSRSV1 element")
	case strings.Contains(msg, "amount"):
		return ofxErr("", "ofx_bad_amount", "an amount is not a number")
	}
	return ofxErr("", "ofx_invalid", "the statement breaks the OFX specification: %s", clip(msg))
}

func ofxItem(t ofxgo.Transaction, acct map[string]any, curDef string, n int) Item {
	d := map[string]any{
		"date":          t.DtPosted.Format("2006-01-02"),
		"amount":        t.TrnAmt.String(),
		"currency":      curDef,
		"type":          strings.ToLower(t.TrnType.String()),
		"transactionId": string(t.FiTID),
		"account":       acct,
	}
	if t.Currency != nil && t.Currency.CurSym.String() != "" {
		d["currency"] = t.Currency.CurSym.String()
	}
	put := func(k string, v ofxgo.String) {
		if s := strings.TrimSpace(string(v)); s != "" {
			d[k] = s
		}
	}
	put("counterparty", t.Name)
	if t.Payee != nil {
		put("counterparty", t.Payee.Name)
	}
	put("description", t.Memo)
	put("extendedName", t.ExtdName)
	put("checkNumber", t.CheckNum)
	put("reference", t.RefNum)
	put("payeeId", t.PayeeID)
	if t.DtAvail != nil {
		d["valueDate"] = t.DtAvail.Format("2006-01-02")
	}
	if t.DtUser != nil {
		d["transactionDate"] = t.DtUser.Format("2006-01-02")
	}
	if t.CorrectFiTID != "" {
		d["correctsTransactionId"] = string(t.CorrectFiTID)
		d["correctAction"] = strings.ToLower(t.CorrectAction.String())
	}
	if t.SIC != 0 {
		d["sic"] = int(t.SIC)
	}
	// FITID is unique per account (OFX 2.2 §3.2.1): the item's identity
	// across downloads.
	key := fmt.Sprintf("fitid:%s:%s:%s", acct["type"], acct["id"], t.FiTID)
	return Item{Collection: "transactions", Key: key, Ref: fmt.Sprintf("STMTTRN %d", n), Data: d}
}
