package importer

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/portwarden/portwarden/rules"
	"go4.org/netipx"
)

// Verdict is what a rule does with a packet it matches.
type Verdict string

const (
	Accept Verdict = "accept"
	Drop   Verdict = "drop"
	Reject Verdict = "reject"
)

// Rule is one rule that decides traffic to this host, in the flat model
// every source format is parsed into.
type Rule struct {
	Origin string // where it was written: file:line, or table/chain/handle
	Text   string // the rule as written, for the report

	Family   int            // 0: both, 4 or 6
	Protocol rules.Protocol // "": any protocol
	Ports    []rules.PortRange
	// Sources is nil for any source; otherwise the addresses the rule
	// matches (already complemented for a negated match).
	Sources *netipx.IPSet
	// Group names the set the sources came from (an ipset, an nft named
	// set, a firewalld zone), "" when written inline.
	Group string
	// Loopback: the rule matches only traffic arriving on lo.
	Loopback bool
	Comment  string
	Verdict  Verdict

	// famSets caches the sources of each family (index 0: IPv4, 1:
	// IPv6): Plan asks for them once per port range.
	famSets [2]*netipx.IPSet
}

// sources is the part of the rule's sources in one family.
func (r *Rule) sources(fam int) *netipx.IPSet {
	i := 0
	if fam == 6 {
		i = 1
	}
	if r.famSets[i] == nil {
		r.famSets[i] = familySet(r.Sources, fam)
	}
	return r.famSets[i]
}

// Fallthrough is what happens to a packet of one family no rule decides.
type Fallthrough struct {
	Verdict Verdict
	Origin  string
}

// Item is one line of the import report.
type Item struct {
	Origin string `json:"origin"`
	Rule   string `json:"rule,omitempty"`
	Reason string `json:"reason"`
}

func (it Item) String() string {
	if it.Rule == "" {
		return fmt.Sprintf("%s: %s", it.Origin, it.Reason)
	}
	return fmt.Sprintf("%s: %s\n    %s", it.Origin, it.Reason, it.Rule)
}

// Import is a parsed firewall: the flat rules and what could not be parsed
// into them.
type Import struct {
	From    string   // iptables, nftables, ufw or firewalld
	Sources []string // the files read, for the generated header
	Rules   []Rule
	// Default is the fallthrough verdict per family (4 and 6).
	Default map[int]Fallthrough
	// Groups are named address sets as written, by name.
	Groups map[string][]netip.Prefix
	// LeftOut lists what the policy does not express; Notes list
	// approximations that keep new connections' verdicts.
	LeftOut []Item
	Notes   []Item
	// Load are the commands that load the original rules into an empty
	// network namespace with the real tools, for import --check.
	Load []LoadStep

	// leftOutSources are the sources of rules left out: a check probes
	// their boundaries too, where the difference would show.
	leftOutSources []netip.Prefix
}

// LoadStep is one command with its standard input.
type LoadStep struct {
	Name  string
	Args  []string
	Stdin []byte
}

func newImport(from string) *Import {
	return &Import{From: from, Default: map[int]Fallthrough{
		4: {Verdict: Accept, Origin: "no IPv4 rules given"},
		6: {Verdict: Accept, Origin: "no IPv6 rules given"},
	}, Groups: map[string][]netip.Prefix{}}
}

func (im *Import) leftOut(origin, rule, format string, args ...any) {
	im.LeftOut = append(im.LeftOut, Item{Origin: origin, Rule: rule, Reason: fmt.Sprintf(format, args...)})
}

func (im *Import) note(origin, rule, format string, args ...any) {
	im.Notes = append(im.Notes, Item{Origin: origin, Rule: rule, Reason: fmt.Sprintf(format, args...)})
}

// Complete reports whether nothing was left out.
func (im *Import) Complete() bool { return len(im.LeftOut) == 0 }

// universe is every address of a family.
func universe(fam int) netip.Prefix {
	if fam == 4 {
		return netip.MustParsePrefix("0.0.0.0/0")
	}
	return netip.MustParsePrefix("::/0")
}

func setOf(ps ...netip.Prefix) *netipx.IPSet {
	var b netipx.IPSetBuilder
	for _, p := range ps {
		p = p.Masked()
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		b.AddPrefix(p)
	}
	s, _ := b.IPSet()
	return s
}

// familySet is the part of s (nil: everything) in one family.
func familySet(s *netipx.IPSet, fam int) *netipx.IPSet {
	var b netipx.IPSetBuilder
	if s == nil {
		b.AddPrefix(universe(fam))
	} else {
		b.AddSet(s)
		b.Intersect(setOf(universe(fam)))
	}
	out, _ := b.IPSet()
	return out
}

func (r *Rule) matchesFamily(fam int) bool {
	if r.Family != 0 && r.Family != fam {
		return false
	}
	if r.Sources != nil && len(r.sources(fam).Prefixes()) == 0 {
		return false
	}
	return true
}

// matchesPort reports whether the rule matches every port of the range
// [first, last] of protocol proto (atoms never straddle a rule's ports).
func (r *Rule) matchesPort(proto rules.Protocol, first uint16) bool {
	if r.Protocol != "" && r.Protocol != proto {
		return false
	}
	return r.Ports == nil || rules.ContainsPort(r.Ports, first)
}

// Evaluate is what the rules do with a new connection from src to
// proto/port arriving on a non-loopback interface: the model Build writes
// a policy for, used by tests to check the policy against it.
func (im *Import) Evaluate(proto rules.Protocol, port uint16, src netip.Addr) (Verdict, string) {
	src = src.Unmap()
	fam := 6
	if src.Is4() {
		fam = 4
	}
	for i := range im.Rules {
		r := &im.Rules[i]
		if r.Loopback || !r.matchesFamily(fam) || !r.matchesPort(proto, port) {
			continue
		}
		if r.Sources == nil || r.Sources.Contains(src) {
			return r.Verdict, r.Origin
		}
	}
	d := im.Default[fam]
	return d.Verdict, d.Origin
}

// Prefixes lists every prefix any rule or group mentions, so a check can
// probe their boundaries too.
func (im *Import) Prefixes() []netip.Prefix {
	var out []netip.Prefix
	for _, r := range im.Rules {
		if r.Sources != nil {
			out = append(out, r.Sources.Prefixes()...)
		}
	}
	for _, g := range im.Groups {
		out = append(out, g...)
	}
	out = append(out, im.leftOutSources...)
	slices.SortFunc(out, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
	return slices.Compact(out)
}
