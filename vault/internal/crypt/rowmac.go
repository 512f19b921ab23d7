package crypt

import (
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
)

// Row authentication. The rows that decide what an organization may do
// (requests, grants, keys, terms, ...) cannot be encrypted away: SQLite
// must index and filter them. Instead each row carries
//
//	mac = HMAC-SHA-256(state key, AAD(RowAAD, vault id, table,
//	                                   for each non-NULL column in the table's fixed order:
//	                                   name, type tag, value))
//
// The state key comes from the master key, so someone who can write the
// file but does not know the passphrase cannot make a row the vault will
// accept: not a new one, not an edit, not a row copied to another id (the
// primary key is one of the columns) or table (the table is in the input)
// or vault (the vault id is). NULL columns are left out, which is
// unambiguous because every present column carries its name; it lets a
// later schema add a nullable column without re-authenticating old rows.
// Integers and byte strings carry different tags, so 5 and "5" differ.
// What a MAC cannot stop is a row put back as it was at an earlier time
// (a rollback); docs/security.md says what catches that.

// ErrRowType is returned for a column value of a type the vault never
// writes (a float, say): such a row cannot be authentic.
var ErrRowType = errors.New("row holds a value of a type the vault never writes")

// ErrRowMAC is the answer for a row that fails its check.
var ErrRowMAC = errors.New("row failed its authentication check")

// RowMAC computes the MAC of one row. vals[i] is the value of cols[i] as
// the database returned it: nil, int64, string or []byte.
func RowMAC(key []byte, vaultID, table string, cols []string, vals []any) ([]byte, error) {
	if len(cols) != len(vals) {
		return nil, fmt.Errorf("row mac: %d columns, %d values", len(cols), len(vals))
	}
	b := AAD(RowAAD, []byte(vaultID), []byte(table))
	for i, v := range vals {
		switch x := v.(type) {
		case nil:
			continue
		case int64:
			b = lp(b, []byte(cols[i]))
			b = append(b, 'i')
			b = append(b, U64(uint64(x))...)
		case string:
			b = lp(b, []byte(cols[i]))
			b = append(b, 'b')
			b = lp(b, []byte(x))
		case []byte:
			b = lp(b, []byte(cols[i]))
			b = append(b, 'b')
			b = lp(b, x)
		default:
			return nil, fmt.Errorf("%w: column %s is %T", ErrRowType, cols[i], v)
		}
	}
	m := hmac.New(sha256.New, key)
	m.Write(b)
	return m.Sum(nil), nil
}

// CheckRow recomputes a row's MAC and compares it in constant time.
func CheckRow(key []byte, vaultID, table string, cols []string, vals []any, mac []byte) error {
	want, err := RowMAC(key, vaultID, table, cols, vals)
	if err != nil {
		return err
	}
	if !hmac.Equal(want, mac) {
		return ErrRowMAC
	}
	return nil
}
