package iptables

import (
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go4.org/netipx"

	"github.com/portwarden/portwarden/rules"
)

func pfx(ss ...string) rules.Prefixes {
	var ps []netip.Prefix
	for _, s := range ss {
		ps = append(ps, netip.MustParsePrefix(s))
	}
	return rules.NewPrefixes(ps...)
}

// sampleRuleset has one exposure using every feature and one plain one.
func sampleRuleset() *rules.Ruleset {
	return &rules.Ruleset{Exposures: []rules.Exposure{
		{
			Name: "nscp", Protocol: rules.TCP,
			Ports:        []rules.PortRange{{First: 27, Last: 27}, {First: 1000, Last: 1010}},
			Interfaces:   []string{"pw0", "pw1"},
			Destinations: pfx("198.18.0.1/32", "2001:2::1/128"),
			Default:      rules.Reject, Log: true, Loopback: true,
			Deny:  pfx("198.18.1.66/32", "2001:2:0:1::66/128"),
			Allow: pfx("198.18.1.0/24", "2001:2:0:1::/64"),
		},
		{
			Name: "syslog", Protocol: rules.UDP,
			Ports:   []rules.PortRange{{First: 514, Last: 514}},
			Default: rules.Drop, Loopback: true,
			Allow: pfx("198.18.2.0/24"),
		},
	}}
}

func TestRenderIsDeterministicAndComplete(t *testing.T) {
	a, err := Render(sampleRuleset())
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Render(sampleRuleset())
	if a != b {
		t.Fatal("Render is not deterministic")
	}
	for _, want := range []string{
		"-A PORTWARDEN -d 198.18.0.1/32 -i pw0 -p tcp -m multiport --dports 27,1000:1010 -m comment --comment \"portwarden expose=nscp match\" -j " + exposureChain("nscp"),
		"-A " + exposureChain("nscp") + " -p tcp -m set --match-set " + setName("nscp", ipv4, roleDeny) + " src -m comment --comment \"portwarden expose=nscp deny\" -j REJECT --reject-with tcp-reset",
		"-A " + exposureChain("nscp") + " -p tcp -m set --match-set " + setName("nscp", ipv6, roleDeny) + " src -m comment --comment \"portwarden expose=nscp deny\" -j REJECT --reject-with tcp-reset",
		"-A " + exposureChain("nscp") + " -m set --match-set " + setName("nscp", ipv4, roleAllow) + " src -m comment --comment \"portwarden expose=nscp allow\" -j ACCEPT",
		"add " + setName("nscp", ipv4, roleDeny) + " 198.18.1.66/32 comment \"deny; also allowed\"",
		"add " + setName("nscp", ipv6, roleAllow) + " 2001:2:0:1::/64",
		"add " + setName("nscp", ipv6, roleAllow) + " 2001:2:0:1::66/128 nomatch",
		"-A " + exposureChain("nscp") + " -m comment --comment \"portwarden expose=nscp log\" -m limit --limit 10/min -j LOG --log-prefix \"portwarden nscp: \"",
		"-A " + exposureChain("syslog") + " -m comment --comment \"portwarden expose=syslog default\" -j DROP",
		"-I INPUT 1 -m comment --comment \"portwarden jump\" -j PORTWARDEN",
	} {
		if !strings.Contains(a, want+"\n") {
			t.Errorf("Render lacks\n%s\nin\n%s", want, a)
		}
	}
	if strings.Count(a, "COMMIT\n") != 2 {
		t.Errorf("want one commit per family:\n%s", a)
	}
}

func TestPortGroupsRespectMultiportLimit(t *testing.T) {
	var ports []rules.PortRange
	for p := uint16(1); p <= 20; p++ {
		ports = append(ports, rules.PortRange{First: p * 10, Last: p * 10})
	}
	ports = append(ports, rules.PortRange{First: 300, Last: 310})
	groups := portGroups(ports)
	if len(groups) != 2 || len(strings.Split(groups[0], ",")) != 15 || groups[1] != "160,170,180,190,200,300:310" {
		t.Fatalf("groups = %q", groups)
	}
}

