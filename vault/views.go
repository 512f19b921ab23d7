package vault

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math/big"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/pdvault/pdvault/policy"
)

// Views of the owner's records for the web UI: records read by their
// vocabulary (docs/vocabulary.md), decrypted in the vault's memory only.
// There is no index on disk: a view or a search reads up to
// maxViewRecords records of a collection, newest first, and says when it
// stopped short.

// maxViewRecords bounds what one view or search decrypts per collection.
var maxViewRecords = 20000 // a variable for the tests only

// maxViewRows bounds the rows a transactions view returns.
const maxViewRows = 500

// sealedRecord is a record row as stored, not yet opened.
type sealedRecord struct {
	seq              int64
	id, collection   string
	version          int64
	keyID            uint32
	sealed           []byte
	created, updated int64
}

func (v *Vault) open(s sealedRecord) (Record, error) {
	data, err := v.openRecord(s.collection, s.id, s.version, s.keyID, s.created, s.updated, s.sealed)
	if err != nil {
		return Record{}, err
	}
	return Record{ID: s.id, Collection: s.collection, Version: s.version, Data: data,
		Created: time.Unix(s.created, 0).UTC(), Updated: time.Unix(s.updated, 0).UTC()}, nil
}

// scanSealed calls fn for the rows of coll, newest first, up to
// maxViewRecords; it reports whether it stopped short.
func (v *Vault) scanSealed(ctx context.Context, coll string, fn func(sealedRecord) bool) (truncated bool, err error) {
	n := 0
	before := int64(0)
	for {
		q := `SELECT ` + recordColumns + ` FROM records WHERE collection = ? ORDER BY seq DESC LIMIT ?`
		args := []any{coll, MaxPageSize}
		if before > 0 {
			q = `SELECT ` + recordColumns + ` FROM records WHERE collection = ? AND seq < ? ORDER BY seq DESC LIMIT ?`
			args = []any{coll, before, MaxPageSize}
		}
		rows, err := v.db.r.QueryContext(ctx, q, args...)
		if err != nil {
			return false, storageError("read records", err)
		}
		got := 0
		for rows.Next() {
			var s sealedRecord
			if err := rows.Scan(&s.seq, &s.id, &s.collection, &s.version, &s.keyID, &s.sealed, &s.created, &s.updated); err != nil {
				rows.Close()
				return false, storageError("read records", err)
			}
			before = s.seq
			got++
			n++
			if !fn(s) {
				rows.Close()
				return false, nil
			}
			if n >= maxViewRecords {
				rows.Close()
				return true, nil
			}
		}
		if err := rows.Close(); err != nil {
			return false, storageError("read records", err)
		}
		if got < MaxPageSize {
			return false, nil
		}
	}
}

// scanCollection is scanSealed with each record opened.
func (v *Vault) scanCollection(ctx context.Context, coll string, fn func(Record) bool) (truncated bool, err error) {
	var openErr error
	trunc, err := v.scanSealed(ctx, coll, func(s sealedRecord) bool {
		r, err := v.open(s)
		if err != nil {
			openErr = err
			return false
		}
		return fn(r)
	})
	if openErr != nil {
		return false, openErr
	}
	return trunc, err
}

// TxFilter narrows a transactions view; empty fields do not filter.
type TxFilter struct {
	Account      string
	Month        string // YYYY-MM
	Counterparty string // substring, case-insensitive
}

// TxRow is one transaction with the running balance after it.
type TxRow struct {
	ID, Date, Amount, Currency, Counterparty, Description, Account, Balance string
	Provenance                                                              string
}

// MonthTotal is one month's money in and out (exact decimals as text,
// and as numbers for a chart).
type MonthTotal struct {
	Month   string
	In, Out string
	InF     float64
	OutF    float64
}

