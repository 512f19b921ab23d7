package vault

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"

	"github.com/pdvault/pdvault/policy"
)

// Owner listings are paged with keyset cursors: (time, id) of the last
// item, newest first, so a page costs the same at the start and deep in a
// listing, and nothing the owner has not seen is pushed out of view by
// newer arrivals (a flood shows up as more pages, not as lost requests).

// PageQuery asks for one page: Limit items (0 means DefaultPageSize, at
// most MaxPageSize) after Cursor ("" for the first page).
type PageQuery struct {
	Limit  int
	Cursor string
}

func (q PageQuery) size() (int, error) {
	switch {
	case q.Limit == 0:
		return DefaultPageSize, nil
	case q.Limit < 1 || q.Limit > MaxPageSize:
		return 0, ErrBadLimit
	}
	return q.Limit, nil
}

// keyCursor is the position after an item ordered by (t DESC, id ASC).
type keyCursor struct {
	t  int64
	id string
}

func encodeKeyCursor(t int64, id string) string {
	b := append([]byte{2}, binary.BigEndian.AppendUint64(nil, uint64(t))...)
	return base64.RawURLEncoding.EncodeToString(append(b, id...))
}

func decodeKeyCursor(s string) (*keyCursor, error) {
	if s == "" {
		return nil, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) < 10 || len(b) > 9+64 || b[0] != 2 {
		return nil, ErrBadCursor
	}
	id := string(b[9:])
	if !policy.ValidateRecordID(id) && !relIDRE.MatchString(id) {
		return nil, ErrBadCursor
	}
	return &keyCursor{t: int64(binary.BigEndian.Uint64(b[1:9])), id: id}, nil
}

// plan checks the query and returns the SQL tail (cursor condition, order,
// LIMIT n+1) for a listing of rows matching where, ordered by (tcol DESC,
// idcol), and the page size n.
func (q PageQuery) plan(where string, args []any, tcol, idcol string) (string, []any, int, error) {
	n, err := q.size()
	if err != nil {
		return "", nil, 0, err
	}
	c, err := decodeKeyCursor(q.Cursor)
	if err != nil {
		return "", nil, 0, err
	}
	tail, args := pageWhere(where, args, c, tcol, idcol, n)
	return tail, args, n, nil
}

// pageWhere adds the cursor condition for columns tcol, idcol to where and
// returns the full tail (with ORDER BY and LIMIT n+1) and its arguments.
func pageWhere(where string, args []any, c *keyCursor, tcol, idcol string, n int) (string, []any) {
	if c != nil {
		where = fmt.Sprintf("(%s) AND (%s < ? OR (%s = ? AND %s > ?))", where, tcol, tcol, idcol)
		args = append(args, c.t, c.t, c.id)
	}
	return fmt.Sprintf("%s ORDER BY %s DESC, %s LIMIT %d", where, tcol, idcol, n+1), args
}