// TestDecodeRoundTrip renders a ruleset, reads it back as iptables-save
// would print it, and expects the same model with no drift.
func TestDecodeRoundTrip(t *testing.T) {
	rs := sampleRuleset()
	owned := savedFromRuleset(t, rs)
	st := decode(owned)
	if len(st.Drift) != 0 {
		t.Fatalf("unexpected drift: %q", st.Drift)
	}
	if st.Ruleset.Fingerprint() != rs.Fingerprint() {
		t.Fatalf("decoded\n%+v\nwant\n%+v", st.Ruleset, rs)
	}
	if d := rules.Compare(st.Ruleset, rs); !d.Empty() {
		t.Fatalf("diff not empty: %+v", d)
	}
}

func TestDecodeReportsDrift(t *testing.T) {
	chain := exposureChain("nscp")
	cases := map[string]func(o *[2]ownedFamily){
		"jump missing": func(o *[2]ownedFamily) { o[ipv4].jumps = nil; o[ipv4].jumpAtTop = false },
		"jump not at top": func(o *[2]ownedFamily) {
			o[ipv6].jumpAtTop = false
		},
		"foreign rule in owned chain": func(o *[2]ownedFamily) {
			o[ipv4].chains[chain] = append([]savedRule{mustRule(t, "-A "+chain+" -s 198.18.9.9/32 -j ACCEPT")}, o[ipv4].chains[chain]...)
		},
		"one family gone": func(o *[2]ownedFamily) { o[ipv6] = ownedFamily{fam: ipv6, chains: map[string][]savedRule{}} },
		"rules reordered": func(o *[2]ownedFamily) {
			rs := o[ipv4].chains[chain]
			rs[1], rs[len(rs)-1] = rs[len(rs)-1], rs[1]
		},
	}
	for name, damage := range cases {
		t.Run(name, func(t *testing.T) {
			owned := savedFromRuleset(t, sampleRuleset())
			clean := fingerprint(owned)
			damage(&owned)
			st := decode(owned)
			if len(st.Drift) == 0 {
				t.Fatalf("no drift reported")
			}
			if st.Fingerprint == clean {
				t.Fatalf("fingerprint unchanged by damage")
			}
		})
	}
	setDamage := map[string]func(s *ownedSet){
		"element added by hand":      func(s *ownedSet) { s.elems = append(s.elems, setElem{prefix: netip.MustParsePrefix("198.18.9.9/32")}) },
		"element removed by hand":    func(s *ownedSet) { s.elems = s.elems[1:] },
		"set without counters":       func(s *ownedSet) { s.counters = false },
		"nomatch element":            func(s *ownedSet) { s.elems[0].nomatch = true },
		"element split (not merged)": func(s *ownedSet) { p := s.elems[0].prefix; s.elems[0].prefix = netip.PrefixFrom(p.Addr(), p.Bits()+1) },
	}
	for name, damage := range setDamage {
		t.Run(name, func(t *testing.T) {
			owned := savedFromRuleset(t, sampleRuleset())
			clean := fingerprint(owned)
			damage(owned[ipv4].sets[setName("nscp", ipv4, roleAllow)])
			st := decode(owned)
			if len(st.Drift) == 0 && rules.Compare(st.Ruleset, sampleRuleset()).Empty() {
				t.Fatalf("neither drift nor a difference")
			}
			if st.Fingerprint == clean {
				t.Fatalf("fingerprint unchanged by damage")
			}
		})
	}
	t.Run("deny element without the tag", func(t *testing.T) {
		owned := savedFromRuleset(t, sampleRuleset())
		s := owned[ipv4].sets[setName("nscp", ipv4, roleDeny)]
		s.elems[0].comment = ""
		if st := decode(owned); len(st.Drift) == 0 {
			t.Fatal("no drift")
		}
	})
	t.Run("leftover set", func(t *testing.T) {
		owned := savedFromRuleset(t, sampleRuleset())
		name := setName("gone", ipv4, roleAllow)
		owned[ipv4].sets[name] = &ownedSet{name: name, typ: setType}
		if st := decode(owned); len(st.Drift) == 0 {
			t.Fatal("no drift")
		}
	})
}

func mustRule(t *testing.T, line string) savedRule {
	t.Helper()
	args, err := SplitArgs(line)
	if err != nil {
		t.Fatal(err)
	}
	return savedRule{chain: args[1], args: args[2:], line: line}
}

