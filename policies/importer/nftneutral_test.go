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
		{"a chain prerouting jumps to", `table ip raw {
	chain bad {
		ip saddr 198.18.1.66 drop
	}
	chain PREROUTING {
		type filter hook prerouting priority raw; policy accept;
		jump bad
	}
}
`, "ip raw bad: chain (1 rule(s), policy -) not imported: it is reached from ip raw PREROUTING, which is not imported"},
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

// TestKernelRoutedAndNatChains: what import --from iptables says of the
// same chains, import --from nftables says too. A drop policy that sees
// no packet of an inbound connection to this host (forward; nat's output
// and postrouting never see a reply) says nothing, and the import stays
// complete; rules there are still rules a policy cannot say (the routed
// traffic, the nat), left out, and so is a chain they jump to, named by
// the chain that reaches it.
func TestKernelRoutedAndNatChains(t *testing.T) {
	quiet := `table inet routed {
	chain forward {
		type filter hook forward priority filter; policy drop;
	}
}
`
	im, _ := loadNft(t, "nftrouted", quiet+realInput)
	if report := ReportText(im); !im.Complete() || strings.Contains(report, "routed forward") {
		t.Errorf("a forward chain's drop policy was reported:\n%s", report)
	}
	bare, _ := loadNft(t, "nftroutedbare", realInput)
	if want, got := summary(bare.Plan()), summary(im.Plan()); want == "" || want != got {
		t.Errorf("import with the forward chain differs from the import without it:\n--- without\n%s\n--- with\n%s", want, got)
	}

	ruled := `table inet routed {
	chain fwd_lan {
		iifname "lan0" accept
	}
	chain forward {
		type filter hook forward priority filter; policy drop;
		ct state established,related accept
		jump fwd_lan
	}
}
table ip nat {
	chain postrouting {
		type nat hook postrouting priority srcnat;
		oifname "wan0" masquerade
	}
}
`
	im, _ = loadNft(t, "nftroutedrules", ruled+realInput)
	report := ReportText(im)
	for _, want := range []string{
		"inet routed forward: chain (2 rule(s), policy drop) not imported: a policy decides only traffic to this host",
		"inet routed fwd_lan: chain (1 rule(s), policy -) not imported: it is reached from inet routed forward, which is not imported",
		"ip nat postrouting: chain (1 rule(s), policy accept) not imported: a policy decides only who reaches this host's ports; nat stays the administrator's",
	} {
		if !strings.Contains(report, want) {
			t.Errorf("want left out %q, got:\n%s", want, report)
		}
	}
}

// TestNftJumpNotImported: a chain the imported input chain reaches only
// through a jump the import left out (a goto, a verdict map) is said to
// be so, not to be reached from a chain "which is not imported", nor to be
// unreachable.
func TestNftJumpNotImported(t *testing.T) {
	im, err := ParseNftables([]File{{Name: "vmap.json", Data: []byte(vmapRuleset)}})
	if err != nil {
		t.Fatal(err)
	}
	report := ReportText(im)
	for _, want := range []string{
		"vmap.json: inet t ssh: chain (1 rule(s), policy -) not imported: the jump or goto to it from inet t input was not imported (see above)",
		"vmap.json: inet t web: chain (1 rule(s), policy -) not imported: the jump or goto to it from inet t input was not imported (see above)",
	} {
		if !strings.Contains(report, want) {
			t.Errorf("want %q in the report:\n%s", want, report)
		}
	}
}

// vmapRuleset is nft -j list ruleset of:
//
//	table inet t {
//		chain ssh { tcp dport 22 accept }
//		chain web { ip saddr 198.18.1.0/24 accept }
//		chain input {
//			type filter hook input priority filter; policy accept;
//			tcp dport vmap { 80 : jump web }
//			goto ssh
//		}
//	}
const vmapRuleset = `{"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}}, {"table": {"family": "inet", "name": "t", "handle": 1}}, {"chain": {"family": "inet", "table": "t", "name": "ssh", "handle": 1}}, {"chain": {"family": "inet", "table": "t", "name": "web", "handle": 2}}, {"chain": {"family": "inet", "table": "t", "name": "input", "handle": 3, "type": "filter", "hook": "input", "prio": 0, "policy": "accept"}}, {"rule": {"family": "inet", "table": "t", "chain": "ssh", "handle": 4, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 22}}, {"accept": null}]}}, {"rule": {"family": "inet", "table": "t", "chain": "web", "handle": 5, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": {"prefix": {"addr": "198.18.1.0", "len": 24}}}}, {"accept": null}]}}, {"rule": {"family": "inet", "table": "t", "chain": "input", "handle": 7, "expr": [{"vmap": {"key": {"payload": {"protocol": "tcp", "field": "dport"}}, "data": {"set": [[80, {"jump": {"target": "web"}}]]}}}]}}, {"rule": {"family": "inet", "table": "t", "chain": "input", "handle": 8, "expr": [{"goto": {"target": "ssh"}}]}}]}`
