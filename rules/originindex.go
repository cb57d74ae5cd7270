package rules

import "net/netip"

// originIndex finds the first allow or deny block that names a source
// without scanning every prefix of every block, which with 100,000
// prefixes made one Decide take half a millisecond. The CIDR prefixes that
// contain an address differ only in their length, so one map lookup per
// prefix length in use finds all of them.
//
// Compile builds it; it is never changed afterwards, so copies of an
// Exposure share it safely. It is used only while Origins still has the
// length it was built for; otherwise Decide falls back to scanning.
type originIndex struct {
	origins int               // len(Origins) when built
	first   map[originKey]int // kind and masked prefix → index of the first origin listing it
	lengths [2][]int          // prefix lengths in use, per family (0: IPv4, 1: IPv6), ascending
}

type originKey struct {
	kind   string
	prefix netip.Prefix
}

func newOriginIndex(origins []Origin) *originIndex {
	idx := &originIndex{origins: len(origins), first: map[originKey]int{}}
	var used [2][129]bool
	for i, o := range origins {
		if o.Kind != OriginAllow && o.Kind != OriginDeny {
			continue
		}
		for _, p := range o.Prefixes {
			if !p.IsValid() {
				continue
			}
			p = p.Masked()
			key := originKey{o.Kind, p}
			if _, seen := idx.first[key]; !seen {
				idx.first[key] = i
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
	return idx
}

// lookup returns the index of the first origin of kind that lists a prefix
// containing src, or -1. src must be unmapped.
func (idx *originIndex) lookup(kind string, src netip.Addr) int {
	best := -1
	for _, bits := range idx.lengths[familyIndex(src)] {
		p, err := src.Prefix(bits)
		if err != nil {
			continue
		}
		if i, ok := idx.first[originKey{kind, p}]; ok && (best < 0 || i < best) {
			best = i
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
