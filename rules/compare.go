package rules

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// Compare diffs two normalised Rulesets. Origins are ignored: they are not
// something a kernel holds.
func Compare(current, desired *Ruleset) Diff {
	d := Diff{Exposures: []ExposureDiff{}}
	var names []string
	for _, rs := range []*Ruleset{current, desired} {
		if rs == nil {
			continue
		}
		for _, e := range rs.Exposures {
			names = append(names, e.Name)
		}
	}
	slices.Sort(names)
	names = slices.Compact(names)
	for _, name := range names {
		before, after := lookup(current, name), lookup(desired, name)
		if ed, changed := compareExposure(name, before, after); changed {
			d.Exposures = append(d.Exposures, ed)
		}
	}
	return d
}

func lookup(rs *Ruleset, name string) *Exposure {
	if rs == nil {
		return nil
	}
	return rs.Exposure(name)
}

func compareExposure(name string, before, after *Exposure) (ExposureDiff, bool) {
	ed := ExposureDiff{Name: name, Before: before, After: after}
	var empty Exposure
	b, a := before, after
	switch {
	case before == nil:
		ed.Action, b = Create, &empty
	case after == nil:
		ed.Action, a = Delete, &empty
	default:
		ed.Action = Update
	}
	if ed.Action == Update {
		ed.Attributes = attributeChanges(b, a)
	}
	ed.Ports.Added, ed.Ports.Removed = diffPorts(b.Ports, a.Ports)
	ed.Destinations = diffPrefixes(b.Destinations, a.Destinations)
	ed.Deny = diffPrefixes(b.Deny, a.Deny)
	ed.Allow = diffPrefixes(b.Allow, a.Allow)
	ed.Expiring = diffGrants(b.Expiring, a.Expiring)
	changed := ed.Action != Update || len(ed.Attributes) > 0 ||
		len(ed.Ports.Added)+len(ed.Ports.Removed) > 0 ||
		!ed.Destinations.Empty() || !ed.Deny.Empty() || !ed.Allow.Empty() || !ed.Expiring.Empty()
	return ed, changed
}

func attributeChanges(b, a *Exposure) []AttributeChange {
	var out []AttributeChange
	add := func(name, old, new string) {
		if old != new {
			out = append(out, AttributeChange{Name: name, Old: old, New: new})
		}
	}
	add("protocol", string(b.Protocol), string(a.Protocol))
	add("interfaces", strings.Join(b.Interfaces, ","), strings.Join(a.Interfaces, ","))
	add("default", string(b.Default), string(a.Default))
	add("reject_with", string(canonicalRejectWith(b)), string(canonicalRejectWith(a)))
	add("log", strconv.FormatBool(b.Log), strconv.FormatBool(a.Log))
	add("loopback", strconv.FormatBool(b.Loopback), strconv.FormatBool(a.Loopback))
	return out
}

// Empty reports whether nothing is added or removed.
func (d PrefixDiff) Empty() bool { return len(d.Added)+len(d.Removed) == 0 }

func diffPrefixes(before, after Prefixes) PrefixDiff {
	var d PrefixDiff
	if before.Empty() && !after.Empty() {
		// Everything new (a cold apply): one copy of both families, where
		// appending the second to a copy of the first copied a million
		// sources twice.
		d.Added = after.All()
		return d
	}
	for _, fam := range []int{4, 6} {
		add, rem := diffSorted(before.Family(fam), after.Family(fam), func(a, b netip.Prefix) int {
			if c := a.Addr().Compare(b.Addr()); c != 0 {
				return c
			}
			return a.Bits() - b.Bits()
		})
		if fam == 4 {
			d.Added, d.Removed = add, rem // no copy
			continue
		}
		d.Added = append(d.Added, add...)
		d.Removed = append(d.Removed, rem...)
	}
	return d
}

func diffPorts(before, after []PortRange) (added, removed []PortRange) {
	return diffSorted(before, after, func(a, b PortRange) int {
		if a.First != b.First {
			return int(a.First) - int(b.First)
		}
		return int(a.Last) - int(b.Last)
	})
}

// diffSorted walks two sorted lists once: elements only in after are added,
// elements only in before removed. Linear, so 100,000-element sets diff fast.
func diffSorted[T any](before, after []T, cmp func(a, b T) int) (added, removed []T) {
	if len(before) == 0 {
		return slices.Clone(after), nil // everything new (a cold apply): no growing
	}
	if len(after) == 0 {
		return nil, slices.Clone(before)
	}
	i, j := 0, 0
	for i < len(before) || j < len(after) {
		switch {
		case j == len(after):
			removed = append(removed, before[i])
			i++
		case i == len(before):
			added = append(added, after[j])
			j++
		default:
			switch c := cmp(before[i], after[j]); {
			case c == 0:
				i++
				j++
			case c < 0:
				removed = append(removed, before[i])
				i++
			default:
				added = append(added, after[j])
				j++
			}
		}
	}
	return added, removed
}

// String formats a port range as "27" or "20-30".
func (p PortRange) String() string {
	if p.First == p.Last {
		return strconv.Itoa(int(p.First))
	}
	return fmt.Sprintf("%d-%d", p.First, p.Last)
}
