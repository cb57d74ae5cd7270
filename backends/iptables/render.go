package iptables

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/portwarden/portwarden/backends"
	"github.com/portwarden/portwarden/rules"
)

// family is one of the two address families; each has its own binaries
// (iptables, ip6tables) and its own filter table.
type family int

const (
	ipv4 family = iota
	ipv6
)

var families = []family{ipv4, ipv6}

func (f family) String() string {
	if f == ipv6 {
		return "IPv6"
	}
	return "IPv4"
}

// short is the suffix used in counter names ("v4", "v6").
func (f family) short() string {
	if f == ipv6 {
		return "v6"
	}
	return "v4"
}

const (
	// topChain is the one chain INPUT jumps to; it dispatches to one chain
	// per exposure.
	topChain = "PORTWARDEN"
	// exposureChainPrefix starts every per-exposure chain's name.
	exposureChainPrefix = "PW-"
	// commentPrefix starts the comment on every owned rule.
	commentPrefix = "portwarden"
	// jumpComment marks the rule in INPUT that jumps to topChain.
	jumpComment = commentPrefix + " jump"
	// multiportSlots is how many ports one multiport match holds (a range
	// takes two).
	multiportSlots = 15
	// logLimit is the rate of LOG rules; the default burst (5) is used so
	// that iptables-save prints the rule back exactly as written.
	logLimit = "10/min"
)

// Rule kinds, the last word of an owned rule's comment. They are also the
// Counter.Rule names.
const (
	kindMatch    = "match"
	kindLoopback = "loopback"
	kindDeny     = "deny"
	kindDenyLog  = "deny-log"
	kindAllow    = "allow"
	// kindGrant admits a source until a deadline: the time match compares
	// each packet's arrival with --datestop (UTC), so the kernel refuses
	// the source from then on with nothing of portwarden running.
	kindGrant   = "grant"
	kindLog     = "log"
	kindDefault = "default"
	// kindUnused heads an exposure's chain in a family where the
	// exposure has no match rule (its destinations are all of the other
	// family): a rule without a target, so it decides nothing, that says
	// in the kernel that nothing jumps to the chain on purpose. Without
	// it, deleting a family's match rules by hand would look the same as
	// an exposure never meant for that family.
	kindUnused = "no-destination-in-this-family"
)

// exposureChain is the deterministic chain name of an exposure: a prefix
// and a hash of the name, because exposure names may be longer than the
// 28 bytes a chain name allows.
func exposureChain(name string) string {
	sum := sha256.Sum256([]byte(name))
	return exposureChainPrefix + strings.ToUpper(hex.EncodeToString(sum[:5]))
}

// ruleComment is the comment of an owned rule of an exposure.
func ruleComment(name, kind string) string {
	return commentPrefix + " expose=" + escapeName(name) + " " + kind
}

// maxEscapedName keeps the longest comment well under the kernel's 256.
const maxEscapedName = 200

// safeNameByte is what an exposure name keeps as is in a comment; every
// other byte (blanks, quotes, %, non-ASCII) is written %XX so the comment
// survives iptables-save unchanged and splits cleanly.
func safeNameByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '_' || c == '-' || c == '.' || c == ':' || c == '/'
}

func escapeName(name string) string {
	var b strings.Builder
	for i := 0; i < len(name); i++ {
		if c := name[i]; safeNameByte(c) {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

func unescapeName(s string) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '%' && i+2 < len(s):
			v, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
			if err != nil {
				return "", false
			}
			b.WriteByte(byte(v))
			i += 2
		case safeNameByte(c):
			b.WriteByte(c)
		default:
			return "", false
		}
	}
	return b.String(), true
}

// validName reports whether an exposure name can travel in a comment.
func validName(name string) bool {
	return name != "" && len(escapeName(name)) <= maxEscapedName
}

// chainRules is one owned chain and its rules, each rule as iptables-save
// prints it (starting with "-A CHAIN").
type chainRules struct {
	name  string
	rules []string
}

// familyRules is everything portwarden owns in one family's filter table.
type familyRules struct {
	chains []chainRules // topChain first, then exposure chains in Name order
	sets   []setSpec    // allow and deny set of each exposure, in Name order
}

