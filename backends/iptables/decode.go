package iptables

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/portwarden/portwarden/backends"
	"github.com/portwarden/portwarden/rules"
)

// ruleSpec is an owned rule taken apart. Only the options portwarden
// writes are understood; anything else makes the rule foreign.
type ruleSpec struct {
	src, dst   netip.Prefix
	iface      string
	proto      string
	dports     []rules.PortRange
	comment    string
	limit      string
	target     string
	rejectWith string
	logPrefix  string
	datestop   time.Time
	matchSet   string // --match-set NAME src
}

// parseRule understands the options portwarden writes, nothing more.
func parseRule(args []string) (ruleSpec, error) {
	var r ruleSpec
	for i := 0; i < len(args); i++ {
		opt := args[i]
		if opt == "!" {
			return r, fmt.Errorf("negated match")
		}
		if opt == "-m" {
			if i+1 >= len(args) {
				return r, fmt.Errorf("-m without a module")
			}
			switch args[i+1] {
			case "multiport", "comment", "limit", "time", "set":
			default:
				return r, fmt.Errorf("match module %q", args[i+1])
			}
			i++
			continue
		}
		if opt == "--match-set" {
			if i+2 >= len(args) || args[i+2] != "src" {
				return r, fmt.Errorf("--match-set without a set and src")
			}
			r.matchSet = args[i+1]
			i += 2
			continue
		}
		if i+1 >= len(args) {
			return r, fmt.Errorf("option %s without a value", opt)
		}
		val := args[i+1]
		i++
		var err error
		switch opt {
		case "-s":
			r.src, err = netip.ParsePrefix(val)
		case "-d":
			r.dst, err = netip.ParsePrefix(val)
		case "-i":
			r.iface = val
		case "-p":
			r.proto = val
		case "--dports":
			r.dports, err = parsePorts(val)
		case "--comment":
			r.comment = val
		case "--limit":
			r.limit = val
		case "-j":
			r.target = val
		case "--reject-with":
			r.rejectWith = val
		case "--log-prefix":
			r.logPrefix = val
		case "--datestop":
			r.datestop, err = time.ParseInLocation(datestopLayout, val, time.UTC)
		default:
			return r, fmt.Errorf("option %s", opt)
		}
		if err != nil {
			return r, err
		}
	}
	return r, nil
}

// parsePorts reads a multiport list ("27,100:200").
func parsePorts(s string) ([]rules.PortRange, error) {
	var out []rules.PortRange
	for _, item := range strings.Split(s, ",") {
		first, last, isRange := strings.Cut(item, ":")
		a, err := strconv.ParseUint(first, 10, 16)
		if err != nil {
			return nil, fmt.Errorf("port %q", item)
		}
		b := a
		if isRange {
			if b, err = strconv.ParseUint(last, 10, 16); err != nil {
				return nil, fmt.Errorf("port %q", item)
			}
		}
		out = append(out, rules.PortRange{First: uint16(a), Last: uint16(b)})
	}
	return out, nil
}

// splitComment reads "portwarden expose=NAME KIND".
func splitComment(c string) (name, kind string, ok bool) {
	rest, ok := strings.CutPrefix(c, commentPrefix+" expose=")
	if !ok {
		return "", "", false
	}
	escaped, kind, ok := strings.Cut(rest, " ")
	if !ok || escaped == "" || kind == "" {
		return "", "", false
	}
	name, ok = unescapeName(escaped)
	return name, kind, ok
}

// ownedFamily is what portwarden owns in one family's filter table, as
// found.
type ownedFamily struct {
	fam        family
	jumps      []savedRule // INPUT rules jumping to topChain
	jumpAtTop  bool        // the first INPUT rule is a jump to topChain
	chainOrder []string    // owned chains in the order iptables-save printed them
	chains     map[string][]savedRule
	sets       map[string]*ownedSet // owned ipset sets of this family, by name
}

func (o ownedFamily) empty() bool {
	return len(o.jumps) == 0 && len(o.chainOrder) == 0 && len(o.sets) == 0
}

