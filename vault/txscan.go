package vault

import (
	"bytes"
	"encoding/json"
	"strings"
)

// scanTx reads a transaction's view fields from its stored JSON in one
// pass, without encoding/json's validation pass and reflection: a cold
// transactions view decodes 20,000 of them (docs/benchmarks.md). The
// input is a record as stored — normalized on write (one JSON object,
// compact, sorted keys) and authenticated since — but the scanner still
// refuses anything that is not a JSON object rather than guess. It
// agrees with readTx (encoding/json into txData) field for field,
// including json's case-insensitive keys and "last one wins", on every
// valid JSON input (TestScanTxAgreesWithJSON, FuzzScanTx); what is not
// valid JSON cannot be stored (policy.NormalizeRecord) and is read as far
// as it can be, never with a panic.
func scanTx(b []byte) (txData, bool) {
	var d txData
	// One string for the whole record: fields that are plain strings or
	// numbers (nearly all) are slices of it, not copies of their own.
	str := string(b)
	var date, amount, currency, counterparty, description flexText
	var account flexAccount
	ok := scanObject(b, func(key []byte, i, j int) {
		val := b[i:j]
		// As encoding/json does: each occurrence is handed to the field's
		// UnmarshalJSON, which keeps or replaces what an earlier one set.
		set := func(t *flexText) {
			switch {
			case val[0] == '"' && bytes.IndexByte(val, '\\') < 0:
				*t = flexText(str[i+1 : j-1])
			case val[0] == '-' || val[0] >= '0' && val[0] <= '9':
				*t = flexText(str[i:j])
			default:
				t.UnmarshalJSON(val)
			}
		}
		switch k := string(key); {
		case strings.EqualFold(k, "date"):
			set(&date)
		case strings.EqualFold(k, "amount"):
			set(&amount)
		case strings.EqualFold(k, "currency"):
			set(&currency)
		case strings.EqualFold(k, "counterparty"):
			set(&counterparty)
		case strings.EqualFold(k, "description"):
			set(&description)
		case strings.EqualFold(k, "account"):
			const pre, suf = `{"id":"`, `"}`
			if id := val[min(len(pre), len(val)):]; bytes.HasPrefix(val, []byte(pre)) && bytes.HasSuffix(id, []byte(suf)) && bytes.IndexAny(id[:len(id)-len(suf)], `"\\`) < 0 {
				account = flexAccount(str[i+len(pre) : j-len(suf)])
			} else {
				account.UnmarshalJSON(val)
			}
		case strings.EqualFold(k, "provenance"):
			d.Provenance = json.RawMessage(val)
		}
	})
	if !ok {
		// encoding/json reads null into a struct as nothing, not an error.
		return txData{}, string(bytes.TrimSpace(b)) == "null"
	}
	d.Date, d.Amount, d.Currency, d.Counterparty, d.Description, d.Account =
		string(date), string(amount), string(currency), string(counterparty), string(description), string(account)
	return d, true
}

// scanObject calls fn with each member of the JSON object b (the key
// unescaped, the value as b[start:end]). It reports false if b is not one
// well-formed object as far as the scan can tell (strings, nesting,
// separators); values are checked by whoever reads them.
func scanObject(b []byte, fn func(key []byte, start, end int)) bool {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return false
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return skipSpace(b, i+1) == len(b)
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return false
		}
		end := skipString(b, i)
		if end < 0 {
			return false
		}
		key := b[i+1 : end-1]
		if bytes.IndexByte(key, '\\') >= 0 {
			var s string
			if json.Unmarshal(b[i:end], &s) != nil {
				return false
			}
			key = []byte(s)
		}
		i = skipSpace(b, end)
		if i >= len(b) || b[i] != ':' {
			return false
		}
		i = skipSpace(b, i+1)
		vend := skipValue(b, i)
		if vend < 0 {
			return false
		}
		fn(key, i, vend)
		i = skipSpace(b, vend)
		if i >= len(b) {
			return false
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case '}':
			return skipSpace(b, i+1) == len(b)
		default:
			return false
		}
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index just past the string starting at b[i]
// (a '"'), or -1.
func skipString(b []byte, i int) int {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		default:
			if b[j] < 0x20 {
				return -1
			}
		}
	}
	return -1
}

// skipValue returns the index just past the value starting at b[i], or -1.
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				k := skipString(b, j)
				if k < 0 {
					return -1
				}
				j = k - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		return -1
	}
	j := i
	for j < len(b) && !isDelim(b[j]) {
		j++
	}
	if j == i || !json.Valid(b[i:j]) {
		return -1
	}
	return j
}

func isDelim(c byte) bool {
	switch c {
	case ',', '}', ']', ' ', '\t', '\r', '\n':
		return true
	}
	return false
}