// TxView is the transactions view.
type TxView struct {
	Rows           []TxRow // newest first, at most maxViewRows
	Months         []MonthTotal
	Accounts       []string
	In, Out, Net   string
	Count          int  // transactions matching the filter
	MoreRows       bool // more matched than Rows holds
	Truncated      bool // the view read maxViewRecords and stopped
	MixedCurrency  bool
	Filter         TxFilter
	Currency       string
	UnreadableRows int // amounts that are not decimals (shown, not summed)
}

// txData is what a view reads of a transaction. Owners type their own
// records too: a number where the vocabulary has a decimal string, or an
// account as plain text, is read rather than skipped.
type txData struct {
	Date, Amount, Currency, Counterparty, Description, Account string
	// Provenance is kept as it was written and decoded only for the rows
	// a page shows (a third of the decoding otherwise).
	Provenance json.RawMessage
}

func readTx(b []byte) (txData, bool) {
	var r struct {
		Date, Amount, Currency, Counterparty, Description flexText
		Account                                           flexAccount
		Provenance                                        json.RawMessage
	}
	if json.Unmarshal(b, &r) != nil {
		return txData{}, false
	}
	return txData{Date: string(r.Date), Amount: string(r.Amount), Currency: string(r.Currency), Counterparty: string(r.Counterparty),
		Description: string(r.Description), Account: string(r.Account), Provenance: r.Provenance}, true
}

// txProvenance decodes a transaction's provenance, nil if it has none
// from an importer.
func txProvenance(raw json.RawMessage) *provenanceData {
	if len(raw) == 0 {
		return nil
	}
	var p flexProvenance
	p.UnmarshalJSON(raw)
	if p.Importer == "" {
		return nil
	}
	d := provenanceData(p)
	return &d
}

// flexText reads a string, or a number as its digits; anything else is
// empty (decoded in one pass: a view decodes thousands of records).
type flexText string

func (t *flexText) UnmarshalJSON(b []byte) error {
	switch {
	case len(b) >= 2 && b[0] == '"' && bytes.IndexByte(b, '\\') < 0:
		// No escapes: the bytes between the quotes are the string (the
		// decoder calling this has checked the document already).
		*t = flexText(b[1 : len(b)-1])
	case len(b) > 0 && b[0] == '"':
		var s string
		if json.Unmarshal(b, &s) == nil {
			*t = flexText(s)
		}
	case len(b) > 0 && (b[0] == '-' || b[0] >= '0' && b[0] <= '9'):
		*t = flexText(b)
	}
	return nil
}

// flexProvenance is an importer's provenance object; anything else an
// owner wrote under that name is ignored, not an error.
type flexProvenance provenanceData

func (p *flexProvenance) UnmarshalJSON(b []byte) error {
	var d struct{ Importer, Source, Item flexText }
	if json.Unmarshal(b, &d) == nil {
		*p = flexProvenance{Importer: string(d.Importer), Source: string(d.Source), Item: string(d.Item)}
	}
	return nil
}

// flexAccount is an account object's id, or an account written as text.
type flexAccount string

func (a *flexAccount) UnmarshalJSON(b []byte) error {
	// What importers write, {"id":"..."} with no escapes, is read without
	// a second pass of the decoder.
	if id, ok := bytes.CutPrefix(b, []byte(`{"id":"`)); ok {
		if id, ok := bytes.CutSuffix(id, []byte(`"}`)); ok && bytes.IndexAny(id, `"\\`) < 0 {
			*a = flexAccount(id)
			return nil
		}
	}
	if len(b) > 0 && b[0] == '{' {
		var o struct {
			ID flexText `json:"id"`
		}
		if json.Unmarshal(b, &o) == nil {
			*a = flexAccount(o.ID)
		}
		return nil
	}
	var t flexText
	t.UnmarshalJSON(b)
	*a = flexAccount(t)
	return nil
}

type provenanceData struct {
	Importer string `json:"importer"`
	Source   string `json:"source"`
	Item     string `json:"item"`
}

