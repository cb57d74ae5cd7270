package importer

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/portwarden/portwarden/rules"
	"go4.org/netipx"
)

// Exposure is one expose Build writes: ports that behave alike.
type Exposure struct {
	Name     string
	Protocol rules.Protocol
	Ports    []rules.PortRange
	Default  Verdict // Drop or Reject
	Loopback bool
	Blocks   []Block
	Origins  []string // every rule that shaped it
	// Redundant lists refusing rules left as comments: the default
	// refuses what they name, and no allow overlaps it.
	Redundant []string
}

// Block is one allow or deny block.
type Block struct {
	Kind     string // "allow" or "deny"
	Group    string // reference this address_group instead of Prefixes
	Prefixes []netip.Prefix
	Comment  string
	Origins  []string
	Texts    []string
	// Trimmed: a deny whose rule also named addresses an earlier rule
	// accepted; only the addresses it really refused are listed.
	Trimmed bool

	rules []int // the rules behind the block
}

// atom is a port range no rule boundary splits.
type atom struct {
	proto       rules.Protocol
	first, last uint16
}

// effect: rule (or the fallthrough, rule -1) decided the hit addresses of
// family fam.
type effect struct {
	rule    int
	fam     int
	verdict Verdict
	hit     *netipx.IPSet
}

// Plan evaluates the model port by port and returns the exposes a policy
// needs, in protocol and port order. It adds to LeftOut what the policy
// cannot say about those ports.
func (im *Import) Plan() []Exposure {
	var out []Exposure
	byKey := map[string]int{}
	mixed := &mixedDefaults{ports: map[[3]string][]string{}}
	for _, a := range im.atoms() {
		x, ok := im.exposureFor(a, mixed)
		if !ok {
			continue
		}
		key := x.key()
		if i, ok := byKey[key]; ok {
			out[i].Ports = append(out[i].Ports, x.Ports...)
			continue
		}
		byKey[key] = len(out)
		out = append(out, x)
	}
	for i := range out {
		out[i].Ports = mergePorts(out[i].Ports)
	}
	for _, k := range mixed.order {
		im.LeftOut = append(im.LeftOut, Item{Origin: k[0], Rule: k[1], Reason: fmt.Sprintf(
			"refuses with %s, but the expose of %s refuses with %s (an expose has one default): imported as %s there",
			mixed.verdict[k], strings.Join(mixed.ports[k], ", "), k[2], k[2])})
	}
	im.reportPortless()
	im.reportFallthrough()
	nameExposures(out)
	return out
}

// atoms splits the ports the rules name into ranges no rule splits.
func (im *Import) atoms() []atom {
	var out []atom
	for _, proto := range []rules.Protocol{rules.TCP, rules.UDP} {
		cuts := map[int]bool{}
		var covered []rules.PortRange
		for _, r := range im.Rules {
			if r.Protocol != proto || r.Ports == nil {
				continue
			}
			for _, p := range r.Ports {
				cuts[int(p.First)] = true
				cuts[int(p.Last)+1] = true
				covered = append(covered, p)
			}
		}
		points := make([]int, 0, len(cuts))
		for c := range cuts {
			points = append(points, c)
		}
		sort.Ints(points)
		for i := 0; i+1 < len(points); i++ {
			first, last := uint16(points[i]), uint16(points[i+1]-1)
			if rules.ContainsPort(covered, first) {
				out = append(out, atom{proto, first, last})
			}
		}
	}
	return out
}

