package iptables

import (
	"slices"
	"strconv"
	"strings"

	"github.com/portwarden/portwarden/rules"
)

// compare is the model diff of current and desired.
//
// It stands in for rules.Compare, which the rules package does not provide
// yet; it follows the contract in rules/diff.go (sorted by name, only
// exposures that change, both families together in prefix diffs) so that
// switching to rules.Compare changes no behaviour.
func compare(current, desired *rules.Ruleset) rules.Diff {
	diff := rules.Diff{Exposures: []rules.ExposureDiff{}}
	cur := map[string]*rules.Exposure{}
	for i := range current.Exposures {
		cur[current.Exposures[i].Name] = &current.Exposures[i]
	}
	want := map[string]*rules.Exposure{}
	var names []string
	for i := range desired.Exposures {
		want[desired.Exposures[i].Name] = &desired.Exposures[i]
		names = append(names, desired.Exposures[i].Name)
	}
	for n := range cur {
		if want[n] == nil {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	empty := &rules.Exposure{}
	for _, n := range names {
		before, after := cur[n], want[n]
		d := rules.ExposureDiff{Name: n, Before: before, After: after}
		b, a := before, after
		switch {
		case before == nil:
			d.Action, b = rules.Create, empty
		case after == nil:
			d.Action, a = rules.Delete, empty
		default:
			d.Action = rules.Update
		}
		attr := func(name, old, new string) {
			if old != new {
				d.Attributes = append(d.Attributes, rules.AttributeChange{Name: name, Old: old, New: new})
			}
		}
		attr("protocol", string(b.Protocol), string(a.Protocol))
		attr("interfaces", strings.Join(b.Interfaces, ","), strings.Join(a.Interfaces, ","))
		attr("default", string(b.Default), string(a.Default))
		attr("log", strconv.FormatBool(b.Log), strconv.FormatBool(a.Log))
		attr("loopback", strconv.FormatBool(b.Loopback), strconv.FormatBool(a.Loopback))
		d.Ports.Added, d.Ports.Removed = setDiff(b.Ports, a.Ports)
		d.Destinations = prefixDiff(b.Destinations, a.Destinations)
		d.Deny = prefixDiff(b.Deny, a.Deny)
		d.Allow = prefixDiff(b.Allow, a.Allow)
		changed := d.Action != rules.Update || len(d.Attributes) > 0 ||
			len(d.Ports.Added)+len(d.Ports.Removed) > 0 ||
			len(d.Destinations.Added)+len(d.Destinations.Removed) > 0 ||
			len(d.Deny.Added)+len(d.Deny.Removed) > 0 ||
			len(d.Allow.Added)+len(d.Allow.Removed) > 0
		if changed {
			diff.Exposures = append(diff.Exposures, d)
		}
	}
	return diff
}

func prefixDiff(b, a rules.Prefixes) rules.PrefixDiff {
	var d rules.PrefixDiff
	add4, rem4 := setDiff(b.V4, a.V4)
	add6, rem6 := setDiff(b.V6, a.V6)
	d.Added = append(add4, add6...)
	d.Removed = append(rem4, rem6...)
	return d
}

// setDiff lists what is only in after (added) and only in before (removed),
// each in its original order.
func setDiff[T comparable](before, after []T) (added, removed []T) {
	inBefore, inAfter := make(map[T]bool, len(before)), make(map[T]bool, len(after))
	for _, x := range before {
		inBefore[x] = true
	}
	for _, x := range after {
		inAfter[x] = true
	}
	for _, x := range after {
		if !inBefore[x] {
			added = append(added, x)
		}
	}
	for _, x := range before {
		if !inAfter[x] {
			removed = append(removed, x)
		}
	}
	return added, removed
}