// TransactionsView reads the transactions collection: the rows matching f
// with running balances, totals per month, and the accounts there are.
func (v *Vault) TransactionsView(ctx context.Context, f TxFilter) (TxView, error) {
	if f.Month != "" {
		if _, err := time.Parse("2006-01", f.Month); err != nil {
			return TxView{}, policy.E(policy.KindInvalid, "invalid_filter", "month is YYYY-MM")
		}
	}
	txs, accounts, trunc, err := v.cachedTransactions(ctx)
	if err != nil {
		return TxView{}, err
	}
	view := TxView{Filter: f, Truncated: trunc, Accounts: accounts}
	needle := strings.ToLower(f.Counterparty)
	all := make([]*cachedTx, 0, len(txs))
	for i := range txs {
		d := &txs[i].d
		if (f.Account != "" && d.Account != f.Account) || (f.Month != "" && !strings.HasPrefix(d.Date, f.Month)) ||
			(needle != "" && !strings.Contains(txs[i].lower, needle)) {
			continue
		}
		all = append(all, &txs[i])
	}
	var bal, in, out sum
	months := map[string]*[2]sum{}
	currencies := map[string]bool{}
	// Rows (and their balances as text) only for the newest maxViewRows:
	// the totals take every matching transaction.
	shown := max(0, len(all)-maxViewRows)
	rows := make([]TxRow, 0, len(all)-shown)
	for i, t := range all {
		if t.d.Currency != "" {
			currencies[t.d.Currency] = true
		}
		if !t.amtOK {
			view.UnreadableRows++
		} else {
			bal.add(t.amt, false)
			m := months[monthOf(t.d.Date)]
			if m == nil {
				m = &[2]sum{}
				months[monthOf(t.d.Date)] = m
			}
			if t.amt.sign() >= 0 {
				in.add(t.amt, false)
				m[0].add(t.amt, false)
			} else {
				out.add(t.amt, true)
				m[1].add(t.amt, true)
			}
		}
		if i >= shown {
			rows = append(rows, TxRow{ID: t.id, Date: t.d.Date, Amount: t.d.Amount, Currency: t.d.Currency, Counterparty: t.d.Counterparty,
				Description: t.d.Description, Account: t.d.Account, Provenance: provenanceLine(txProvenance(t.d.Provenance), t.created), Balance: bal.value().FloatString(2)})
		}
	}
	slices.Reverse(rows)
	view.Count, view.MoreRows = len(all), shown > 0
	view.Rows = rows
	for m, t := range months {
		mi, mo := t[0].value(), t[1].value()
		inF, _ := mi.Float64()
		outF, _ := mo.Float64()
		view.Months = append(view.Months, MonthTotal{Month: m, In: mi.FloatString(2), Out: mo.FloatString(2), InF: inF, OutF: outF})
	}
	slices.SortFunc(view.Months, func(a, b MonthTotal) int { return cmp.Compare(a.Month, b.Month) })
	iv, ov := in.value(), out.value()
	view.In, view.Out, view.Net = iv.FloatString(2), ov.FloatString(2), new(big.Rat).Sub(iv, ov).FloatString(2)
	view.MixedCurrency = len(currencies) > 1
	if len(currencies) == 1 {
		for c := range currencies {
			view.Currency = c
		}
	}
	return view, nil
}

// txCache keeps the transactions a view has decoded, so that the next
// view — another filter, month or account — does not decrypt and decode
// up to maxViewRecords records again. Plaintext only in the vault's
// memory, like every view; dropped txCacheTTL after its last use and when
// the vault locks. A write that only adds records (a new transaction, an
// import) is caught up by decoding the rows added since (seq > maxSeq);
// one that changes or removes records (recordsRewritten) makes the next
// view read everything again.
type txCache struct {
	mu       sync.Mutex
	ok       bool
	gen      uint64  // recordsGen the cache reflects
	rgen     uint64  // recordsRewritten the cache reflects
	seqs     []int64 // seq of every row read, ascending (some rows may not be transactions in shape)
	reads    int     // full reads so far (tests)
	used     time.Time
	txs      []cachedTx // oldest first by date; same-day rows in stored order
	accounts []string
	trunc    bool
	timer    *time.Timer
}