func (im *Import) effects(a atom, fam int) []effect {
	var out []effect
	var rem netipx.IPSetBuilder
	rem.AddPrefix(universe(fam))
	for i := range im.Rules {
		r := &im.Rules[i]
		if r.Loopback || !r.matchesFamily(fam) || !r.matchesPort(a.proto, a.first) {
			continue
		}
		s := r.sources(fam)
		remSet, _ := rem.IPSet()
		var hb netipx.IPSetBuilder
		hb.AddSet(remSet)
		hb.Intersect(s)
		hit, _ := hb.IPSet()
		if len(hit.Prefixes()) == 0 {
			continue
		}
		out = append(out, effect{rule: i, fam: fam, verdict: r.Verdict, hit: hit})
		rem.RemoveSet(s)
	}
	if remSet, _ := rem.IPSet(); len(remSet.Prefixes()) > 0 {
		out = append(out, effect{rule: -1, fam: fam, verdict: im.Default[fam].Verdict, hit: remSet})
	}
	return out
}

func (im *Import) origin(e effect) (origin, text string) {
	if e.rule < 0 {
		return im.Default[e.fam].Origin, ""
	}
	return im.Rules[e.rule].Origin, im.Rules[e.rule].Text
}

// loopback reports whether loopback traffic to the atom is accepted.
func (im *Import) loopback(a atom) bool {
	for _, src := range []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.IPv6Loopback()} {
		fam := 6
		if src.Is4() {
			fam = 4
		}
		v := im.Default[fam].Verdict
		for i := range im.Rules {
			r := &im.Rules[i]
			if !r.matchesFamily(fam) || !r.matchesPort(a.proto, a.first) {
				continue
			}
			if r.Sources == nil || r.Sources.Contains(src) {
				v = r.Verdict
				break
			}
		}
		if v != Accept {
			return false
		}
	}
	return true
}

// mixedDefaults collects refusals whose verdict differs from their
// expose's default, one report line per rule.
type mixedDefaults struct {
	order   [][3]string // origin, rule text, the default used
	ports   map[[3]string][]string
	verdict map[[3]string]Verdict
}

func (m *mixedDefaults) add(k [3]string, v Verdict, port string) {
	if m.verdict == nil {
		m.verdict = map[[3]string]Verdict{}
	}
	if _, ok := m.ports[k]; !ok {
		m.order = append(m.order, k)
	}
	if !slices.Contains(m.ports[k], port) {
		m.ports[k] = append(m.ports[k], port)
	}
	m.verdict[k] = v
}

func (im *Import) exposureFor(a atom, mixed *mixedDefaults) (Exposure, bool) {
	effs := append(im.effects(a, 4), im.effects(a, 6)...)
	refused := map[Verdict]int{}
	for _, e := range effs {
		if e.verdict != Accept {
			refused[e.verdict]++
		}
	}
	if len(refused) == 0 {
		return Exposure{}, false // open to everyone: nothing to manage
	}
	x := Exposure{Protocol: a.proto, Ports: []rules.PortRange{{First: a.first, Last: a.last}}, Loopback: im.loopback(a)}
	x.Default = im.defaultFor(effs)
	if len(refused) > 1 {
		for _, e := range effs {
			if e.verdict != Accept && e.verdict != x.Default {
				o, t := im.origin(e)
				mixed.add([3]string{o, t, string(x.Default)}, e.verdict, fmt.Sprintf("%s/%s", a.proto, portText(a.first, a.last)))
			}
		}
	}
	im.addBlocks(&x, effs)
	for i := range x.Blocks {
		b := &x.Blocks[i]
		if b.Group != "" && im.groupCovered(a, b) {
			b.Prefixes = nil
			continue
		}
		b.Group = ""
		b.Prefixes = setOf(b.Prefixes...).Prefixes()
	}
	x.dropRedundantDenies()
	x.Origins = compactStrings(x.Origins)
	return x, true
}

// defaultFor picks an expose's one default: the verdict of the last rule
// that refuses every source (or of the chain's policy), else of the last
// refusing rule.
func (im *Import) defaultFor(effs []effect) Verdict {
	var def Verdict
	catchAll := false
	for _, e := range effs {
		if e.verdict == Accept {
			continue
		}
		isCatchAll := e.rule < 0 || im.Rules[e.rule].Sources == nil
		if def == "" || isCatchAll || !catchAll {
			def = e.verdict
			catchAll = catchAll || isCatchAll
		}
	}
	return def
}

