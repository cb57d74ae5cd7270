package safeapply

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/portwarden/portwarden/rules"
)

// Cut is a live session a ruleset would refuse, and the decision that
// refuses it.
type Cut struct {
	Session  Session        `json:"session"`
	Decision rules.Decision `json:"decision"`
}

// ErrLockout: applying would cut a live SSH session.
var ErrLockout = errors.New("refusing to apply: it would cut live SSH sessions to this host")

// Cuts decides every session against rs and returns those it would
// refuse. A session from this host itself arrives on loopback.
func Cuts(rs *rules.Ruleset, sessions []Session) []Cut {
	if len(sessions) == 0 {
		return nil
	}
	// The verdicts come from the prefix sets alone: which block decides
	// is asked only of a session that is cut, for the message, since
	// finding the block indexes every source the first time (a map of
	// 100,000 entries in a one-source apply).
	verdicts := &rules.Ruleset{Exposures: slices.Clone(rs.Exposures)}
	for i := range verdicts.Exposures {
		verdicts.Exposures[i].Origins = nil
	}
	var cuts []Cut
	for _, s := range sessions {
		pkt := rules.Packet{Protocol: rules.TCP, Source: s.Client, Destination: s.Server.Addr(), Port: s.Server.Port()}
		if s.Local {
			pkt.Interface = rules.LoopbackInterface
		}
		if d := verdicts.Decide(pkt); d.Verdict == rules.Drop || d.Verdict == rules.Reject {
			cuts = append(cuts, Cut{Session: s, Decision: rs.Decide(pkt)})
		}
	}
	return cuts
}

// LockoutError says which sessions rs would cut, and by which block, or
// returns nil when none.
func LockoutError(cuts []Cut) error {
	if len(cuts) == 0 {
		return nil
	}
	var b strings.Builder
	for _, c := range cuts {
		conns := ""
		if c.Session.Connections > 1 {
			conns = fmt.Sprintf(", %d connections", c.Session.Connections)
		}
		by := "its default"
		if c.Decision.Origin != nil {
			by = c.Decision.Origin.Describe()
		}
		fmt.Fprintf(&b, "\n  %s to port %d (%s%s): expose %q gives %s by %s",
			c.Session.Client, c.Session.Server.Port(), c.Session.Found, conns, c.Decision.Exposure, c.Decision.Verdict, by)
	}
	return fmt.Errorf("%w:%s\nAllow these addresses in the policy, or pass --force if you have another way in "+
		"(with --confirm-timeout the previous rules come back unless you confirm)", ErrLockout, b.String())
}

// CheckLockout reads the live SSH sessions from the kernel and refuses rs
// if it would cut any.
func CheckLockout(rs *rules.Ruleset, environ []string) error {
	sessions, err := SSHSessions(environ)
	if err != nil {
		return fmt.Errorf("cannot tell which SSH sessions are alive, so cannot tell whether the new rules would cut them: %w\n"+
			"Pass --force to apply without this check", err)
	}
	return LockoutError(Cuts(rs, sessions))
}
