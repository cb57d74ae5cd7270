package nftables

import (
	"bytes"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/portwarden/portwarden/internal/nfgen"
	"github.com/portwarden/portwarden/rules"
)

// snapshot is everything portwarden owns in the kernel, decoded.
type snapshot struct {
	table   *nftables.Table // nil when nothing is installed
	sets    map[string]*nftables.Set
	content map[string][]interval // set name → its intervals, sorted; see intervals
	// lazy: a set missing from content holds exactly wantedIntervals of
	// ruleset (a snapshot from the cache, or one Apply wrote), computed
	// only when asked for: most sets are unchanged by most applies.
	lazy      bool
	contentMu sync.Mutex // content fills lazily; snapshots are shared
	// canonical: every set holds exactly wantedIntervals of ruleset, so
	// the ruleset alone describes the sets and the snapshot may be cached.
	canonical bool
	chains    map[string]*nftables.Chain
	rules     map[string][]*nftables.Rule // chain name → rules in order

	ruleset *rules.Ruleset
	drift   []string
	// rebuild names exposures whose chain or jump rules differ from what
	// portwarden writes; rebuildBase says the base chain does.
	rebuild     map[string]bool
	rebuildBase bool
	cookie      uint64   // the namespace read, 0 when unknown
	gen         uint32   // its nf_tables generation before the read
	leftChains  []string // owned chains no exposure uses
	leftSets    []string // owned sets no exposure uses
	// damagedSets hold elements that do not pair into intervals (an end
	// deleted by hand): apply refills them whole instead of editing.
	damagedSets map[string]bool

	once        sync.Once // computes fingerprint once: snapshots are shared
	fingerprint string
	rulesetFP   string // ruleset.Fingerprint(), computed with fingerprint
}

func (b *Backend) read(l *link) (*snapshot, error) {
	s := &snapshot{
		sets: map[string]*nftables.Set{}, content: map[string][]interval{},
		chains: map[string]*nftables.Chain{}, rules: map[string][]*nftables.Rule{},
		ruleset: &rules.Ruleset{Exposures: []rules.Exposure{}}, rebuild: map[string]bool{},
		damagedSets: map[string]bool{},
	}
	if last := b.stamp(s); last != nil {
		return last, nil
	}
	if cached := b.loadCache(s.cookie, s.gen); cached != nil {
		b.remember(cached)
		return cached, nil
	}
	tables, err := nfgen.Tables(b.netns, byte(nftables.TableFamilyINet))
	if err != nil {
		return nil, kernelErr("list nftables tables", err)
	}
	for _, t := range tables {
		if t.Name == tableName {
			s.table = &nftables.Table{Name: t.Name, Family: nftables.TableFamilyINet}
		}
	}
	if s.table == nil {
		// Nothing installed is remembered too: plan and apply of a first
		// policy ask again, and the generation still proves it.
		if s.cookie != 0 {
			b.remember(s)
		}
		return s, nil
	}
	c, err := l.conn()
	if err != nil {
		return nil, err
	}
	sets, err := c.GetSets(s.table)
	if err != nil {
		return nil, kernelErr("list sets of table inet "+tableName, err)
	}
	for _, set := range sets {
		s.sets[set.Name] = set
	}
	withCounters, err := b.setsWithCounters(tableName)
	if err != nil {
		return nil, kernelErr("list sets of table inet "+tableName, err)
	}
	for name := range withCounters {
		if set := s.sets[name]; set != nil {
			set.Counter = true
		}
	}
	if !s.marked(c) {
		return nil, fmt.Errorf("table inet %s exists but was not made by portwarden (its marker set %q is missing): "+
			"portwarden will not adopt it; rename or delete that table (nft delete table inet %s) and apply again",
			tableName, markerSetName, tableName)
	}
	names := make([]string, 0, len(s.sets))
	for name := range s.sets {
		if name == markerSetName || isSeenSet(name) {
			continue // its contents are no part of the model
		}
		names = append(names, name)
	}
	slices.Sort(names)
	dumps, err := b.dumpSets(s.sets, names)
	if err != nil {
		return nil, err
	}
	for i, name := range names {
		set, elems := s.sets[name], dumps[i]
		if set.HasTimeout {
			s.checkGrants(name, elems)
		}
		ivs, ok := intervalsOf(set, elems)
		if set.HasTimeout {
			ivs = dropExpired(ivs, time.Now())
		}
		s.content[name] = ivs
		if !ok {
			s.damagedSets[name] = true
			s.driftf("set %s holds interval elements that do not pair up", name)
		}
	}
	chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		return nil, kernelErr("list chains", err)
	}
	for _, ch := range chains {
		if ch.Table.Name != tableName {
			continue
		}
		s.chains[ch.Name] = ch
		rs, err := c.GetRules(s.table, ch)
		if err != nil {
			return nil, kernelErr("list rules of chain "+ch.Name, err)
		}
		s.rules[ch.Name] = rs
	}
	s.decode()
	s.canonical = len(s.drift) == 0 && s.matchesModel()
	// Remember what was read only if nothing was written meanwhile.
	if gen, err := nfgen.Generation(b.netns); err == nil && s.cookie != 0 && gen == s.gen {
		b.remember(s)
		b.saveCacheLater(s)
	}
	return s, nil
}

