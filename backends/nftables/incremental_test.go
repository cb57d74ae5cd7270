package nftables

import (
	"context"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"

	"github.com/portwarden/portwarden/backends"
	"github.com/portwarden/portwarden/internal/netns/netnstest"
	"github.com/portwarden/portwarden/rules"
)

// randomSources draws prefixes from a few small neighbourhoods (so they
// touch, nest and merge) of both families, the top of each address space
// included.
func randomSources(r *rand.Rand, n int) []netip.Prefix {
	bases := []netip.Addr{
		netip.MustParseAddr("198.18.0.0"), netip.MustParseAddr("255.255.255.192"),
		netip.MustParseAddr("2001:2::"), netip.MustParseAddr("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffc0"),
	}
	var out []netip.Prefix
	for range n {
		base := bases[r.IntN(len(bases))]
		b := base.AsSlice()
		b[len(b)-1] += byte(r.IntN(64))
		a, _ := netip.AddrFromSlice(b)
		bits := a.BitLen() - r.IntN(4)
		out = append(out, netip.PrefixFrom(a, bits).Masked())
	}
	return out
}

// prefixEdit finds exactly the intervals a full comparison of both sides'
// intervals finds, for random changes of random sets.
func TestPrefixEditMatchesIntervalDiff(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 2000 {
		have := rules.NewPrefixes(randomSources(r, r.IntN(40))...)
		all := have.All()
		r.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
		want := rules.NewPrefixes(append(all[:r.IntN(len(all)+1)], randomSources(r, r.IntN(6))...)...)
		now := &snapshot{lazy: true, content: map[string][]interval{}, damagedSets: map[string]bool{},
			ruleset: &rules.Ruleset{Exposures: []rules.Exposure{{Name: "x", Allow: have}}}}
		we := &rules.Exposure{Name: "x", Allow: want}
		for _, role := range []string{roleAllow4, roleAllow6} {
			removed, added, ok := prefixEdit(now, we, setName("x", role), role)
			if !ok {
				t.Fatalf("case %d %s: prefixEdit declined a lazy snapshot", i, role)
			}
			wr, wa := diffIntervals(wantedIntervals(&now.ruleset.Exposures[0], role), wantedIntervals(we, role))
			if !slices.EqualFunc(removed, wr, sameInterval) || !slices.EqualFunc(added, wa, sameInterval) {
				t.Fatalf("case %d %s: have %v want %v\nprefixEdit removed %v added %v\ndiff removed %v added %v",
					i, role, have, want, removed, added, wr, wa)
			}
		}
	}
	// A set the kernel was read for, or a snapshot that is not lazy, is
	// left to the full comparison.
	now := &snapshot{lazy: true, content: map[string][]interval{setName("x", roleAllow4): nil}, damagedSets: map[string]bool{},
		ruleset: &rules.Ruleset{Exposures: []rules.Exposure{{Name: "x"}}}}
	if _, _, ok := prefixEdit(now, &rules.Exposure{Name: "x"}, setName("x", roleAllow4), roleAllow4); ok {
		t.Error("prefixEdit used the model for a set read from the kernel")
	}
	now.lazy = false
	if _, _, ok := prefixEdit(now, &rules.Exposure{Name: "x"}, setName("x", roleAllow6), roleAllow6); ok {
		t.Error("prefixEdit used the model of a snapshot read from the kernel")
	}
}

func sameInterval(a, b interval) bool {
	return slices.Equal(a.first, b.first) && slices.Equal(a.last, b.last)
}

