package iptables

import (
	"context"
	"github.com/portwarden/portwarden/internal/nfgen"
	"strings"
	"testing"

	"github.com/portwarden/portwarden/internal/netns/netnstest"
	"github.com/portwarden/portwarden/rules"
)

func TestKernelReapplyWritesNothing(t *testing.T) {
	forEachVariant(t, func(t *testing.T, v Variant) {
		l := newLab(t, v)
		l.apply(t, labRuleset(rules.Drop))
		if n := l.writes(t); n != 2 {
			t.Fatalf("first apply wrote %d times, want 2 (one per family)", n)
		}
		before := l.save(t, ipv4) + l.save(t, ipv6)
		p := l.apply(t, labRuleset(rules.Drop))
		if !p.Empty() {
			t.Fatalf("re-plan not empty: %+v drift %q", p.Diff, p.Current.Drift)
		}
		if n := l.writes(t); n != 2 {
			t.Fatalf("unchanged re-apply wrote (%d writes in total)", n)
		}
		if after := l.save(t, ipv4) + l.save(t, ipv6); after != before {
			t.Fatalf("ruleset changed by an unchanged re-apply:\n%s\n---\n%s", before, after)
		}
		// A one-source change writes one family, and edits the chain in
		// place: the other rules keep their counters.
		if got := l.probe(t, l.client, allowedV4, serverV4, managedPort); got != open {
			t.Fatalf("allowed peer: %s", got)
		}
		allowCount := func() uint64 {
			cs, err := l.b.Counters(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range cs {
				if c.Rule == "allow v4 198.18.0.2/31" {
					return c.Packets
				}
			}
			t.Fatalf("no counter for the allow rule in %+v", cs)
			return 0
		}
		counted := allowCount()
		if counted == 0 {
			t.Fatal("allow counter did not count")
		}
		rs := labRuleset(rules.Drop)
		rs.Exposures[0].Allow = pfx("198.18.0.2/31", "198.18.0.8/32", "2001:2::2/127")
		l.apply(t, rs)
		if n := l.writes(t); n != 3 {
			t.Fatalf("one v4 source change: %d writes in total, want 3", n)
		}
		if after := allowCount(); after < counted {
			t.Fatalf("the unchanged allow rule lost its counters (%d -> %d): the chain was rewritten", counted, after)
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
