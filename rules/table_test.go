package rules

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/portwarden/portwarden/policies"
)

func at(line int) hcl.Range {
	return hcl.Range{Filename: "p.hcl", Start: hcl.Pos{Line: line, Column: 1}, End: hcl.Pos{Line: line, Column: 9}}
}

func prefixes(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

func ports(rs ...[2]uint16) []policies.PortRange {
	var out []policies.PortRange
	for _, r := range rs {
		out = append(out, policies.PortRange{First: r[0], Last: r[1]})
	}
	return out
}

func mustCompile(t *testing.T, p *policies.Policy) *Ruleset {
	t.Helper()
	rs, err := Compile(p)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return rs
}

func TestCompileErrors(t *testing.T) {
	valid := func() *policies.Expose {
		return &policies.Expose{Name: "nscp", Protocol: "tcp", Ports: ports([2]uint16{27, 27}), Default: "drop", DeclRange: at(3)}
	}
	for _, tc := range []struct {
		name   string
		policy *policies.Policy
		want   string
	}{
		{"no policy", nil, "no policy"},
		{"unknown protocol", &policies.Policy{Exposes: []*policies.Expose{func() *policies.Expose { x := valid(); x.Protocol = "sctp"; return x }()}}, `unknown protocol "sctp"`},
		{"bad default", &policies.Policy{Exposes: []*policies.Expose{func() *policies.Expose { x := valid(); x.Default = "accept"; return x }()}}, "default must be drop or reject"},
		{"no port", &policies.Policy{Exposes: []*policies.Expose{func() *policies.Expose { x := valid(); x.Ports = nil; return x }()}}, "manages no port"},
		{"port zero", &policies.Policy{Exposes: []*policies.Expose{func() *policies.Expose { x := valid(); x.Ports = ports([2]uint16{0, 5}); return x }()}}, "invalid port range 0-5"},
		{"reversed range", &policies.Policy{Exposes: []*policies.Expose{func() *policies.Expose { x := valid(); x.Ports = ports([2]uint16{30, 20}); return x }()}}, "invalid port range 30-20"},
		{"duplicate name", &policies.Policy{Exposes: []*policies.Expose{valid(), valid()}}, `two exposes are named "nscp"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs, err := Compile(tc.policy)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Compile = %v, %v; want an error containing %q", rs, err, tc.want)
			}
			if tc.policy != nil && !strings.Contains(err.Error(), "p.hcl:3") && tc.name != "duplicate name" {
				t.Errorf("error %q does not say where the expose is", err)
			}
		})
	}
}

func TestCompileSets(t *testing.T) {
	p := &policies.Policy{Exposes: []*policies.Expose{{
		Name: "nscp", Protocol: "tcp", Default: "reject", Loopback: true, DeclRange: at(1),
		Ports:        ports([2]uint16{27, 27}, [2]uint16{20, 26}, [2]uint16{28, 30}, [2]uint16{40, 40}, [2]uint16{25, 25}),
		Interfaces:   []string{"eth1", "eth0", "eth1"},
		Destinations: addrs("2001:2::10", "198.18.0.10", "198.18.0.11"),
		Deny: []*policies.SourceRule{
			{Kind: "deny", From: addrs("198.18.1.66", "2001:2:0:1::66"), Comment: "former admin", DeclRange: at(20)},
			{Kind: "deny", From: addrs("198.18.1.0/24"), DeclRange: at(22)},
		},
		Allow: []*policies.SourceRule{
			// Two halves that merge, a prefix inside another, host bits set,
			// and one prefix that is denied as well.
			{Kind: "allow", From: addrs("198.18.2.0/25", "198.18.2.128/25", "198.18.3.7"), Comment: "office", DeclRange: at(10)},
			{Kind: "allow", From: addrs("198.18.3.0/24", "2001:2:0:1::/64", "2001:2:0:1::5", "198.18.1.99/24"), DeclRange: at(12)},
		},
	}}}
	rs := mustCompile(t, p)
	e := rs.Exposure("nscp")
	if e == nil || rs.Exposure("other") != nil {
		t.Fatalf("Exposure lookup: %+v", rs)
	}
	if want := []PortRange{{20, 30}, {40, 40}}; !slices.Equal(e.Ports, want) {
		t.Errorf("ports = %v, want %v", e.Ports, want)
	}
	if want := []string{"eth0", "eth1"}; !slices.Equal(e.Interfaces, want) {
		t.Errorf("interfaces = %v, want %v", e.Interfaces, want)
	}
	for _, set := range []struct {
		name string
		got  Prefixes
		want []netip.Prefix
	}{
		{"destinations", e.Destinations, prefixes("198.18.0.10/31", "2001:2::10/128")},
		{"deny", e.Deny, prefixes("198.18.1.0/24", "2001:2:0:1::66/128")},
		// deny is not subtracted: 198.18.1.0/24 stays allowed too.
		{"allow", e.Allow, prefixes("198.18.1.0/24", "198.18.2.0/23", "2001:2:0:1::/64")},
	} {
		if !slices.Equal(set.got.All(), set.want) {
			t.Errorf("%s = %v, want %v", set.name, set.got.All(), set.want)
		}
	}
	if e.Allow.Len() != 3 || len(e.Allow.V4) != 2 || len(e.Allow.V6) != 1 {
		t.Errorf("allow families: %+v", e.Allow)
	}
	wantOrigins := []Origin{
		{Kind: OriginDeny, Comment: "former admin", Prefixes: prefixes("198.18.1.66/32", "2001:2:0:1::66/128"), Range: at(20)},
		{Kind: OriginDeny, Prefixes: prefixes("198.18.1.0/24"), Range: at(22)},
		{Kind: OriginAllow, Comment: "office", Prefixes: prefixes("198.18.2.0/25", "198.18.2.128/25", "198.18.3.7/32"), Range: at(10)},
		{Kind: OriginAllow, Prefixes: prefixes("198.18.3.0/24", "2001:2:0:1::/64", "2001:2:0:1::5/128", "198.18.1.0/24"), Range: at(12)},
		{Kind: OriginLoopback, Range: at(1)},
		{Kind: OriginDefault, Range: at(1)},
	}
	if len(e.Origins) != len(wantOrigins) {
		t.Fatalf("origins = %+v", e.Origins)
	}
	for i, want := range wantOrigins {
		got := e.Origins[i]
		if got.Kind != want.Kind || got.Comment != want.Comment || got.Range != want.Range || !slices.Equal(got.Prefixes, want.Prefixes) {
			t.Errorf("origin %d = %+v, want %+v", i, got, want)
		}
	}
	p.Exposes[0].Loopback = false
	if e := mustCompile(t, p).Exposures[0]; slices.ContainsFunc(e.Origins, func(o Origin) bool { return o.Kind == OriginLoopback }) {
		t.Errorf("loopback origin without loopback: %+v", e.Origins)
	}
}

func TestDecideTable(t *testing.T) {
	// Three exposes share TCP 27: "a-eth0" only on eth0, "b-web" only to
	// 198.18.0.80 and 2001:2::80, "c-all" everything else. "d-range"
	// manages 8000-8010 and 8020.
	p := &policies.Policy{Exposes: []*policies.Expose{
		{Name: "c-all", Protocol: "tcp", Ports: ports([2]uint16{27, 27}), Default: "drop", Loopback: false, DeclRange: at(1),
			Allow: []*policies.SourceRule{{Kind: "allow", From: addrs("198.18.5.0/24", "2001:2:5::/48"), DeclRange: at(2)}},
			Deny:  []*policies.SourceRule{{Kind: "deny", From: addrs("198.18.5.5", "2001:2:5::5"), DeclRange: at(3)}}},
		{Name: "a-eth0", Protocol: "tcp", Ports: ports([2]uint16{27, 27}), Default: "reject", Interfaces: []string{"eth0"}, Loopback: true, DeclRange: at(10),
			Allow: []*policies.SourceRule{{Kind: "allow", From: addrs("198.18.0.0/16"), DeclRange: at(11)}}},
		{Name: "b-web", Protocol: "tcp", Ports: ports([2]uint16{27, 27}), Default: "reject", Destinations: addrs("198.18.0.80", "2001:2::80"), DeclRange: at(20),
			Allow: []*policies.SourceRule{{Kind: "allow", From: addrs("2001:2:7::/48"), DeclRange: at(21)}},
			Deny: []*policies.SourceRule{
				{Kind: "deny", From: addrs("2001:2:7::/64"), DeclRange: at(22)},
				{Kind: "deny", From: addrs("2001:2:7::1"), DeclRange: at(23)},
			}},
		{Name: "d-range", Protocol: "udp", Ports: ports([2]uint16{8000, 8010}, [2]uint16{8020, 8020}), Default: "drop", Loopback: true, DeclRange: at(30),
			Allow: []*policies.SourceRule{{Kind: "allow", From: addrs("198.18.9.0/24"), DeclRange: at(31)}}},
	}}
	rs := mustCompile(t, p)
	src := netip.MustParseAddr
	for _, tc := range []struct {
		name     string
		pkt      Packet
		verdict  Verdict
		exposure string
		kind     string
		line     int
	}{
		{"first exposure in name order wins on eth0", Packet{Protocol: TCP, Source: src("198.18.5.5"), Port: 27, Interface: "eth0"}, Accept, "a-eth0", OriginAllow, 11},
		{"eth0 exposure refuses with reject", Packet{Protocol: TCP, Source: src("198.19.0.1"), Port: 27, Interface: "eth0"}, Reject, "a-eth0", OriginDefault, 10},
		{"unknown interface skips the eth0 exposure", Packet{Protocol: TCP, Source: src("198.18.5.5"), Destination: src("198.18.0.1"), Port: 27, Interface: "eth1"}, Drop, "c-all", OriginDeny, 3},
		{"loopback on eth0-only exposure is not lo", Packet{Protocol: TCP, Source: src("198.19.0.1"), Destination: src("198.18.0.1"), Port: 27, Interface: "lo"}, Drop, "c-all", OriginDefault, 1},
		{"no loopback rule: lo gets the default", Packet{Protocol: TCP, Source: src("2001:2:9::1"), Destination: src("2001:2::1"), Port: 27, Interface: "lo"}, Drop, "c-all", OriginDefault, 1},
		{"destination exposure", Packet{Protocol: TCP, Source: src("2001:2:7:1::9"), Destination: src("2001:2::80"), Port: 27, Interface: "eth1"}, Accept, "b-web", OriginAllow, 21},
		{"v6 deny beats allow, first deny block", Packet{Protocol: TCP, Source: src("2001:2:7::1"), Destination: src("2001:2::80"), Port: 27, Interface: "eth1"}, Reject, "b-web", OriginDeny, 22},
		{"other destination falls through", Packet{Protocol: TCP, Source: src("2001:2:7::1"), Destination: src("2001:2::81"), Port: 27, Interface: "eth1"}, Drop, "c-all", OriginDefault, 1},
		{"v6 allowed by c-all", Packet{Protocol: TCP, Source: src("2001:2:5:ffff::1"), Destination: src("2001:2::1"), Port: 27, Interface: "eth1"}, Accept, "c-all", OriginAllow, 2},
		{"no destination: a v6 source matches the exposure with v6 destinations", Packet{Protocol: TCP, Source: src("2001:2:9::1"), Port: 27, Interface: "eth1"}, Reject, "b-web", OriginDefault, 20},
		{"empty interface matches the interface filter", Packet{Protocol: TCP, Source: src("198.18.5.5"), Port: 27}, Accept, "a-eth0", OriginAllow, 11},
		{"v6 denied by c-all", Packet{Protocol: TCP, Source: src("2001:2:5::5"), Destination: src("2001:2::1"), Port: 27, Interface: "eth1"}, Drop, "c-all", OriginDeny, 3},
		{"mapped source is IPv4", Packet{Protocol: TCP, Source: src("::ffff:198.18.5.5"), Destination: src("198.18.0.1"), Port: 27, Interface: "eth1"}, Drop, "c-all", OriginDeny, 3},
		{"udp on a tcp port passes", Packet{Protocol: UDP, Source: src("198.18.5.1"), Port: 27}, Pass, "", "", 0},
		{"range first port", Packet{Protocol: UDP, Source: src("198.18.9.1"), Port: 8000}, Accept, "d-range", OriginAllow, 31},
		{"range last port", Packet{Protocol: UDP, Source: src("198.18.10.1"), Port: 8010}, Drop, "d-range", OriginDefault, 30},
		{"single port after the range", Packet{Protocol: UDP, Source: src("198.18.10.1"), Port: 8020}, Drop, "d-range", OriginDefault, 30},
		{"between the ranges passes", Packet{Protocol: UDP, Source: src("198.18.10.1"), Port: 8011}, Pass, "", "", 0},
		{"before the range passes", Packet{Protocol: UDP, Source: src("198.18.10.1"), Port: 7999}, Pass, "", "", 0},
		{"loopback accepted", Packet{Protocol: UDP, Source: src("198.18.10.1"), Port: 8005, Interface: "lo"}, Accept, "d-range", OriginLoopback, 30},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := rs.Decide(tc.pkt)
			if d.Verdict != tc.verdict || d.Exposure != tc.exposure {
				t.Fatalf("Decide = %s by %q, want %s by %q", d.Verdict, d.Exposure, tc.verdict, tc.exposure)
			}
			if tc.kind == "" {
				if d.Origin != nil {
					t.Fatalf("origin %+v with pass", d.Origin)
				}
				return
			}
			if d.Origin == nil || d.Origin.Kind != tc.kind || d.Origin.Range.Start.Line != tc.line {
				t.Fatalf("origin = %+v, want %s at line %d", d.Origin, tc.kind, tc.line)
			}
		})
	}

	// A ruleset read from a kernel has no Origins: same verdicts, nil Origin.
	kernel := rs.Clone()
	for i := range kernel.Exposures {
		kernel.Exposures[i].Origins = nil
	}
	d := kernel.Decide(Packet{Protocol: TCP, Source: src("2001:2:7::1"), Destination: src("2001:2::80"), Port: 27, Interface: "eth1"})
	if d.Verdict != Reject || d.Exposure != "b-web" || d.Origin != nil {
		t.Errorf("kernel ruleset: %+v", d)
	}
}

func TestCompareTable(t *testing.T) {
	base := func() *Ruleset {
		return &Ruleset{Exposures: []Exposure{{
			Name: "nscp", Protocol: TCP, Ports: []PortRange{{27, 27}}, Default: Drop, Loopback: true,
			Interfaces:   []string{"eth0"},
			Destinations: NewPrefixes(prefixes("198.18.0.1/32")...),
			Allow:        NewPrefixes(prefixes("198.18.1.0/24", "2001:2:1::/48")...),
			Deny:         NewPrefixes(prefixes("198.18.1.66/32")...),
		}}}
	}
	for _, tc := range []struct {
		name   string
		change func(e *Exposure)
		check  func(t *testing.T, d ExposureDiff)
	}{
		{"port added and removed", func(e *Exposure) { e.Ports = []PortRange{{27, 28}, {5000, 5000}} }, func(t *testing.T, d ExposureDiff) {
			if !slices.Equal(d.Ports.Added, []PortRange{{27, 28}, {5000, 5000}}) || !slices.Equal(d.Ports.Removed, []PortRange{{27, 27}}) {
				t.Errorf("ports = %+v", d.Ports)
			}
		}},
		{"attributes", func(e *Exposure) {
			e.Protocol, e.Default, e.Log, e.Loopback, e.Interfaces = UDP, Reject, true, false, []string{"eth0", "eth1"}
		}, func(t *testing.T, d ExposureDiff) {
			var names []string
			for _, a := range d.Attributes {
				names = append(names, a.Name+":"+a.Old+">"+a.New)
			}
			want := []string{"protocol:tcp>udp", "interfaces:eth0>eth0,eth1", "default:drop>reject", "reject_with:>icmp-port-unreachable", "log:false>true", "loopback:true>false"}
			if !slices.Equal(names, want) {
				t.Errorf("attributes = %v, want %v", names, want)
			}
		}},
		{"one v6 address leaves a /48", func(e *Exposure) {
			e.Allow = NewPrefixes(prefixes("198.18.1.0/24", "2001:2:1::/49", "2001:2:1:8000::/50", "2001:2:1:c000::/51")...)
		}, func(t *testing.T, d ExposureDiff) {
			if !slices.Equal(d.Allow.Removed, prefixes("2001:2:1::/48")) || len(d.Allow.Added) != 3 || !d.Deny.Empty() || !d.Destinations.Empty() {
				t.Errorf("diff = %+v", d)
			}
		}},
		{"destination and deny elements", func(e *Exposure) {
			e.Destinations = NewPrefixes(prefixes("198.18.0.1/32", "2001:2::1/128")...)
			e.Deny = Prefixes{}
		}, func(t *testing.T, d ExposureDiff) {
			if !slices.Equal(d.Destinations.Added, prefixes("2001:2::1/128")) || len(d.Destinations.Removed) != 0 ||
				!slices.Equal(d.Deny.Removed, prefixes("198.18.1.66/32")) || len(d.Deny.Added) != 0 {
				t.Errorf("diff = %+v", d)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			current, desired := base(), base()
			tc.change(&desired.Exposures[0])
			desired.Normalize()
			d := Compare(current, desired)
			if len(d.Exposures) != 1 || d.Exposures[0].Action != Update || d.Exposures[0].Name != "nscp" {
				t.Fatalf("diff = %+v", d)
			}
			tc.check(t, d.Exposures[0])
			if current.Fingerprint() == desired.Fingerprint() {
				t.Error("different rules, same fingerprint")
			}
		})
	}

	t.Run("create and delete list every element", func(t *testing.T) {
		rs := base()
		created := Compare(nil, rs).Exposures
		if len(created) != 1 || created[0].Action != Create || created[0].Before != nil || created[0].After == nil ||
			!slices.Equal(created[0].Allow.Added, rs.Exposures[0].Allow.All()) || len(created[0].Ports.Added) != 1 ||
			len(created[0].Destinations.Added) != 1 || len(created[0].Deny.Added) != 1 || len(created[0].Attributes) != 0 {
			t.Errorf("create = %+v", created)
		}
		deleted := Compare(rs, &Ruleset{}).Exposures
		if len(deleted) != 1 || deleted[0].Action != Delete || deleted[0].After != nil ||
			!slices.Equal(deleted[0].Allow.Removed, rs.Exposures[0].Allow.All()) || len(deleted[0].Ports.Removed) != 1 {
			t.Errorf("delete = %+v", deleted)
		}
		if !Compare(nil, nil).Empty() || !Compare(&Ruleset{}, nil).Empty() {
			t.Error("two empty rulesets differ")
		}
	})

	t.Run("origins are ignored", func(t *testing.T) {
		current, desired := base(), base()
		desired.Exposures[0].Origins = []Origin{{Kind: OriginDefault, Range: at(7)}}
		if !Compare(current, desired).Empty() || current.Fingerprint() != desired.Fingerprint() {
			t.Error("Origins changed the diff or the fingerprint")
		}
	})

	t.Run("several exposures sorted by name", func(t *testing.T) {
		current := base()
		desired := base()
		desired.Exposures = append(desired.Exposures, Exposure{Name: "dns", Protocol: UDP, Ports: []PortRange{{53, 53}}, Default: Reject})
		desired.Exposures[0].Log = true
		desired.Normalize()
		d := Compare(current, desired)
		if len(d.Exposures) != 2 || d.Exposures[0].Name != "dns" || d.Exposures[0].Action != Create || d.Exposures[1].Action != Update {
			t.Errorf("diff = %+v", d)
		}
		if c, u, r := d.Summary(); c != 1 || u != 1 || r != 0 {
			t.Errorf("summary = %d %d %d", c, u, r)
		}
	})
}

func TestNormalizeAndFingerprint(t *testing.T) {
	messy := &Ruleset{Exposures: []Exposure{
		{Name: "zz", Protocol: TCP, Ports: []PortRange{{30, 31}, {27, 29}}, Default: Drop,
			Interfaces: []string{"eth1", "eth0", "eth1"},
			Allow:      Prefixes{V4: prefixes("198.18.1.128/25", "198.18.1.0/25", "198.18.1.7/32")},
			Deny:       Prefixes{V4: prefixes("::ffff:198.18.2.0/120")}},
		{Name: "aa", Protocol: UDP, Ports: []PortRange{{53, 53}}, Default: Reject,
			Allow: Prefixes{V6: prefixes("2001:2::1/128", "2001:2::/127", "198.18.0.0/16")}},
	}}
	before := messy.Fingerprint()
	if messy.Exposures[0].Name != "zz" {
		t.Fatal("Fingerprint changed the ruleset")
	}
	messy.Normalize()
	if messy.Fingerprint() != before {
		t.Error("Fingerprint depends on normalisation")
	}
	zz, aa := messy.Exposure("zz"), messy.Exposure("aa")
	if messy.Exposures[0].Name != "aa" || !slices.Equal(zz.Ports, []PortRange{{27, 31}}) || !slices.Equal(zz.Interfaces, []string{"eth0", "eth1"}) ||
		!slices.Equal(zz.Allow.All(), prefixes("198.18.1.0/24")) || !slices.Equal(zz.Deny.All(), prefixes("198.18.2.0/24")) ||
		!slices.Equal(aa.Allow.V4, prefixes("198.18.0.0/16")) || !slices.Equal(aa.Allow.V6, prefixes("2001:2::/127")) {
		t.Errorf("normalised = %+v", messy)
	}
	again := messy.Clone()
	again.Normalize()
	if !Compare(messy, again).Empty() || again.Fingerprint() != before {
		t.Error("Normalize is not idempotent")
	}
	if len(before) != 64 || strings.Trim(before, "0123456789abcdef") != "" {
		t.Errorf("fingerprint %q is not sha256 hex", before)
	}
	// Every attribute is part of the fingerprint.
	seen := map[string]string{before: "original"}
	for name, change := range map[string]func(e *Exposure){
		"name":         func(e *Exposure) { e.Name = "zy" },
		"protocol":     func(e *Exposure) { e.Protocol = UDP },
		"ports":        func(e *Exposure) { e.Ports = []PortRange{{27, 32}} },
		"interfaces":   func(e *Exposure) { e.Interfaces = nil },
		"destinations": func(e *Exposure) { e.Destinations = NewPrefixes(prefixes("198.18.0.1/32")...) },
		"default":      func(e *Exposure) { e.Default = Reject },
		"log":          func(e *Exposure) { e.Log = true },
		"loopback":     func(e *Exposure) { e.Loopback = true },
		"deny":         func(e *Exposure) { e.Deny = Prefixes{} },
		"allow":        func(e *Exposure) { e.Allow = NewPrefixes(prefixes("198.18.1.0/25")...) },
		"allow to deny": func(e *Exposure) {
			e.Allow, e.Deny = NewPrefixes(prefixes("198.18.2.0/24")...), NewPrefixes(prefixes("198.18.1.0/24")...)
		},
	} {
		rs := messy.Clone()
		change(rs.Exposure("zz"))
		fp := rs.Fingerprint()
		if other, dup := seen[fp]; dup {
			t.Errorf("changing %s gives the fingerprint of %s", name, other)
		}
		seen[fp] = name
	}
}

func TestPrefixes(t *testing.T) {
	set := NewPrefixes(prefixes("198.18.0.0/24", "2001:2::/64", "198.18.1.0/24", "::ffff:198.19.0.1/128", "198.18.5.9/16")...)
	if want := prefixes("198.18.0.0/16", "198.19.0.1/32", "2001:2::/64"); !slices.Equal(set.All(), want) {
		t.Fatalf("set = %v, want %v", set.All(), want)
	}
	if set.Len() != 3 {
		t.Errorf("Len = %d", set.Len())
	}
	for addr, want := range map[string]bool{
		"198.18.0.0": true, "198.18.255.255": true, "198.17.255.255": false, "198.19.0.0": false,
		"198.19.0.1": true, "::ffff:198.19.0.1": true, "198.19.0.2": false,
		"2001:2::": true, "2001:2::ffff:ffff:ffff:ffff": true, "2001:2:0:1::": false, "2001:1:ffff:ffff:ffff:ffff:ffff:ffff": false,
		"::": false, "0.0.0.0": false,
	} {
		if got := set.Contains(netip.MustParseAddr(addr)); got != want {
			t.Errorf("Contains(%s) = %t, want %t", addr, got, want)
		}
	}
	if (Prefixes{}).Contains(netip.MustParseAddr("198.18.0.1")) || (Prefixes{}).Contains(netip.Addr{}) || (Prefixes{}).Len() != 0 {
		t.Error("the empty set holds something")
	}
	all := set.All()
	all[0] = netip.MustParsePrefix("0.0.0.0/0")
	if set.V4[0].String() != "198.18.0.0/16" {
		t.Error("All shares its slice with the set")
	}
	if every := NewPrefixes(prefixes("0.0.0.0/1", "128.0.0.0/1", "::/0")...); !slices.Equal(every.All(), prefixes("0.0.0.0/0", "::/0")) ||
		!every.Contains(netip.MustParseAddr("255.255.255.255")) || !every.Contains(netip.MustParseAddr("ffff::1")) {
		t.Errorf("everything = %v", every.All())
	}
}

func TestSamplePacket(t *testing.T) {
	e := &Exposure{Name: "x", Protocol: UDP, Ports: []PortRange{{8000, 8010}, {9000, 9000}},
		Destinations: NewPrefixes(prefixes("198.18.0.10/32", "198.18.0.20/32", "2001:2::10/128")...)}
	for src, dst := range map[string]string{"198.18.7.7": "198.18.0.10", "2001:2:7::7": "2001:2::10"} {
		pkt := e.SamplePacket(netip.MustParseAddr(src))
		if pkt.Protocol != UDP || pkt.Port != 8000 || pkt.Source.String() != src || pkt.Destination.String() != dst || pkt.Interface != "" {
			t.Errorf("SamplePacket(%s) = %+v", src, pkt)
		}
	}
	if pkt := (&Exposure{Protocol: TCP, Ports: []PortRange{{27, 27}}}).SamplePacket(netip.MustParseAddr("198.18.7.7")); pkt.Destination.IsValid() || pkt.Port != 27 {
		t.Errorf("without destinations: %+v", pkt)
	}
}

func TestRunTests(t *testing.T) {
	test := func(name, from, to, expect string, opts ...func(*policies.Test)) *policies.Test {
		tt := &policies.Test{Name: name, From: netip.MustParseAddr(from), To: to, Expect: expect, DeclRange: at(50)}
		for _, o := range opts {
			o(tt)
		}
		return tt
	}
	p := &policies.Policy{
		Exposes: []*policies.Expose{
			{Name: "nscp", Protocol: "tcp", Ports: ports([2]uint16{27, 28}), Default: "drop", DeclRange: at(1),
				Allow: []*policies.SourceRule{{Kind: "allow", From: addrs("198.18.1.0/24", "2001:2:1::/48"), DeclRange: at(2)}},
				Deny:  []*policies.SourceRule{{Kind: "deny", From: addrs("198.18.1.66"), DeclRange: at(3)}}},
			{Name: "dns", Protocol: "udp", Ports: ports([2]uint16{53, 53}), Default: "reject", Interfaces: []string{"eth1", "eth0"},
				Destinations: addrs("198.18.0.53"), DeclRange: at(10),
				Allow: []*policies.SourceRule{{Kind: "allow", From: addrs("198.18.2.0/24"), DeclRange: at(11)}}},
		},
	}
	p.Tests = []*policies.Test{
		test("admin reaches nscp", "198.18.1.7", "nscp", "allow"),
		test("v6 admin reaches nscp", "2001:2:1::7", "nscp", "allow"),
		test("excluded admin", "198.18.1.66", "nscp", "deny"),
		test("stranger dropped", "198.18.9.9", "nscp", "deny"),
		test("wrong expectation fails", "198.18.9.9", "nscp", "allow"),
		test("second port", "198.18.9.9", "nscp", "deny", func(t *policies.Test) { t.Port = 28 }),
		test("unmanaged port is not filtered", "198.18.9.9", "nscp", "allow", func(t *policies.Test) { t.Port = 29 }),
		test("udp to the tcp expose is not filtered", "198.18.9.9", "nscp", "deny", func(t *policies.Test) { t.Protocol = "udp" }),
		test("dns rejects strangers", "198.18.9.9", "dns", "deny"),
		test("dns allows the office", "198.18.2.2", "dns", "allow"),
		test("dns on another interface", "198.18.9.9", "dns", "allow", func(t *policies.Test) { t.Interface = "eth9" }),
		test("missing expose", "198.18.1.7", "nope", "allow"),
	}
	rs := mustCompile(t, p)
	results := RunTests(p, rs)
	if len(results) != len(p.Tests) {
		t.Fatalf("%d results for %d tests", len(results), len(p.Tests))
	}
	want := []struct {
		pass    bool
		verdict Verdict
		port    uint16
	}{
		{true, Accept, 27}, {true, Accept, 27}, {true, Drop, 27}, {true, Drop, 27}, {false, Drop, 27}, {true, Drop, 28},
		{true, Pass, 29}, {false, Pass, 27}, {true, Reject, 53}, {true, Accept, 53}, {true, Pass, 53}, {false, "", 0},
	}
	for i, r := range results {
		if r.Test != p.Tests[i] || r.Name != p.Tests[i].Name {
			t.Errorf("result %d is for %+v", i, r.Test)
		}
		if r.Pass != want[i].pass || r.Decision.Verdict != want[i].verdict || r.Packet.Port != want[i].port {
			t.Errorf("%s: pass %t, %s, port %d; want pass %t, %s, port %d (%+v)",
				r.Name, r.Pass, r.Decision.Verdict, r.Packet.Port, want[i].pass, want[i].verdict, want[i].port, r)
		}
	}
	if dns := results[8]; dns.Packet.Protocol != UDP || dns.Packet.Destination.String() != "198.18.0.53" || dns.Packet.Interface != "eth0" ||
		dns.Decision.Origin == nil || dns.Decision.Origin.Kind != OriginDefault {
		t.Errorf("dns test packet = %+v, decision %+v", dns.Packet, dns.Decision)
	}
	if ex := results[2].Decision; ex.Origin == nil || ex.Origin.Range != at(3) {
		t.Errorf("excluded admin decided by %+v, want the deny block at line 3", ex.Origin)
	}
	if missing := results[11]; missing.Problem == "" || !strings.Contains(missing.Problem, "nope") {
		t.Errorf("missing expose: %+v", missing)
	}
}
