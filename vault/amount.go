package vault

import (
	"cmp"
	"math/big"
	"slices"
)

// Amounts in views are exact. Nearly every amount has at most 8 decimals
// and 10 integer digits: those are counted as int64 units of 1e-8, and
// sums stay in int64 until they would overflow; anything else (more
// decimals, a fraction, an exponent) is a big.Rat. This keeps big.Rat's
// normalising GCD out of a view's 20,000 additions (docs/benchmarks.md).

const unitScale = 100_000_000 // 1e8 units per 1

type amount struct {
	units int64
	rat   *big.Rat // the amount, when it does not fit units
}

// parseAmount reads a decimal string as big.Rat.SetString would.
func parseAmount(s string) (amount, bool) {
	if u, ok := fixedUnits(s); ok {
		return amount{units: u}, true
	}
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return amount{}, false
	}
	return amount{rat: r}, true
}

// fixedUnits is s in 1e-8 units if s is [+-]digits[.digits] with 1-10
// integer digits and 1-8 decimals.
func fixedUnits(s string) (int64, bool) {
	i, neg := 0, false
	if i < len(s) && (s[i] == '-' || s[i] == '+') {
		neg = s[i] == '-'
		i++
	}
	var u int64
	start := i
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		u = u*10 + int64(s[i]-'0')
		i++
		if i-start > 10 {
			return 0, false
		}
	}
	if i == start {
		return 0, false
	}
	frac := 0
	if i < len(s) && s[i] == '.' {
		i++
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			if frac == 8 {
				return 0, false
			}
			u = u*10 + int64(s[i]-'0')
			i++
			frac++
		}
		if frac == 0 {
			return 0, false
		}
	}
	if i != len(s) {
		return 0, false
	}
	for ; frac < 8; frac++ {
		u *= 10
	}
	if neg {
		u = -u
	}
	return u, true
}

func (a amount) sign() int {
	if a.rat != nil {
		return a.rat.Sign()
	}
	return cmp.Compare(a.units, 0)
}

// sum adds amounts exactly.
type sum struct {
	units int64
	rat   *big.Rat // what spilled out of units, and amounts that never fit
}

// add adds a, or subtracts it when neg.
func (s *sum) add(a amount, neg bool) {
	if a.rat != nil {
		s.spill()
		if neg {
			s.rat.Sub(s.rat, a.rat)
		} else {
			s.rat.Add(s.rat, a.rat)
		}
		return
	}
	u := a.units
	if neg {
		if u == -u && u != 0 { // math.MinInt64 has no negation
			s.spill()
			s.rat.Sub(s.rat, big.NewRat(u, unitScale))
			return
		}
		u = -u
	}
	r := s.units + u
	if (u > 0 && r < s.units) || (u < 0 && r > s.units) {
		s.spill()
		r = u
	}
	s.units = r
}

func (s *sum) spill() {
	if s.rat == nil {
		s.rat = new(big.Rat)
	}
	if s.units != 0 {
		s.rat.Add(s.rat, big.NewRat(s.units, unitScale))
		s.units = 0
	}
}

// value is the sum as a big.Rat (a new one).
func (s *sum) value() *big.Rat {
	r := big.NewRat(s.units, unitScale)
	if s.rat != nil {
		r.Add(r, s.rat)
	}
	return r
}

// sortByDate sorts txs oldest first, stably, moving each row once: the
// comparisons go through an index of int32s instead of swapping the
// rows themselves.
func sortByDate(txs []cachedTx) []cachedTx {
	idx := make([]int32, len(txs))
	for i := range idx {
		idx[i] = int32(i)
	}
	slices.SortStableFunc(idx, func(a, b int32) int { return cmp.Compare(txs[a].d.Date, txs[b].d.Date) })
	out := make([]cachedTx, len(txs))
	for k, i := range idx {
		out[k] = txs[i]
	}
	return out
}