// savedFromRuleset builds what iptables-save would show after loading rs.
func savedFromRuleset(t *testing.T, rs *rules.Ruleset) [2]ownedFamily {
	t.Helper()
	var owned [2]ownedFamily
	for _, fam := range families {
		fr, err := renderFamily(rs, fam, false)
		if err != nil {
			t.Fatal(err)
		}
		var text strings.Builder
		text.WriteString("*filter\n:INPUT ACCEPT [0:0]\n")
		for _, c := range fr.chains {
			text.WriteString(":" + c.name + " - [0:0]\n")
		}
		text.WriteString("[3:180] " + jumpRule + "\n-A INPUT -j ACCEPT\n")
		for _, c := range fr.chains {
			for _, r := range c.rules {
				text.WriteString("[1:60] " + r + "\n")
			}
		}
		text.WriteString("COMMIT\n")
		tab, err := parseSave(text.String())
		if err != nil {
			t.Fatal(err)
		}
		owned[fam] = ownedOf(fam, tab)
		owned[fam].sets = ownedFromRendered(fam, fr).sets
		for _, s := range owned[fam].sets {
			s.elems = slices.Clone(s.elems)
		}
	}
	return owned
}

// Sources are set elements, not rules: a big list adds no rule, and
// allow minus deny is what the allow set holds.
func TestSourcesLiveInSets(t *testing.T) {
	small, err := renderFamily(sampleRuleset(), ipv4, false)
	if err != nil {
		t.Fatal(err)
	}
	big, err := renderFamily(benchRuleset(20000, false), ipv4, false)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(big.chains[1].rules); n > len(small.chains[1].rules) {
		t.Fatalf("10,000 sources make %d rules", n)
	}
	if n := len(big.sets[0].elems); n != 10000 {
		t.Fatalf("allow set has %d elements, want 10000", n)
	}
	rs := sampleRuleset()
	rs.Exposures[0].Allow = pfx("0.0.0.0/0", "198.18.1.0/24")
	rs.Exposures[0].Deny = pfx("198.18.1.0/25", "198.19.0.0/16")
	rs.Normalize()
	fr, err := renderFamily(rs, ipv4, false)
	if err != nil {
		t.Fatal(err)
	}
	allow, deny := fr.sets[0], fr.sets[1]
	var got []string
	for _, e := range allow.elems {
		if e.prefix.Bits() == 0 {
			t.Fatal("a /0 element, which hash:net cannot hold")
		}
		got = append(got, e.prefix.String())
	}
	want := prefixSet(rs.Exposures[0].Allow.V4)
	var b netipx.IPSetBuilder
	b.AddSet(want)
	b.RemoveSet(prefixSet(rs.Exposures[0].Deny.V4))
	eff, _ := b.IPSet()
	if !elemSpace(allow.elems).Equal(eff) || len(allow.elems) > 6 {
		t.Fatalf("allow set %v is not allow minus deny in at most 6 elements (two /1, the /24, nomatch /25 and /16)", got)
	}
	tags := map[string]string{}
	for _, e := range deny.elems {
		tags[e.prefix.String()] = e.comment
	}
	if tags["198.18.1.0/25"] != tagDenyAllowed || tags["198.19.0.0/16"] != tagDenyAllowed {
		t.Fatalf("deny set tags %v", tags)
	}
	st := decode(savedFromRuleset(t, rs))
	if d := rules.Compare(st.Ruleset, rs); !d.Empty() || len(st.Drift) > 0 {
		t.Fatalf("read back: diff %+v drift %q", d, st.Drift)
	}
}

func TestValidateRefusesWhatIptablesCannotCarry(t *testing.T) {
	for name, mutate := range map[string]func(e *rules.Exposure){
		"empty name":     func(e *rules.Exposure) { e.Name = "" },
		"long name":      func(e *rules.Exposure) { e.Name = strings.Repeat("é", 40) },
		"no protocol":    func(e *rules.Exposure) { e.Protocol = "sctp" },
		"no default":     func(e *rules.Exposure) { e.Default = rules.Accept },
		"no ports":       func(e *rules.Exposure) { e.Ports = nil },
		"bad interface":  func(e *rules.Exposure) { e.Interfaces = []string{"eth 0"} },
		"long interface": func(e *rules.Exposure) { e.Interfaces = []string{"a-very-long-interface"} },
		"wildcard":       func(e *rules.Exposure) { e.Interfaces = []string{"eth+"} },
		// libxt_time refuses a --datestop after 2038: refused before
		// anything is written, not halfway through an apply.
		"grant after 2038": func(e *rules.Exposure) {
			e.Expiring = []rules.Grant{{Source: netip.MustParsePrefix("198.18.9.9/32"), Until: time.Date(2040, 1, 1, 0, 0, 0, 0, time.UTC)}}
		},
	} {
		rs := sampleRuleset()
		mutate(&rs.Exposures[0])
		if err := validate(rs); err == nil {
			t.Errorf("%s: accepted", name)
		}
		if _, err := Render(rs); err == nil {
			t.Errorf("%s: rendered", name)
		}
	}
}

