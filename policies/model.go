package policies

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"sort"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

// Policy is a loaded, validated policy: every value keeps the hcl.Range it was
// written at so later stages (rules.Decide, plan output, verification reports)
// can point back at the source.
type Policy struct {
	Variables     []*Variable // sorted by Name
	AddressGroups []*AddressGroup
	Services      []*Service
	Exposes       []*Expose // sorted by Name
	Tests         []*Test   // in file order

	// Files holds every parsed file by the name used in diagnostics, so the
	// CLI can print the offending source line under each diagnostic.
	Files map[string]*hcl.File

	// ListFiles are the list files (members_file) read, as Files names
	// them; InputDigest hashes them.
	ListFiles []string

	// LoadedAt is when the policy was read: grants whose deadline is not
	// after it have expired, and Compile leaves them out. Zero: none has.
	LoadedAt time.Time
}

// Variable is a declared input variable and the value it resolved to.
type Variable struct {
	Name        string
	Description string
	Type        cty.Type
	Default     cty.Value // cty.NilVal when none was declared
	Value       cty.Value
	DeclRange   hcl.Range
}

// Address is one source or destination as written in the policy: a single
// address is stored as a full-length prefix (/32 or /128).
type Address struct {
	Prefix netip.Prefix
	Range  hcl.Range // the expression that produced it, or the line of a list file
	Listed bool      // Range is a line of a members_file
	// Expires is the list line's deadline (ADDR expires=RFC3339); zero
	// when it has none. Only list file lines carry one.
	Expires time.Time
}

// AddressGroup is a named, flattened list of addresses; nested groups,
// locals, variables and the lines of its members_file are already
// resolved into Members.
type AddressGroup struct {
	Name        string
	Members     []Address
	MembersFile string // the list file as diagnostics name it; "" when none
	DeclRange   hcl.Range
}

// PortRange is an inclusive range of ports; a single port has First == Last.
type PortRange struct {
	First, Last uint16
}

// Service names a protocol and a set of ports.
type Service struct {
	Name      string
	Protocol  string // "tcp" | "udp"
	Ports     []PortRange
	DeclRange hcl.Range
}

// Source rule kinds.
const (
	KindAllow = "allow"
	KindDeny  = "deny"
)

// SourceRule is one allow or deny block of an expose.
type SourceRule struct {
	Kind    string // KindAllow | KindDeny
	From    []Address
	Comment string
	// Expires is an allow block's deadline: the kernel stops admitting
	// its sources then. Zero when the block has none.
	Expires      time.Time
	ExpiresRange hcl.Range
	DeclRange    hcl.Range
}

// Expose says which sources may reach a service's ports.
type Expose struct {
	Name string

	// ServiceName is empty when protocol and ports were written inline.
	ServiceName string
	Protocol    string // "tcp" | "udp"
	Ports       []PortRange

	Interfaces   []string  // empty: every interface
	Destinations []Address // empty: every local address
	Default      string    // "drop" | "reject" ("deny" is read as "drop")
	// RejectWith is how a reject answers: "tcp-reset",
	// "icmp-port-unreachable" or "icmp-admin-prohibited"; "" for the
	// protocol's default (a TCP reset, or ICMP port unreachable on UDP).
	RejectWith      string
	RejectWithRange hcl.Range
	Log             bool
	Loopback        bool // allow loopback traffic to the managed ports (default true)

	Allow []*SourceRule
	Deny  []*SourceRule

	DeclRange hcl.Range
}

// Test is an offline expectation, checked against rules.Decide and, by
// verify, against the real kernel.
type Test struct {
	Name      string
	From      netip.Addr
	To        string    // expose name
	Port      uint16    // 0: the first port of the expose
	Protocol  string    // "": the expose's protocol
	Interface string    // "": any interface
	Expect    string    // "allow" | "deny" (synonyms are read as these)
	DeclRange hcl.Range // the test block
}

// Digest identifies the policy's files by their content: the files that
// were parsed (policy and variables files), in name order. A saved plan
// records it to say which policy it came from.
func (p *Policy) Digest() string {
	names := make([]string, 0, len(p.Files))
	for n := range p.Files {
		names = append(names, n)
	}
	sort.Strings(names)
	h := sha256.New()
	for _, n := range names {
		fmt.Fprintf(h, "%s\x00%d\x00", n, len(p.Files[n].Bytes))
		h.Write(p.Files[n].Bytes)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}
