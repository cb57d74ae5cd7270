package usage

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/portwarden/portwarden/backends"
	"github.com/portwarden/portwarden/policies"
	"github.com/portwarden/portwarden/rules"
	"go4.org/netipx"
)

// Report is the usage of every allowed entry, per exposure and block.
type Report struct {
	LastSeenKnown bool   `json:"last_seen_known"`
	LastSeenWhy   string `json:"last_seen_why,omitempty"`
	// UnusedSince is the window an entry must have been seen in; 0 means
	// seen at all since the rules went in.
	UnusedSince time.Duration `json:"-"`
	// PolicyKnown is false when the blocks are the kernel's elements, not
	// the policy's (no policy matches what the kernel holds).
	PolicyKnown bool       `json:"policy_known"`
	Exposures   []Exposure `json:"exposures"`
	Unused      int        `json:"unused_entries"`
	Entries     int        `json:"entries"`
}

// Exposure is one exposure's allow blocks.
type Exposure struct {
	Name   string  `json:"expose"`
	Blocks []Block `json:"blocks"`
}

// Block is one allow block as written (or, without the policy, every
// source the kernel allows).
type Block struct {
	Range   *rules.SourceRange `json:"range,omitempty"`
	Comment string             `json:"comment,omitempty"`
	// Packets the kernel admitted through the block's entries; shared
	// when another block covers the same kernel elements.
	Packets       uint64  `json:"packets"`
	PacketsShared bool    `json:"packets_shared"`
	Entries       []Entry `json:"entries"`
}

// Where names the block as file:line, "" without the policy.
func (b *Block) Where() string {
	if b.Range == nil {
		return ""
	}
	return b.Range.Filename + ":" + strconv.Itoa(b.Range.Start.Line)
}

// Entry is one source as written in a block.
type Entry struct {
	Source string `json:"source"`
	// ListFile and ListLine: the members_file line it was read from.
	ListFile      string     `json:"list_file,omitempty"`
	ListLine      int        `json:"list_line,omitempty"`
	Packets       uint64     `json:"packets"`
	PacketsShared bool       `json:"packets_shared"`
	LastSeen      *time.Time `json:"last_seen"` // nil: not seen, or unknown (LastSeenKnown)
	Unused        bool       `json:"unused"`
	// NoRecord: no kernel element covers the source, so the kernel kept
	// nothing about it (it is denied whole, or the backend admits it by a
	// rule of its own: iptables' expiring grants). Without last-seen such
	// a source is not called unused: nothing says either way.
	NoRecord bool `json:"no_record,omitempty"`
}

// Options tune Build.
type Options struct {
	UnusedSince time.Duration
	Now         time.Time // zero: time.Now()
}

// Build maps u onto the allow blocks of desired (with Origins; nil when
// the policy is not known, then each kernel element is an entry) for the
// exposures installed (have).
func Build(have *rules.Ruleset, desired *rules.Ruleset, u *backends.Usage, o Options) *Report {
	now := o.Now
	if now.IsZero() {
		now = time.Now()
	}
	r := &Report{LastSeenKnown: u.LastSeenKnown, LastSeenWhy: u.LastSeenWhy, UnusedSince: o.UnusedSince,
		PolicyKnown: desired != nil, Exposures: []Exposure{}}
	for i := range have.Exposures {
		name := have.Exposures[i].Name
		var origins []rules.Origin
		if desired != nil {
			if d := desired.Exposure(name); d != nil {
				origins = d.Origins
			}
		}
		// Without the policy, the kernel's own sources: permanent and
		// expiring.
		kernel := have.Exposures[i].Allow.All()
		for _, g := range have.Exposures[i].Expiring {
			kernel = append(kernel, g.Source)
		}
		x := buildExposure(name, origins, kernel, u, now, o.UnusedSince)
		for _, b := range x.Blocks {
			for _, e := range b.Entries {
				r.Entries++
				if e.Unused {
					r.Unused++
				}
			}
		}
		r.Exposures = append(r.Exposures, x)
	}
	return r
}

// entry is an Entry being built, with its address range and block.
type entry struct {
	Entry
	rng     netipx.IPRange
	block   int
	seen    bool
	covered bool // some kernel element covers it
}