func TestEditChain(t *testing.T) {
	have := []string{"-A C a", "-A C b", "-A C c", "-A C d"}
	edits, ok := editChain("C", have, []string{"-A C a", "-A C x", "-A C c", "-A C d"})
	if !ok || strings.Join(edits, "|") != "-D C 2|-I C 2 x" {
		t.Fatalf("replace one: %q %v", edits, ok)
	}
	edits, ok = editChain("C", have, []string{"-A C a", "-A C b", "-A C c", "-A C d", "-A C e"})
	if !ok || strings.Join(edits, "|") != "-I C 5 e" {
		t.Fatalf("append: %q %v", edits, ok)
	}
	edits, ok = editChain("C", have, []string{"-A C b", "-A C c", "-A C d"})
	if !ok || strings.Join(edits, "|") != "-D C 1" {
		t.Fatalf("delete first: %q %v", edits, ok)
	}
	long := make([]string, 40)
	for i := range long {
		long[i] = "-A C r" + strconv.Itoa(i)
	}
	if _, ok := editChain("C", nil, long); ok {
		t.Fatal("a chain built from nothing should be rewritten, not edited")
	}
}

func TestOwnedChainNames(t *testing.T) {
	for name, want := range map[string]bool{
		topChain:              true,
		exposureChain("nscp"): true,
		"PW-LOOKALIKE":        false,
		"PW-ff3c60fd95":       false,
		"PORTWARDEN2":         false,
		"DOCKER":              false,
	} {
		if got := isOwnedChain(name); got != want {
			t.Errorf("isOwnedChain(%q) = %v", name, got)
		}
	}
}

func TestDecodeKeepsPortRangesAsWritten(t *testing.T) {
	rs := sampleRuleset()
	rs.Exposures[1].Ports = []rules.PortRange{{First: 27, Last: 27}, {First: 28, Last: 28}, {First: 29, Last: 40}}
	st := decode(savedFromRuleset(t, rs))
	if len(st.Drift) != 0 || !reflect.DeepEqual(st.Ruleset.Exposures[1].Ports, rs.Exposures[1].Ports) {
		t.Fatalf("ports %+v, drift %q", st.Ruleset.Exposures[1].Ports, st.Drift)
	}
}

// A grant past its deadline admits nobody: read back, it is not in the
// model (as the nftables kernel drops such an element), and its rule,
// still in the chain as written, is no drift. So plan and check agree
// with a policy loaded after the deadline, which has no such grant.
func TestDecodeLeavesOutGrantsPastTheirDeadline(t *testing.T) {
	rs := sampleRuleset()
	past, future := time.Now().Add(-time.Hour).UTC().Truncate(time.Second), time.Date(2038, 1, 1, 0, 0, 0, 0, time.UTC)
	rs.Exposures[0].Expiring = []rules.Grant{
		{Source: netip.MustParsePrefix("198.18.9.9/32"), Until: past},
		{Source: netip.MustParsePrefix("198.18.9.10/32"), Until: future},
	}
	rs.Normalize()
	st := decode(savedFromRuleset(t, rs))
	want := rs.Clone()
	want.Exposures[0].Expiring = want.Exposures[0].Expiring[1:]
	if d := rules.Compare(st.Ruleset, want); !d.Empty() || len(st.Drift) > 0 {
		t.Fatalf("read back: diff %+v drift %q, want the grant of the future alone and no drift", d, st.Drift)
	}
}

