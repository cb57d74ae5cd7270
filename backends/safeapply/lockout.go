package safeapply

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/portwarden/portwarden/rules"
)

// Cut is a live session a ruleset would refuse, and the decision that
// refuses it.
type Cut struct {
	Session  Session        `json:"session"`
	Decision rules.Decision `json:"decision"`
	// GrantEnds is the deadline of the grant that would have admitted
	// the session, had it not run out by the time the change is in.
	GrantEnds time.Time `json:"grant_ends,omitzero"`
}

// grantMargin: a grant that ends within this of the check is taken as
// ended. The kernel drops an element past its deadline at once, and an
// apply (a million sources take seconds) must not let a session through
// the check only for its grant to run out before the change is in.
const grantMargin = 30 * time.Second

// ErrLockout: applying would cut a live SSH session.
var ErrLockout = errors.New("refusing to apply: it would cut live SSH sessions to this host")

// Cuts decides every session against rs and returns those it would
// refuse. A session from this host itself arrives on loopback.
func Cuts(rs *rules.Ruleset, sessions []Session) []Cut {
	cuts, _ := judge(rs, sessions, time.Now())
	return cuts
}

// Borrowed are the sessions rs admits only until a grant's deadline: the
// kernel will cut them then, with nothing of portwarden running, so the
// person applying should hear it now.
func Borrowed(rs *rules.Ruleset, sessions []Session) []Cut {
	_, borrowed := judge(rs, sessions, time.Now())
	return borrowed
}

// judge decides every session against rs: those it refuses, and those it
// admits only until a deadline. The verdicts come from the prefix sets
// alone: which block decides is asked only of a session reported, for the
// message, since finding the block indexes every source the first time (a
// map of 100,000 entries in a one-source apply).
func judge(rs *rules.Ruleset, sessions []Session, now time.Time) (cuts, borrowed []Cut) {
	if len(sessions) == 0 {
		return nil, nil
	}
	// The sessions are judged by what the kernel will hold: without the
	// grants that run out before the change is in.
	live := rs.WithoutGrantsEndedBy(now.Add(grantMargin))
	verdicts := &rules.Ruleset{Exposures: slices.Clone(live.Exposures)}
	for i := range verdicts.Exposures {
		verdicts.Exposures[i].Origins = nil
	}
	for _, s := range sessions {
		var until *Cut
		cut := false
		for _, iface := range arrivals(rs, s) {
			pkt := rules.Packet{Protocol: rules.TCP, Source: s.Client, Destination: s.Server.Addr(), Port: s.Server.Port(), Interface: iface}
			switch d := verdicts.Decide(pkt); {
			case d.Verdict == rules.Drop || d.Verdict == rules.Reject:
				c := Cut{Session: s, Decision: live.Decide(pkt)}
				if live != rs {
					if was := rs.Decide(pkt); was.Verdict == rules.Accept && !was.Until.IsZero() {
						c.GrantEnds = was.Until
					}
				}
				cuts = append(cuts, c)
				cut = true
			case d.Verdict == rules.Accept && !d.Until.IsZero() && until == nil:
				until = &Cut{Session: s, Decision: live.Decide(pkt)}
			}
			if cut {
				break
			}
		}
		if !cut && until != nil {
			borrowed = append(borrowed, *until)
		}
	}
	return cuts, borrowed
}

// arrivals are the interfaces the guard judges a session on. An exposure
// limited to some interfaces sees only packets that arrive on them, so a
// session is judged on the interface it arrives on: loopback for one from
// this host, else the one its route goes through. Without either, it is
// judged on each interface the ruleset names and on one it names nowhere,
// and cut if any of them would cut it: the guard must not let an exposure
// of another interface speak for it. (An empty interface would match
// every exposure, and the first by name would decide.)
func arrivals(rs *rules.Ruleset, s Session) []string {
	switch {
	case s.Local:
		return []string{rules.LoopbackInterface}
	case s.Interface != "":
		return []string{s.Interface}
	}
	var names []string
	for _, e := range rs.Exposures {
		names = append(names, e.Interfaces...)
	}
	names = slices.Compact(slices.Sorted(slices.Values(names)))
	// No interface name holds a space (the kernel refuses one), so no
	// exposure lists this one: it stands for every interface no exposure
	// names.
	return append(names, "unnamed interface")
}

// BorrowedWarnings says, for people, which sessions end at a deadline.
func BorrowedWarnings(borrowed []Cut) []string {
	var out []string
	for _, c := range borrowed {
		by := ""
		if o := c.Decision.Origin; o != nil {
			by = " (" + o.Describe() + ")"
		}
		out = append(out, fmt.Sprintf("the SSH session from %s to port %d is admitted only until %s by expose %q%s: the kernel cuts it then",
			c.Session.Client, c.Session.Server.Port(), c.Decision.Until.Format(time.RFC3339), c.Decision.Exposure, by))
	}
	return out
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
		on := ""
		if c.Session.Interface != "" {
			on = ", on " + c.Session.Interface
		}
		if !c.GrantEnds.IsZero() {
			by += fmt.Sprintf("; the grant that admits it ends at %s, before this change would be in", c.GrantEnds.Format(time.RFC3339))
		}
		fmt.Fprintf(&b, "\n  %s to port %d (%s%s%s): expose %q gives %s by %s",
			c.Session.Client, c.Session.Server.Port(), c.Session.Found, conns, on, c.Decision.Exposure, c.Decision.Verdict, by)
	}
	return fmt.Errorf("%w:%s\nAllow these addresses in the policy, or pass --force if you have another way in "+
		"(with --confirm-timeout the previous rules come back unless you confirm)", ErrLockout, b.String())
}

// CheckLockout reads the live SSH sessions from the kernel and refuses rs
// if it would cut any; warnings name the sessions it admits only until a
// deadline.
func CheckLockout(rs *rules.Ruleset, environ []string) (warnings []string, err error) {
	sessions, err := SSHSessions(environ)
	if err != nil {
		return nil, fmt.Errorf("cannot tell which SSH sessions are alive, so cannot tell whether the new rules would cut them: %w\n"+
			"Pass --force to apply without this check", err)
	}
	cuts, borrowed := judge(rs, sessions, time.Now())
	if err := LockoutError(cuts); err != nil {
		return nil, err
	}
	return BorrowedWarnings(borrowed), nil
}
