package monitor

import (
	"net/netip"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/portwarden/portwarden/policies"
	"github.com/portwarden/portwarden/rules"
)

const groupsPolicy = `
expose "nscp" {
  protocol = "tcp"
  ports    = [27]
  default  = "reject"

  deny {
    from = ["198.18.20.66"]
  }
  allow {
    from    = ["198.18.1.7", "198.18.20.0/24"]
    comment = "operators"
  }
  allow {
    from    = ["198.18.30.1", "198.18.30.2", "198.18.30.3"]
    comment = "vendor"
    expires = "2099-01-01T00:00:00Z"
  }
}
`

func prefixList(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

// TestSourceGroupsByBlock: with the policy the kernel holds, the groups
// are its allow and deny blocks as written, with their file:line, and the
// deadline of each source admitted until one.
func TestSourceGroupsByBlock(t *testing.T) {
	path := writePolicy(t, groupsPolicy)
	rs := compiled(t, path, policies.Options{Trust: policies.TrustWarn})
	until := time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)
	gs := SourceGroups(&rs.Exposures[0], rs, -1)
	if len(gs) != 3 {
		t.Fatalf("%d groups: %+v", len(gs), gs)
	}
	for i, want := range []struct {
		kind, comment string
		line          int
		sources       []netip.Prefix
		expires       time.Time
	}{
		{rules.OriginDeny, "", 7, prefixList("198.18.20.66/32"), time.Time{}},
		{rules.OriginAllow, "operators", 10, prefixList("198.18.1.7/32", "198.18.20.0/24"), time.Time{}},
		{rules.OriginAllow, "vendor", 14, prefixList("198.18.30.1/32", "198.18.30.2/32", "198.18.30.3/32"), until},
	} {
		g := gs[i]
		if g.Kind != want.kind || g.Comment != want.comment || g.Range == nil || filepath.Base(g.Range.Filename) != "policy.hcl" ||
			g.Range.Start.Line != want.line || g.Count != len(want.sources) || !slices.Equal(g.Sources, want.sources) || !g.Expires.Equal(want.expires) {
			t.Errorf("group %d: %+v, want %+v", i, g, want)
		}
	}
	if gs[0].Until != nil || gs[1].Until != nil {
		t.Errorf("no deadline: %v %v", gs[0].Until, gs[1].Until)
	}
	if u := gs[2].Until; len(u) != 3 || !u[0].Equal(until) || !u[2].Equal(until) {
		t.Errorf("the vendor's sources are admitted until %s: %v", until, u)
	}

	// At most limit sources each, all of them counted.
	gs = SourceGroups(&rs.Exposures[0], rs, 1)
	if g := gs[2]; g.Count != 3 || !slices.Equal(g.Sources, prefixList("198.18.30.1/32")) || len(g.Until) != 1 {
		t.Errorf("limit 1: %+v", g)
	}
	if g := SourceGroups(&rs.Exposures[0], rs, 0)[1]; g.Count != 2 || len(g.Sources) != 0 {
		t.Errorf("limit 0: %+v", g)
	}
}

// TestSourceGroupsOfTheKernel: without the policy (or when it has no
// block for the exposure), the kernel's denied, allowed, then admitted
// until a deadline sources, one group per deadline, soonest first.
func TestSourceGroupsOfTheKernel(t *testing.T) {
	soon, later := time.Date(2098, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)
	e := rules.Exposure{Name: "nscp", Deny: pfx("198.18.20.66/32"), Allow: pfx("198.18.1.7/32", "198.18.20.0/24"),
		Expiring: []rules.Grant{
			{Source: netip.MustParsePrefix("198.18.30.1/32"), Until: later},
			{Source: netip.MustParsePrefix("198.18.30.2/32"), Until: soon},
			{Source: netip.MustParsePrefix("198.18.30.3/32"), Until: later},
		}}
	other := &rules.Ruleset{Exposures: []rules.Exposure{{Name: "web", Origins: []rules.Origin{{Kind: rules.OriginAllow, Prefixes: prefixList("198.18.9.9/32")}}}}}
	for _, desired := range []*rules.Ruleset{nil, other} {
		gs := SourceGroups(&e, desired, 100)
		want := []SourceGroup{
			{Kind: rules.OriginDeny, Count: 1, Sources: prefixList("198.18.20.66/32")},
			{Kind: rules.OriginAllow, Count: 2, Sources: prefixList("198.18.1.7/32", "198.18.20.0/24")},
			{Kind: rules.OriginAllow, Count: 1, Sources: prefixList("198.18.30.2/32"), Expires: soon},
			{Kind: rules.OriginAllow, Count: 2, Sources: prefixList("198.18.30.1/32", "198.18.30.3/32"), Expires: later},
		}
		if len(gs) != len(want) {
			t.Fatalf("%d groups: %+v", len(gs), gs)
		}
		for i, g := range gs {
			w := want[i]
			if g.Kind != w.Kind || g.Range != nil || g.Comment != "" || g.Count != w.Count || !slices.Equal(g.Sources, w.Sources) ||
				!g.Expires.Equal(w.Expires) || g.Until != nil {
				t.Errorf("desired %v, group %d: %+v, want %+v", desired != nil, i, g, w)
			}
		}
	}
	if gs := SourceGroups(&rules.Exposure{Name: "nscp"}, nil, 100); gs != nil {
		t.Errorf("nobody allowed: %+v", gs)
	}
}

// TestSourceGroupsGrantCoversSource: a source has the deadline of the
// grant that admits all of it, not of one that admits a part.
func TestSourceGroupsGrantCoversSource(t *testing.T) {
	until := time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)
	e := rules.Exposure{Name: "nscp", Expiring: []rules.Grant{{Source: netip.MustParsePrefix("198.18.30.1/32"), Until: until}}}
	desired := &rules.Ruleset{Exposures: []rules.Exposure{{Name: "nscp", Origins: []rules.Origin{
		{Kind: rules.OriginAllow, Prefixes: prefixList("198.18.30.0/24", "198.18.30.1/32")},
		{Kind: rules.OriginLoopback},
	}}}}
	gs := SourceGroups(&e, desired, 100)
	if len(gs) != 1 || len(gs[0].Until) != 2 || !gs[0].Until[0].IsZero() || !gs[0].Until[1].Equal(until) {
		t.Errorf("%+v", gs)
	}
}
