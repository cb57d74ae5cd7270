package nftables

import (
	"fmt"
	"slices"
	"strings"

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
	// and when (see seenRule); their contents are not part of the model.
	roleSeen4 = "seen4"
	roleSeen6 = "seen6"
)

// setRoles are the sets whose contents are the model: read back, diffed
// and written element by element.
var setRoles = []string{rolePorts, roleIfaces, roleDst4, roleDst6, roleDeny4, roleDeny6, roleAllow4, roleAllow6}

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
// admit is recorded in the seen set of its family. A new kind of accepted
// source set (expiring grants) is one more line here.
var admittingSets = []admitting{{roleAllow4, roleSeen4, 4}, {roleAllow6, roleSeen6, 6}}

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