// jumpRule is the rule at the top of INPUT, as iptables-save prints it.
var jumpRule = "-A INPUT -m comment --comment " + quote(jumpComment) + " -j " + topChain

// quote writes a string argument the way iptables-save does: in double
// quotes when it holds a space.
func quote(s string) string {
	if !strings.ContainsAny(s, " \t\"\\") {
		return s
	}
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	b.WriteByte('"')
	return b.String()
}

// lastDatestop is the latest deadline iptables' time match takes
// (libxt_time refuses a year after 2038).
var lastDatestop = time.Date(2038, 12, 31, 23, 59, 59, 0, time.UTC)

// validate checks that every exposure can be written, without rendering.
func validate(rs *rules.Ruleset) error {
	for i := range rs.Exposures {
		e := &rs.Exposures[i]
		if !validName(e.Name) {
			return fmt.Errorf("exposure %q: the iptables backend needs a name of 1 to 200 characters (fewer when they are not letters, digits or _ - . : /)", e.Name)
		}
		if e.Protocol != rules.TCP && e.Protocol != rules.UDP {
			return fmt.Errorf("exposure %q: protocol %q is not tcp or udp", e.Name, e.Protocol)
		}
		if len(e.Ports) == 0 {
			return fmt.Errorf("exposure %q: no ports", e.Name)
		}
		for _, ifname := range e.Interfaces {
			if !validInterface(ifname) {
				return fmt.Errorf("exposure %q: interface %q is not a Linux interface name (1 to 15 characters, no blanks, quotes or slashes)", e.Name, ifname)
			}
		}
		if _, _, err := verdictTarget(e, ipv4); err != nil {
			return fmt.Errorf("exposure %q: %w", e.Name, err)
		}
		for _, g := range e.Expiring {
			if g.Until.After(lastDatestop) {
				return fmt.Errorf("exposure %q: the grant to %s until %s: the iptables time match takes deadlines up to %s; use an earlier deadline, or the nftables backend",
					e.Name, g.Source, g.Until.UTC().Format(time.RFC3339), lastDatestop.Format(time.RFC3339))
			}
		}
	}
	return nil
}

// renderFamily turns a Ruleset into the owned chains of one family. It
// expects a normalised Ruleset; tolerant is for re-rendering what was
// decoded from the kernel, where a default may be missing.
func renderFamily(rs *rules.Ruleset, fam family, tolerant bool) (familyRules, error) {
	top := chainRules{name: topChain}
	var chains []chainRules
	var sets []setSpec
	for i := range rs.Exposures {
		e := &rs.Exposures[i]
		if !validName(e.Name) {
			return familyRules{}, fmt.Errorf("exposure %q: the iptables backend needs a name of 1 to 200 characters (fewer when they are not letters, digits or _ - . : /)", e.Name)
		}
		chain := exposureChain(e.Name)
		match, err := matchRules(e, fam, chain)
		if err != nil {
			return familyRules{}, err
		}
		top.rules = append(top.rules, match...)
		body, err := exposureRules(e, fam, chain, tolerant)
		if err != nil {
			return familyRules{}, err
		}
		if len(match) == 0 {
			body = append([]string{unusedMarker(e.Name, chain)}, body...)
		}
		chains = append(chains, chainRules{name: chain, rules: body})
		allow, deny := exposureSets(e, fam)
		sets = append(sets, allow, deny)
	}
	return familyRules{chains: append([]chainRules{top}, chains...), sets: sets}, nil
}

// familyPrefixes picks one family's prefixes.
func familyPrefixes(p rules.Prefixes, fam family) []netip.Prefix {
	if fam == ipv6 {
		return p.V6
	}
	return p.V4
}