// stamp records the namespace's cookie and generation on s, read before
// anything else, and returns the remembered snapshot when both still
// match: an unchanged generation proves nothing was written since.
func (b *Backend) stamp(s *snapshot) *snapshot {
	cookie, err1 := nfgen.Cookie(b.netns)
	gen, err2 := nfgen.Generation(b.netns)
	if err1 != nil || err2 != nil {
		return nil
	}
	s.cookie, s.gen = cookie, gen
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.last == nil || b.last.cookie != cookie || b.last.gen != gen {
		return nil
	}
	if grantExpired(b.last.ruleset) {
		return nil
	}
	return b.last
}

func (b *Backend) remember(s *snapshot) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.last = s
}

func (b *Backend) forget() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.last = nil
}

// marked reports whether the table carries portwarden's marker element.
func (s *snapshot) marked(c *nftables.Conn) bool {
	m := s.sets[markerSetName]
	if m == nil {
		return false
	}
	elems, err := c.GetSetElements(m)
	return err == nil && len(elems) == 1 && elems[0].Comment == markerComment
}

// checkGrants reports grant elements whose deadline is unknown or whose
// kernel timeout disagrees with it; apply refills the set.
func (s *snapshot) checkGrants(name string, elems []elem) {
	for _, el := range elems {
		if el.end {
			continue
		}
		from, _ := netip.AddrFromSlice(el.key)
		switch {
		case el.until == 0:
			s.driftf("set %s holds %s without a deadline (added by hand?)", name, from)
		case el.timeoutOff:
			s.driftf("set %s: the kernel's timeout of %s does not end at its deadline %s", name, from, time.Unix(el.until, 0).UTC().Format(time.RFC3339))
		default:
			continue
		}
		s.damagedSets[name] = true
		return
	}
}

// grantExpired reports whether a grant of rs has reached its deadline: the
// kernel dropped it without moving the generation, so a snapshot taken
// before (remembered, or cached by another process) no longer holds.
func grantExpired(rs *rules.Ruleset) bool {
	next := rs.NextExpiry()
	return !next.IsZero() && !next.After(time.Now())
}

// dropExpired leaves out grant intervals whose deadline has passed: the
// kernel no longer matches them, even before it deletes them.
func dropExpired(ivs []interval, now time.Time) []interval {
	return slices.DeleteFunc(ivs, func(iv interval) bool { return iv.until != 0 && iv.until <= now.Unix() })
}

func (s *snapshot) driftf(format string, args ...any) {
	s.drift = append(s.drift, fmt.Sprintf(format, args...))
}

