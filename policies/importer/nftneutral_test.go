package importer

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/portwarden/portwarden/internal/netns/netnstest"
	"github.com/portwarden/portwarden/policies"
	"github.com/portwarden/portwarden/rules"
	"github.com/portwarden/portwarden/verify"
)

// leftoverTables is what iptables-nft leaves behind after `iptables -F`
// (or a package's install) once the filter, mangle and security tables
// were used: empty input chains with policy accept, at the priorities
// iptables-nft gives them. They come before the real ruleset, as on a
// host where iptables-nft ran first.
const leftoverTables = `table ip filter {
	chain INPUT {
		type filter hook input priority filter; policy accept;
	}
}
table ip6 filter {
	chain INPUT {
		type filter hook input priority filter; policy accept;
	}
}
table ip mangle {
	chain INPUT {
		type filter hook input priority mangle; policy accept;
	}
}
table ip security {
	chain INPUT {
		type filter hook input priority 150; policy accept;
	}
}
`

const realInput = `table inet filter {
	chain input {
		type filter hook input priority filter; policy accept;
		ip saddr 198.18.1.66 tcp dport 27 drop
		ip saddr 198.18.1.0/24 tcp dport 27 accept comment "operators"
		ip6 saddr 2001:2:1::/64 tcp dport 27 accept comment "operators"
		tcp dport 27 drop
	}
}
`

// loadNft loads a ruleset into a fresh namespace with nft -f and reads it
// back over netlink.
func loadNft(t *testing.T, label, ruleset string) (*Import, string) {
	t.Helper()
	ns := netnstest.New(t, label)
	cmd := exec.Command("ip", "netns", "exec", ns.Name, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(ruleset)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft -f: %v: %s", err, out)
	}
	im, err := ReadNftablesKernel(context.Background(), ns.Fd())
	if err != nil {
		t.Fatal(err)
	}
	return im, ns.Name
}