type cachedTx struct {
	seq     int64
	id      string
	created time.Time
	d       txData
	lower   string // counterparty and description, lower case, for the filter
	amt     amount
	amtOK   bool // false: not a decimal
}

const txCacheTTL = 5 * time.Minute

// maxCatchUp is the most rows a cached view decodes to catch up with
// writes; more (a large import) and a full read, spread over the cores
// from the start, is as quick.
const maxCatchUp = 50_000

func (c *txCache) drop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ok, c.txs, c.accounts = false, nil, nil
	if c.timer != nil {
		c.timer.Stop()
	}
}

// cachedTransactions returns the decoded transactions, reading them if
// the cache is empty, expired or stale beyond catching up.
func (v *Vault) cachedTransactions(ctx context.Context) ([]cachedTx, []string, bool, error) {
	c := &v.txCache
	c.mu.Lock()
	defer c.mu.Unlock()
	// The generations are read before any scan: a write that commits
	// during it bumps past what is cached, and the next view looks again.
	rgen, gen := v.recordsRewritten.Load(), v.recordsGen.Load()
	now := v.opts.Now()
	fresh := c.ok && now.Sub(c.used) < txCacheTTL
	if fresh && c.gen == gen {
		c.used = now
		return c.txs, c.accounts, c.trunc, nil
	}
	if fresh && c.rgen == rgen {
		done, err := v.catchUp(ctx, c)
		if err != nil {
			return nil, nil, false, err
		}
		if done {
			c.gen, c.used = gen, now
			return c.txs, c.accounts, c.trunc, nil
		}
	}
	c.ok, c.txs, c.accounts = false, nil, nil
	// Rows are read in order; opening and decoding them (most of the
	// time a cold view takes) is spread over the cores.
	var (
		seqs  []int64
		trunc bool
	)
	txs, err := v.decodePipeline(func(emit func(sealedRecord) bool) (err error) {
		trunc, err = v.scanSealed(ctx, "transactions", func(s sealedRecord) bool {
			seqs = append(seqs, s.seq)
			return emit(s)
		})
		return err
	})
	if err != nil {
		return nil, nil, false, err
	}
	// Read newest first; kept oldest first.
	slices.Reverse(txs)
	slices.Reverse(seqs)
	// Oldest first for running balances (stable: same-day rows keep the
	// order they were stored in).
	txs = sortByDate(txs)
	c.ok, c.gen, c.rgen, c.used, c.txs, c.trunc = true, gen, rgen, now, txs, trunc
	c.reads++
	c.seqs = seqs
	c.accounts = txAccounts(nil, txs)
	if c.timer == nil {
		c.timer = time.AfterFunc(txCacheTTL, c.expire(v.opts.Now))
	} else {
		c.timer.Reset(txCacheTTL)
	}
	return c.txs, c.accounts, c.trunc, nil
}

