package nftables

import (
	"sort"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/portwarden/portwarden/rules"
)

// writeTransition queues, on c, every message that turns the kernel state
// now into want. Nothing is sent until c.Flush, which the kernel applies
// as one transaction.
//
// Order matters inside the batch: the base chain is flushed before chains
// it jumps to are deleted, sets exist before rules refer to them, and the
// jumps are written last, after the chains they target are complete.
func writeTransition(c *nftables.Conn, now *snapshot, want *rules.Ruleset) error {
	table := now.table
	if table == nil {
		table = c.AddTable(&nftables.Table{Name: tableName, Family: nftables.TableFamilyINet})
		// The set comment does not survive a netlink read with this library;
		// an element comment does, so the marker is one commented element.
		marker := &nftables.Set{Table: table, Name: markerSetName, KeyType: nftables.TypeInetService, Comment: markerComment}
		if err := c.AddSet(marker, []nftables.SetElement{{Key: []byte{0, 0}, Comment: markerComment}}); err != nil {
			return err
		}
	}
	have := now.ruleset
	diff := rules.Compare(have, want)
	rebuildBase := now.rebuildBase || len(now.leftChains) > 0
	rebuild := map[string]bool{}
	for name := range now.rebuild {
		rebuild[name] = true
	}
	for _, d := range diff.Exposures {
		before, after := d.Before, d.After
		if d.Action != rules.Update || attrsOf(before) != attrsOf(after) {
			rebuild[d.Name] = true
			rebuildBase = true
		}
	}
	for name := range rebuild {
		if want.Exposure(name) != nil {
			rebuildBase = true
		}
	}

	base := &nftables.Chain{
		Name: baseChainName, Table: table, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookInput, Priority: nftables.ChainPriorityFilter,
	}
	if now.chains[baseChainName] == nil || now.rebuildBase {
		// A damaged base chain is replaced; a missing one created.
		if old := now.chains[baseChainName]; old != nil {
			c.FlushChain(old)
			c.DelChain(old)
		}
		accept := nftables.ChainPolicyAccept
		base.Policy = &accept
		c.AddChain(base)
	} else if rebuildBase {
		c.FlushChain(base)
	}

	// Exposures that go away, and leftovers nothing uses.
	for _, e := range have.Exposures {
		if want.Exposure(e.Name) == nil {
			dropChain(c, table, now, chainName(e.Name))
			for _, role := range setRoles {
				if set := now.sets[setName(e.Name, role)]; set != nil {
					c.DelSet(set)
				}
			}
		}
	}
	for _, name := range now.leftChains {
		if name != baseChainName && (want.Exposure(exposureName(name)) == nil) {
			dropChain(c, table, now, name)
		}
	}
	for _, name := range now.leftSets {
		if !wantedSet(want, name) {
			c.DelSet(now.sets[name])
		}
	}

	// Sets: created when missing, edited element by element otherwise.
	allSets := map[string]exposureSets{}
	for i := range want.Exposures {
		e := &want.Exposures[i]
		sets := newExposureSets(table, e.Name)
		allSets[e.Name] = sets
		for _, role := range setRoles {
			if err := syncSet(c, now, sets[role], wantedIntervals(e, role)); err != nil {
				return err
			}
		}
	}

	// Exposure chains, rebuilt whole when their shape changed.
	for i := range want.Exposures {
		e := &want.Exposures[i]
		if !rebuild[e.Name] {
			continue
		}
		chain := &nftables.Chain{Name: chainName(e.Name), Table: table}
		if now.chains[chain.Name] != nil {
			c.FlushChain(chain)
		} else {
			c.AddChain(chain)
		}
		for _, r := range chainRules(e, allSets[e.Name]) {
			c.AddRule(&nftables.Rule{Table: table, Chain: chain, Exprs: r.exprs, UserData: userData(r.comment)})
		}
	}

	if rebuildBase || now.chains[baseChainName] == nil || now.rebuildBase {
		for i := range want.Exposures {
			e := &want.Exposures[i]
			for _, r := range jumpRules(e, allSets[e.Name]) {
				c.AddRule(&nftables.Rule{Table: table, Chain: base, Exprs: r.exprs, UserData: userData(r.comment)})
			}
		}
	}
	return nil
}

func exposureName(chain string) string {
	name, _ := exposureOfChain(chain)
	return name
}

func wantedSet(want *rules.Ruleset, set string) bool {
	for _, e := range want.Exposures {
		for _, role := range setRoles {
			if setName(e.Name, role) == set {
				return true
			}
		}
	}
	return false
}

func dropChain(c *nftables.Conn, table *nftables.Table, now *snapshot, name string) {
	if now.chains[name] == nil {
		return
	}
	ch := &nftables.Chain{Name: name, Table: table}
	c.FlushChain(ch)
	c.DelChain(ch)
}

// syncSet makes one set hold exactly the wanted intervals, writing only
// the elements of intervals that appear or disappear.
func syncSet(c *nftables.Conn, now *snapshot, set *nftables.Set, want []interval) error {
	if existing := now.sets[set.Name]; existing == nil || now.damagedSets[set.Name] || !sameSetType(existing, set) {
		if existing != nil {
			c.DelSet(existing)
		}
		return c.AddSet(set, elements(set, want))
	}
	removed, added := diffIntervals(now.content[set.Name], want)
	if len(removed) > 0 {
		if err := c.SetDeleteElements(set, elements(set, removed)); err != nil {
			return err
		}
	}
	if len(added) > 0 {
		return c.SetAddElements(set, elements(set, added))
	}
	return nil
}

func sameSetType(a, b *nftables.Set) bool {
	return a.KeyType.Name == b.KeyType.Name && a.Interval == b.Interval
}

// diffIntervals compares two sorted interval lists.
func diffIntervals(have, want []interval) (removed, added []interval) {
	key := func(iv interval) string { return string(iv.first) + "\x00" + string(iv.last) }
	inWant := map[string]bool{}
	for _, iv := range want {
		inWant[key(iv)] = true
	}
	inHave := map[string]bool{}
	for _, iv := range have {
		inHave[key(iv)] = true
		if !inWant[key(iv)] {
			removed = append(removed, iv)
		}
	}
	for _, iv := range want {
		if !inHave[key(iv)] {
			added = append(added, iv)
		}
	}
	return removed, added
}

func sortedChainNames(s *snapshot) []string {
	names := make([]string, 0, len(s.chains))
	for n := range s.chains {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool {
		// The base chain first, then exposures by name.
		if (names[i] == baseChainName) != (names[j] == baseChainName) {
			return names[i] == baseChainName
		}
		return names[i] < names[j]
	})
	return names
}

func asCounter(e expr.Any) *expr.Counter {
	c, _ := e.(*expr.Counter)
	return c
}
