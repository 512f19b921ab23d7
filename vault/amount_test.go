package vault

import (
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"testing"
)

// parseAmount and sum give exactly what big.Rat gives: the fast path is
// only taken where it is exact, and sums spill into big.Rat before they
// overflow.
func TestAmountsAgreeWithBigRat(t *testing.T) {
	for _, s := range []string{"0", "-0", "+1.5", "12.50", "-12.50", "1.", ".5", "1.123456789", "9999999999.99999999", "99999999999",
		"1e3", "1/3", "-7/8", "abc", "", "-", "00012.3400", "1.2.3", "１２", " 1", "0x10"} {
		a, ok := parseAmount(s)
		r, rok := new(big.Rat).SetString(s)
		if ok != rok {
			t.Fatalf("%q: parseAmount ok %v, big.Rat ok %v", s, ok, rok)
		}
		if !ok {
			continue
		}
		var sm sum
		sm.add(a, false)
		if sm.value().Cmp(r) != 0 || a.sign() != r.Sign() {
			t.Fatalf("%q: %v, want %v", s, sm.value(), r)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var fast, neg sum
	exact, exactNeg := new(big.Rat), new(big.Rat)
	for i := range 20000 {
		var s string
		switch i % 4 {
		case 0:
			s = fmt.Sprintf("%d.%02d", rng.IntN(2000000)-1000000, rng.IntN(100))
		case 1:
			s = fmt.Sprintf("-%d.%08d", rng.IntN(9999999999), rng.IntN(100000000))
		case 2:
			s = fmt.Sprintf("%d", rng.Int64N(9999999999))
		default:
			s = fmt.Sprintf("%d/%d", rng.IntN(1000)-500, rng.IntN(999)+1)
		}
		a, ok := parseAmount(s)
		r, _ := new(big.Rat).SetString(s)
		if !ok {
			t.Fatalf("%q not read", s)
		}
		fast.add(a, false)
		neg.add(a, true)
		exact.Add(exact, r)
		exactNeg.Sub(exactNeg, r)
	}
	if fast.value().Cmp(exact) != 0 || neg.value().Cmp(exactNeg) != 0 {
		t.Fatalf("sums differ: %v vs %v", fast.value().FloatString(8), exact.FloatString(8))
	}
	// Overflow: units spill into big.Rat rather than wrap.
	var big1 sum
	huge := amount{units: math.MaxInt64 - 10}
	big1.add(huge, false)
	big1.add(huge, false)
	big1.add(amount{units: math.MinInt64}, true)
	want := new(big.Rat).Mul(big.NewRat(math.MaxInt64-10, unitScale), big.NewRat(2, 1))
	want.Sub(want, big.NewRat(math.MinInt64, unitScale))
	if big1.value().Cmp(want) != 0 {
		t.Fatalf("overflowing sum %v, want %v", big1.value(), want)
	}
}