// decode turns the owned objects into the model and checks every rule
// against what portwarden would have written for that model.
func (s *snapshot) decode() {
	base := s.chains[baseChainName]
	if base == nil {
		s.driftf("the base chain %q is missing", baseChainName)
		s.rebuildBase = true
	} else if base.Hooknum == nil || *base.Hooknum != *nftables.ChainHookInput || base.Type != nftables.ChainTypeFilter ||
		base.Priority == nil || *base.Priority != *nftables.ChainPriorityFilter || (base.Policy != nil && *base.Policy != nftables.ChainPolicyAccept) {
		s.driftf("the base chain %q is not a filter chain on hook input, priority 0, policy accept", baseChainName)
		s.rebuildBase = true
	}
	// Jump rules, grouped by exposure in the order they appear.
	jumps := map[string][]*nftables.Rule{}
	var order []string
	for _, r := range s.rules[baseChainName] {
		exposure, kind, extra, ok := parseComment(commentOf(r.UserData))
		if !ok || !strings.HasPrefix(kind, "jump") {
			s.driftf("chain %s has a rule portwarden did not write (handle %d)", baseChainName, r.Handle)
			s.rebuildBase = true
			continue
		}
		if _, seen := jumps[exposure]; !seen {
			order = append(order, exposure)
		}
		jumps[exposure] = append(jumps[exposure], r)
		_ = extra
	}
	if !slices.IsSorted(order) {
		s.driftf("the jump rules of chain %s are out of order", baseChainName)
		s.rebuildBase = true
	}
	usedChains := map[string]bool{baseChainName: true}
	usedSets := map[string]bool{markerSetName: true}
	for _, name := range order {
		_, _, extra, _ := parseComment(commentOf(jumps[name][0].UserData))
		a, err := parseAttrs(extra)
		if err != nil {
			s.driftf("the jump rule of exposure %s is damaged: %v", name, err)
			s.rebuildBase = true
			continue
		}
		usedChains[chainName(name)] = true
		for _, role := range ownedRoles() {
			usedSets[setName(name, role)] = true
		}
		e := s.exposure(name, a)
		s.ruleset.Exposures = append(s.ruleset.Exposures, e)
		s.check(&e, jumps[name])
	}
	for name := range s.chains {
		if !usedChains[name] {
			s.leftChains = append(s.leftChains, name)
			s.driftf("chain %s is not used by any exposure", name)
		}
	}
	for name := range s.sets {
		if !usedSets[name] {
			s.leftSets = append(s.leftSets, name)
			s.driftf("set %s is not used by any exposure", name)
		}
	}
	sort.Strings(s.leftChains)
	sort.Strings(s.leftSets)
	sort.Strings(s.drift)
	s.ruleset.Normalize()
}

// exposure rebuilds the model of one exposure from its attributes and the
// contents of its sets.
func (s *snapshot) exposure(name string, a attrs) rules.Exposure {
	e := rules.Exposure{Name: name, Protocol: a.protocol, Default: a.def, RejectWith: a.answer, Log: a.log, Loopback: a.loopback}
	for _, iv := range s.content[setName(name, rolePorts)] {
		e.Ports = append(e.Ports, rules.PortRange{First: uint16(iv.first[0])<<8 | uint16(iv.first[1]), Last: uint16(iv.last[0])<<8 | uint16(iv.last[1])})
	}
	if a.ifaces {
		for _, iv := range s.content[setName(name, roleIfaces)] {
			e.Interfaces = append(e.Interfaces, string(bytes.TrimRight(iv.first, "\x00")))
		}
	}
	prefixes := func(roles ...string) rules.Prefixes {
		n := 0
		for _, role := range roles {
			n += len(s.content[setName(name, role)])
		}
		// Appended in place: a slice per interval was a thousand
		// allocations at a thousand sources, in a fresh process each.
		ps := make([]netip.Prefix, 0, n)
		for _, role := range roles {
			for _, iv := range s.content[setName(name, role)] {
				ps = appendRange(ps, iv)
			}
		}
		return rules.NewPrefixes(ps...)
	}
	if a.dst {
		e.Destinations = prefixes(roleDst4, roleDst6)
	}
	e.Deny = prefixes(roleDeny4, roleDeny6)
	e.Allow = prefixes(roleAllow4, roleAllow6)
	for _, role := range []string{roleGrant4, roleGrant6} {
		for _, iv := range s.content[setName(name, role)] {
			until := time.Unix(iv.until, 0).UTC()
			for _, p := range appendRange(nil, iv) {
				e.Expiring = append(e.Expiring, rules.Grant{Source: p, Until: until})
			}
		}
	}
	return e
}

