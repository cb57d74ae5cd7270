package importer

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/portwarden/portwarden/rules"
	"go4.org/netipx"
)

// nftables JSON (libnftables-json(5)): `nft -j list ruleset` output.
type nftDoc struct {
	Nftables []map[string]json.RawMessage `json:"nftables"`
}

type nftChain struct {
	Family string `json:"family"`
	Table  string `json:"table"`
	Name   string `json:"name"`
	Handle int    `json:"handle"`
	Type   string `json:"type"`
	Hook   string `json:"hook"`
	Prio   any    `json:"prio"`
	Policy string `json:"policy"`

	rules   []nftRule
	reached bool
}

type nftRule struct {
	Family  string                       `json:"family"`
	Table   string                       `json:"table"`
	Chain   string                       `json:"chain"`
	Handle  int                          `json:"handle"`
	Comment string                       `json:"comment"`
	Expr    []map[string]json.RawMessage `json:"expr"`
}

type nftSet struct {
	Family string            `json:"family"`
	Table  string            `json:"table"`
	Name   string            `json:"name"`
	Type   json.RawMessage   `json:"type"`
	Flags  []string          `json:"flags"`
	Elem   []json.RawMessage `json:"elem"`
}

// ParseNftables reads `nft -j list ruleset` output. It follows the filter
// base chains on the input hook (one per address family), inlining jumps
// to regular chains. An input chain with no rules and policy accept (what
// iptables-nft leaves after `iptables -F`) changes no verdict: it is
// ignored, with a note, rather than counted as a second input chain.
func ParseNftables(files []File) (*Import, error) {
	im := newImport("nftables")
	if len(files) != 1 {
		return nil, fmt.Errorf("nftables: give one file of `nft -j list ruleset` output, not %d", len(files))
	}
	f := files[0]
	im.Sources = []string{f.Name}
	var doc nftDoc
	if err := json.Unmarshal(f.Data, &doc); err != nil {
		return nil, fmt.Errorf("%s: not nft JSON (make it with `nft -j list ruleset`): %w", f.Name, err)
	}
	p := &nftParser{im: im, file: f.Name, chains: map[string]*nftChain{}, sets: map[string]*nftSet{}}
	for i, obj := range doc.Nftables {
		for kind, raw := range obj {
			var err error
			switch kind {
			case "chain":
				var c nftChain
				if err = json.Unmarshal(raw, &c); err == nil {
					p.chains[c.key()] = &c
					p.order = append(p.order, c.key())
				}
			case "rule":
				var r nftRule
				if err = json.Unmarshal(raw, &r); err == nil {
					c := p.chains[r.Family+" "+r.Table+" "+r.Chain]
					if c == nil {
						return nil, fmt.Errorf("%s: rule %d of chain %s %s %s comes before its chain", f.Name, r.Handle, r.Family, r.Table, r.Chain)
					}
					c.rules = append(c.rules, r)
				}
			case "set":
				var s nftSet
				if err = json.Unmarshal(raw, &s); err == nil {
					p.sets[s.Family+" "+s.Table+" "+s.Name] = &s
				}
			}
			if err != nil {
				return nil, fmt.Errorf("%s: object %d (%s): %w", f.Name, i, kind, err)
			}
		}
	}
	p.run()
	im.Load = []LoadStep{{Name: "nft", Args: []string{"-j", "-f", "-"}, Stdin: f.Data}}
	return im, nil
}

func (c *nftChain) key() string { return c.Family + " " + c.Table + " " + c.Name }

func (c *nftChain) prio() int {
	switch v := c.Prio.(type) {
	case float64:
		return int(v)
	case string:
		if v == "filter" {
			return 0
		}
		n, _ := strconv.Atoi(v)
		return n
	}
	return 0
}