func TestNamesSurviveTheComment(t *testing.T) {
	for _, name := range []string{"nscp", "my service", `quote"d`, "50%", "héllo wörld", "a/b:c.d-e_f"} {
		rs := sampleRuleset()
		rs.Exposures[0].Name = name
		st := decode(savedFromRuleset(t, rs))
		if len(st.Drift) != 0 || exposureNames(st.Ruleset)[0] != name {
			t.Errorf("%q came back as %q, drift %q", name, exposureNames(st.Ruleset)[0], st.Drift)
		}
	}
}

func exposureNames(rs *rules.Ruleset) []string {
	var out []string
	for _, e := range rs.Exposures {
		out = append(out, e.Name)
	}
	return append(out, "")
}

// netElems holds allow minus deny as hash:net decides (the most specific
// element that holds an address decides it), with no more elements than
// the two lists have, on random lists that nest and overlap; elemSpace,
// which reads such a set, agrees with a lookup of every address.
func TestNetElemsHoldAllowMinusDeny(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 27))
	random := func(n int) []netip.Prefix { return randomPrefixes(r, n) }
	// The whole space and its halves, which hash:net cannot hold as /0.
	wide := []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("0.0.0.0/1"), netip.MustParsePrefix("128.0.0.0/1")}
	for n := range 600 {
		allow, deny := random(r.IntN(12)), random(r.IntN(5))
		if n%3 == 0 {
			allow = prefixSet(append(allow, wide[r.IntN(3)])).Prefixes()
		}
		if n%5 == 0 {
			deny = prefixSet(append(deny, wide[1+r.IntN(2)])).Prefixes()
		}
		elems := netElems(allow, deny)
		seen := map[netip.Prefix]bool{}
		for _, e := range elems {
			if seen[e.prefix] || e.prefix.Bits() == 0 {
				t.Fatalf("allow %v deny %v: %s twice, or /0, in %v", allow, deny, e.prefix, elems)
			}
			seen[e.prefix] = true
		}
		var want netipx.IPSetBuilder
		want.AddSet(prefixSet(allow))
		want.RemoveSet(prefixSet(deny))
		ws, _ := want.IPSet()
		if got := elemSpace(elems); !slices.Equal(got.Prefixes(), ws.Prefixes()) {
			t.Fatalf("allow %v deny %v: elements %v hold %v, want %v", allow, deny, elems, got.Prefixes(), ws.Prefixes())
		}
		if len(elems) > len(allow)+len(deny)+1 {
			t.Fatalf("allow %v deny %v: %d elements", allow, deny, len(elems))
		}
		// A lookup as hash:net makes it, address by address (and at the
		// edges of the halves).
		probes := []netip.Addr{netip.MustParseAddr("0.0.0.1"), netip.MustParseAddr("127.255.255.255"), netip.MustParseAddr("128.0.0.0"), netip.MustParseAddr("255.255.255.255")}
		for a := netip.MustParseAddr("198.18.0.0"); a.Less(netip.MustParseAddr("198.18.4.0")); a = a.Next() {
			probes = append(probes, a)
		}
		for _, a := range probes {
			best := -1
			for i, e := range elems {
				if e.prefix.Contains(a) && (best < 0 || e.prefix.Bits() > elems[best].prefix.Bits()) {
					best = i
				}
			}
			if matched := best >= 0 && !elems[best].nomatch; matched != ws.Contains(a) {
				t.Fatalf("allow %v deny %v: %s matched %v by the elements %v", allow, deny, a, matched, elems)
			}
		}
	}
}

// randomPrefixes is a normalised list from n random prefixes of
// 198.18.0.0/22 (lengths 22 to 32), so that they nest and overlap.
func randomPrefixes(r *rand.Rand, n int) []netip.Prefix {
	var ps []netip.Prefix
	for range n {
		a := netip.AddrFrom4([4]byte{198, 18, byte(r.IntN(4)), byte(r.IntN(256))})
		ps = append(ps, netip.PrefixFrom(a, 22+r.IntN(11)).Masked())
	}
	return prefixSet(ps).Prefixes()
}