// matchRules are the rules in topChain that send an exposure's packets to
// its chain: one per destination, interface and group of 15 ports.
func matchRules(e *rules.Exposure, fam family, chain string) ([]string, error) {
	if e.Protocol != rules.TCP && e.Protocol != rules.UDP {
		if e.Protocol == "" && len(e.Ports) == 0 {
			return nil, nil // decoded from a kernel whose match rules are gone
		}
		return nil, fmt.Errorf("exposure %q: protocol %q is not tcp or udp", e.Name, e.Protocol)
	}
	dests := []string{""}
	if len(e.Destinations.V4)+len(e.Destinations.V6) > 0 {
		dests = nil
		for _, p := range familyPrefixes(e.Destinations, fam) {
			dests = append(dests, p.String())
		}
		// Destinations only in the other family: this family's packets
		// never match the exposure.
	}
	ifaces := e.Interfaces
	if len(ifaces) == 0 {
		ifaces = []string{""}
	}
	groups := portGroups(e.Ports)
	comment := "-m comment --comment " + quote(ruleComment(e.Name, kindMatch))
	var out []string
	for _, d := range dests {
		for _, ifname := range ifaces {
			for _, g := range groups {
				var b strings.Builder
				b.WriteString("-A " + topChain)
				if d != "" {
					b.WriteString(" -d " + d)
				}
				if ifname != "" {
					b.WriteString(" -i " + ifname)
				}
				b.WriteString(" -p " + string(e.Protocol) + " -m multiport --dports " + g + " " + comment + " -j " + chain)
				out = append(out, b.String())
			}
		}
	}
	return out, nil
}

// unusedMarker is the kindUnused rule of an exposure's chain, as
// iptables-save prints it: no target, so a packet that reached it would
// go on to the next rule.
func unusedMarker(name, chain string) string {
	return "-A " + chain + " -m comment --comment " + quote(ruleComment(name, kindUnused))
}

// portGroups writes ports as multiport lists of at most multiportSlots.
func portGroups(ports []rules.PortRange) []string {
	var groups []string
	var cur []string
	used := 0
	for _, p := range ports {
		item, slots := strconv.Itoa(int(p.First)), 1
		if p.Last != p.First {
			item, slots = item+":"+strconv.Itoa(int(p.Last)), 2
		}
		if used+slots > multiportSlots {
			groups = append(groups, strings.Join(cur, ","))
			cur, used = nil, 0
		}
		cur = append(cur, item)
		used += slots
	}
	if len(cur) > 0 {
		groups = append(groups, strings.Join(cur, ","))
	}
	return groups
}

// rejectOptions are the --reject-with values of each answer, per family.
var rejectOptions = map[rules.RejectWith][2]string{
	rules.TCPReset:            {"tcp-reset", "tcp-reset"},
	rules.ICMPPortUnreachable: {"icmp-port-unreachable", "icmp6-port-unreachable"},
	rules.ICMPAdminProhibited: {"icmp-admin-prohibited", "icmp6-adm-prohibited"},
}

// verdictTarget is the -j part of a refusing rule. A TCP reset needs the
// rule to match -p tcp (iptables refuses it otherwise), which iptables-save
// prints before the comment, so it is returned apart as proto.
func verdictTarget(e *rules.Exposure, fam family) (proto, target string, err error) {
	switch e.Default {
	case rules.Drop:
		return "", "-j DROP", nil
	case rules.Reject:
		answer := e.Answer()
		opts, ok := rejectOptions[answer]
		if !ok {
			return "", "", fmt.Errorf("reject_with %q is not one of %v", answer, rules.RejectChoices)
		}
		if answer == rules.TCPReset {
			if e.Protocol != rules.TCP {
				return "", "", fmt.Errorf("a TCP reset cannot answer %s", e.Protocol)
			}
			proto = " -p tcp"
		}
		i := 0
		if fam == ipv6 {
			i = 1
		}
		return proto, "-j REJECT --reject-with " + opts[i], nil
	}
	return "", "", fmt.Errorf("default %q is not drop or reject", e.Default)
}

