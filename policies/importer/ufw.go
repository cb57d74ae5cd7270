package importer

import (
	"bytes"
	"fmt"
	"net/netip"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
)

// ParseUFW reads ufw's user.rules and user6.rules (the rules `ufw allow`
// and friends write) and, when given, /etc/default/ufw for the default
// incoming policy. ufw's own frame (before.rules, after.rules: loopback,
// established connections, ICMP, DHCP) is not the administrator's and is
// not imported; loopback traffic stays allowed as ufw's frame allows it.
func ParseUFW(files []File) (*Import, error) {
	im := newImport("ufw")
	var rulesFiles []File
	policy, policyOrigin := "DROP", "ufw's default incoming policy (deny; no /etc/default/ufw given)"
	for _, f := range files {
		switch {
		case defaultPolicyRe().Match(f.Data):
			m := defaultPolicyRe().FindSubmatch(f.Data)
			policy = strings.ToUpper(string(m[1]))
			policyOrigin = fmt.Sprintf("%s: DEFAULT_INPUT_POLICY=%q", f.Name, policy)
			im.Sources = append(im.Sources, f.Name)
		case bytes.Contains(f.Data, []byte(":ufw-user-input")) || bytes.Contains(f.Data, []byte(":ufw6-user-input")):
			rulesFiles = append(rulesFiles, f)
		default:
			base := filepath.Base(f.Name)
			if strings.HasSuffix(base, ".rules") {
				im.note(f.Name, "", "ufw's frame (%s) is not imported: it is ufw's, not the administrator's", base)
			}
		}
	}
	if len(rulesFiles) == 0 {
		return nil, fmt.Errorf("no ufw user rules among the files: give /etc/ufw/user.rules and user6.rules (or the directory holding them)")
	}
	if err := parseIPTablesInto(im, rulesFiles, ufwFrame); err != nil {
		return nil, err
	}
	v := Drop
	switch policy {
	case "ACCEPT":
		v = Accept
	case "REJECT":
		v = Reject
	}
	for _, fam := range []int{4, 6} {
		im.Default[fam] = Fallthrough{Verdict: v, Origin: policyOrigin}
	}
	groupByComment(im)
	// ufw's before.rules accept loopback traffic before any user rule.
	im.Rules = append([]Rule{{Origin: "ufw before.rules", Loopback: true, Verdict: Accept}}, im.Rules...)
	im.Load = append(im.Load, ufwFrameLoad(policy, rulesFiles)...)
	return im, nil
}

// groupByComment names the sources of rules that share a ufw comment as
// one address group, where every rule with that comment does the same
// thing (protocol, ports, verdict): ufw writes one rule per source and
// family for `ufw allow from A ... comment C`, and the comment is the
// name the administrator gave them.
func groupByComment(im *Import) {
	byComment := map[string][]int{}
	var order []string
	for i, r := range im.Rules {
		if r.Comment == "" || r.Sources == nil || r.Group != "" {
			continue
		}
		if _, ok := byComment[r.Comment]; !ok {
			order = append(order, r.Comment)
		}
		byComment[r.Comment] = append(byComment[r.Comment], i)
	}
	for _, c := range order {
		idx := byComment[c]
		name := identifier(c)
		if len(idx) < 2 || name == "" || im.Groups[name] != nil {
			continue
		}
		first := im.Rules[idx[0]]
		same := true
		var members []netip.Prefix
		for _, i := range idx {
			r := im.Rules[i]
			if r.Protocol != first.Protocol || !slices.Equal(r.Ports, first.Ports) || r.Verdict != first.Verdict || r.Loopback != first.Loopback {
				same = false
				break
			}
			members = append(members, r.Sources.Prefixes()...)
		}
		if !same {
			continue
		}
		// Each rule keeps its own sources and place: a block names the
		// group, and the offline check holds the policy to the rules.
		for _, i := range idx {
			im.Rules[i].Group = name
		}
		im.Groups[name] = members
	}
}

// Compiled on first use, not at start: every command would pay for it.
var defaultPolicyRe = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`(?m)^DEFAULT_INPUT_POLICY="?([A-Za-z]+)"?`) })

var ufwFrame = frame{
	entry: func(fam int) string {
		if fam == 6 {
			return "ufw6-user-input"
		}
		return "ufw-user-input"
	},
	quiet: func(chain string) bool {
		return strings.Contains(chain, "logging") || strings.Contains(chain, "-user-limit")
	},
	family: func(f File) int {
		if bytes.Contains(f.Data, []byte(":ufw6-user-input")) {
			return 6
		}
		return 4
	},
}

// ufwFrameLoad is the part of ufw's frame the sandbox needs around the
// user rules, as before.rules sets it up: loopback, established
// connections and ICMP accepted, then the user chain, then the default
// policy.
func ufwFrameLoad(policy string, files []File) []LoadStep {
	var out []LoadStep
	for _, f := range files {
		fam := ufwFrame.family(f)
		tool, chain, icmp := "iptables-restore", "ufw-user-input", "icmp"
		if fam == 6 {
			tool, chain, icmp = "ip6tables-restore", "ufw6-user-input", "ipv6-icmp"
		}
		chainPolicy, tail := policy, ""
		if policy == "REJECT" {
			chainPolicy, tail = "DROP", "-A INPUT -j REJECT\n"
		}
		frame := fmt.Sprintf("*filter\n:INPUT %s [0:0]\n-A INPUT -i lo -j ACCEPT\n-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n-A INPUT -p %s -j ACCEPT\n-A INPUT -j %s\n%sCOMMIT\n",
			chainPolicy, icmp, chain, tail)
		out = append(out, LoadStep{Name: tool, Args: []string{"--noflush"}, Stdin: []byte(frame)})
	}
	return out
}