// catchUp adds the transactions stored since the cache was read, if
// there are few enough, and lets the oldest go past maxViewRecords, as a
// full read would; false means a full read is due.
func (v *Vault) catchUp(ctx context.Context, c *txCache) (bool, error) {
	var maxSeq int64
	if len(c.seqs) > 0 {
		maxSeq = c.seqs[len(c.seqs)-1]
	}
	rows, err := v.db.r.QueryContext(ctx, `SELECT `+recordColumns+` FROM records WHERE collection = ? AND seq > ? ORDER BY seq LIMIT ?`,
		"transactions", maxSeq, maxCatchUp+1)
	if err != nil {
		return false, storageError("read records", err)
	}
	var added []sealedRecord
	for rows.Next() {
		var s sealedRecord
		if err := rows.Scan(&s.seq, &s.id, &s.collection, &s.version, &s.keyID, &s.sealed, &s.created, &s.updated); err != nil {
			rows.Close()
			return false, storageError("read records", err)
		}
		added = append(added, s)
	}
	if err := rows.Close(); err != nil {
		return false, storageError("read records", err)
	}
	if len(added) > maxCatchUp {
		return false, nil
	}
	if len(added) == 0 {
		return true, nil
	}
	txs, err := v.decodeTxs(added)
	if err != nil {
		return false, err
	}
	txs = sortByDate(txs)
	for _, r := range added {
		c.seqs = append(c.seqs, r.seq)
	}
	// Beyond maxViewRecords the oldest rows by seq leave, as a full read
	// would not reach them.
	var drop int64
	if cut := len(c.seqs) - maxViewRecords; cut > 0 {
		drop = c.seqs[cut-1]
		c.seqs = slices.Clone(c.seqs[cut:])
		c.trunc = true
	}
	// Newer rows go after older ones of the same date, as a full read
	// would order them. The common case (new rows dated on or after the
	// last one, nothing leaving) appends: views holding the old slice see
	// only its length.
	if drop == 0 && (len(c.txs) == 0 || byTxDate(c.txs[len(c.txs)-1], txs[0]) <= 0) {
		c.txs = append(c.txs, txs...)
		c.accounts = txAccounts(c.accounts, txs)
		return true, nil
	}
	merged := make([]cachedTx, 0, len(c.txs)+len(txs))
	i := 0
	keep := func(t cachedTx) {
		if t.seq > drop {
			merged = append(merged, t)
		}
	}
	for _, t := range txs {
		for i < len(c.txs) && byTxDate(c.txs[i], t) <= 0 {
			keep(c.txs[i])
			i++
		}
		keep(t)
	}
	for _, t := range c.txs[i:] {
		keep(t)
	}
	c.txs = merged
	c.accounts = txAccounts(nil, merged)
	return true, nil
}

func byTxDate(a, b cachedTx) int { return cmp.Compare(a.d.Date, b.d.Date) }

// decodeTxs opens and decodes rows on all cores, keeping their order and
// leaving out those that are not transactions in shape.
func (v *Vault) decodeTxs(sealed []sealedRecord) ([]cachedTx, error) {
	return v.decodePipeline(func(emit func(sealedRecord) bool) error {
		for _, s := range sealed {
			emit(s)
		}
		return nil
	})
}

// decodeBatch is the rows a pipeline worker decodes at a time.
const decodeBatch = 512

// decodePipeline decodes the rows produce emits, in emitted order, while
// produce goes on: reading rows from SQLite (one core) overlaps with
// opening and decoding them (the others), which is most of a cold view.
func (v *Vault) decodePipeline(produce func(emit func(sealedRecord) bool) error) ([]cachedTx, error) {
	type batch struct {
		n    int
		rows []sealedRecord
	}
	var (
		mu      sync.Mutex
		results [][]cachedTx
		failed  error
		wg      sync.WaitGroup
		work    = make(chan batch, runtime.GOMAXPROCS(0))
	)
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for b := range work {
				out := make([]cachedTx, 0, len(b.rows))
				var err error
				for _, s := range b.rows {
					var t cachedTx
					var ok bool
					if t, ok, err = v.decodeTx(s); err != nil {
						break
					} else if ok {
						out = append(out, t)
					}
				}
				mu.Lock()
				if err != nil && failed == nil {
					failed = err
				}
				for len(results) <= b.n {
					results = append(results, nil)
				}
				results[b.n] = out
				mu.Unlock()
			}
		})
	}
	cur := batch{rows: make([]sealedRecord, 0, decodeBatch)}
	err := produce(func(s sealedRecord) bool {
		cur.rows = append(cur.rows, s)
		if len(cur.rows) == decodeBatch {
			work <- cur
			cur = batch{n: cur.n + 1, rows: make([]sealedRecord, 0, decodeBatch)}
		}
		return true
	})
	if len(cur.rows) > 0 {
		work <- cur
	}
	close(work)
	wg.Wait()
	if err == nil {
		err = failed
	}
	if err != nil {
		if isTampered(err) {
			return nil, ErrTampered
		}
		return nil, err
	}
	n := 0
	for _, r := range results {
		n += len(r)
	}
	txs := make([]cachedTx, 0, n)
	for _, r := range results {
		txs = append(txs, r...)
	}
	return txs, nil
}

