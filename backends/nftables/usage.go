package nftables

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/google/nftables"
	"github.com/portwarden/portwarden/backends"
)

var _ backends.UsageReader = (*Backend)(nil)

// Usage reads what the packet path recorded: the counter of every element
// of the exposures' admitting sets (allow4, allow6), and the sources in
// their seen sets with the time each was last admitted. Counters and seen
// sets change without moving the generation, so this always asks the
// kernel.
//
// A seen element's expiry is refreshed to the set's timeout every time its
// source is admitted anew, so it was last seen timeout minus the time it
// has left ago.
func (b *Backend) Usage(ctx context.Context) (*backends.Usage, error) {
	s, err := b.snapshot()
	if err != nil {
		return nil, err
	}
	u := &backends.Usage{Elements: []backends.ElementUse{}, Seen: []backends.SeenSource{}, LastSeenKnown: true}
	if s.table == nil {
		return u, nil
	}
	l := b.link()
	defer l.close()
	c, err := l.conn()
	if err != nil {
		return nil, err
	}
	sets, err := c.GetSets(s.table)
	if err != nil {
		return nil, kernelErr("list sets of table inet "+tableName, err)
	}
	byName := map[string]*nftables.Set{}
	for _, set := range sets {
		byName[set.Name] = set
	}
	withCounters, err := b.setsWithCounters(tableName)
	if err != nil {
		return nil, kernelErr("list sets of table inet "+tableName, err)
	}
	for _, e := range s.ruleset.Exposures {
		for _, a := range admittingSets {
			if set := byName[setName(e.Name, a.role)]; set != nil && !withCounters[set.Name] || byName[setName(e.Name, a.seen)] == nil {
				return nil, fmt.Errorf("the owned table keeps no usage records for exposure %s (an older portwarden wrote it, or it was edited): "+
					"run portwarden apply, which adds them; usage counts from then on", e.Name)
			}
		}
	}
	now := time.Now()
	for _, e := range s.ruleset.Exposures {
		for _, a := range admittingSets {
			set := byName[setName(e.Name, a.role)]
			if set == nil {
				continue
			}
			elems, uses, err := b.dumpSetUse(set)
			if err != nil {
				return nil, kernelErr("read set "+set.Name, err)
			}
			for _, iv := range usedIntervals(elems, uses, set.Interval) {
				first, _ := netip.AddrFromSlice(iv.first)
				last, _ := netip.AddrFromSlice(iv.last)
				u.Elements = append(u.Elements, backends.ElementUse{Exposure: e.Name, First: first, Last: last,
					Packets: iv.use.packets, Bytes: iv.use.bytes})
			}
		}
		// Each family's seen set is shared by its admitting sets: read once.
		for _, role := range seenRoles {
			seen := byName[setName(e.Name, role)]
			if seen == nil {
				continue
			}
			elems, uses, err := b.dumpSetUse(seen)
			if err != nil {
				return nil, kernelErr("read set "+seen.Name, err)
			}
			for i, el := range elems {
				addr, ok := netip.AddrFromSlice(el.key)
				if !ok {
					continue
				}
				timeout := uses[i].timeout
				if timeout == 0 {
					timeout = seen.Timeout
				}
				ago := max(timeout-uses[i].expires, 0)
				u.Seen = append(u.Seen, backends.SeenSource{Exposure: e.Name, Source: addr, LastSeen: now.Add(-ago).UTC().Truncate(time.Second)})
			}
		}
	}
	slices.SortFunc(u.Seen, func(a, b backends.SeenSource) int {
		if a.Exposure != b.Exposure {
			return bytes.Compare([]byte(a.Exposure), []byte(b.Exposure))
		}
		return a.Source.Compare(b.Source)
	})
	return u, nil
}

// usedInterval is an interval and the counter of its start element (the
// element a lookup finds, so the one whose counter moves).
type usedInterval struct {
	interval
	use elemUse
}

// usedIntervals pairs the start and end elements of an interval set as
// intervalsOf does, keeping each start's counter. Elements that do not
// pair (a hand edit; the plan reports it) are left out.
func usedIntervals(elems []elem, uses []elemUse, isInterval bool) []usedInterval {
	idx := make([]int, len(elems))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(i, j int) int {
		if c := bytes.Compare(elems[i].key, elems[j].key); c != 0 {
			return c
		}
		switch {
		case elems[i].end == elems[j].end:
			return 0
		case elems[i].end:
			return -1
		}
		return 1
	})
	var out []usedInterval
	start := -1
	for _, i := range idx {
		el := elems[i]
		switch {
		case !isInterval:
			out = append(out, usedInterval{interval{first: el.key, last: el.key}, uses[i]})
		case !el.end:
			start = i
		case start >= 0:
			out = append(out, usedInterval{interval{first: elems[start].key, last: decrement(el.key)}, uses[start]})
			start = -1
		}
	}
	if isInterval && start >= 0 {
		out = append(out, usedInterval{interval{first: elems[start].key, last: bytes.Repeat([]byte{0xff}, len(elems[start].key))}, uses[start]})
	}
	return out
}