// appendRange appends the prefixes that cover iv to ps. An interval that is
// no range of addresses (a key of the wrong length, in a set someone
// recreated) adds nothing, and keeps what ps holds: netipx returns nil for
// an invalid range.
func appendRange(ps []netip.Prefix, iv interval) []netip.Prefix {
	r := iv.ipRange()
	if !r.IsValid() {
		return ps
	}
	return r.AppendPrefixes(ps)
}

// check compares the kernel's rules of one exposure with the ones
// portwarden writes for the decoded model.
func (s *snapshot) check(e *rules.Exposure, jumps []*nftables.Rule) {
	sets := newExposureSets(s.table, e.Name)
	complete := true
	for role, set := range sets {
		have := s.sets[set.Name]
		switch {
		case have == nil && isGrantRole(role) && s.sets[setName(e.Name, roleAllow4)] != nil:
			s.driftf("exposure %s was written by an older portwarden, without set %s for expiring access; apply adds it", e.Name, set.Name)
			complete = false
		case have == nil:
			s.driftf("set %s of exposure %s is missing", set.Name, e.Name)
			complete = false
		case set.Counter && !have.Counter:
			// Written before per-element counters: a set's flags cannot
			// change in place, so apply recreates it (and its chain).
			s.driftf("set %s has no per-element counters (an older portwarden made it): apply recreates it", set.Name)
		case !sameSetType(have, set):
			s.driftf("set %s of exposure %s has another type or other flags than portwarden gives it", set.Name, e.Name)
		default:
			continue
		}
		s.rebuild[e.Name] = true
	}
	if !complete {
		return
	}
	if !sameRules(jumpRules(e, sets), jumps) {
		s.driftf("the jump rules of exposure %s were changed", e.Name)
		s.rebuild[e.Name] = true
	}
	chain := chainName(e.Name)
	if s.chains[chain] == nil {
		s.driftf("chain %s of exposure %s is missing", chain, e.Name)
		s.rebuild[e.Name] = true
		return
	}
	if !sameRules(chainRules(e, sets), s.rules[chain]) {
		s.driftf("the rules of chain %s were changed (want %d rules, found %d)", chain, len(chainRules(e, sets)), len(s.rules[chain]))
		s.rebuild[e.Name] = true
	}
}

func sameRules(want []ruleSpec, got []*nftables.Rule) bool {
	if len(want) != len(got) {
		return false
	}
	for i := range want {
		if commentOf(got[i].UserData) != want[i].comment || !sameExprs(want[i].exprs, got[i].Exprs) {
			return false
		}
	}
	return true
}

// sameExprs compares expressions, ignoring what the kernel fills in on its
// own: counter values and set IDs.
func sameExprs(want, got []expr.Any) bool {
	if len(want) != len(got) {
		return false
	}
	for i := range want {
		w, g := canonical(want[i]), canonical(got[i])
		if i > 0 && loadsIfname(want[i-1]) {
			// An interface name compares equal padded or not: nft -f of
			// Render's script pads "lo" to 16 bytes, portwarden writes 4,
			// and both match exactly the interface lo.
			w, g = trimCmp(w), trimCmp(g)
		}
		if !reflect.DeepEqual(w, g) {
			return false
		}
	}
	return true
}

func loadsIfname(e expr.Any) bool {
	m, ok := e.(*expr.Meta)
	return ok && (m.Key == expr.MetaKeyIIFNAME || m.Key == expr.MetaKeyOIFNAME)
}

func trimCmp(e expr.Any) expr.Any {
	c, ok := e.(*expr.Cmp)
	if !ok {
		return e
	}
	t := *c
	t.Data = bytes.TrimRight(c.Data, "\x00")
	return &t
}