// singleFamilyRuleset has exposures whose destinations are all of one
// family, with and without interfaces, so that the other family's
// PORTWARDEN chain never jumps to their chains. Sources and grants of
// both families are kept: the unused chain and sets still carry them.
func singleFamilyRuleset() *rules.Ruleset {
	until := time.Date(2099, 1, 2, 3, 4, 5, 0, time.UTC)
	rs := &rules.Ruleset{Exposures: []rules.Exposure{
		{
			Name: "v4only", Protocol: rules.TCP,
			Ports:        []rules.PortRange{{First: 27, Last: 27}},
			Destinations: pfx("198.18.0.1/32"),
			Default:      rules.Reject, Log: true, Loopback: true,
			Deny:     pfx("198.18.1.66/32", "2001:2:0:1::66/128"),
			Allow:    pfx("198.18.1.0/24", "2001:2:0:1::/64"),
			Expiring: []rules.Grant{{Source: netip.MustParsePrefix("2001:2:0:9::9/128"), Until: until}},
		},
		{
			Name: "v4only-iface", Protocol: rules.UDP,
			Ports:        []rules.PortRange{{First: 514, Last: 514}},
			Interfaces:   []string{"pw0", "pw1"},
			Destinations: pfx("198.18.0.1/32", "198.18.0.2/32"),
			Default:      rules.Drop,
			Allow:        pfx("198.18.2.0/24"),
		},
		{
			Name: "v6only", Protocol: rules.TCP,
			Ports:        []rules.PortRange{{First: 27, Last: 27}},
			Destinations: pfx("2001:2::1/128"),
			Default:      rules.Drop, Loopback: true,
			Allow:    pfx("198.18.1.0/24", "2001:2:0:1::/64"),
			Expiring: []rules.Grant{{Source: netip.MustParsePrefix("198.18.9.9/32"), Until: until}},
		},
		{
			Name: "v6only-iface", Protocol: rules.TCP,
			Ports:        []rules.PortRange{{First: 22, Last: 22}},
			Interfaces:   []string{"pw0"},
			Destinations: pfx("2001:2::1/128"),
			Default:      rules.Reject, RejectWith: rules.ICMPAdminProhibited,
			Allow: pfx("2001:2:0:1::/64"),
		},
		{
			// Destinations of both families: both PORTWARDEN chains
			// jump to its chains, neither is unused on purpose.
			Name: "both", Protocol: rules.TCP,
			Ports:        []rules.PortRange{{First: 27, Last: 27}},
			Destinations: pfx("198.18.0.1/32", "2001:2::1/128"),
			Default:      rules.Reject,
			Allow:        pfx("198.18.1.0/24", "2001:2:0:1::/64"),
		},
	}}
	rs.Normalize()
	return rs
}

// An exposure whose destinations are all of one family has a chain in the
// other family that nothing jumps to, as written: that is no drift, and
// the model reads back exactly.
func TestDecodeSingleFamilyDestinations(t *testing.T) {
	rs := singleFamilyRuleset()
	owned := savedFromRuleset(t, rs)
	for _, c := range []struct {
		fam  family
		name string
	}{{ipv6, "v4only"}, {ipv6, "v4only-iface"}, {ipv4, "v6only"}, {ipv4, "v6only-iface"}} {
		for _, r := range owned[c.fam].chains[topChain] {
			if jumpTarget(r.args) == exposureChain(c.name) {
				t.Fatalf("%s PORTWARDEN jumps to %s: %s", c.fam, c.name, r.line)
			}
		}
		if len(owned[c.fam].chains[exposureChain(c.name)]) == 0 {
			t.Fatalf("%s has no chain for %s", c.fam, c.name)
		}
	}
	st := decode(owned)
	if len(st.Drift) != 0 {
		t.Fatalf("drift after a clean write: %q", st.Drift)
	}
	if d := rules.Compare(st.Ruleset, rs); !d.Empty() || st.Ruleset.Fingerprint() != rs.Fingerprint() {
		t.Fatalf("read back\n%+v\nwant\n%+v", st.Ruleset, rs)
	}
}

