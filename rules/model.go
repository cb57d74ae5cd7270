package rules

import (
	"net/netip"
	"time"

	"github.com/hashicorp/hcl/v2"
)

// Protocol is a transport protocol a port is managed for.
type Protocol string

const (
	TCP Protocol = "tcp"
	UDP Protocol = "udp"
)

// Verdict is what happens to a packet.
type Verdict string

const (
	Accept Verdict = "accept"
	Drop   Verdict = "drop"
	Reject Verdict = "reject" // answered as Exposure.RejectWith says
	// Pass: no exposure manages this packet; portwarden leaves it alone.
	Pass Verdict = "pass"
)

// RejectWith is how a rejected packet is answered.
type RejectWith string

const (
	// TCPReset answers a TCP packet with a reset: clients read "Connection
	// refused" and nmap "closed", as behind ufw. The default for TCP.
	TCPReset RejectWith = "tcp-reset"
	// ICMPPortUnreachable is the default for UDP; TCP clients also read
	// "Connection refused".
	ICMPPortUnreachable RejectWith = "icmp-port-unreachable"
	// ICMPAdminProhibited says a firewall refused: clients read "No route
	// to host".
	ICMPAdminProhibited RejectWith = "icmp-admin-prohibited"
)

// RejectChoices lists the answers reject_with accepts, in documentation order.
var RejectChoices = []RejectWith{TCPReset, ICMPPortUnreachable, ICMPAdminProhibited}

// DefaultRejectWith is the answer a reject gives when the policy names none.
func DefaultRejectWith(p Protocol) RejectWith {
	if p == UDP {
		return ICMPPortUnreachable
	}
	return TCPReset
}

// PortRange is an inclusive range of ports; a single port has First == Last.
type PortRange struct {
	First uint16 `json:"first"`
	Last  uint16 `json:"last"`
}

// Prefixes is a normalised prefix set: per family, merged (no overlap, no
// adjacency that could be one prefix) and sorted, as netipx.IPSet.Prefixes
// returns them. Two equal sets have equal Prefixes, so they compare with ==
// element by element.
type Prefixes struct {
	V4 []netip.Prefix `json:"v4,omitempty"`
	V6 []netip.Prefix `json:"v6,omitempty"`
}

// Ruleset is the backend-neutral model: what rules.Compile makes of a policy
// and what a backend reads back from the kernel. Plans are diffs of two
// Rulesets; verification expectations come from Ruleset.Decide.
type Ruleset struct {
	Exposures []Exposure `json:"exposures"` // sorted by Name
}

// Exposure is one managed service on this host.
//
// Evaluation of a packet (the order the kernel applies too):
//  1. exposures are tried in Name order; the first whose Protocol, Ports,
//     Interfaces and Destinations match the packet decides it;
//  2. loopback traffic (input interface "lo") is accepted when Loopback;
//  3. a source in Deny gets Default;
//  4. a source in Allow, or in Expiring (until its grant's deadline), is
//     accepted;
//  5. any other source gets Default.
//
// A packet no exposure matches gets Pass.
type Exposure struct {
	Name         string      `json:"name"`
	Protocol     Protocol    `json:"protocol"`
	Ports        []PortRange `json:"ports"`                // sorted, merged
	Interfaces   []string    `json:"interfaces,omitempty"` // sorted, unique; empty: any
	Destinations Prefixes    `json:"destinations"`         // empty: any local address
	Default      Verdict     `json:"default"`              // Drop or Reject
	// RejectWith is the answer of Reject verdicts; Normalize sets the
	// protocol's default when Default is Reject and clears it otherwise.
	RejectWith RejectWith `json:"reject_with,omitempty"`
	Log        bool       `json:"log"`      // log refused packets, rate-limited
	Loopback   bool       `json:"loopback"` // accept loopback traffic
	Deny       Prefixes   `json:"deny"`
	Allow      Prefixes   `json:"allow"`
	// Expiring are sources admitted until a deadline (allow blocks with
	// expires): after Deny, like Allow. Normalised: sorted, disjoint from
	// each other and from Allow; Compile leaves out those already past.
	Expiring []Grant `json:"expiring,omitempty"`

	// Origins tell which policy block contributed what; they exist only for
	// a compiled Ruleset (a kernel does not store them) and are ignored by
	// Diff and Fingerprint.
	Origins []Origin `json:"origins,omitempty"`

	// index finds the deciding block among Origins quickly; built by
	// Compile, nil otherwise (Decide then scans Origins).
	index *originIndex
}

