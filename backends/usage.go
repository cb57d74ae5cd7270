package backends

import (
	"context"
	"net/netip"
	"time"
)

// UsageReader is implemented by backends that can say, per source element
// of an exposure's allow sets, how much traffic the kernel admitted and
// when a source was last seen. The kernel keeps these records itself on the
// packet path (per-element counters, a last-seen set), so nothing polls.
type UsageReader interface {
	Usage(ctx context.Context) (*Usage, error)
}

// Usage is what the kernel recorded about admitted sources.
type Usage struct {
	// Elements are the owned allow set elements (permanent and expiring)
	// with their counters, as the kernel holds them: allow minus deny,
	// merged, so one element may cover several entries of the policy.
	Elements []ElementUse `json:"elements"`
	// Seen are the source addresses the packet path recorded, with the
	// last time each was admitted. Empty when LastSeenKnown is false.
	Seen []SeenSource `json:"seen"`
	// LastSeenKnown is false when this backend cannot record when a source
	// was last seen; LastSeenWhy then says why, for people.
	LastSeenKnown bool   `json:"last_seen_known"`
	LastSeenWhy   string `json:"last_seen_why,omitempty"`
}

// ElementUse is one allow set element and what it admitted.
type ElementUse struct {
	Exposure string `json:"exposure"`
	// First and Last are the element's inclusive address range.
	First   netip.Addr `json:"first"`
	Last    netip.Addr `json:"last"`
	Packets uint64     `json:"packets"`
	Bytes   uint64     `json:"bytes"`
}

// SeenSource is a source address admitted to an exposure, and when the
// kernel last admitted it (a new connection from it).
type SeenSource struct {
	Exposure string     `json:"exposure"`
	Source   netip.Addr `json:"source"`
	LastSeen time.Time  `json:"last_seen"`
}
