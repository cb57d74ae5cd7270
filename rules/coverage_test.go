package rules

import (
	"math/rand/v2"
	"net/netip"
	"testing"
)

// coverage.covered, searching on from its last position, answers as an
// IPSet does, for probes in sorted, reversed and random order.
func TestCoverageMatchesCovered(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	prefix := func() netip.Prefix {
		if r.IntN(2) == 0 {
			return netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, byte(r.IntN(4)), byte(r.IntN(256))}), 32-r.IntN(5)).Masked()
		}
		a := netip.MustParseAddr("2001:2::").As16()
		a[14], a[15] = byte(r.IntN(4)), byte(r.IntN(256))
		return netip.PrefixFrom(netip.AddrFrom16(a), 128-r.IntN(5)).Masked()
	}
	for range 300 {
		var in []netip.Prefix
		for range r.IntN(200) {
			in = append(in, prefix())
		}
		set := NewPrefixes(in...)
		var probes []netip.Prefix
		for range r.IntN(300) {
			probes = append(probes, prefix())
		}
		switch r.IntN(3) {
		case 0:
			probes = NewPrefixes(probes...).All()
		case 1:
			all := NewPrefixes(probes...).All()
			for i, j := 0, len(all)-1; i < j; i, j = i+1, j-1 {
				all[i], all[j] = all[j], all[i]
			}
			probes = all
		}
		var c coverage
		for _, p := range probes {
			if got, want := c.covered(set, p), ipSet(set).ContainsPrefix(p); got != want {
				t.Fatalf("set %v: covered(%s) = %v, want %v", set, p, got, want)
			}
		}
	}
}