// addBlocks writes the effects as allow and deny blocks in rule order:
// an accepting rule as written (deny beats allow, so what earlier rules
// refused stays refused), a refusing rule as written unless that would
// deny an accepted address, then only what it refused. A refusal of every
// source is the default and needs no block.
func (im *Import) addBlocks(x *Exposure, effs []effect) {
	acc := map[int]*netipx.IPSet{}
	for _, fam := range []int{4, 6} {
		var b netipx.IPSetBuilder
		for _, e := range effs {
			if e.fam == fam && e.verdict == Accept {
				b.AddSet(e.hit)
			}
		}
		acc[fam], _ = b.IPSet()
	}
	byRule := map[int]int{} // rule index -> block index
	slices.SortStableFunc(effs, func(a, b effect) int {
		ra, rb := a.rule, b.rule
		if ra < 0 {
			ra = len(im.Rules)
		}
		if rb < 0 {
			rb = len(im.Rules)
		}
		return ra - rb
	})
	for _, e := range effs {
		o, t := im.origin(e)
		x.Origins = append(x.Origins, o)
		var r *Rule
		if e.rule >= 0 {
			r = &im.Rules[e.rule]
		}
		var blk Block
		switch {
		case e.verdict == Accept && r == nil:
			blk = Block{Kind: "allow", Prefixes: []netip.Prefix{universe(e.fam)}, Comment: "what no rule decides is accepted"}
		case e.verdict == Accept && r.Sources == nil:
			blk = Block{Kind: "allow", Prefixes: []netip.Prefix{universe(e.fam)}, Comment: r.Comment}
		case e.verdict == Accept:
			blk = Block{Kind: "allow", Group: r.Group, Prefixes: r.sources(e.fam).Prefixes(), Comment: r.Comment}
		case r == nil || r.Sources == nil:
			continue // the expose's default
		default:
			blk = Block{Kind: "deny", Group: r.Group, Prefixes: r.sources(e.fam).Prefixes(), Comment: r.Comment}
			if im.overlapsAccepted(r, e.fam, acc) {
				blk = Block{Kind: "deny", Prefixes: e.hit.Prefixes(), Comment: r.Comment, Trimmed: true}
			}
		}
		blk.Origins = []string{o}
		if t != "" {
			blk.Texts = []string{t}
		}
		blk.rules = []int{e.rule}
		if i, ok := byRule[e.rule]; ok && e.rule >= 0 && x.Blocks[i].Kind == blk.Kind && x.Blocks[i].Group == blk.Group {
			x.Blocks[i].Prefixes = append(x.Blocks[i].Prefixes, blk.Prefixes...)
			x.Blocks[i].Trimmed = x.Blocks[i].Trimmed || blk.Trimmed
			continue
		}
		// The same comment, or the same rule text, in both families
		// (ufw, ip6tables beside iptables) is one block.
		if blk.Comment != "" || t != "" {
			if i := slices.IndexFunc(x.Blocks, func(b Block) bool {
				sameRule := blk.Comment != "" && b.Comment == blk.Comment || blk.Comment == "" && b.Comment == "" && slices.Contains(b.Texts, t)
				return sameRule && b.Kind == blk.Kind && b.Group == blk.Group && b.Trimmed == blk.Trimmed
			}); i >= 0 {
				b := &x.Blocks[i]
				b.Prefixes = append(b.Prefixes, blk.Prefixes...)
				b.Origins = append(b.Origins, blk.Origins...)
				b.Texts = append(b.Texts, blk.Texts...)
				b.rules = append(b.rules, blk.rules...)
				byRule[e.rule] = i
				continue
			}
		}
		byRule[e.rule] = len(x.Blocks)
		x.Blocks = append(x.Blocks, blk)
	}
}

