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

// On an empty set, SourceChanges skips telling sources apart when no two
// listed ones overlap; it lists the same added sources as when it must.
func TestSourceChangesOntoEmpty(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	far := NewPrefixes(netip.MustParsePrefix("198.19.255.255/32"))
	for iter := range 300 {
		after := &Exposure{}
		var all []netip.Prefix
		for b := range 1 + r.IntN(3) {
			var ps []netip.Prefix
			for range r.IntN(40) {
				if r.IntN(3) == 0 {
					a := netip.MustParseAddr("2001:2::").As16()
					a[15] = byte(r.IntN(64))
					ps = append(ps, netip.PrefixFrom(netip.AddrFrom16(a), 128-r.IntN(2)).Masked())
				} else {
					ps = append(ps, netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, 0, byte(r.IntN(64) + 64*(iter%2))}), 32-r.IntN(2)).Masked())
				}
			}
			if iter%3 == 0 { // often no overlap at all: distinct hosts
				ps = NewPrefixes(ps...).All()
				for i := range ps {
					ps[i] = netip.PrefixFrom(ps[i].Addr(), ps[i].Addr().BitLen())
				}
				ps = NewPrefixes(ps...).All()
				if b > 0 {
					ps = nil
				}
			}
			all = append(all, ps...)
			after.Origins = append(after.Origins, Origin{Kind: OriginAllow, Prefixes: ps, Comment: string(rune('a' + b))})
		}
		after.Allow = NewPrefixes(all...)
		got, _ := SourceChanges(nil, after)
		ref, _ := SourceChanges(&Exposure{Allow: far}, after)
		var want []SourceChange
		for _, c := range ref {
			if c.Added {
				want = append(want, c)
			}
		}
		if len(got) != len(want) {
			t.Fatalf("iteration %d: %d changes onto an empty set, %d when told apart", iter, len(got), len(want))
		}
		for i := range got {
			if got[i].Prefix != want[i].Prefix || got[i].Comment != want[i].Comment || *got[i].Range != *want[i].Range {
				t.Fatalf("iteration %d: change %d is %+v, want %+v", iter, i, got[i], want[i])
			}
		}
	}
}
