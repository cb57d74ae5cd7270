package nftables

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/portwarden/portwarden/rules"
)

const (
	tableName     = "portwarden"
	baseChainName = "input"
	// markerSetName is an empty set whose comment marks the table as made
	// by portwarden: a same-named table without it is not adopted.
	markerSetName = "portwarden.owner"
	markerComment = "managed by portwarden; edits are reverted by portwarden apply"
	commentPrefix = "portwarden "
	logRate       = 10 // refused attempts logged per minute and exposure
	logBurst      = 5
	maxNameLen    = 100 // keeps every derived name and comment within kernel limits
)

// Set roles: every exposure has one set per role.
const (
	rolePorts  = "ports"
	roleIfaces = "ifaces"
	roleDst4   = "dst4"
	roleDst6   = "dst6"
	roleDeny4  = "deny4"
	roleDeny6  = "deny6"
	roleAllow4 = "allow4"
	roleAllow6 = "allow6"
	// The seen sets record, per family, the sources the exposure admitted
	// and when (see recordSeen); their contents are not part of the model.
	roleSeen4 = "seen4"
	roleSeen6 = "seen6"
	// Grant sets hold the sources allowed until a deadline: interval sets
	// with the timeout flag, each element carrying its own timeout (the
	// kernel drops it at the deadline) and the deadline itself as its
	// comment (what a read gives back exactly).
	roleGrant4 = "grant4"
	roleGrant6 = "grant6"
)

// setRoles are the sets whose contents are the model: read back, diffed
// and written element by element.
var setRoles = []string{rolePorts, roleIfaces, roleDst4, roleDst6, roleDeny4, roleDeny6, roleAllow4, roleAllow6, roleGrant4, roleGrant6}

// isGrantRole reports whether a set of this role holds expiring grants.
func isGrantRole(role string) bool { return role == roleGrant4 || role == roleGrant6 }

// untilComment is a grant element's comment: its deadline.
const untilPrefix = "until="

func untilComment(unix int64) string {
	return untilPrefix + time.Unix(unix, 0).UTC().Format(time.RFC3339)
}

func parseUntilComment(s string) (int64, bool) {
	rest, ok := strings.CutPrefix(s, untilPrefix)
	if !ok {
		return 0, false
	}
	t, err := time.Parse(time.RFC3339, rest)
	if err != nil {
		return 0, false
	}
	return t.Unix(), true
}

// seenRoles are owned sets the packet path fills: created, checked for
// their type and deleted with their exposure, never read into the model
// nor compared by content (it changes with every new connection).
var seenRoles = []string{roleSeen4, roleSeen6}

// admitting is one set whose sources an exposure accepts, and the seen set
// of its family.
type admitting struct {
	role, seen string
	fam        int
}

// admittingSets are the sets whose sources an exposure's chain accepts:
// their elements carry counters (Usage reads them) and every source they
// admit is recorded in the seen set of its family. Permanent and expiring
// sources share a family's seen set.
var admittingSets = []admitting{{roleAllow4, roleSeen4, 4}, {roleAllow6, roleSeen6, 6}, {roleGrant4, roleSeen4, 4}, {roleGrant6, roleSeen6, 6}}

func isAdmitting(role string) bool {
	for _, a := range admittingSets {
		if a.role == role {
			return true
		}
	}
	return false
}

// ownedRoles are every set an exposure owns.
func ownedRoles() []string { return append(slices.Clip(setRoles), seenRoles...) }

func chainName(exposure string) string     { return "x-" + exposure }
func setName(exposure, role string) string { return exposure + "-" + role }

// exposureOfChain returns the exposure an owned regular chain belongs to.
func exposureOfChain(chain string) (string, bool) {
	return strings.CutPrefix(chain, "x-")
}

func checkName(e *rules.Exposure) error {
	if e.Name == "" || len(e.Name) > maxNameLen || strings.ContainsAny(e.Name, " \t\"'@$;{}") {
		return fmt.Errorf("exposure name %q cannot be used in nftables: use up to %d letters, digits, - and _", e.Name, maxNameLen)
	}
	for _, i := range e.Interfaces {
		if len(i) == 0 || len(i) > 15 {
			return fmt.Errorf("exposure %q: interface name %q must be 1 to 15 bytes", e.Name, i)
		}
	}
	return nil
}
