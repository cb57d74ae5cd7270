package nftables

import (
	"bytes"
	"cmp"
	"slices"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/portwarden/portwarden/rules"
)

// writeTransition queues, on bt, every message that turns the kernel state
// now into want. Nothing is sent until bt.send, and the kernel applies the
// batch as one transaction. It returns what every owned set will hold.
//
// Order matters inside the batch: the base chain is flushed before chains
// it jumps to are deleted, sets exist before rules refer to them, and the
// jumps are written last, after the chains they target are complete.
func writeTransition(bt *batch, now *snapshot, want *rules.Ruleset, diff rules.Diff) (map[string][]interval, error) {
	c := bt.lib
	table := now.table
	if table == nil {
		table = c.AddTable(&nftables.Table{Name: tableName, Family: nftables.TableFamilyINet})
		// The set comment does not survive a netlink read with this library;
		// an element comment does, so the marker is one commented element.
		marker := &nftables.Set{Table: table, Name: markerSetName, KeyType: nftables.TypeInetService, Comment: markerComment}
		if err := c.AddSet(marker, []nftables.SetElement{{Key: []byte{0, 0}, Comment: markerComment}}); err != nil {
			return nil, err
		}
	}
	have := now.ruleset
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
	// A set that must be made anew (damaged, or of another type) cannot
	// be deleted while a rule refers to it: the rules that do are flushed
	// first in the batch and written again.
	for i := range want.Exposures {
		e := &want.Exposures[i]
		for role, set := range newExposureSets(table, e.Name) {
			if existing := now.sets[set.Name]; existing != nil && (now.damagedSets[set.Name] || !sameSetType(existing, set)) {
				rebuild[e.Name] = true
				if role == rolePorts || role == roleIfaces || role == roleDst4 || role == roleDst6 {
					rebuildBase = true
				}
			}
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
			for _, role := range ownedRoles() {
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

	flushed := map[string]bool{}
	for name := range rebuild {
		if chain := chainName(name); want.Exposure(name) != nil && now.chains[chain] != nil {
			c.FlushChain(&nftables.Chain{Name: chain, Table: table})
			flushed[chain] = true
		}
	}

	// Sets: created when missing, edited element by element otherwise.
	content := map[string][]interval{}
	allSets := map[string]exposureSets{}
	for i := range want.Exposures {
		e := &want.Exposures[i]
		sets := newExposureSets(table, e.Name)
		allSets[e.Name] = sets
		changed := changedRoles(diff, e.Name)
		for _, role := range setRoles {
			name := sets[role].Name
			if existing := now.sets[name]; !changed[role] && existing != nil && !now.damagedSets[name] && sameSetType(existing, sets[role]) {
				// The model says this set keeps its content: nothing to write.
				if ivs, ok := now.content[name]; ok {
					content[name] = ivs // what the kernel holds, exactly
					continue
				}
				if now.lazy {
					continue // the written snapshot derives it, as now does
				}
			}
			if ps, ok := rolePrefixes(e, role); ok {
				// Prefix sets are written from the prefix lists (new ones a
				// message at a time, ones the model describes on both sides
				// by their difference); the written snapshot derives their
				// content.
				recreated, err := recreateSet(bt, now, sets[role])
				if err != nil {
					return nil, err
				}
				if recreated {
					fillFromPrefixes(bt, sets[role], ps)
					continue
				}
				if removed, added, ok := prefixEdit(now, e, name, role); ok {
					editSet(bt, sets[role], removed, added)
					continue
				}
			}
			ivs := wantedIntervals(e, role)
			content[name] = ivs
			if err := syncSet(bt, now, sets[role], ivs); err != nil {
				return nil, err
			}
		}
		// Seen sets keep what the packet path recorded across applies;
		// only a missing one or one of another type is (re)created.
		for _, role := range seenRoles {
			set := sets[role]
			if existing := now.sets[set.Name]; existing == nil || !sameSetType(existing, set) {
				if existing != nil {
					c.DelSet(existing)
				}
				if err := c.AddSet(set, nil); err != nil {
					return nil, err
				}
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
		switch {
		case flushed[chain.Name]:
		case now.chains[chain.Name] != nil:
			c.FlushChain(chain)
		default:
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
	return content, nil
}

// changedRoles tells which sets of an exposure the diff touches; the
// others keep their contents, which need not be computed again.
func changedRoles(diff rules.Diff, exposure string) map[string]bool {
	for _, d := range diff.Exposures {
		if d.Name != exposure {
			continue
		}
		if d.Action != rules.Update {
			out := map[string]bool{}
			for _, role := range setRoles {
				out[role] = true
			}
			return out
		}
		out := map[string]bool{
			rolePorts:  len(d.Ports.Added)+len(d.Ports.Removed) > 0,
			roleIfaces: slices.ContainsFunc(d.Attributes, func(a rules.AttributeChange) bool { return a.Name == "interfaces" }),
		}
		for _, set := range []struct {
			v4, v6 string
			diff   rules.PrefixDiff
		}{{roleDst4, roleDst6, d.Destinations}, {roleDeny4, roleDeny6, d.Deny}, {roleAllow4, roleAllow6, d.Allow}} {
			for _, p := range append(slices.Clip(set.diff.Added), set.diff.Removed...) {
				if p.Addr().Is4() {
					out[set.v4] = true
				} else {
					out[set.v6] = true
				}
			}
		}
		for _, g := range append(slices.Clip(d.Expiring.Added), d.Expiring.Removed...) {
			if g.Source.Addr().Is4() {
				out[roleGrant4] = true
			} else {
				out[roleGrant6] = true
			}
		}
		return out
	}
	return nil
}

func exposureName(chain string) string {
	name, _ := exposureOfChain(chain)
	return name
}

func wantedSet(want *rules.Ruleset, set string) bool {
	for _, e := range want.Exposures {
		for _, role := range ownedRoles() {
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
func syncSet(bt *batch, now *snapshot, set *nftables.Set, want []interval) error {
	if recreated, err := recreateSet(bt, now, set); err != nil || recreated {
		if err != nil {
			return err
		}
		writeIntervals(bt, set, want, false)
		return nil
	}
	have, _ := now.intervals(set.Name)
	removed, added := diffIntervals(have, want)
	// A grant at or near its deadline may be gone from the kernel by the
	// time the batch arrives, and deleting a missing element fails the
	// whole batch: leave those to the kernel, which removes them anyway.
	soon := time.Now().Add(2 * time.Second).Unix()
	removed = slices.DeleteFunc(removed, func(iv interval) bool { return iv.until != 0 && iv.until <= soon })
	editSet(bt, set, removed, added)
	return nil
}

// recreateSet creates set, empty, where it is missing, damaged or of
// another type (deleting what is there), and says whether it did.
func recreateSet(bt *batch, now *snapshot, set *nftables.Set) (bool, error) {
	existing := now.sets[set.Name]
	if existing != nil && !now.damagedSets[set.Name] && sameSetType(existing, set) {
		return false, nil
	}
	if existing != nil {
		bt.lib.DelSet(existing)
	}
	return true, bt.lib.AddSet(set, nil)
}

// editSet deletes and adds elements of an existing set.
func editSet(bt *batch, set *nftables.Set, removed, added []interval) {
	writeIntervals(bt, set, removed, true)
	writeIntervals(bt, set, added, false)
}

// writeIntervals adds (or deletes) intervals of set.
func writeIntervals(bt *batch, set *nftables.Set, ivs []interval, del bool) {
	if len(ivs) == 0 {
		return
	}
	w := bt.elements(set, del)
	for _, iv := range ivs {
		w.add(iv.first, iv.last, iv.until)
	}
	w.close()
}

// sameSetType reports whether two sets agree in what cannot change in
// place: a set with other flags, counters or timeout is recreated.
func sameSetType(a, b *nftables.Set) bool {
	return a.KeyType.Name == b.KeyType.Name && a.Interval == b.Interval && a.Counter == b.Counter &&
		a.Dynamic == b.Dynamic && a.HasTimeout == b.HasTimeout && a.Timeout == b.Timeout && a.Size == b.Size
}

// diffIntervals compares two sorted interval lists in one pass.
func diffIntervals(have, want []interval) (removed, added []interval) {
	i, j := 0, 0
	for i < len(have) || j < len(want) {
		switch {
		case j == len(want):
			removed = append(removed, have[i])
			i++
		case i == len(have):
			added = append(added, want[j])
			j++
		default:
			c := bytes.Compare(have[i].first, want[j].first)
			if c == 0 {
				c = bytes.Compare(have[i].last, want[j].last)
			}
			if c == 0 {
				c = cmp.Compare(have[i].until, want[j].until)
			}
			switch {
			case c == 0:
				i++
				j++
			case c < 0:
				removed = append(removed, have[i])
				i++
			default:
				added = append(added, want[j])
				j++
			}
		}
	}
	return removed, added
}

func asCounter(e expr.Any) *expr.Counter {
	c, _ := e.(*expr.Counter)
	return c
}