// neutral reports whether a filter base chain can change no verdict: no
// rules and policy accept (nft's default when none is given). An accept
// ends only its own chain; the packet still passes every other base chain
// on the hook, whatever the priorities. A drop policy or any rule, even
// one that only counts, makes the chain count.
func (c *nftChain) neutral() bool {
	return c.Hook != "" && len(c.rules) == 0 && (c.Policy == "accept" || c.Policy == "")
}

func famsOf(family string) []int {
	switch family {
	case "inet":
		return []int{4, 6}
	case "ip":
		return []int{4}
	case "ip6":
		return []int{6}
	}
	return nil
}

type nftParser struct {
	im     *Import
	file   string
	chains map[string]*nftChain
	sets   map[string]*nftSet
	order  []string
}

func (p *nftParser) origin(r nftRule) string {
	return fmt.Sprintf("%s: %s %s %s handle %d", p.file, r.Family, r.Table, r.Chain, r.Handle)
}

func (p *nftParser) run() {
	var bases []*nftChain
	for _, k := range p.order {
		c := p.chains[k]
		if c.Hook == "input" && c.Type == "filter" && len(famsOf(c.Family)) > 0 {
			if c.neutral() {
				// What iptables-nft leaves behind (iptables -F, a
				// package's install): it is not a second input chain.
				c.reached = true
				p.im.note(fmt.Sprintf("%s: %s", p.file, c.key()), "", "ignored: the empty input chain of table %s %s (policy accept, no rules): a packet it accepts still goes through the other input chains, so it changes no verdict", c.Family, c.Table)
				continue
			}
			bases = append(bases, c)
		}
	}
	sort.SliceStable(bases, func(i, j int) bool { return bases[i].prio() < bases[j].prio() })
	covered := map[int]bool{}
	for _, c := range bases {
		fams := famsOf(c.Family)
		if slices.ContainsFunc(fams, func(f int) bool { return covered[f] }) {
			// A packet must pass every input chain; a policy is one.
			continue
		}
		c.reached = true
		for _, f := range fams {
			covered[f] = true
			v := Accept
			if c.Policy == "drop" {
				v = Drop
			}
			p.im.Default[f] = Fallthrough{Verdict: v, Origin: fmt.Sprintf("%s: %s policy %s", p.file, c.key(), c.Policy)}
		}
		p.walk(c, nil, 0, fams)
	}
	reachedFrom := p.reachingBases()
	for _, k := range p.order {
		c := p.chains[k]
		if c.reached || len(c.rules) == 0 && c.Hook == "" {
			continue
		}
		if len(c.rules) == 0 && c.Policy != "drop" {
			continue
		}
		why := "it is not reached from the input chain imported"
		switch {
		case c.Hook == "" && len(reachedFrom[c]) > 0:
			var imported, others []string
			for _, b := range reachedFrom[c] {
				if b.reached {
					imported = append(imported, b.key())
				} else {
					others = append(others, b.key())
				}
			}
			why = "it is reached from " + strings.Join(others, ", ") + ", which is not imported"
			if len(others) == 0 {
				// The input chain imported leads here only through a
				// jump the import left out (a goto, a verdict map, a
				// jump in a rule it could not convert, or one nested
				// too deep), reported where it stands.
				why = "the jump or goto to it from " + strings.Join(imported, ", ") + " was not imported (see above)"
			}
		case c.Hook == "input" && c.Type == "filter":
			why = "a second input chain (a packet must pass both; a policy is one chain)"
		case c.Hook != "":
			reach, known := hookReach(c)
			switch {
			case !known:
				why = "a policy decides only traffic to this host (hook input)"
			case reach == "" && len(c.rules) == 0:
				// A drop policy that sees no packet of an inbound
				// connection changes nothing the policy decides; as the
				// iptables import says nothing of FORWARD's policy.
				continue
			case c.Type == "nat":
				why = "a policy decides only who reaches this host's ports; nat stays the administrator's"
				if reach != "" {
					why = "it sees " + reach + " and can redirect or drop it; a policy does neither"
				}
			case reach == "":
				why = "a policy decides only traffic to this host"
			case c.Policy == "drop":
				why = "it drops " + reach + dropUnless(len(c.rules)) + "; the imported policy does not, so it opens connections the original refused"
			default:
				why = "its rules see " + reach + " and can drop it; the imported policy does not"
			}
		}
		p.im.leftOut(fmt.Sprintf("%s: %s", p.file, c.key()), "", "chain (%d rule(s), policy %s) not imported: %s", len(c.rules), orDash(c.Policy), why)
	}
}

