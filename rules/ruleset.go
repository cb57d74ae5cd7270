package rules

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Normalize puts the Ruleset in canonical form: exposures sorted by name,
// ports merged, interfaces sorted and unique, prefix sets merged.
func (rs *Ruleset) Normalize() {
	for i := range rs.Exposures {
		e := &rs.Exposures[i]
		e.Ports = normalizePorts(e.Ports)
		e.RejectWith = canonicalRejectWith(e)
		e.Interfaces = slices.Compact(slices.Sorted(slices.Values(e.Interfaces)))
		if len(e.Interfaces) == 0 {
			e.Interfaces = nil
		}
		e.Destinations = e.Destinations.normalized()
		e.Deny = e.Deny.normalized()
		e.Allow = e.Allow.normalized()
		e.Expiring = normalizeGrants(e.Expiring, e.Allow)
	}
	slices.SortFunc(rs.Exposures, func(a, b Exposure) int { return strings.Compare(a.Name, b.Name) })
}

// canonicalRejectWith is the answer stored in a normalised Exposure: set
// only for Reject, so a kernel read back and a compiled policy compare
// equal whether or not the policy spelled out the default.
func canonicalRejectWith(e *Exposure) RejectWith {
	if e.Default != Reject {
		return ""
	}
	return e.Answer()
}

// isNormalized reports whether Normalize would change nothing, in one
// pass and without copying.
func (rs *Ruleset) isNormalized() bool {
	for i, e := range rs.Exposures {
		if i > 0 && rs.Exposures[i-1].Name >= e.Name {
			return false
		}
		if !slices.IsSorted(e.Interfaces) || len(slices.Compact(slices.Clone(e.Interfaces))) != len(e.Interfaces) ||
			!slices.Equal(normalizePorts(e.Ports), e.Ports) {
			return false
		}
		if e.RejectWith != canonicalRejectWith(&e) {
			return false
		}
		if !e.Destinations.isCanonical() || !e.Deny.isCanonical() || !e.Allow.isCanonical() {
			return false
		}
		if len(e.Expiring) > 0 && (!slices.IsSortedFunc(e.Expiring, compareGrants) || !grantsCanonical(e.Expiring, e.Allow)) {
			return false
		}
	}
	return true
}

// Canonical returns rs when it is normalised already, else a normalised
// copy. Rulesets are built whole and never changed in place afterwards
// (Normalize works on a fresh Clone or on what Compile just made), so a
// canonical one is shared rather than copied: with 100,000 sources each
// copy cost a fresh process 3 MB of page faults.
func (rs *Ruleset) Canonical() *Ruleset {
	if rs.isNormalized() {
		return rs
	}
	c := rs.Clone()
	c.Normalize()
	return c
}

// Exposure returns the exposure called name, or nil.
func (rs *Ruleset) Exposure(name string) *Exposure {
	for i := range rs.Exposures {
		if rs.Exposures[i].Name == name {
			return &rs.Exposures[i]
		}
	}
	return nil
}

// Fingerprint is a sha256 of the canonical model, Origins left out: two
// Rulesets that put the same rules in a kernel have the same fingerprint.
func (rs *Ruleset) Fingerprint() string {
	canon := rs
	if !rs.isNormalized() {
		canon = rs.Clone()
		canon.Normalize()
	}
	h := sha256.New()
	// The same bytes as one Write per prefix, written a buffer at a time:
	// the calls cost more than the hashing.
	buf := make([]byte, 0, 32<<10)
	for _, e := range canon.Exposures {
		buf = fmt.Appendf(buf, "exposure %q %s %s%s log=%t loopback=%t ports=%v interfaces=%q\n",
			e.Name, e.Protocol, e.Default, rejectSuffix(e.RejectWith), e.Log, e.Loopback, e.Ports, e.Interfaces)
		for _, set := range []struct {
			name string
			ps   Prefixes
		}{{"destinations", e.Destinations}, {"deny", e.Deny}, {"allow", e.Allow}} {
			buf = append(buf, set.name...)
			for _, fam := range [][]netip.Prefix{set.ps.V4, set.ps.V6} { // as All() orders them, without copying
				for _, p := range fam {
					if len(buf) > cap(buf)-32 {
						h.Write(buf)
						buf = buf[:0]
					}
					buf, _ = p.AppendBinary(buf)
				}
			}
		}
		if len(e.Expiring) > 0 { // absent before expiring access existed: old fingerprints hold
			buf = append(buf, "expiring"...)
			for _, g := range e.Expiring {
				if len(buf) > cap(buf)-32 {
					h.Write(buf)
					buf = buf[:0]
				}
				buf, _ = g.Source.AppendBinary(buf)
				buf = binary.BigEndian.AppendUint64(buf, uint64(g.Until.Unix()))
			}
		}
	}
	h.Write(buf)
	return hex.EncodeToString(h.Sum(nil))
}

// Clone returns a deep copy.
func (rs *Ruleset) Clone() *Ruleset {
	out := &Ruleset{Exposures: make([]Exposure, len(rs.Exposures))}
	for i, e := range rs.Exposures {
		e.Ports = slices.Clone(e.Ports)
		e.Interfaces = slices.Clone(e.Interfaces)
		e.Destinations = Prefixes{slices.Clone(e.Destinations.V4), slices.Clone(e.Destinations.V6)}
		e.Deny = Prefixes{slices.Clone(e.Deny.V4), slices.Clone(e.Deny.V6)}
		e.Allow = Prefixes{slices.Clone(e.Allow.V4), slices.Clone(e.Allow.V6)}
		e.Expiring = slices.Clone(e.Expiring)
		e.Origins = slices.Clone(e.Origins)
		out.Exposures[i] = e
	}
	return out
}

// rejectSuffix keeps fingerprints of drop exposures as they were before
// reject_with existed.
func rejectSuffix(r RejectWith) string {
	if r == "" {
		return ""
	}
	return " with " + string(r)
}