// TestKernelIgnoresEmptyInputChains: the input chains iptables-nft leaves
// empty (policy accept, no rules) change no verdict, so the import is the
// same as without them, complete, with a note for each; the check proves
// it against the kernel.
func TestKernelIgnoresEmptyInputChains(t *testing.T) {
	im, nsName := loadNft(t, "nftneutral", leftoverTables+realInput)
	t.Logf("import report:\n%s", ReportText(im))
	if !im.Complete() {
		t.Errorf("the empty input chains made the import incomplete:\n%s", ReportText(im))
	}
	bare, _ := loadNft(t, "nftbare", realInput)
	want, got := summary(bare.Plan()), summary(im.Plan())
	if want == "" || want != got {
		t.Errorf("import with the empty chains differs from the import without them:\n--- without\n%s\n--- with\n%s", want, got)
	}
	for _, table := range []string{"ip filter", "ip6 filter", "ip mangle", "ip security"} {
		needle := fmt.Sprintf("ignored: the empty input chain of table %s (policy accept, no rules)", table)
		if !strings.Contains(ReportText(im), needle) {
			t.Errorf("no note %q in the report:\n%s", needle, ReportText(im))
		}
	}

	// import --check: the saved ruleset in one sandbox, the policy in
	// another, probed alike.
	saved, err := exec.Command("ip", "netns", "exec", nsName, "nft", "-j", "list", "ruleset").Output()
	if err != nil {
		t.Fatalf("nft -j list ruleset: %v", err)
	}
	src, _, err := im.Build()
	if err != nil {
		t.Fatal(err)
	}
	pol, diags := policies.LoadFS(fstest.MapFS{"import.hcl": {Data: src}}, "import.hcl", policies.Options{})
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	rs, err := rules.Compile(pol)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := verify.Equivalence(context.Background(), verify.EquivalenceConfig{
		Ruleset:  rs,
		Backend:  "nftables",
		Prefixes: im.Prefixes(),
		Original: []verify.Command{{Name: "nft", Args: []string{"-j", "-f", "-"}, Stdin: saved}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Probes == 0 || !rep.Equivalent() {
		t.Errorf("check: %d probes, %d differences: %v", rep.Probes, len(rep.Differences), rep.Differences)
	}
	t.Logf("check: %d probes from %d sources, equivalent", rep.Probes, rep.Sources)
}

// TestKernelKeepsInputChainsThatCount: an input chain that drops what it
// does not accept, or holds any rule (even one that only counts), is not
// neutral: the real chain is still a second input chain, left out as
// before. A chain on another hook that sees packets of inbound
// connections to this host is left out too, saying which it sees.
func TestKernelKeepsInputChainsThatCount(t *testing.T) {
	cases := []struct {
		name, first, leftOut string
	}{
		{"policy drop", `table ip filter {
	chain INPUT {
		type filter hook input priority filter; policy drop;
	}
}
`, "inet filter input: chain (4 rule(s), policy accept) not imported: a second input chain"},
		{"a counter rule", `table ip filter {
	chain INPUT {
		type filter hook input priority filter; policy accept;
		counter
	}
}
`, "inet filter input: chain (4 rule(s), policy accept) not imported: a second input chain"},
		{"prerouting drop", `table ip raw {
	chain PREROUTING {
		type filter hook prerouting priority raw; policy drop;
	}
}
`, "ip raw PREROUTING: chain (0 rule(s), policy drop) not imported: it drops every packet to this host before the input chain; the imported policy does not"},
		{"output drop", `table inet out {
	chain output {
		type filter hook output priority filter; policy drop;
		oifname "lo" accept
	}
}
`, "inet out output: chain (1 rule(s), policy drop) not imported: it drops every packet this host sends (the replies to inbound connections too) that its 1 rule(s) do not accept; the imported policy does not"},
		{"nat prerouting", `table ip nat {
	chain prerouting {
		type nat hook prerouting priority dstnat;
		tcp dport 2222 redirect to :27
	}
}
`, "ip nat prerouting: chain (1 rule(s), policy accept) not imported: it sees the first packet of every connection to this host and can redirect or drop it"},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			im, _ := loadNft(t, fmt.Sprintf("nftcount%d", i), c.first+realInput)
			report := ReportText(im)
			if im.Complete() || !strings.Contains(report, c.leftOut) {
				t.Errorf("want left out %q, got:\n%s", c.leftOut, report)
			}
			if strings.Contains(report, "ignored: the empty input chain") {
				t.Errorf("a chain that counts was ignored:\n%s", report)
			}
		})
	}
}

// TestKernelSilentOnRoutedAndReplyNat: chains that see no packet of an
// inbound connection to this host change nothing a policy decides, so
// the import stays complete, as import --from iptables is silent on
// FORWARD and on nat's OUTPUT and POSTROUTING: a forward chain that drops
// (routed packets only) and nat's output and postrouting chains (a nat
// chain sees only a connection's first packet, never a reply); the check
// proves the probes agree.
func TestKernelSilentOnRoutedAndReplyNat(t *testing.T) {
	routed := `table inet routed {
	chain forward {
		type filter hook forward priority filter; policy drop;
		ct state established,related accept
		iifname "lan0" accept
	}
}
table ip nat {
	chain postrouting {
		type nat hook postrouting priority srcnat;
		oifname "wan0" masquerade
	}
	chain output {
		type nat hook output priority -100;
		tcp dport 8080 redirect to :80
	}
}
`
	im, _ := loadNft(t, "nftrouted", routed+realInput)
	report := ReportText(im)
	if !im.Complete() {
		t.Errorf("chains that see no inbound packet made the import incomplete:\n%s", report)
	}
	for _, chain := range []string{"routed forward", "nat postrouting", "nat output"} {
		if strings.Contains(report, chain) {
			t.Errorf("the report names %q:\n%s", chain, report)
		}
	}
	bare, _ := loadNft(t, "nftroutedbare", realInput)
	if want, got := summary(bare.Plan()), summary(im.Plan()); want == "" || want != got {
		t.Errorf("import with the routed chains differs from the import without them:\n--- without\n%s\n--- with\n%s", want, got)
	}
}
