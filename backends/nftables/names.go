package nftables

import (
	"fmt"
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
)

var setRoles = []string{rolePorts, roleIfaces, roleDst4, roleDst6, roleDeny4, roleDeny6, roleAllow4, roleAllow6}

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