func canonical(e expr.Any) expr.Any {
	switch v := e.(type) {
	case *expr.Counter:
		return &expr.Counter{}
	case *expr.Lookup:
		c := *v
		c.SetID = 0
		return &c
	case *expr.Dynset:
		c := *v
		c.SetID = 0
		return &c
	case *expr.Log:
		c := *v
		c.Data = bytes.TrimRight(c.Data, "\x00")
		return &c
	}
	return e
}

// intervalsOf decodes kernel set elements into sorted inclusive ranges.
// ok is false when starts and ends do not alternate.
func intervalsOf(set *nftables.Set, elems []elem) (ivs []interval, ok bool) {
	byKey := func(a, b elem) int {
		if c := bytes.Compare(a.key, b.key); c != 0 {
			return c
		}
		switch {
		case a.end == b.end:
			return 0
		case a.end:
			return -1
		}
		return 1
	}
	// The kernel dumps an interval set from the top down: reversing is
	// linear, sorting is not.
	if slices.IsSortedFunc(elems, func(a, b elem) int { return byKey(b, a) }) {
		slices.Reverse(elems)
	}
	if !slices.IsSortedFunc(elems, byKey) {
		slices.SortFunc(elems, byKey)
	}
	out := make([]interval, 0, len(elems)/2+1)
	if !set.Interval {
		for _, el := range elems {
			out = append(out, interval{first: el.key, last: el.key})
		}
		return out, true
	}
	ok = true
	var start []byte
	var until int64
	for _, el := range elems {
		switch {
		case !el.end:
			if start != nil {
				// Two starts in a row: the packet path treats the first range as
				// running up to the second.
				out = append(out, interval{first: start, last: decrement(el.key), until: until})
				ok = false
			}
			start, until = el.key, el.until
		case start != nil:
			out = append(out, interval{first: start, last: decrement(el.key), until: until})
			start = nil
		case set.HasTimeout:
			// An end with no start in a grant set: the kernel stops dumping
			// an expired start before it deletes the pair, and the end it
			// leaves matches nothing.
		case len(out) > 0 || !isZero(el.key):
			ok = false // an end with no start (a leading end at 0 is harmless)
		}
	}
	if start != nil {
		top := bytes.Repeat([]byte{0xff}, len(start))
		out = append(out, interval{first: start, last: top, until: until})
	}
	return out, ok
}

func isZero(b []byte) bool { return len(bytes.Trim(b, "\x00")) == 0 }

// intervals returns what the set called name holds, computing it from the
// ruleset for a lazy snapshot; false when the snapshot does not know.
func (s *snapshot) intervals(name string) ([]interval, bool) {
	s.contentMu.Lock()
	defer s.contentMu.Unlock()
	if ivs, ok := s.content[name]; ok {
		return ivs, true
	}
	if !s.lazy {
		return nil, false
	}
	for i := range s.ruleset.Exposures {
		e := &s.ruleset.Exposures[i]
		for _, role := range setRoles {
			if setName(e.Name, role) == name {
				ivs := wantedIntervals(e, role)
				s.content[name] = ivs
				return ivs, true
			}
		}
	}
	return nil, false
}

// matchesModel reports whether every set holds exactly the intervals the
// decoded model gives. A set edited by hand into a different but
// equivalent form (one range split in two) does not: then the elements
// are not what the model would write, and a snapshot of the model alone
// (the cache) would name elements the kernel does not have.
func (s *snapshot) matchesModel() bool {
	for i := range s.ruleset.Exposures {
		e := &s.ruleset.Exposures[i]
		for _, role := range setRoles {
			have := s.content[setName(e.Name, role)]
			want := wantedIntervals(e, role)
			if len(have) != len(want) {
				return false
			}
			for j := range want {
				if !bytes.Equal(have[j].first, want[j].first) || !bytes.Equal(have[j].last, want[j].last) || have[j].until != want[j].until {
					return false
				}
			}
		}
	}
	return true
}

// isSeenSet reports whether an owned set's name is a seen set's.
func isSeenSet(name string) bool {
	for _, role := range seenRoles {
		if strings.HasSuffix(name, "-"+role) {
			return true
		}
	}
	return false
}