// hookReach says which packets of inbound connections to this host a
// base chain on a hook other than input sees, "" when none, as dropReach
// does for iptables' built-in chains: prerouting (and a netdev ingress)
// sees the packets to this host, output and postrouting the replies it
// sends (and a netdev egress), forward only packets routed through it;
// a nat chain sees a connection's first packet only, so never a reply.
// (nat's output sees the first packet of a connection this host makes to
// itself, which a policy decides with loopback; import leaves that out,
// as the iptables import does.) known is false for a family or hook this
// reasoning does not cover (bridge, arp).
func hookReach(c *nftChain) (reach string, known bool) {
	switch c.Family {
	case "inet", "ip", "ip6", "netdev":
	default:
		return "", false
	}
	switch {
	case c.Hook == "forward":
		return "", true
	case c.Type == "nat" && (c.Hook == "prerouting" || c.Hook == "input"):
		return "the first packet of every connection to this host", true
	case c.Type == "nat":
		return "", true
	case c.Hook == "prerouting" || c.Hook == "ingress":
		return "every packet to this host before the input chain", true
	case c.Hook == "output" || c.Hook == "postrouting" || c.Hook == "egress":
		return "every packet this host sends (the replies to inbound connections too)", true
	}
	return "", false
}

// reachingBases maps each chain to the base chains whose jumps and gotos
// lead to it, in the order of the ruleset.
func (p *nftParser) reachingBases() map[*nftChain][]*nftChain {
	from := map[*nftChain][]*nftChain{}
	for _, k := range p.order {
		base := p.chains[k]
		if base.Hook == "" {
			continue
		}
		seen := map[*nftChain]bool{base: true} // ends cycles
		for todo := []*nftChain{base}; len(todo) > 0; {
			c := todo[len(todo)-1]
			todo = todo[:len(todo)-1]
			for _, t := range p.jumpTargets(c) {
				if !seen[t] {
					seen[t] = true
					from[t] = append(from[t], base)
					todo = append(todo, t)
				}
			}
		}
	}
	return from
}

// jumpTargets are the chains of c's table that its rules jump or go to,
// wherever the verdict stands: a statement of its own or inside a verdict
// map.
func (p *nftParser) jumpTargets(c *nftChain) []*nftChain {
	var names []string
	var find func(v any)
	find = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for _, kind := range []string{"jump", "goto"} {
				if j, ok := v[kind].(map[string]any); ok {
					if t, ok := j["target"].(string); ok {
						names = append(names, t)
					}
				}
			}
			for _, x := range v {
				find(x)
			}
		case []any:
			for _, x := range v {
				find(x)
			}
		}
	}
	for _, r := range c.rules {
		for _, e := range r.Expr {
			for kind, raw := range e {
				var v any
				if json.Unmarshal(raw, &v) == nil {
					find(map[string]any{kind: v})
				}
			}
		}
	}
	var out []*nftChain
	for _, name := range names {
		if t := p.chains[c.Family+" "+c.Table+" "+name]; t != nil {
			out = append(out, t)
		}
	}
	return out
}

