// Package verify proves a firewall with real connections: probes that tell
// open, closed, filtered and rejected apart; a sandbox that loads compiled
// rules into throwaway network namespaces and probes them from every test
// source and boundary address; live verification of a real host from this
// one; and reports (text, JSON, JUnit).
//
// Expectations always come from rules.Ruleset.Decide, never written twice:
// Accept and Pass mean open, Drop means filtered, Reject means closed when
// it answers with a TCP reset or ICMP port unreachable (the defaults) and
// rejected with icmp-admin-prohibited.
//
// Be aware:
//   - A TCP probe that meets ICMPv6 administratively-prohibited sees the
//     error only when the kernel retransmits the SYN (after about 1s), so
//     probe timeouts below 1.2s turn IPv6 "rejected" into "filtered".
//   - Equivalence compares the two sandboxes, not a model: a firewall's
//     reject (TCP reset or ICMP) and an ICMP rejection count as the same
//     refusal, and a filtered probe whose twin was refused is asked again,
//     because the kernel limits ICMP errors per namespace.
//   - A reset from the firewall and a port with no listener are the same
//     packet. Check.AnsweredBy tells them apart by the policy's verdict and,
//     in the sandbox (which serves every probed port), by the listener;
//     live, a rejected source's "closed" reads "firewall or no listener".
//   - The sandbox never touches the host's own namespace: everything lives
//     in pwt-sbx-* namespaces that are deleted on every path out.
package verify