// exposureRules is the body of an exposure's chain: loopback, the allow
// set (allow minus deny), the deny set (logged), then the logged default.
// Allow and deny sets are disjoint, so allow goes first: an admitted
// packet costs one set lookup. Every rule carries its kind in the comment
// so Current can decode it and Counters can name it.
func exposureRules(e *rules.Exposure, fam family, chain string, tolerant bool) ([]string, error) {
	head := "-A " + chain
	comments := map[string]string{}
	for _, kind := range []string{kindLoopback, kindDeny, kindDenyLog, kindAllow, kindGrant, kindLog, kindDefault} {
		comments[kind] = "-m comment --comment " + quote(ruleComment(e.Name, kind))
	}
	cmt := func(kind string) string { return comments[kind] }
	logTarget := "-m limit --limit " + logLimit + " -j LOG --log-prefix " + quote(backends.LogPrefix(e.Name))
	proto, verdict, err := verdictTarget(e, fam)
	if err != nil {
		if !tolerant {
			return nil, fmt.Errorf("exposure %q: %w", e.Name, err)
		}
		verdict = ""
	}
	inSet := func(role byte) string { return " -m set --match-set " + setName(e.Name, fam, role) + " src" }
	var out []string
	if e.Loopback {
		out = append(out, head+" -i lo "+cmt(kindLoopback)+" -j ACCEPT")
	}
	out = append(out, head+inSet(roleAllow)+" "+cmt(kindAllow)+" -j ACCEPT")
	if e.Log {
		out = append(out, head+inSet(roleDeny)+" "+cmt(kindDenyLog)+" "+logTarget)
	}
	if verdict != "" {
		out = append(out, head+proto+inSet(roleDeny)+" "+cmt(kindDeny)+" "+verdict)
	}
	for _, g := range e.Expiring {
		if g.Source.Addr().Is4() != (fam == ipv4) {
			continue
		}
		out = append(out, head+" -s "+g.Source.String()+" -m time --datestop "+g.Until.UTC().Format(datestopLayout)+" "+cmt(kindGrant)+" -j ACCEPT")
	}
	if e.Log {
		out = append(out, head+" "+cmt(kindLog)+" "+logTarget)
	}
	if verdict != "" {
		out = append(out, head+proto+" "+cmt(kindDefault)+" "+verdict)
	}
	return out, nil
}

// datestopLayout is how the time match writes and iptables-save prints a
// date (UTC unless --kerneltz, which portwarden never gives).
const datestopLayout = "2006-01-02T15:04:05"

// restoreText is the iptables-restore input that loads a family's owned
// chains from scratch (for Render and persistence).
func restoreText(fr familyRules) string {
	var b strings.Builder
	b.WriteString("*filter\n")
	for _, c := range fr.chains {
		b.WriteString(":" + c.name + " - [0:0]\n")
	}
	for _, c := range fr.chains {
		for _, r := range c.rules {
			b.WriteString(r + "\n")
		}
	}
	b.WriteString(insertJump() + "\n")
	b.WriteString("COMMIT\n")
	return b.String()
}

// ipsetText is the `ipset restore` input that creates a family's owned
// sets with their elements (for Render and persistence).
func ipsetText(fr familyRules) string {
	var b strings.Builder
	for _, s := range fr.sets {
		fam := "inet"
		if s.fam == ipv6 {
			fam = "inet6"
		}
		opts := " counters"
		if s.comments() {
			opts += " comment"
		}
		fmt.Fprintf(&b, "create %s %s family %s%s maxelem %d\n", s.name, setType, fam, opts, setMaxElem)
		for _, e := range s.elems {
			b.WriteString("add " + s.name + " " + e.prefix.String())
			if e.comment != "" {
				b.WriteString(" comment " + quote(e.comment))
			}
			if e.nomatch {
				b.WriteString(" nomatch")
			}
			b.WriteString("\n")
		}
	}
	return b.String()
}

// insertJump puts the jump at the top of INPUT.
func insertJump() string {
	return "-I INPUT 1" + strings.TrimPrefix(jumpRule, "-A INPUT")
}

// validInterface accepts what the kernel accepts as an interface name and
// iptables-save prints back unchanged.
func validInterface(name string) bool {
	if name == "" || len(name) > 15 || name == "." || name == ".." {
		return false
	}
	// A trailing + is a wildcard to iptables (-i eth+ is every eth*),
	// while the model matches names whole.
	return !strings.ContainsAny(name, " \t\n\"'\\/:+*")
}
