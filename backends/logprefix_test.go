package backends_test

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/portwarden/portwarden/backends"
	"github.com/portwarden/portwarden/backends/iptables"
	"github.com/portwarden/portwarden/backends/nftables"
	"github.com/portwarden/portwarden/rules"
)

func ruleset(proto rules.Protocol, answer rules.RejectWith) *rules.Ruleset {
	rs := &rules.Ruleset{Exposures: []rules.Exposure{{
		Name: "nscp", Protocol: proto, Ports: []rules.PortRange{{First: 27, Last: 27}},
		Default: rules.Reject, RejectWith: answer, Log: true,
		Allow: rules.NewPrefixes(netip.MustParsePrefix("198.18.1.0/24"), netip.MustParsePrefix("2001:2:0:1::/64")),
	}}}
	rs.Normalize()
	return rs
}

// TestSameWordsOnBothBackends: the log prefix text and the answer of each
// reject_with are the same whichever backend renders the rules.
func TestSameWordsOnBothBackends(t *testing.T) {
	for _, c := range []struct {
		proto     rules.Protocol
		answer    rules.RejectWith
		nft       string
		ipt4      string
		ipt6      string
		canonical rules.RejectWith
	}{
		{rules.TCP, "", "meta l4proto tcp reject with tcp reset", "-p tcp -m comment --comment \"portwarden expose=nscp default\" -j REJECT --reject-with tcp-reset", "--reject-with tcp-reset", rules.TCPReset},
		{rules.UDP, "", "reject with icmpx port-unreachable", "--reject-with icmp-port-unreachable", "--reject-with icmp6-port-unreachable", rules.ICMPPortUnreachable},
		{rules.TCP, rules.ICMPPortUnreachable, "reject with icmpx port-unreachable", "--reject-with icmp-port-unreachable", "--reject-with icmp6-port-unreachable", rules.ICMPPortUnreachable},
		{rules.TCP, rules.ICMPAdminProhibited, "reject with icmpx admin-prohibited", "--reject-with icmp-admin-prohibited", "--reject-with icmp6-adm-prohibited", rules.ICMPAdminProhibited},
	} {
		rs := ruleset(c.proto, c.answer)
		if got := rs.Exposures[0].RejectWith; got != c.canonical {
			t.Errorf("%s %q normalises to %q, want %q", c.proto, c.answer, got, c.canonical)
		}
		nft, err := nftables.Render(rs)
		if err != nil {
			t.Fatal(err)
		}
		ipt, err := iptables.Render(rs)
		if err != nil {
			t.Fatal(err)
		}
		v4, v6, _ := strings.Cut(ipt, "IPv6")
		for _, want := range []struct{ text, in, what string }{
			{"counter " + c.nft + " comment", nft, "nftables"},
			{c.ipt4, v4, "iptables"},
			{c.ipt6, v6, "ip6tables"},
		} {
			if !strings.Contains(want.in, want.text) {
				t.Errorf("%s reject_with %q: %s lacks %q:\n%s", c.proto, c.answer, want.what, want.text, want.in)
			}
		}
		prefix := `log prefix "portwarden nscp: "`
		if !strings.Contains(nft, prefix) || !strings.Contains(ipt, `--log-prefix "portwarden nscp: "`) {
			t.Errorf("the backends log with different prefixes:\n%s\n%s", nft, ipt)
		}
	}
}

func TestLogPrefixFits(t *testing.T) {
	for _, name := range []string{"nscp", "a-very-long-exposure-name-for-the-log", "überlangerdienstnameäöü"} {
		p := backends.LogPrefix(name)
		if len(p) > backends.MaxLogPrefix || !strings.HasPrefix(p, "portwarden ") || !strings.HasSuffix(p, ": ") {
			t.Errorf("LogPrefix(%q) = %q", name, p)
		}
		if strings.ToValidUTF8(p, "?") != p {
			t.Errorf("LogPrefix(%q) = %q is not valid UTF-8", name, p)
		}
	}
}