// groupCovered reports whether a block may name its group: every rule
// that carries the group, matches these ports and accepts (for an allow)
// or refuses (for a deny) stands behind the block.
// Otherwise (a rule of the other family shadowed by an earlier one, say)
// the group would say more than the rules do, and the block lists its
// own rules' addresses.
func (im *Import) groupCovered(a atom, b *Block) bool {
	for j := range im.Rules {
		r := &im.Rules[j]
		if r.Group == b.Group && !r.Loopback && (r.Verdict == Accept) == (b.Kind == "allow") && r.matchesPort(a.proto, a.first) && !slices.Contains(b.rules, j) {
			return false
		}
	}
	return true
}

// overlapsAccepted reports whether a refusing rule, as its block would be
// written (its group's members in every family, else its own sources),
// names an address the exposure accepts: deny beats allow, so such a
// block must list only what the rule refused.
func (im *Import) overlapsAccepted(r *Rule, fam int, acc map[int]*netipx.IPSet) bool {
	if r.Group != "" {
		g := setOf(im.Groups[r.Group]...)
		for _, f := range []int{4, 6} {
			if overlaps(acc[f], g.Prefixes()) {
				return true
			}
		}
		return false
	}
	return overlaps(acc[fam], r.sources(fam).Prefixes())
}

// dropRedundantDenies turns a long deny list that no allow overlaps (a
// negated match, typically) into a comment: the default refuses those
// addresses anyway.
func (x *Exposure) dropRedundantDenies() {
	var allowed []netip.Prefix
	for _, b := range x.Blocks {
		if b.Kind == "allow" {
			if b.Group != "" {
				return // group members are not at hand here; keep every deny
			}
			allowed = append(allowed, b.Prefixes...)
		}
	}
	allowSet := setOf(allowed...)
	kept := x.Blocks[:0]
	for _, b := range x.Blocks {
		if b.Kind == "deny" && b.Group == "" && len(b.Prefixes) > 4 && !overlaps(allowSet, b.Prefixes) {
			x.Redundant = append(x.Redundant, b.Origins...)
			continue
		}
		kept = append(kept, b)
	}
	x.Blocks = kept
}

func overlaps(s *netipx.IPSet, ps []netip.Prefix) bool {
	for _, p := range ps {
		if s.OverlapsPrefix(p) {
			return true
		}
	}
	return false
}

// reportPortless says where a rule refuses sources on every port while
// what no rule decides is accepted: the policy refuses them only on the
// ports it manages.
func (im *Import) reportPortless() {
	for _, r := range im.Rules {
		if r.Ports != nil || r.Verdict == Accept || r.Sources == nil || r.Loopback {
			continue
		}
		fams := []int{4, 6}
		if r.Family != 0 {
			fams = []int{r.Family}
		}
		for _, fam := range fams {
			if im.Default[fam].Verdict == Accept && len(familySet(r.Sources, fam).Prefixes()) > 0 {
				im.leftOut(r.Origin, r.Text, "refuses these sources on every %sport; the policy refuses them only on the ports it manages", map[bool]string{true: string(r.Protocol) + " ", false: ""}[r.Protocol != ""])
				break
			}
		}
	}
}

// reportFallthrough says once per family that a refusing chain policy
// cannot be expressed for the ports no rule names.
func (im *Import) reportFallthrough() {
	byOrigin := map[string][]string{}
	var order []string
	for _, fam := range []int{4, 6} {
		d := im.Default[fam]
		if d.Verdict == Accept {
			continue
		}
		if _, ok := byOrigin[d.Origin]; !ok {
			order = append(order, d.Origin)
		}
		byOrigin[d.Origin] = append(byOrigin[d.Origin], "IPv"+strconv.Itoa(fam))
	}
	for _, o := range order {
		d := im.Default[4]
		if d.Origin != o {
			d = im.Default[6]
		}
		im.leftOut(o, "", "%s traffic no rule decides is %s; a policy manages only the ports it names and leaves every other port open (imported for the named ports only)",
			strings.Join(byOrigin[o], " and "), map[Verdict]string{Drop: "dropped", Reject: "rejected"}[d.Verdict])
	}
}

