package rules

import "net/netip"

// Action is what a plan does to one exposure.
type Action string

const (
	Create Action = "create"
	Update Action = "update"
	Delete Action = "delete"
)

// Diff is the model-level difference between a current and a desired
// Ruleset. It is what plan prints and what a backend turns into kernel
// writes; it never compares rendered text.
type Diff struct {
	Exposures []ExposureDiff `json:"exposures"` // sorted by Name; only exposures that change
}

// ExposureDiff is the change to one exposure. For Create, Before is nil and
// the Added fields list everything; for Delete, After is nil and the Removed
// fields list everything.
type ExposureDiff struct {
	Name         string            `json:"name"`
	Action       Action            `json:"action"`
	Before       *Exposure         `json:"before,omitempty"`
	After        *Exposure         `json:"after,omitempty"`
	Attributes   []AttributeChange `json:"attributes,omitempty"` // protocol, interfaces, default, log, loopback
	Ports        PortsDiff         `json:"ports"`
	Destinations PrefixDiff        `json:"destinations"`
	Deny         PrefixDiff        `json:"deny"`
	Allow        PrefixDiff        `json:"allow"`
	Expiring     GrantDiff         `json:"expiring"`
}

// AttributeChange is one scalar attribute of an exposure that changes.
type AttributeChange struct {
	Name string `json:"name"`
	Old  string `json:"old"`
	New  string `json:"new"`
}

// PortsDiff lists port ranges that appear and disappear.
type PortsDiff struct {
	Added   []PortRange `json:"added,omitempty"`
	Removed []PortRange `json:"removed,omitempty"`
}

// PrefixDiff lists set elements that appear and disappear, both families
// together, in normalised order. Because both sides are normalised, a
// one-address change touches only the few prefixes around it.
type PrefixDiff struct {
	Added   []netip.Prefix `json:"added,omitempty"`
	Removed []netip.Prefix `json:"removed,omitempty"`
}

// Empty reports whether there is nothing to change.
func (d Diff) Empty() bool { return len(d.Exposures) == 0 }

// Summary counts exposures to create, update and delete.
func (d Diff) Summary() (create, update, remove int) {
	for _, e := range d.Exposures {
		switch e.Action {
		case Create:
			create++
		case Update:
			update++
		case Delete:
			remove++
		}
	}
	return create, update, remove
}
