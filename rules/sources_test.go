package rules

import (
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"go4.org/netipx"
)

func TestSourceChangesAsWritten(t *testing.T) {
	at := func(line int) hcl.Range { return hcl.Range{Filename: "p.hcl", Start: hcl.Pos{Line: line}} }
	before := &Exposure{Allow: NewPrefixes(netip.MustParsePrefix("198.18.20.10/32"), netip.MustParsePrefix("198.18.30.0/24"))}
	after := &Exposure{
		Allow: NewPrefixes(netip.MustParsePrefix("198.18.20.10/32"), netip.MustParsePrefix("198.18.20.11/32")),
		Origins: []Origin{
			{Kind: OriginAllow, Prefixes: []netip.Prefix{netip.MustParsePrefix("198.18.20.10/32")}, Range: at(4)},
			{Kind: OriginAllow, Prefixes: []netip.Prefix{netip.MustParsePrefix("198.18.20.11/32")}, Comment: "vendor", Range: at(7)},
		},
	}
	got, ok := SourceChanges(before, after)
	if !ok || len(got) != 2 {
		t.Fatalf("changes = %+v, %v", got, ok)
	}
	if c := got[0]; !c.Added || SourceString(c.Prefix) != "198.18.20.11" || c.Range.Start.Line != 7 || c.Comment != "vendor" {
		t.Errorf("added = %+v", c)
	}
	if c := got[1]; c.Added || c.Prefix.String() != "198.18.30.0/24" || c.Range != nil {
		t.Errorf("removed = %+v", c)
	}
	// A Ruleset read from a kernel has no origins: the caller falls back.
	if _, ok := SourceChanges(before, before); ok {
		t.Error("no origins, yet a source view")
	}
}

// TestCoveredAgreesWithIPSet: the binary search over a normalised set
// answers as netipx's (linear) ContainsPrefix does.
func TestCoveredAgreesWithIPSet(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	rnd := func() netip.Prefix {
		return netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, byte(r.IntN(4)), byte(r.IntN(256))}), 22+r.IntN(11)).Masked()
	}
	for iter := range 500 {
		var ps []netip.Prefix
		for range r.IntN(20) {
			ps = append(ps, rnd())
		}
		set := NewPrefixes(ps...)
		ref := ipSet(set)
		for range 20 {
			p := rnd()
			if got, want := covered(set, p), ref.ContainsPrefix(p); got != want {
				t.Fatalf("iteration %d: covered(%v, %s) = %v, want %v", iter, set.All(), p, got, want)
			}
		}
	}
}

func ipSet(ps Prefixes) *netipx.IPSet {
	var b netipx.IPSetBuilder
	for _, p := range ps.All() {
		b.AddPrefix(p)
	}
	s, _ := b.IPSet()
	return s
}