// decodeTx opens one row; false if it is not a transaction in shape.
func (v *Vault) decodeTx(s sealedRecord) (cachedTx, bool, error) {
	r, err := v.open(s)
	if err != nil {
		return cachedTx{}, false, err
	}
	d, ok := scanTx(r.Data)
	if !ok {
		return cachedTx{}, false, nil
	}
	amt, amtOK := parseAmount(d.Amount)
	return cachedTx{seq: s.seq, id: r.ID, created: r.Created, d: d, lower: strings.ToLower(d.Counterparty + " " + d.Description), amt: amt, amtOK: amtOK}, true, nil
}

// txAccounts adds the accounts txs name to a sorted list.
func txAccounts(have []string, txs []cachedTx) []string {
	set := map[string]bool{}
	for _, a := range have {
		set[a] = true
	}
	for _, t := range txs {
		if t.d.Account != "" {
			set[t.d.Account] = true
		}
	}
	return slices.Sorted(maps.Keys(set))
}

// expire drops the cache once it has gone unused for txCacheTTL.
func (c *txCache) expire(clock func() time.Time) func() {
	return func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if !c.ok {
			return
		}
		if idle := clock().Sub(c.used); idle < txCacheTTL {
			c.timer.Reset(txCacheTTL - idle)
			return
		}
		c.ok, c.txs, c.accounts = false, nil, nil
	}
}

func monthOf(date string) string {
	if len(date) >= 7 {
		return date[:7]
	}
	return "unknown"
}

// provenanceLine says where a record came from, in words.
func provenanceLine(p *provenanceData, created time.Time) string {
	if p == nil || p.Importer == "" {
		return ""
	}
	s := "imported"
	if p.Source != "" {
		s += " from " + p.Source
	}
	if p.Item != "" {
		s += " (" + p.Item + ")"
	}
	return s + " by the " + p.Importer + " importer on " + created.Format("2 Jan 2006")
}

// Summary is a record read by its vocabulary: a title, a line of detail,
// a date to sort by, and where it came from.
type Summary struct {
	Record     Record
	Title      string
	Detail     string
	When       string
	Provenance string
}