func buildExposure(name string, origins []rules.Origin, kernel []netip.Prefix, u *backends.Usage, now time.Time, since time.Duration) Exposure {
	x := Exposure{Name: name, Blocks: []Block{}}
	var entries []*entry
	for _, o := range origins {
		if o.Kind != rules.OriginAllow || (!o.Expires.IsZero() && !o.Expires.After(now)) {
			continue // an expired block admits nobody any more
		}
		r := policies.RangeOf(o.Range)
		x.Blocks = append(x.Blocks, Block{Range: &r, Comment: o.Comment, Entries: []Entry{}})
		for j, p := range o.Prefixes {
			e := &entry{Entry: Entry{Source: prefixString(p)}, rng: netipx.RangeOfPrefix(p), block: len(x.Blocks) - 1}
			if j < len(o.Lines) && o.Lines[j].Line > 0 && int(o.Lines[j].File) < len(o.ListFiles) {
				e.ListFile, e.ListLine = o.ListFiles[o.Lines[j].File], int(o.Lines[j].Line)
			}
			entries = append(entries, e)
		}
	}
	elements := elementsOf(name, u)
	if len(x.Blocks) == 0 {
		// Without the policy: one block of what the kernel allows, each
		// element an entry.
		x.Blocks = append(x.Blocks, Block{Entries: []Entry{}})
		ps := kernel
		if len(ps) == 0 {
			for _, el := range elements {
				ps = append(ps, netipx.IPRangeFrom(el.First, el.Last).Prefixes()...)
			}
		}
		for _, p := range ps {
			entries = append(entries, &entry{Entry: Entry{Source: prefixString(p)}, rng: netipx.RangeOfPrefix(p)})
		}
	}
	seen := seenOf(name, u)
	for _, e := range entries {
		for _, s := range within(seen, e.rng) {
			if e.LastSeen == nil || s.LastSeen.After(*e.LastSeen) {
				t := s.LastSeen
				e.LastSeen = &t
			}
		}
		e.seen = e.LastSeen != nil
	}
	// Which entries cover each element.
	covering := make([][]*entry, len(elements))
	for _, e := range entries {
		// Elements are disjoint and sorted: start at the last one that
		// begins at or before the entry, walk while they begin inside it.
		i, _ := slices.BinarySearchFunc(elements, e.rng.From(), func(el backends.ElementUse, a netip.Addr) int {
			if el.First.Compare(a) <= 0 {
				return -1
			}
			return 1
		})
		for i = max(i-1, 0); i < len(elements) && elements[i].First.Compare(e.rng.To()) <= 0; i++ {
			if overlaps(e.rng, elements[i]) {
				covering[i] = append(covering[i], e)
			}
		}
	}
	for i := range elements {
		for _, e := range covering[i] {
			e.covered = true
		}
	}
	for i, el := range elements {
		cov := covering[i]
		if len(cov) == 0 {
			continue
		}
		owners := cov
		if len(cov) > 1 && u.LastSeenKnown {
			var seenOnes []*entry
			for _, e := range cov {
				if e.seen {
					seenOnes = append(seenOnes, e)
				}
			}
			if len(seenOnes) > 0 {
				owners = seenOnes
			}
		}
		// Nothing counted is nothing shared.
		shared := len(owners) > 1 && el.Packets > 0
		for _, e := range owners {
			e.Packets += el.Packets
			e.PacketsShared = e.PacketsShared || shared
		}
		blocks := map[int]bool{}
		for _, e := range owners {
			blocks[e.block] = true
		}
		for b := range blocks {
			x.Blocks[b].Packets += el.Packets
			x.Blocks[b].PacketsShared = x.Blocks[b].PacketsShared || (len(blocks) > 1 && el.Packets > 0)
		}
	}
	for _, e := range entries {
		if u.LastSeenKnown {
			e.Unused = e.LastSeen == nil || (since > 0 && now.Sub(*e.LastSeen) > since)
		} else {
			e.LastSeen = nil
			e.Unused = e.Packets == 0 && e.covered
		}
		e.NoRecord = !e.covered
		x.Blocks[e.block].Entries = append(x.Blocks[e.block].Entries, e.Entry)
	}
	return x
}

// elementsOf are the exposure's elements, sorted by first address.
func elementsOf(name string, u *backends.Usage) []backends.ElementUse {
	return ofExposure(u.Elements, name, func(el backends.ElementUse) (string, netip.Addr) { return el.Exposure, el.First })
}

// seenOf are the exposure's seen sources, sorted by address.
func seenOf(name string, u *backends.Usage) []backends.SeenSource {
	return ofExposure(u.Seen, name, func(s backends.SeenSource) (string, netip.Addr) { return s.Exposure, s.Source })
}

// ofExposure picks the records of one exposure and sorts them by address.
func ofExposure[T any](all []T, name string, key func(T) (string, netip.Addr)) []T {
	var out []T
	for _, x := range all {
		if exposure, _ := key(x); exposure == name {
			out = append(out, x)
		}
	}
	slices.SortFunc(out, func(a, b T) int {
		_, x := key(a)
		_, y := key(b)
		return x.Compare(y)
	})
	return out
}

// within returns the seen sources (sorted) inside r.
func within(seen []backends.SeenSource, r netipx.IPRange) []backends.SeenSource {
	i, _ := slices.BinarySearchFunc(seen, r.From(), func(s backends.SeenSource, a netip.Addr) int { return s.Source.Compare(a) })
	j := i
	for j < len(seen) && seen[j].Source.Compare(r.To()) <= 0 {
		j++
	}
	return seen[i:j]
}

func overlaps(r netipx.IPRange, el backends.ElementUse) bool {
	return r.From().BitLen() == el.First.BitLen() && r.From().Compare(el.Last) <= 0 && el.First.Compare(r.To()) <= 0
}

// prefixString writes a single address without /32 or /128, as people
// write them.
func prefixString(p netip.Prefix) string {
	if p.IsSingleIP() {
		return p.Addr().String()
	}
	return p.String()
}

// ParseDuration reads a Go duration ("36h", "0s"), whole days ("30d"), or
// days and a Go duration ("1d12h"): what usage --unused-since, check
// --warn-unused and check --warn-expiry take.
func ParseDuration(s string) (time.Duration, error) {
	bad := fmt.Errorf("%q is not a duration: write days as a whole number with d (30d, 1d12h), or a Go duration (36h, 90m, 0s)", s)
	var days time.Duration
	if n, rest, ok := strings.Cut(s, "d"); ok {
		v, err := strconv.ParseUint(n, 10, 32)
		if err != nil || v > 100*365 {
			return 0, bad
		}
		days = time.Duration(v) * 24 * time.Hour
		if rest == "" {
			return days, nil
		}
		if rest[0] == '+' || rest[0] == '-' {
			return 0, bad
		}
		s = rest
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, bad
	}
	return days + d, nil
}

// FormatDuration writes d in days when it is whole days, else as Go does.
func FormatDuration(d time.Duration) string {
	if d > 0 && d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	return d.String()
}