// TestIncrementalAppliesFromTheCache: applies from a cached state (each a
// fresh process, editing sets from the prefix lists) leave the kernel
// holding exactly the policy, as a read of the kernel itself shows.
func TestIncrementalAppliesFromTheCache(t *testing.T) {
	ns := netnstest.New(t, "incr")
	ctx := context.Background()
	stateDir := cacheRoot(t, ns.Path())
	cached := func() *Backend {
		b, _ := New(backends.Config{NetNS: ns.Path(), StateDir: stateDir})
		return b.(*Backend)
	}
	kernel := func() *Backend { // no state directory: reads the kernel
		b, _ := New(backends.Config{NetNS: ns.Path()})
		return b.(*Backend)
	}
	r := rand.New(rand.NewPCG(3, 4))
	src := func(n int) []netip.Prefix { // 198.18.0.0/24 and 2001:2::/120, neighbours that merge
		var out []netip.Prefix
		for range n {
			if r.IntN(2) == 0 {
				out = append(out, netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, 0, byte(r.IntN(256))}), 32-r.IntN(3)).Masked())
			} else {
				a := netip.MustParseAddr("2001:2::").As16()
				a[15] = byte(r.IntN(256))
				out = append(out, netip.PrefixFrom(netip.AddrFrom16(a), 128-r.IntN(3)).Masked())
			}
		}
		return out
	}
	ruleset := func(allow, deny []netip.Prefix) *rules.Ruleset {
		rs := &rules.Ruleset{Exposures: []rules.Exposure{{
			Name: "nscp", Protocol: rules.TCP, Ports: []rules.PortRange{{First: 27, Last: 27}}, Default: rules.Drop,
			Allow: rules.NewPrefixes(allow...), Deny: rules.NewPrefixes(deny...),
		}}}
		rs.Normalize()
		return rs
	}
	allow, deny := src(60), src(5)
	if err := cached().Apply(ctx, mustPlan(t, cached(), ruleset(allow, deny))); err != nil {
		t.Fatal(err)
	}
	for step := range 25 {
		r.Shuffle(len(allow), func(i, j int) { allow[i], allow[j] = allow[j], allow[i] })
		allow = append(allow[:len(allow)-r.IntN(6)], src(r.IntN(6))...)
		if step%5 == 4 {
			deny = src(r.IntN(5))
		}
		rs := ruleset(allow, deny)
		b := cached()
		plan := mustPlan(t, b, rs)
		if !b.Holds(plan.Current.Ruleset.Fingerprint()) {
			t.Fatalf("step %d: the plan was not made from the cache", step)
		}
		if err := b.Apply(ctx, plan); err != nil {
			t.Fatalf("step %d: %v", step, err)
		}
		if p := mustPlan(t, kernel(), rs); !p.Empty() {
			t.Fatalf("step %d: the kernel does not hold the policy: drift %v diff %+v", step, p.Current.Drift, p.Diff)
		}
	}
	// New sets of thousands of intervals fill a message at a time, across
	// message boundaries; then one source changes in each family.
	big := benchRuleset(2345)
	big.Exposures[0].Name = "big"
	big.Exposures = append(big.Exposures, ruleset(allow, deny).Exposures...)
	big.Normalize()
	if err := cached().Apply(ctx, mustPlan(t, cached(), big)); err != nil {
		t.Fatal(err)
	}
	if p := mustPlan(t, kernel(), big); !p.Empty() {
		t.Fatalf("new sets: the kernel does not hold the policy: drift %v diff %+v", p.Current.Drift, p.Diff)
	}
	e := big.Exposure("big")
	e.Allow = rules.NewPrefixes(append(e.Allow.All()[1:], netip.MustParsePrefix("2001:2::ffff:0/112"))...)
	if err := cached().Apply(ctx, mustPlan(t, cached(), big)); err != nil {
		t.Fatal(err)
	}
	if p := mustPlan(t, kernel(), big); !p.Empty() {
		t.Fatalf("after one change: the kernel does not hold the policy: drift %v diff %+v", p.Current.Drift, p.Diff)
	}
}

// Reading back a set, a key that is no address (the wrong length, in a set
// someone recreated) adds nothing and drops nothing read before it.
func TestAppendRangeSkipsWhatIsNoRange(t *testing.T) {
	a4 := func(s string) []byte { return addrKey(netip.MustParseAddr(s)) }
	ps := appendRange(nil, interval{first: a4("198.18.0.0"), last: a4("198.18.0.3")})
	ps = appendRange(ps, interval{first: []byte{1, 2, 3}, last: []byte{1, 2, 3}})
	ps = appendRange(ps, interval{first: a4("198.18.0.9"), last: a4("198.18.0.9")})
	want := []netip.Prefix{netip.MustParsePrefix("198.18.0.0/30"), netip.MustParsePrefix("198.18.0.9/32")}
	if !slices.Equal(ps, want) {
		t.Errorf("got %v, want %v", ps, want)
	}
}
