package rules

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"

	"go4.org/netipx"
)

// TestMergedAgreesWithIPSet: the sort-and-sweep normalisation gives what
// netipx.IPSet does, for random overlapping, nested and adjacent prefixes
// of both families, up to the ends of the address space.
func TestMergedAgreesWithIPSet(t *testing.T) {
	r := rand.New(rand.NewPCG(10, 2026))
	for iter := range 2000 {
		var ps []netip.Prefix
		var b netipx.IPSetBuilder
		for range r.IntN(40) {
			var p netip.Prefix
			if r.IntN(2) == 0 {
				a := netip.AddrFrom4([4]byte{[]byte{0, 198, 255}[r.IntN(3)], byte(r.IntN(4)), 0, byte(r.IntN(8))})
				p = netip.PrefixFrom(a, 24+r.IntN(9)).Masked()
				if r.IntN(10) == 0 {
					p = netip.PrefixFrom(a, r.IntN(9)).Masked()
				}
			} else {
				var a [16]byte
				a[0], a[15] = []byte{0, 0x20, 0xff}[r.IntN(3)], byte(r.IntN(8))
				p = netip.PrefixFrom(netip.AddrFrom16(a), 120+r.IntN(9)).Masked()
			}
			ps = append(ps, p)
			b.AddPrefix(p)
		}
		set, _ := b.IPSet()
		var want4, want6 []netip.Prefix
		for _, p := range set.Prefixes() {
			if p.Addr().Is4() {
				want4 = append(want4, p)
			} else {
				want6 = append(want6, p)
			}
		}
		got := NewPrefixes(ps...)
		if !slices.Equal(got.V4, want4) || !slices.Equal(got.V6, want6) {
			t.Fatalf("iteration %d: NewPrefixes(%v) = %v %v, IPSet says %v %v", iter, ps, got.V4, got.V6, want4, want6)
		}
	}
}