// Origin kinds: the part of an exposure that decided a packet.
const (
	OriginAllow    = "allow"
	OriginDeny     = "deny"
	OriginDefault  = "default"
	OriginLoopback = "loopback"
)

// Origin is a policy block that shaped an exposure, with its source range.
type Origin struct {
	Kind     string         `json:"kind"` // OriginAllow | OriginDeny | OriginDefault | OriginLoopback
	Comment  string         `json:"comment,omitempty"`
	Prefixes []netip.Prefix `json:"prefixes,omitempty"` // what the block lists, as written
	// Expires is the allow block's own deadline (its expires attribute);
	// zero when it has none. List file lines may carry their own.
	Expires time.Time `json:"expires,omitzero"`
	Range   hcl.Range `json:"range"`
	// Lines says, for each of Prefixes, the list file line it was read
	// from (ListLine.Line 0 for prefixes written in the policy itself); nil
	// when the block lists nothing from a list file. Kept small (8 bytes a
	// prefix, not an hcl.Range's 64) for lists of a million sources.
	Lines     []ListLine `json:"-"`
	ListFiles []string   `json:"-"` // the files ListLine.File indexes
	// Lapsed are the prefixes whose deadline had passed when the policy
	// was loaded: Compile leaves them out of the rules, and Decide names
	// them for the sources they admitted. Nil when none.
	Lapsed []Lapse `json:"-"`
}

// Lapse is a prefix of an allow block whose access ended before the
// policy was loaded.
type Lapse struct {
	Prefix int       // its index in Origin.Prefixes
	Until  time.Time // the deadline that passed
	// ByLine: the deadline is its list file line's expires=, not the
	// block's expires.
	ByLine bool
}

// ListLine is a line of one of an Origin's ListFiles.
type ListLine struct {
	File uint32
	Line uint32
}

// Packet is what Decide is asked about. A zero Destination or empty
// Interface matches any destination or interface filter.
type Packet struct {
	Protocol    Protocol   `json:"protocol"`
	Source      netip.Addr `json:"source"`
	Destination netip.Addr `json:"destination,omitzero"`
	Port        uint16     `json:"port"`
	Interface   string     `json:"interface,omitempty"`
}

// Decision is Decide's answer: the verdict and what decided it.
type Decision struct {
	Verdict  Verdict `json:"verdict"`
	Exposure string  `json:"exposure,omitempty"` // empty with Pass
	// Origin is the deciding block (allow, deny, the expose's default, or
	// the loopback rule); nil with Pass or when the Ruleset was read from a
	// kernel and carries no origins.
	Origin *Origin `json:"origin,omitempty"`
	// Line is the list file line that names the source, when the deciding
	// block took it from a members_file.
	Line *SourceRange `json:"line,omitempty"`
	// Until is when the source's access ends, for a source admitted by an
	// expiring grant; zero otherwise.
	Until time.Time `json:"until,omitzero"`
	// Expired is set when the source gets the default only because its
	// access ended: the allow block (and list file line) that admitted it
	// until then.
	Expired *Expired `json:"expired,omitempty"`
}

// Expired is access that ended: the allow block that granted it, the list
// file line that named the source (when it came from one), and when it
// ended, by the block's expires or the line's expires= (Deadline).
type Expired struct {
	Origin   *Origin      `json:"origin"`
	Line     *SourceRange `json:"line,omitempty"`
	Until    time.Time    `json:"until"`
	Deadline string       `json:"deadline"` // DeadlineBlock or DeadlineLine
}

// Where the deadline of expired access was written.
const (
	DeadlineBlock = "block"          // the allow block's expires
	DeadlineLine  = "list_file_line" // the list file line's expires=
)

// Answer is how a rejected packet of this exposure is answered, also for
// an Exposure built by hand and not normalised.
func (e *Exposure) Answer() RejectWith {
	if e.RejectWith != "" {
		return e.RejectWith
	}
	return DefaultRejectWith(e.Protocol)
}
