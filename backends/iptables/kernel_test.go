package iptables

import (
	"context"
	"github.com/portwarden/portwarden/internal/nfgen"
	"net/netip"
	"strings"
	"testing"

	"github.com/portwarden/portwarden/internal/netns/netnstest"
	"github.com/portwarden/portwarden/rules"
)

func TestKernelReapplyWritesNothing(t *testing.T) {
	forEachVariant(t, func(t *testing.T, v Variant) {
		l := newLab(t, v)
		restores := func() int64 { return l.hooks.writes.Load() }
		setOps := func() int64 { return l.hooks.setWrites.Load() }
		l.apply(t, labRuleset(rules.Drop))
		if n := restores(); n != 2 {
			t.Fatalf("first apply loaded %d restore files, want 2 (one per family)", n)
		}
		if n := setOps(); n != 4 {
			t.Fatalf("first apply made %d set writes, want 4 (allow and deny set per family)", n)
		}
		before := l.save(t, ipv4) + l.save(t, ipv6)
		p := l.apply(t, labRuleset(rules.Drop))
		if !p.Empty() {
			t.Fatalf("re-plan not empty: %+v drift %q", p.Diff, p.Current.Drift)
		}
		if restores() != 2 || setOps() != 4 {
			t.Fatalf("unchanged re-apply wrote (%d restores, %d set writes in total)", restores(), setOps())
		}
		if after := l.save(t, ipv4) + l.save(t, ipv6); after != before {
			t.Fatalf("ruleset changed by an unchanged re-apply:\n%s\n---\n%s", before, after)
		}
		// A one-source change adds one element to one set and touches no
		// rule; the other elements keep their counters.
		if got := l.probe(t, l.client, allowedV4, serverV4, managedPort); got != open {
			t.Fatalf("allowed peer: %s", got)
		}
		counted := elementPackets(t, l.b, "198.18.0.2")
		if counted == 0 {
			t.Fatal("the allowed peer's set element did not count")
		}
		rs := labRuleset(rules.Drop)
		rs.Exposures[0].Allow = pfx("198.18.0.2/31", "198.18.0.8/32", "2001:2::2/127")
		l.apply(t, rs)
		if restores() != 2 || setOps() != 5 {
			t.Fatalf("one v4 source change: %d restores and %d set writes in total, want 2 and 5", restores(), setOps())
		}
		if after := elementPackets(t, l.b, "198.18.0.2"); after < counted {
			t.Fatalf("the unchanged element lost its counters (%d -> %d): the set was rebuilt", counted, after)
		}
		st, err := l.b.Current(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if d := rules.Compare(st.Ruleset, rs); !d.Empty() || len(st.Drift) > 0 {
			t.Fatalf("after change: diff %+v drift %q", d, st.Drift)
		}
	})
}

// elementPackets is the packet counter of the allow set element holding
// addr, through Usage.
func elementPackets(t *testing.T, b *Backend, addr string) uint64 {
	t.Helper()
	u, err := b.Usage(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	a := netip.MustParseAddr(addr)
	for _, e := range u.Elements {
		if e.First.Compare(a) <= 0 && a.Compare(e.Last) <= 0 {
			return e.Packets
		}
	}
	t.Fatalf("no allow set element holds %s in %+v", addr, u.Elements)
	return 0
}

// Usage reads the kernel's per-element counters: a connection from an
// allowed peer moves its element's counter and no other's.
func TestKernelUsageCountsPerElement(t *testing.T) {
	forEachVariant(t, func(t *testing.T, v Variant) {
		l := newLab(t, v)
		rs := labRuleset(rules.Reject)
		rs.Exposures[0].Allow = pfx("198.18.0.2/32", "198.18.0.8/32", "2001:2::2/128")
		l.apply(t, rs)
		u, err := l.b.Usage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if u.LastSeenKnown || u.LastSeenWhy == "" || len(u.Elements) != 3 {
			t.Fatalf("usage %+v", u)
		}
		for _, e := range u.Elements {
			if e.Exposure != "nscp" || e.Packets != 0 || e.First != e.Last {
				t.Fatalf("before any traffic: %+v", e)
			}
		}
		if got := l.probe(t, l.client, allowedV4, serverV4, managedPort); got != open {
			t.Fatalf("allowed peer: %s", got)
		}
		if n := elementPackets(t, l.b, "198.18.0.2"); n == 0 {
			t.Fatal("the element of the peer that connected did not count")
		}
		if n := elementPackets(t, l.b, "198.18.0.8"); n != 0 {
			t.Fatalf("an element nobody used counted %d packets", n)
		}
		if n := elementPackets(t, l.b, "2001:2::2"); n != 0 {
			t.Fatalf("the IPv6 element counted %d packets", n)
		}
	})
}

// foreignSetup installs chains shaped like Docker's and firewalld's.
var foreignSetup = [][]string{
	{"-N", "DOCKER"}, {"-N", "DOCKER-USER"}, {"-N", "DOCKER-ISOLATION-STAGE-1"},
	{"-A", "DOCKER-USER", "-j", "RETURN"},
	{"-A", "FORWARD", "-j", "DOCKER-USER"},
	{"-A", "FORWARD", "-j", "DOCKER-ISOLATION-STAGE-1"},
	{"-A", "FORWARD", "-o", "docker0", "-j", "DOCKER"},
	{"-A", "DOCKER-ISOLATION-STAGE-1", "-i", "docker0", "!", "-o", "docker0", "-j", "RETURN"},
	{"-N", "INPUT_direct"}, {"-N", "IN_public"}, {"-N", "IN_public_allow"},
	// Names close to portwarden's own must not be taken for them.
	{"-N", "PW-LOOKALIKE"}, {"-N", "PORTWARDEN2"}, {"-A", "PW-LOOKALIKE", "-j", "RETURN"},
	{"-A", "INPUT", "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT"},
	{"-A", "INPUT", "-i", "lo", "-j", "ACCEPT"},
	{"-A", "INPUT", "-j", "INPUT_direct"},
	{"-A", "INPUT", "-j", "IN_public"},
	{"-A", "IN_public", "-j", "IN_public_allow"},
	{"-A", "IN_public_allow", "-p", "tcp", "--dport", "22", "-m", "conntrack", "--ctstate", "NEW", "-j", "ACCEPT"},
	{"-A", "IN_public_allow", "-p", "tcp", "--dport", "28", "-j", "ACCEPT"},
}

// withoutOwned drops portwarden's lines from iptables-save output.
func withoutOwned(save string) string {
	var keep []string
	for _, line := range strings.Split(save, "\n") {
		if strings.Contains(line, "portwarden") || strings.HasPrefix(line, ":PORTWARDEN ") ||
			(strings.HasPrefix(line, ":PW-") && isOwnedChain(strings.Fields(line[1:])[0])) {
			continue
		}
		keep = append(keep, line)
	}
	return strings.Join(keep, "\n")
}

func TestKernelForeignRulesUntouched(t *testing.T) {
	forEachVariant(t, func(t *testing.T, v Variant) {
		l := newLab(t, v)
		for _, fam := range families {
			for _, args := range foreignSetup {
				l.ipt(t, fam, args...)
			}
		}
		before := [2]string{l.save(t, ipv4), l.save(t, ipv6)}
		l.apply(t, labRuleset(rules.Reject))
		for _, fam := range families {
			after := l.save(t, fam)
			if withoutOwned(after) != before[fam] {
				t.Errorf("%s foreign rules changed by apply:\nbefore\n%s\nafter\n%s", fam, before[fam], after)
			}
			if !strings.Contains(strings.SplitN(after, "-A INPUT", 2)[1], "portwarden jump") {
				t.Errorf("%s: the jump is not the first INPUT rule:\n%s", fam, after)
			}
		}
		// The foreign INPUT rules above would accept established traffic;
		// portwarden's jump is first, so a denied peer is still refused.
		if got := l.probe(t, l.client, deniedV4, serverV4, managedPort); got != closed {
			t.Errorf("denied peer with foreign rules: %s", got)
		}
		if err := l.b.Destroy(context.Background()); err != nil {
			t.Fatal(err)
		}
		writes := l.writes(t)
		if err := l.b.Destroy(context.Background()); err != nil {
			t.Fatalf("destroy with nothing installed: %v", err)
		}
		if l.writes(t) != writes {
			t.Error("destroy with nothing installed wrote")
		}
		for _, fam := range families {
			if after := l.save(t, fam); after != before[fam] {
				t.Errorf("%s ruleset after destroy differs:\nbefore\n%s\nafter\n%s", fam, before[fam], after)
			}
		}
		st, err := l.b.Current(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if st.Installed || len(st.Ruleset.Exposures) > 0 {
			t.Errorf("after destroy: %+v", st)
		}
	})
}

// A set another program's rule uses cannot be destroyed: destroy says
// which rule to remove, and stops with both families' chains gone (never
// one family managed and the other not); once that rule is gone, destroy
// removes the sets.
func TestKernelDestroyBlockedByForeignSetUse(t *testing.T) {
	forEachVariant(t, func(t *testing.T, v Variant) {
		l := newLab(t, v)
		l.apply(t, labRuleset(rules.Reject))
		set := setName("nscp", ipv4, roleAllow)
		foreign := []string{"FORWARD", "-m", "set", "--match-set", set, "src", "-j", "ACCEPT"}
		l.ipt(t, ipv4, append([]string{"-A"}, foreign...)...)
		err := l.b.Destroy(context.Background())
		if err == nil || !strings.Contains(err.Error(), "a rule that is not portwarden's still uses the set") {
			t.Fatalf("destroy with a foreign rule on %s: %v", set, err)
		}
		for _, fam := range families {
			if save := l.save(t, fam); strings.Contains(save, "portwarden") {
				t.Errorf("%s: portwarden's rules are still there after the failed destroy:\n%s", fam, save)
			}
		}
		l.ipt(t, ipv4, append([]string{"-D"}, foreign...)...)
		if err := l.b.Destroy(context.Background()); err != nil {
			t.Fatal(err)
		}
		if out, err := l.server.Run(context.Background(), "ipset", "list", "-n"); err != nil || strings.Contains(string(out), "PW-") {
			t.Errorf("sets left after destroy: %s (%v)", out, err)
		}
	})
}

func TestKernelNFTGenerationMovesWithWrites(t *testing.T) {
	netnstest.RequireRoot(t)
	if checkBinaries(NFT) != nil {
		t.Fatal("iptables-nft is not installed (the iptables package provides it)")
	}
	l := newLab(t, NFT)
	g1, err := nfgen.Generation(l.server.Path())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.b.Current(context.Background()); err != nil {
		t.Fatal(err)
	}
	if g2, _ := nfgen.Generation(l.server.Path()); g2 != g1 {
		t.Fatalf("reading moved the generation %d -> %d", g1, g2)
	}
	l.apply(t, labRuleset(rules.Drop))
	if g3, _ := nfgen.Generation(l.server.Path()); g3 == g1 {
		t.Fatalf("apply did not move the generation (%d)", g3)
	}
	if l.b.last == nil {
		t.Fatal("no snapshot kept for Apply to reuse")
	}
}