// Hand edits around an intentionally unused chain are still drift.
func TestDecodeSingleFamilyDestinationsDamage(t *testing.T) {
	v4only, v6only, both := exposureChain("v4only"), exposureChain("v6only"), exposureChain("both")
	cases := map[string]func(t *testing.T, o *[2]ownedFamily){
		"rule added to the unused chain": func(t *testing.T, o *[2]ownedFamily) {
			o[ipv6].chains[v4only] = append([]savedRule{mustRule(t, "-A "+v4only+" -s 2001:2:0:9::1/128 -j ACCEPT")}, o[ipv6].chains[v4only]...)
		},
		"owned rule removed from the unused chain": func(t *testing.T, o *[2]ownedFamily) {
			rs := o[ipv6].chains[v4only]
			o[ipv6].chains[v4only] = rs[:len(rs)-1]
		},
		"unused chain flushed": func(t *testing.T, o *[2]ownedFamily) {
			o[ipv4].chains[v6only] = nil
		},
		"unused chain deleted": func(t *testing.T, o *[2]ownedFamily) {
			delete(o[ipv4].chains, v6only)
			o[ipv4].chainOrder = slices.DeleteFunc(o[ipv4].chainOrder, func(c string) bool { return c == v6only })
		},
		"used chain's match rules deleted": func(t *testing.T, o *[2]ownedFamily) {
			o[ipv4].chains[topChain] = slices.DeleteFunc(o[ipv4].chains[topChain], func(r savedRule) bool { return jumpTarget(r.args) == v4only })
		},
		// The decoded destinations come only from the match rules left:
		// with one family's gone, "both" would look meant for the other
		// family alone, and its chain there unused on purpose.
		"IPv4 match rules of an exposure of both families deleted": func(t *testing.T, o *[2]ownedFamily) {
			deleteMatch(t, o, ipv4, both)
		},
		"IPv6 match rules of an exposure of both families deleted": func(t *testing.T, o *[2]ownedFamily) {
			deleteMatch(t, o, ipv6, both)
		},
		"marker removed from the unused chain": func(t *testing.T, o *[2]ownedFamily) {
			rs := o[ipv6].chains[v4only]
			if len(rs) == 0 || !strings.HasSuffix(rs[0].line, " no-destination-in-this-family\"") {
				t.Fatalf("the unused chain does not start with its marker: %q", lines(rs))
			}
			o[ipv6].chains[v4only] = rs[1:]
		},
		"marker removed from the other unused chain": func(t *testing.T, o *[2]ownedFamily) {
			rs := o[ipv4].chains[v6only]
			if len(rs) == 0 || !strings.HasSuffix(rs[0].line, " no-destination-in-this-family\"") {
				t.Fatalf("the unused chain does not start with its marker: %q", lines(rs))
			}
			o[ipv4].chains[v6only] = rs[1:]
		},
		"marker added to a chain of an exposure of both families": func(t *testing.T, o *[2]ownedFamily) {
			o[ipv6].chains[both] = append([]savedRule{mustRule(t, "-A "+both+" -m comment --comment \"portwarden expose=both no-destination-in-this-family\"")}, o[ipv6].chains[both]...)
		},
		"marker added at the end of a chain of an exposure of both families": func(t *testing.T, o *[2]ownedFamily) {
			o[ipv4].chains[both] = append(o[ipv4].chains[both], mustRule(t, "-A "+both+" -m comment --comment \"portwarden expose=both no-destination-in-this-family\""))
		},
		"jump added to the unused chain": func(t *testing.T, o *[2]ownedFamily) {
			o[ipv6].chains[topChain] = append(o[ipv6].chains[topChain], mustRule(t, "-A "+topChain+" -p tcp -m multiport --dports 27 -m comment --comment \"portwarden expose=v4only match\" -j "+v4only))
		},
	}
	for name, damage := range cases {
		t.Run(name, func(t *testing.T) {
			rs := singleFamilyRuleset()
			owned := savedFromRuleset(t, rs)
			clean := fingerprint(owned)
			damage(t, &owned)
			st := decode(owned)
			if len(st.Drift) == 0 {
				t.Fatalf("no drift reported (model diff %+v)", rules.Compare(st.Ruleset, rs))
			}
			if st.Fingerprint == clean {
				t.Fatal("fingerprint unchanged by damage")
			}
		})
	}
}

// deleteMatch deletes one family's match rules of a chain, as
// `ip6tables -D PORTWARDEN N` does.
func deleteMatch(t *testing.T, o *[2]ownedFamily, fam family, chain string) {
	t.Helper()
	top := o[fam].chains[topChain]
	o[fam].chains[topChain] = slices.DeleteFunc(slices.Clone(top), func(r savedRule) bool { return jumpTarget(r.args) == chain })
	if len(o[fam].chains[topChain]) == len(top) {
		t.Fatalf("%s %s has no match rule jumping to %s", fam, topChain, chain)
	}
}