func (x *Exposure) key() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s|%s|%v", x.Protocol, x.Default, x.Loopback)
	for _, blk := range x.Blocks {
		fmt.Fprintf(&b, "|%s %s %v %q %v %v", blk.Kind, blk.Group, blk.Prefixes, blk.Comment, blk.Origins, blk.Trimmed)
	}
	return b.String()
}

func mergePorts(ps []rules.PortRange) []rules.PortRange {
	slices.SortFunc(ps, func(a, b rules.PortRange) int { return int(a.First) - int(b.First) })
	var out []rules.PortRange
	for _, p := range ps {
		if n := len(out); n > 0 && int(p.First) <= int(out[n-1].Last)+1 {
			out[n-1].Last = max(out[n-1].Last, p.Last)
			continue
		}
		out = append(out, p)
	}
	return out
}

func portText(first, last uint16) string {
	if first == last {
		return strconv.Itoa(int(first))
	}
	return fmt.Sprintf("%d-%d", first, last)
}

// nameExposures names each expose after the first comment of its blocks,
// else after its protocol and ports; names are made unique.
func nameExposures(xs []Exposure) {
	used := map[string]bool{}
	for i := range xs {
		x := &xs[i]
		name := wellKnownName(x.Protocol, x.Ports)
		if name == "" {
			parts := []string{string(x.Protocol)}
			for _, p := range x.Ports {
				parts = append(parts, strings.ReplaceAll(portText(p.First, p.Last), "-", "_"))
			}
			name = strings.Join(parts, "_")
		}
		base := name
		for n := 2; used[name]; n++ {
			name = fmt.Sprintf("%s_%d", base, n)
		}
		used[name] = true
		x.Name = name
	}
}

// wellKnown names common services so an expose reads like what it is.
var wellKnown = map[string]string{
	"tcp/21": "ftp", "tcp/22": "ssh", "tcp/23": "telnet", "tcp/25": "smtp", "tcp/27": "nscp", "udp/53": "dns", "tcp/53": "dns_tcp",
	"tcp/80": "http", "udp/123": "ntp", "tcp/143": "imap", "udp/161": "snmp", "tcp/389": "ldap", "tcp/443": "https",
	"udp/443": "quic", "tcp/587": "submission", "tcp/636": "ldaps", "tcp/993": "imaps", "tcp/3306": "mysql",
	"tcp/3389": "rdp", "tcp/5432": "postgresql", "tcp/6379": "redis", "tcp/9100": "node_exporter",
}

// wellKnownName joins the names of single ports when every port has one.
func wellKnownName(proto rules.Protocol, ports []rules.PortRange) string {
	var parts []string
	for _, p := range ports {
		name := wellKnown[fmt.Sprintf("%s/%d", proto, p.First)]
		if p.First != p.Last || name == "" {
			return ""
		}
		parts = append(parts, name)
	}
	return strings.Join(parts, "_")
}

// identifier makes s a valid HCL identifier: letters, digits, _ and -,
// starting with a letter.
func identifier(s string) string {
	var b strings.Builder
	lastUnderscore := false
	for _, r := range strings.ToLower(s) {
		ok := r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-'
		if !ok {
			if !lastUnderscore && b.Len() > 0 {
				b.WriteByte('_')
				lastUnderscore = true
			}
			continue
		}
		b.WriteRune(r)
		lastUnderscore = false
	}
	out := strings.Trim(b.String(), "_-")
	if len(out) > 40 {
		out = strings.Trim(out[:40], "_-")
	}
	if out == "" {
		return ""
	}
	if out[0] < 'a' || out[0] > 'z' {
		out = "x_" + out
	}
	return out
}

func compactStrings(ss []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, s := range ss {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}