// Summarize reads a record of a standard collection (docs/vocabulary.md);
// for others the title is the first text field.
func Summarize(r Record) Summary {
	var m map[string]any
	json.Unmarshal(r.Data, &m)
	str := func(k string) string {
		s, _ := m[k].(string)
		return s
	}
	first := func(k string) string { // the value of a [{"value"}] or [string] list
		switch l := m[k].(type) {
		case []any:
			if len(l) > 0 {
				switch x := l[0].(type) {
				case string:
					return x
				case map[string]any:
					s, _ := x["value"].(string)
					return s
				}
			}
		case string:
			return l
		}
		return ""
	}
	codeText := func(k string) string { // FHIR CodeableConcept
		c, _ := m[k].(map[string]any)
		if t, _ := c["text"].(string); t != "" {
			return t
		}
		if cs, _ := c["coding"].([]any); len(cs) > 0 {
			if c0, _ := cs[0].(map[string]any); c0 != nil {
				if d, _ := c0["display"].(string); d != "" {
					return d
				}
				s, _ := c0["code"].(string)
				return s
			}
		}
		return ""
	}
	s := Summary{Record: r}
	var p provenanceData
	if pb, ok := m["provenance"].(map[string]any); ok {
		p.Importer, _ = pb["importer"].(string)
		p.Source, _ = pb["source"].(string)
		p.Item, _ = pb["item"].(string)
		s.Provenance = provenanceLine(&p, r.Created)
	}
	switch r.Collection {
	case "contacts", "profile":
		s.Title = str("name")
		s.Detail = strings.Join(nonEmpty(first("email"), first("telephone"), str("email"), str("telephone")), " · ")
		s.When = str("birthDate")
	case "transactions":
		s.Title = strings.Join(nonEmpty(str("amount"), str("currency")), " ") + " " + str("counterparty")
		s.Detail = str("description")
		s.When = str("date")
	case "calendar":
		s.Title = str("summary")
		s.Detail = strings.Join(nonEmpty(str("location"), str("recurrence")), " · ")
		s.When = str("start")
	case "health":
		s.Title = strings.Join(nonEmpty(str("resourceType"), codeText("code")), ": ")
		if q, ok := m["valueQuantity"].(map[string]any); ok {
			s.Detail = strings.TrimSpace(fmt.Sprint(q["value"]) + " " + fmt.Sprint(cmp.Or(q["unit"], "")))
		}
		for _, k := range []string{"effectiveDateTime", "onsetDateTime", "recordedDate", "occurrenceDateTime", "performedDateTime", "authoredOn", "date", "birthDate"} {
			if s.When = str(k); s.When != "" {
				break
			}
		}
		if s.When == "" {
			if per, ok := m["period"].(map[string]any); ok {
				s.When, _ = per["start"].(string)
			}
		}
	case DocumentsCollection:
		s.Title = cmp.Or(str("title"), str("fileName"), "document")
		s.Detail = strings.Join(nonEmpty(str("kind"), str("counterparty"), str("encodingFormat")), " · ")
		s.When = str("date")
	default:
		s.Title = cmp.Or(str("title"), str("name"), str("summary"), str("programName"))
		s.When = cmp.Or(str("date"), str("startDate"), str("memberSince"))
	}
	if s.Title == "" {
		s.Title = "Record " + r.ID[:min(8, len(r.ID))]
	}
	return s
}

func nonEmpty(ss ...string) []string {
	var out []string
	for _, s := range ss {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

// SearchHit is a record that matched a search.
type SearchHit struct {
	Summary
	Snippet string
}

// SearchResult is what a search found.
type SearchResult struct {
	Hits      []SearchHit
	Truncated bool // some collection had more than maxViewRecords records
}

// maxSearchHits bounds one search's answer.
const maxSearchHits = 100

// SearchRecords finds the owner's records whose JSON contains q
// (case-insensitive), in every collection, newest first. It decrypts in
// memory only; nothing of q or of what matched is written anywhere.
func (v *Vault) SearchRecords(ctx context.Context, q string) (SearchResult, error) {
	q = strings.TrimSpace(q)
	if utf8.RuneCountInString(q) < 2 || len(q) > 200 {
		return SearchResult{}, policy.E(policy.KindInvalid, "invalid_query", "search for 2 to 200 characters")
	}
	colls, err := v.ListCollections(ctx)
	if err != nil {
		return SearchResult{}, err
	}
	needle := strings.ToLower(q)
	var res SearchResult
	for _, c := range colls {
		trunc, err := v.scanCollection(ctx, c.Name, func(r Record) bool {
			text := strings.ToLower(string(r.Data))
			i := strings.Index(text, needle)
			if i < 0 {
				return true
			}
			// The snippet comes from the original when lower-casing kept
			// every byte in place, cut on rune boundaries.
			src := []byte(text)
			if len(text) == len(r.Data) {
				src = r.Data
			}
			from, to := max(0, i-40), min(len(src), i+len(needle)+40)
			for from > 0 && !utf8.RuneStart(src[from]) {
				from--
			}
			for to < len(src) && !utf8.RuneStart(src[to]) {
				to++
			}
			res.Hits = append(res.Hits, SearchHit{Summary: Summarize(r), Snippet: string(src[from:to])})
			return len(res.Hits) < maxSearchHits
		})
		if err != nil {
			return SearchResult{}, err
		}
		res.Truncated = res.Truncated || trunc
		if len(res.Hits) >= maxSearchHits {
			break
		}
	}
	return res, nil
}