// dropUnless qualifies a drop policy by the rules before it.
func dropUnless(rules int) string {
	if rules == 0 {
		return ""
	}
	return fmt.Sprintf(" that its %d rule(s) do not accept", rules)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func (p *nftParser) walk(c *nftChain, via *Rule, depth int, fams []int) {
	c.reached = true
	for i, nr := range c.rules {
		origin := p.origin(nr)
		if via != nil {
			origin += " (via " + via.Origin + ")"
		}
		text := renderNft(nr.Expr)
		r, target, problems, notes := p.convert(nr, fams)
		r.Origin, r.Text = origin, text
		if len(problems) > 0 {
			p.im.leftOut(origin, text, "not imported: %s", strings.Join(problems, "; "))
			if r.Sources != nil {
				p.im.leftOutSources = append(p.im.leftOutSources, r.Sources.Prefixes()...)
			}
			continue
		}
		rule := r
		if via != nil {
			var ok bool
			if rule, ok = conjoin(*via, r); !ok {
				continue
			}
		}
		for _, n := range notes {
			if n == logNote {
				p.im.leftOut(origin, text, "log statement not imported (portwarden logs refused packets with log = true); the rule's verdict is imported")
				continue
			}
			p.im.note(origin, text, "%s", n)
		}
		switch target {
		case "accept", "drop", "reject":
			rule.Verdict = Verdict(target)
			p.im.Rules = append(p.im.Rules, rule)
		case "return":
			if i != len(c.rules)-1 || !isUnconditional(r) {
				p.im.leftOut(origin, text, "not imported: a conditional return")
			}
		case "":
		default:
			name := strings.TrimPrefix(target, "jump ")
			sub := p.chains[c.Family+" "+c.Table+" "+name]
			switch {
			case !strings.HasPrefix(target, "jump "):
				p.im.leftOut(origin, text, "not imported: %s", target)
			case sub == nil:
				p.im.leftOut(origin, text, "not imported: jump to %s, which is not in the ruleset", name)
			case depth >= maxJumpDepth:
				p.im.leftOut(origin, text, "not imported: jumps nest deeper than %d chains", maxJumpDepth)
			default:
				p.walk(sub, &rule, depth+1, fams)
			}
		}
	}
}

// convert reads one rule's expressions into the flat model; target is
// accept, drop, reject, return, "jump NAME", another verdict, or "" for a
// rule that only counts or logs.
func (p *nftParser) convert(nr nftRule, fams []int) (r Rule, target string, problems, notes []string) {
	r.Comment = nr.Comment
	if len(fams) == 1 {
		r.Family = fams[0]
	}
	bad := func(format string, a ...any) { problems = append(problems, fmt.Sprintf(format, a...)) }
	logged := false
	for _, e := range nr.Expr {
		for kind, raw := range e {
			switch kind {
			case "match":
				p.match(&r, raw, bad, &notes)
			case "counter":
			case "log":
				logged = true
			case "accept", "drop", "return":
				target = kind
			case "reject":
				target = "reject"
				var rj struct {
					Type string `json:"type"`
					Expr string `json:"expr"`
				}
				json.Unmarshal(raw, &rj)
				if rj.Expr != "admin-prohibited" {
					with := strings.TrimSpace(rj.Type + " " + rj.Expr)
					if with == "" {
						with = "icmp port-unreachable"
					}
					notes = append(notes, fmt.Sprintf("rejects with %s; portwarden's reject answers ICMP administratively prohibited (both refuse)", with))
				}
			case "jump", "goto":
				var j struct {
					Target string `json:"target"`
				}
				json.Unmarshal(raw, &j)
				if kind == "goto" {
					bad("goto %s", j.Target)
				}
				target = kind + " " + j.Target
			default:
				bad("%s", kind)
			}
		}
	}
	if logged && len(problems) == 0 {
		// The verdict is imported; the logging is reported by walk.
		problems = nil
		notes = append(notes, logNote)
	}
	return r, target, problems, notes
}

// logNote marks a rule whose log statement walk reports as left out.
const logNote = "\x00log"

func (p *nftParser) match(r *Rule, raw json.RawMessage, bad func(string, ...any), notes *[]string) {
	var m struct {
		Op    string          `json:"op"`
		Left  json.RawMessage `json:"left"`
		Right json.RawMessage `json:"right"`
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		bad("match: %v", err)
		return
	}
	var left struct {
		Payload *struct{ Protocol, Field string } `json:"payload"`
		Meta    *struct{ Key string }             `json:"meta"`
		Ct      *struct{ Key string }             `json:"ct"`
	}
	json.Unmarshal(m.Left, &left)
	var right any
	json.Unmarshal(m.Right, &right)
	neg := m.Op == "!="
	if m.Op != "==" && m.Op != "!=" && m.Op != "in" {
		bad("match with operator %s", m.Op)
		return
	}
	switch {
	case left.Payload != nil && (left.Payload.Protocol == "ip" || left.Payload.Protocol == "ip6") && left.Payload.Field == "saddr":
		fam := 4
		if left.Payload.Protocol == "ip6" {
			fam = 6
		}
		r.Family = fam
		ps, group, err := p.addrs(right, r)
		if err != nil {
			bad("%s saddr: %v", left.Payload.Protocol, err)
			return
		}
		s := setOf(ps...)
		if neg {
			var b netipx.IPSetBuilder
			b.AddPrefix(universe(fam))
			b.RemoveSet(s)
			s, _ = b.IPSet()
			group = ""
		}
		r.Sources = intersect(r.Sources, s)
		if group != "" {
			r.Group = group
		}
	case left.Payload != nil && (left.Payload.Protocol == "tcp" || left.Payload.Protocol == "udp") && left.Payload.Field == "dport":
		if neg {
			bad("%s dport != (negated ports)", left.Payload.Protocol)
			return
		}
		ports, err := p.ports(right)
		if err != nil {
			bad("%s dport: %v", left.Payload.Protocol, err)
			return
		}
		r.Protocol = rules.Protocol(left.Payload.Protocol)
		r.Ports = ports
	case left.Payload != nil:
		bad("%s %s", left.Payload.Protocol, left.Payload.Field)
	case left.Meta != nil && (left.Meta.Key == "l4proto" || left.Meta.Key == "protocol" || left.Meta.Key == "nexthdr"):
		s, ok := right.(string)
		if ok && !neg && (s == "tcp" || s == "udp") {
			r.Protocol = rules.Protocol(s)
			return
		}
		bad("protocol %s (a policy manages TCP and UDP ports)", renderValue(right))
	case left.Meta != nil && left.Meta.Key == "nfproto":
		switch right {
		case "ipv4":
			r.Family = 4
		case "ipv6":
			r.Family = 6
		default:
			bad("meta nfproto %s", renderValue(right))
		}
	case left.Meta != nil && (left.Meta.Key == "iif" || left.Meta.Key == "iifname"):
		if right == "lo" && !neg {
			r.Loopback = true
			return
		}
		bad("input interface %s", renderValue(right))
	case left.Ct != nil && left.Ct.Key == "state":
		var states []string
		switch v := right.(type) {
		case string:
			states = []string{v}
		case []any:
			for _, s := range v {
				states = append(states, fmt.Sprint(s))
			}
		}
		ipr := &ipRule{}
		(&saveParser{}).states(ipr, strings.Join(states, ","), neg)
		for _, u := range ipr.unsupported {
			bad("%s", u)
		}
		*notes = append(*notes, ipr.notes...)
	default:
		bad("match on %s", strings.TrimSpace(string(m.Left)))
	}
}

// addrs reads an address match's right side: an address, a prefix, a
// range, an anonymous set of those, or @named set (returned as group).
func (p *nftParser) addrs(v any, r *Rule) ([]netip.Prefix, string, error) {
	switch x := v.(type) {
	case string:
		if name, ok := strings.CutPrefix(x, "@"); ok {
			return p.namedSet(name, r)
		}
		ps, err := parseAddrs(x)
		return ps, "", err
	case map[string]any:
		if pre, ok := x["prefix"].(map[string]any); ok {
			a, err := netip.ParseAddr(fmt.Sprint(pre["addr"]))
			if err != nil {
				return nil, "", err
			}
			bits, _ := pre["len"].(float64)
			return []netip.Prefix{netip.PrefixFrom(a, int(bits)).Masked()}, "", nil
		}
		if rg, ok := x["range"].([]any); ok && len(rg) == 2 {
			ps, err := parseAddrs(fmt.Sprintf("%v-%v", rg[0], rg[1]))
			return ps, "", err
		}
		if el, ok := x["elem"].(map[string]any); ok {
			return p.addrs(el["val"], r)
		}
		if set, ok := x["set"]; ok {
			return p.addrs(set, r)
		}
	case []any:
		var out []netip.Prefix
		for _, e := range x {
			ps, _, err := p.addrs(e, r)
			if err != nil {
				return nil, "", err
			}
			out = append(out, ps...)
		}
		return out, "", nil
	}
	return nil, "", fmt.Errorf("cannot read %s as addresses", renderValue(v))
}

func (p *nftParser) namedSet(name string, r *Rule) ([]netip.Prefix, string, error) {
	fam, table := "", ""
	// The rule's table holds the set; the walk knows it only through the
	// origin, so look the set up by name among the tables.
	for _, s := range p.sets {
		if s.Name == name {
			fam, table = s.Family, s.Table
			break
		}
	}
	s := p.sets[fam+" "+table+" "+name]
	if s == nil {
		return nil, "", fmt.Errorf("set @%s is not in the ruleset", name)
	}
	var typ string
	json.Unmarshal(s.Type, &typ)
	if typ != "ipv4_addr" && typ != "ipv6_addr" {
		return nil, "", fmt.Errorf("set @%s holds %s, not addresses", name, strings.TrimSpace(string(s.Type)))
	}
	if slices.Contains(s.Flags, "dynamic") || slices.Contains(s.Flags, "timeout") {
		return nil, "", fmt.Errorf("set @%s is dynamic: its members change at run time", name)
	}
	var out []netip.Prefix
	for _, raw := range s.Elem {
		var v any
		json.Unmarshal(raw, &v)
		ps, _, err := p.addrs(v, r)
		if err != nil {
			return nil, "", fmt.Errorf("set @%s: %w", name, err)
		}
		out = append(out, ps...)
	}
	group := identifier(name)
	p.im.Groups[group] = out
	return out, group, nil
}

// ports reads a port match's right side, resolving a named set of
// ports (type inet_service).
func (p *nftParser) ports(v any) ([]rules.PortRange, error) {
	name, ok := v.(string)
	if !ok || !strings.HasPrefix(name, "@") {
		return nftPorts(v)
	}
	name = name[1:]
	for _, s := range p.sets {
		if s.Name != name {
			continue
		}
		var typ string
		json.Unmarshal(s.Type, &typ)
		if typ != "inet_service" || slices.Contains(s.Flags, "dynamic") || slices.Contains(s.Flags, "timeout") {
			return nil, fmt.Errorf("set @%s is not a fixed set of ports", name)
		}
		var elems []any
		for _, raw := range s.Elem {
			var e any
			json.Unmarshal(raw, &e)
			if m, ok := e.(map[string]any); ok && m["elem"] != nil {
				e = m["elem"].(map[string]any)["val"]
			}
			elems = append(elems, e)
		}
		return nftPorts(elems)
	}
	return nil, fmt.Errorf("set @%s is not in the ruleset", name)
}

// nftPorts reads a port match's right side: a number, a range, or an
// anonymous set of them.
func nftPorts(v any) ([]rules.PortRange, error) {
	switch x := v.(type) {
	case float64:
		if x < 1 || x > 65535 {
			return nil, fmt.Errorf("port %v out of range", x)
		}
		return []rules.PortRange{{First: uint16(x), Last: uint16(x)}}, nil
	case map[string]any:
		if rg, ok := x["range"].([]any); ok && len(rg) == 2 {
			a, aok := rg[0].(float64)
			b, bok := rg[1].(float64)
			if !aok || !bok || a < 1 || b > 65535 || a > b {
				return nil, fmt.Errorf("port range %s", renderValue(v))
			}
			return []rules.PortRange{{First: uint16(a), Last: uint16(b)}}, nil
		}
		if set, ok := x["set"]; ok {
			return nftPorts(set)
		}
	case []any:
		var out []rules.PortRange
		for _, e := range x {
			ps, err := nftPorts(e)
			if err != nil {
				return nil, err
			}
			out = append(out, ps...)
		}
		return out, nil
	}
	return nil, fmt.Errorf("cannot read %s as ports (named sets of ports are not imported)", renderValue(v))
}

// renderNft writes a rule's expressions roughly as nft lists them, for
// the report and the policy's comments.
func renderNft(exprs []map[string]json.RawMessage) string {
	var parts []string
	for _, e := range exprs {
		for kind, raw := range e {
			var v any
			json.Unmarshal(raw, &v)
			switch kind {
			case "match":
				m, _ := v.(map[string]any)
				op := fmt.Sprint(m["op"])
				if op == "==" || op == "in" {
					op = ""
				} else {
					op += " "
				}
				parts = append(parts, fmt.Sprintf("%s %s%s", renderLeft(m["left"]), op, renderValue(m["right"])))
			case "accept", "drop", "return":
				parts = append(parts, kind)
			case "counter":
				parts = append(parts, "counter")
			case "reject":
				m, _ := v.(map[string]any)
				r := "reject"
				if t, _ := m["type"].(string); t != "" {
					r += " with " + t
					if e, _ := m["expr"].(string); e != "" && t != "tcp reset" {
						r += " " + e
					}
				}
				parts = append(parts, r)
			case "log":
				m, _ := v.(map[string]any)
				if p, ok := m["prefix"].(string); ok {
					parts = append(parts, fmt.Sprintf("log prefix %q", p))
				} else {
					parts = append(parts, "log")
				}
			case "limit":
				m, _ := v.(map[string]any)
				if m != nil {
					parts = append(parts, fmt.Sprintf("limit rate %s/%s", renderValue(m["rate"]), renderValue(m["per"])))
				} else {
					parts = append(parts, "limit")
				}
			default:
				if v == nil {
					parts = append(parts, kind)
				} else {
					parts = append(parts, kind+" "+renderValue(v))
				}
			}
		}
	}
	return strings.Join(parts, " ")
}

func renderLeft(v any) string {
	m, _ := v.(map[string]any)
	for k, inner := range m {
		im, _ := inner.(map[string]any)
		switch k {
		case "payload":
			return fmt.Sprintf("%v %v", im["protocol"], im["field"])
		case "meta":
			return fmt.Sprintf("meta %v", im["key"])
		case "ct":
			return fmt.Sprintf("ct %v", im["key"])
		}
	}
	return renderValue(v)
}

func renderValue(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case []any:
		var parts []string
		for _, e := range x {
			parts = append(parts, renderValue(e))
		}
		return strings.Join(parts, ",")
	case map[string]any:
		if pre, ok := x["prefix"].(map[string]any); ok {
			return fmt.Sprintf("%v/%v", pre["addr"], renderValue(pre["len"]))
		}
		if rg, ok := x["range"].([]any); ok && len(rg) == 2 {
			return renderValue(rg[0]) + "-" + renderValue(rg[1])
		}
		if set, ok := x["set"]; ok {
			return "{ " + strings.ReplaceAll(renderValue(set), ",", ", ") + " }"
		}
	}
	b, _ := json.Marshal(v)
	return string(b)
}
