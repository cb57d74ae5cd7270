package rules

import (
	"net/netip"
	"sync"
)

// originIndex finds the first allow or deny block that names a source
// without scanning every prefix of every block, which with 100,000
// prefixes made one Decide take half a millisecond. The CIDR prefixes that
// contain an address differ only in their length, so one map lookup per
// prefix length in use finds all of them.
//
// Compile allocates it and the first Decide fills it: apply never asks
// Decide, and with a million sources the map costs about 100 MB. Copies of
// an Exposure share the pointer, and the sync.Once makes filling it safe.
// It is used only while Origins still has the length it was built for;
// otherwise Decide falls back to scanning.
type originIndex struct {
	origins int // len(Origins) when built
	once    sync.Once
	first   map[originKey]originPos // kind and masked prefix → the first origin listing it
	lengths [2][]int                // prefix lengths in use, per family (0: IPv4, 1: IPv6), ascending
}

type originKey struct {
	kind   string
	prefix netip.Prefix
}

// originPos is an origin and the position of a prefix in its Prefixes.
type originPos struct{ origin, prefix int }

func (idx *originIndex) build(origins []Origin) {
	idx.first = map[originKey]originPos{}
	var used [2][129]bool
	for i, o := range origins {
		if o.Kind != OriginAllow && o.Kind != OriginDeny {
			continue
		}
		for j, p := range o.Prefixes {
			if !p.IsValid() {
				continue
			}
			p = p.Masked()
			key := originKey{o.Kind, p}
			if _, seen := idx.first[key]; !seen {
				idx.first[key] = originPos{i, j}
			}
			used[familyIndex(p.Addr())][p.Bits()] = true
		}
	}
	for fam := range used {
		for bits, ok := range used[fam] {
			if ok {
				idx.lengths[fam] = append(idx.lengths[fam], bits)
			}
		}
	}
}

// lookup returns the first origin of kind that lists a prefix containing
// src, and that prefix's position; origin is -1 when there is none. src
// must be unmapped.
func (idx *originIndex) lookup(origins []Origin, kind string, src netip.Addr) originPos {
	idx.once.Do(func() { idx.build(origins) })
	best := originPos{-1, -1}
	for _, bits := range idx.lengths[familyIndex(src)] {
		p, err := src.Prefix(bits)
		if err != nil {
			continue
		}
		if at, ok := idx.first[originKey{kind, p}]; ok && (best.origin < 0 || at.origin < best.origin) {
			best = at
		}
	}
	return best
}

func familyIndex(a netip.Addr) int {
	if a.Is4() {
		return 0
	}
	return 1
}
