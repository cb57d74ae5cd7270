package rules

import (
	"net/netip"
	"testing"

	"github.com/hashicorp/hcl/v2"
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