// isOwnedChain tells portwarden's chains by name: PORTWARDEN, or PW-
// followed by exactly the ten upper-case hex digits exposureChain makes,
// so that another tool's "PW-..." chain is never taken for ours.
func isOwnedChain(name string) bool {
	if name == topChain {
		return true
	}
	hash, ok := strings.CutPrefix(name, exposureChainPrefix)
	if !ok || len(hash) != 10 {
		return false
	}
	for _, c := range hash {
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

// ownedOf extracts portwarden's objects from a family's filter table.
func ownedOf(fam family, t savedTable) ownedFamily {
	o := ownedFamily{fam: fam, chains: map[string][]savedRule{}}
	for i, r := range t.rules["INPUT"] {
		if jumpTarget(r.args) == topChain {
			o.jumps = append(o.jumps, r)
			if i == 0 {
				o.jumpAtTop = true
			}
		}
	}
	for _, c := range t.chains {
		if isOwnedChain(c) {
			o.chainOrder = append(o.chainOrder, c)
			o.chains[c] = t.rules[c]
		}
	}
	return o
}

// jumpTarget is a rule's -j value.
func jumpTarget(args []string) string {
	for i := 0; i+1 < len(args); i++ {
		if args[i] == "-j" {
			return args[i+1]
		}
	}
	return ""
}

// fingerprint identifies the owned objects of both families exactly (rule
// text and position, not counters).
func fingerprint(owned [2]ownedFamily) string {
	h := sha256.New()
	for _, o := range owned {
		fmt.Fprintf(h, "family %s jumpAtTop=%v\n", o.fam, o.jumpAtTop)
		for _, j := range o.jumps {
			fmt.Fprintln(h, j.line)
		}
		for _, c := range o.chainOrder {
			fmt.Fprintln(h, ":"+c)
			for _, r := range o.chains[c] {
				fmt.Fprintln(h, r.line)
			}
		}
		for _, name := range slices.Sorted(maps.Keys(o.sets)) {
			st := o.sets[name]
			fmt.Fprintf(h, "set %s %s %d counters=%v comments=%v maxelem=%d\n", name, st.typ, st.family, st.counters, st.comments, st.maxElem)
			var buf []byte
			for _, e := range st.elems {
				buf = e.prefix.AppendTo(buf[:0])
				buf = strconv.AppendQuote(append(buf, ' '), e.comment)
				buf = strconv.AppendBool(append(buf, ' '), e.nomatch)
				h.Write(append(buf, '\n'))
			}
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

// exposureBuilder gathers one exposure from rules of both families.
type exposureBuilder struct {
	e            rules.Exposure
	ports        []rules.PortRange
	ifaces       map[string]bool
	anyIface     bool
	dests        []netip.Prefix
	anyDest      bool
	deny, allow  []netip.Prefix
	grants       []rules.Grant
	matched      bool
	sawDefault   bool
	protocolSeen map[string]bool
}

// decoder turns owned objects into a Ruleset and drift sentences.
type decoder struct {
	exposures map[string]*exposureBuilder
	drift     []string
	reported  map[string]bool // "IPv4 PW-X": chains already explained by drift
	// unreferenced are the exposure chains no rule of their family's
	// topChain jumps to, judged by judgeUnreferenced once the model is
	// known.
	unreferenced []unreferencedChain
}

// unreferencedChain is an owned exposure chain nothing jumps to.
type unreferencedChain struct {
	fam   family
	chain string
	empty bool
	// marked: the chain holds its exposure's kindUnused rule.
	marked bool
}

func (d *decoder) builder(name string) *exposureBuilder {
	b := d.exposures[name]
	if b == nil {
		b = &exposureBuilder{e: rules.Exposure{Name: name}, ifaces: map[string]bool{}, protocolSeen: map[string]bool{}}
		d.exposures[name] = b
	}
	return b
}

func (d *decoder) driftf(fam family, chain, format string, args ...any) {
	d.drift = append(d.drift, fam.String()+" "+fmt.Sprintf(format, args...))
	if chain != "" {
		d.reported[fam.String()+" "+chain] = true
	}
}

// decode reads both families' owned objects back into the model.
func decode(owned [2]ownedFamily) *backends.State {
	d := &decoder{exposures: map[string]*exposureBuilder{}, reported: map[string]bool{}}
	installed := !owned[ipv4].empty() || !owned[ipv6].empty()
	for _, o := range owned {
		if o.empty() {
			if installed {
				// The other family is installed: this one's packets
				// would pass unchecked.
				d.driftf(o.fam, "", "holds none of portwarden's chains and no jump, so its packets are not checked; apply recreates them")
			}
			continue
		}
		d.decodeFamily(o)
	}
	d.decodeSets(owned)
	rs := d.ruleset()
	d.judgeUnreferenced(rs)
	d.compareRendered(rs, owned)
	// A grant past its deadline admits nobody (its time match matches no
	// more): it is no part of what the kernel enforces, as with nftables,
	// whose kernel drops such an element. Its rule, which compareRendered
	// has just found as written, stays until an apply rewrites the chain.
	rs = rs.WithoutGrantsEndedBy(time.Now())
	st := &backends.State{Installed: installed, Ruleset: rs, Drift: d.drift, Fingerprint: fingerprint(owned)}
	return st
}

func (d *decoder) decodeFamily(o ownedFamily) {
	fam := o.fam
	switch {
	case len(o.jumps) == 0:
		d.driftf(fam, "", "INPUT has no jump to %s: the owned rules are not used; apply adds it", topChain)
	case len(o.jumps) > 1:
		d.driftf(fam, "", "INPUT has %d jumps to %s instead of one; apply keeps one", len(o.jumps), topChain)
	case !o.jumpAtTop:
		d.driftf(fam, "", "the jump to %s is not the first rule of INPUT, so rules above it decide first; apply moves it to the top", topChain)
	case o.jumps[0].line != jumpRule:
		d.driftf(fam, "", "the jump to %s was changed by hand (%q); apply restores it", topChain, o.jumps[0].line)
	}
	if _, ok := o.chains[topChain]; !ok {
		d.driftf(fam, topChain, "chain %s is missing; apply recreates it", topChain)
	}
	referenced := map[string]bool{}
	for i, r := range o.chains[topChain] {
		spec, err := parseRule(r.args)
		name, kind, ok := splitComment(spec.comment)
		if err != nil || !ok || kind != kindMatch || spec.target != exposureChain(name) || spec.src.IsValid() {
			d.driftf(fam, topChain, "chain %s rule %d is not portwarden's (%s); apply removes it", topChain, i+1, r.line)
			continue
		}
		referenced[spec.target] = true
		b := d.builder(name)
		b.matched = true
		b.protocolSeen[spec.proto] = true
		b.ports = append(b.ports, spec.dports...)
		if spec.iface == "" {
			b.anyIface = true
		} else {
			b.ifaces[spec.iface] = true
		}
		if spec.dst.IsValid() {
			b.dests = append(b.dests, spec.dst)
		} else {
			b.anyDest = true
		}
	}
	for _, chain := range o.chainOrder {
		if chain == topChain {
			continue
		}
		d.decodeExposureChain(fam, chain, o.chains[chain], referenced[chain])
	}
}

func (d *decoder) decodeExposureChain(fam family, chain string, rs []savedRule, referenced bool) {
	marked := false
	for i, r := range rs {
		spec, err := parseRule(r.args)
		name, kind, ok := splitComment(spec.comment)
		if err != nil || !ok || exposureChain(name) != chain {
			d.driftf(fam, chain, "chain %s rule %d is not portwarden's (%s); apply removes it", chain, i+1, r.line)
			continue
		}
		b := d.builder(name)
		switch kind {
		case kindLoopback:
			b.e.Loopback = b.e.Loopback || (spec.iface == "lo" && spec.target == "ACCEPT")
		case kindDeny:
			d.setDefault(b, fam, chain, spec)
		case kindAllow:
			// The sources are in the set, read by decodeSets.
		case kindGrant:
			if spec.src.IsValid() && spec.target == "ACCEPT" && !spec.datestop.IsZero() {
				b.grants = append(b.grants, rules.Grant{Source: spec.src, Until: spec.datestop})
			}
		case kindLog, kindDenyLog:
			if spec.target == "LOG" {
				b.e.Log = true
			}
		case kindDefault:
			b.sawDefault = true
			d.setDefault(b, fam, chain, spec)
		case kindUnused:
			// Carries nothing of the model. Where the exposure does have
			// a match rule in this family, compareRendered reports it.
			marked = marked || spec.target == ""
		default:
			d.driftf(fam, chain, "chain %s rule %d has an unknown kind %q; apply removes it", chain, i+1, kind)
		}
	}
	if !referenced {
		d.unreferenced = append(d.unreferenced, unreferencedChain{fam: fam, chain: chain, empty: len(rs) == 0, marked: marked})
	}
}

// judgeUnreferenced reports the exposure chains nothing jumps to, except
// those portwarden leaves unused on purpose: an exposure whose
// destinations are all of the other family has no match rule in this
// family, but its chain is written all the same (it and this family's
// sets carry the sources and grants of this family, which are part of the
// model), headed by the kindUnused marker. A chain is unused on purpose
// exactly when it holds that marker and rendering the decoded exposure
// gives no match rule in its family; compareRendered then checks its rules
// like any other chain's. The marker is what the kernel says, not what is
// inferred: the decoded destinations come only from the match rules left,
// so with a family's match rules deleted by hand the decoded exposure
// would look meant for the other family alone. The exposure must have
// been matched in some family, or nothing uses it at all.
func (d *decoder) judgeUnreferenced(rs *rules.Ruleset) {
	byChain := map[string]*rules.Exposure{}
	for i := range rs.Exposures {
		byChain[exposureChain(rs.Exposures[i].Name)] = &rs.Exposures[i]
	}
	for _, u := range d.unreferenced {
		e := byChain[u.chain]
		if e != nil && u.marked && d.exposures[e.Name].matched {
			if match, err := matchRules(e, u.fam, u.chain); err == nil && len(match) == 0 {
				continue
			}
		}
		switch {
		case e == nil && u.empty:
			d.driftf(u.fam, u.chain, "chain %s is empty and unused; apply removes it", u.chain)
		case e == nil:
			// Every rule is foreign, each already reported.
		case u.empty:
			d.driftf(u.fam, u.chain, "chain %s (exposure %s) is empty and not used by %s; apply fixes it", u.chain, e.Name, topChain)
		case !u.marked:
			d.driftf(u.fam, u.chain, "chain %s (exposure %s) is not used by %s and is not marked as having no destination in this family (match rules deleted by hand?); apply fixes it", u.chain, e.Name, topChain)
		default:
			d.driftf(u.fam, u.chain, "chain %s (exposure %s) is not used by %s; apply fixes it", u.chain, e.Name, topChain)
		}
	}
}

// decodeSets reads the allow and deny sets of every exposure the rules
// name: allow is the allow set plus the deny set's elements marked as
// allowed too, deny the deny set's elements marked deny. Owned sets no
// exposure names are leftovers.
func (d *decoder) decodeSets(owned [2]ownedFamily) {
	used := map[string]bool{}
	for _, o := range owned {
		for name, b := range d.exposures {
			for _, role := range []byte{roleAllow, roleDeny} {
				set := o.sets[setName(name, o.fam, role)]
				if set == nil {
					continue
				}
				used[set.name] = true
				for _, e := range set.elems {
					switch {
					case !e.prefix.IsValid():
						d.driftf(o.fam, "ipset "+set.name, "ipset %s holds an element portwarden cannot read; apply rewrites the set", set.name)
					case role == roleAllow && e.nomatch:
						// A deny prefix cut out of the allow prefixes: the
						// deny set carries it, and compareRendered finds
						// one the policy does not give.
					case e.nomatch:
						d.driftf(o.fam, "ipset "+set.name, "ipset %s holds %s with the nomatch flag, which portwarden never writes in a deny set; apply removes it", set.name, e.prefix)
					case role == roleAllow:
						b.allow = append(b.allow, e.prefix)
					case e.comment == tagDeny:
						b.deny = append(b.deny, e.prefix)
					case e.comment == tagAllowed:
						b.allow = append(b.allow, e.prefix)
					case e.comment == tagDenyAllowed:
						b.deny = append(b.deny, e.prefix)
						b.allow = append(b.allow, e.prefix)
					default:
						d.driftf(o.fam, "ipset "+set.name, "ipset %s holds %s without portwarden's comment (added by hand?); apply removes it", set.name, e.prefix)
					}
				}
			}
		}
	}
	for _, o := range owned {
		for _, name := range slices.Sorted(maps.Keys(o.sets)) {
			if !used[name] {
				d.driftf(o.fam, "", "ipset %s is left over (no exposure uses it); apply removes it", name)
			}
		}
	}
}

// setDefault reads an exposure's default from a refusing rule.
func (d *decoder) setDefault(b *exposureBuilder, fam family, chain string, spec ruleSpec) {
	var v rules.Verdict
	switch spec.target {
	case "DROP":
		v = rules.Drop
	case "REJECT":
		v = rules.Reject
		answer := rules.ICMPPortUnreachable // iptables' own default
		for a, opts := range rejectOptions {
			if spec.rejectWith == opts[0] || spec.rejectWith == opts[1] {
				answer = a
			}
		}
		if b.e.RejectWith != "" && b.e.RejectWith != answer {
			d.driftf(fam, chain, "chain %s rejects with both %s and %s; apply makes it consistent", chain, b.e.RejectWith, answer)
		}
		b.e.RejectWith = answer
	default:
		return
	}
	if b.e.Default != "" && b.e.Default != v {
		d.driftf(fam, chain, "chain %s refuses with both drop and reject; apply makes it consistent", chain)
	}
	b.e.Default = v
}

// ruleset normalises what the builders gathered.
func (d *decoder) ruleset() *rules.Ruleset {
	rs := &rules.Ruleset{Exposures: []rules.Exposure{}}
	names := make([]string, 0, len(d.exposures))
	for n := range d.exposures {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		b := d.exposures[n]
		e := b.e
		if len(b.protocolSeen) == 1 {
			for p := range b.protocolSeen {
				e.Protocol = rules.Protocol(p)
			}
		} else if len(b.protocolSeen) > 1 {
			d.drift = append(d.drift, fmt.Sprintf("exposure %s is matched for more than one protocol; apply makes it consistent", n))
		}
		e.Ports = mergePorts(b.ports)
		if !b.anyIface {
			for i := range b.ifaces {
				e.Interfaces = append(e.Interfaces, i)
			}
			sort.Strings(e.Interfaces)
		}
		if !b.anyDest {
			e.Destinations = rules.NewPrefixes(b.dests...)
		}
		e.Deny = rules.NewPrefixes(b.deny...)
		e.Allow = rules.NewPrefixes(b.allow...)
		e.Expiring = rules.NormalizeGrants(b.grants, e.Allow)
		rs.Exposures = append(rs.Exposures, e)
	}
	return rs
}

// compareRendered reports owned chains whose rules differ from what
// portwarden would write for the decoded model (reordered, duplicated or
// half-edited rules), unless drift already explains the chain.
func (d *decoder) compareRendered(rs *rules.Ruleset, owned [2]ownedFamily) {
	for _, o := range owned {
		if o.empty() {
			continue
		}
		want, err := renderFamily(rs, o.fam, true)
		if err != nil {
			d.drift = append(d.drift, fmt.Sprintf("%s: the owned rules do not form a valid policy: %v", o.fam, err))
			continue
		}
		for _, c := range want.chains {
			if d.reported[o.fam.String()+" "+c.name] {
				continue
			}
			have, exists := o.chains[c.name]
			if !exists {
				if c.name != topChain {
					d.driftf(o.fam, c.name, "chain %s of exposure is missing; apply recreates it", c.name)
				}
				continue
			}
			if !slices.Equal(lines(have), c.rules) {
				d.driftf(o.fam, c.name, "chain %s is not as portwarden writes it (rules missing, added or reordered by hand); apply rewrites it", c.name)
			}
		}
		for _, w := range want.sets {
			have := o.sets[w.name]
			switch {
			case d.reported[o.fam.String()+" ipset "+w.name]:
			case have == nil:
				d.driftf(o.fam, "", "ipset %s is missing; apply recreates it", w.name)
			case !have.headerOK(w):
				d.driftf(o.fam, "", "ipset %s is not the set portwarden made (%s, family %d, counters %v, comments %v, maxelem %d; replaced by hand?); apply replaces it", w.name, have.typ, have.family, have.counters, have.comments, have.maxElem)
			case !sameElems(have.elems, w.elems):
				d.driftf(o.fam, "", "ipset %s holds elements portwarden would not write (added by hand, or not merged); apply rewrites them", w.name)
			}
		}
	}
}

// sameElems compares elements, counters left out.
func sameElems(a, b []setElem) bool {
	return slices.EqualFunc(a, b, func(x, y setElem) bool {
		return x.prefix == y.prefix && x.comment == y.comment && x.nomatch == y.nomatch
	})
}

func lines(rs []savedRule) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.line
	}
	return out
}

// mergePorts sorts the port ranges gathered from match rules and drops
// repeats (each range appears once per destination and interface). It
// keeps ranges as written rather than merging adjacent ones, so that
// decoding returns exactly the ranges the Ruleset had, whatever
// normalisation produced them.
func mergePorts(ps []rules.PortRange) []rules.PortRange {
	if len(ps) == 0 {
		return nil
	}
	s := slices.Clone(ps)
	slices.SortFunc(s, func(a, b rules.PortRange) int {
		if a.First != b.First {
			return int(a.First) - int(b.First)
		}
		return int(a.Last) - int(b.Last)
	})
	return slices.Compact(s)
}
