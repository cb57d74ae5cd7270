package rules

import (
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/portwarden/portwarden/policies"
)

// Compile turns a validated policy into a normalised Ruleset. The same
// policy always gives an identical Ruleset. A prefix listed both in a deny
// and an allow block stays in both sets: deny is checked first.
func Compile(p *policies.Policy) (*Ruleset, error) {
	if p == nil {
		return nil, fmt.Errorf("compile: no policy")
	}
	rs := &Ruleset{Exposures: make([]Exposure, 0, len(p.Exposes))}
	for _, x := range p.Exposes {
		if x == nil {
			continue
		}
		e, err := compileExpose(x, p.LoadedAt)
		if err != nil {
			return nil, err
		}
		rs.Exposures = append(rs.Exposures, e)
	}
	rs.Normalize()
	for i := 1; i < len(rs.Exposures); i++ {
		if rs.Exposures[i].Name == rs.Exposures[i-1].Name {
			return nil, fmt.Errorf("compile: two exposes are named %q", rs.Exposures[i].Name)
		}
	}
	return rs, nil
}

func compileExpose(x *policies.Expose, loadedAt time.Time) (Exposure, error) {
	e := Exposure{
		Name:       x.Name,
		Protocol:   Protocol(x.Protocol),
		Interfaces: append([]string(nil), x.Interfaces...),
		Default:    Verdict(x.Default),
		RejectWith: RejectWith(x.RejectWith),
		Log:        x.Log,
		Loopback:   x.Loopback,
	}
	if e.Protocol != TCP && e.Protocol != UDP {
		return e, fmt.Errorf("%s: expose %q: unknown protocol %q", x.DeclRange, x.Name, x.Protocol)
	}
	if e.Default == "" {
		e.Default = Drop
	}
	if e.Default != Drop && e.Default != Reject {
		return e, fmt.Errorf("%s: expose %q: default must be drop or reject, not %q", x.DeclRange, x.Name, x.Default)
	}
	if e.RejectWith != "" && !slices.Contains(RejectChoices, e.RejectWith) {
		return e, fmt.Errorf("%s: expose %q: reject_with %q is not one of %v", x.DeclRange, x.Name, x.RejectWith, RejectChoices)
	}
	if e.Default == Reject && e.Protocol == UDP && e.RejectWith == TCPReset {
		return e, fmt.Errorf("%s: expose %q: a TCP reset cannot answer UDP", x.DeclRange, x.Name)
	}
	if len(x.Ports) == 0 {
		return e, fmt.Errorf("%s: expose %q manages no port", x.DeclRange, x.Name)
	}
	for _, p := range x.Ports {
		if p.First == 0 || p.First > p.Last {
			return e, fmt.Errorf("%s: expose %q: invalid port range %d-%d", x.DeclRange, x.Name, p.First, p.Last)
		}
		e.Ports = append(e.Ports, PortRange{First: p.First, Last: p.Last})
	}
	e.Destinations = NewPrefixes(addressPrefixes(x.Destinations)...)
	// Sized up front: with 100,000 sources, growing these slices cost more
	// than the rest of Compile.
	deny, allow := make([]netip.Prefix, 0, addressCount(x.Deny)), make([]netip.Prefix, 0, addressCount(x.Allow))
	for _, block := range x.Deny {
		ps := addressPrefixes(block.From)
		deny = append(deny, ps...)
		e.Origins = append(e.Origins, Origin{Kind: OriginDeny, Comment: block.Comment, Prefixes: ps, Range: block.DeclRange})
		setLines(&e.Origins[len(e.Origins)-1], block.From)
	}
	var grants []Grant
	for _, block := range x.Allow {
		ps := addressPrefixes(block.From)
		var lapsed []Lapse
		if block.Expires.IsZero() && !anyExpires(block.From) {
			allow = append(allow, ps...)
		} else {
			grants, lapsed = appendGrants(grants, &allow, block, ps, loadedAt)
		}
		e.Origins = append(e.Origins, Origin{Kind: OriginAllow, Comment: block.Comment, Prefixes: ps, Range: block.DeclRange, Expires: block.Expires, Lapsed: lapsed})
		setLines(&e.Origins[len(e.Origins)-1], block.From)
	}
	e.Deny = normalized(deny)
	e.Allow = normalized(allow)
	e.Expiring = normalizeGrants(grants, e.Allow)
	if e.Loopback {
		e.Origins = append(e.Origins, Origin{Kind: OriginLoopback, Range: x.DeclRange})
	}
	e.Origins = append(e.Origins, Origin{Kind: OriginDefault, Range: x.DeclRange})
	e.index = &originIndex{origins: len(e.Origins)}
	return e, nil
}

func anyExpires(as []policies.Address) bool {
	return slices.ContainsFunc(as, func(a policies.Address) bool { return !a.Expires.IsZero() })
}

// appendGrants sorts the sources of an allow block that has deadlines: a
// source's deadline is the earlier of its list line's and its block's;
// one without any is allowed for good; one whose deadline is not after
// loadedAt (the moment the policy was read) is left out, so a plan of an
// expired block removes it, and returned among lapsed, so explain can say
// which block (or line) admitted it until when.
func appendGrants(grants []Grant, allow *[]netip.Prefix, block *policies.SourceRule, ps []netip.Prefix, loadedAt time.Time) (_ []Grant, lapsed []Lapse) {
	for i, p := range ps {
		until, byLine := block.From[i].Expires, true
		if until.IsZero() || (!block.Expires.IsZero() && !until.Before(block.Expires)) {
			until, byLine = block.Expires, false
		}
		switch {
		case until.IsZero():
			*allow = append(*allow, p)
		case loadedAt.IsZero() || until.After(loadedAt):
			grants = append(grants, Grant{Source: p, Until: until.UTC().Truncate(time.Second)})
		default:
			lapsed = append(lapsed, Lapse{Prefix: i, Until: until.UTC().Truncate(time.Second), ByLine: byLine})
		}
	}
	return grants, lapsed
}

func addressCount(blocks []*policies.SourceRule) int {
	n := 0
	for _, b := range blocks {
		n += len(b.From)
	}
	return n
}

// setLines records the list file line of each address, when any came
// from a list file.
func setLines(o *Origin, as []policies.Address) {
	files := map[string]uint32{}
	for i, a := range as {
		if !a.Listed {
			continue
		}
		if o.Lines == nil {
			o.Lines = make([]ListLine, len(as))
		}
		f, ok := files[a.Range.Filename]
		if !ok {
			f = uint32(len(o.ListFiles))
			files[a.Range.Filename] = f
			o.ListFiles = append(o.ListFiles, a.Range.Filename)
		}
		o.Lines[i] = ListLine{File: f, Line: uint32(a.Range.Start.Line)}
	}
}

// addressPrefixes lists the prefixes of addresses as written, masked, with
// IPv4-mapped IPv6 prefixes turned into IPv4 ones: sources are unmapped
// before matching, so an Origin must hold the form they are compared with.
func addressPrefixes(as []policies.Address) []netip.Prefix {
	out := make([]netip.Prefix, 0, len(as))
	for _, a := range as {
		p := a.Prefix.Masked()
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = unmap(p)
		}
		out = append(out, p)
	}
	return out
}
