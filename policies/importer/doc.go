// Package importer turns an existing firewall's rules into a portwarden
// policy: iptables-save / ip6tables-save text (with `ipset save` output),
// `nft -j list ruleset` JSON, ufw's user.rules / user6.rules, and firewalld
// zone XML.
//
// Every source is first parsed into the same flat model (Import): the rules
// that decide traffic to this host, in the order the kernel tries them, each
// with its origin (file:line or table/chain/handle), plus what happens to a
// packet no rule matches. Build then evaluates that model port by port and
// writes one expose per set of ports that behave alike, with allow and deny
// blocks that keep the source rules' names and comments.
//
// Be aware:
//   - A policy manages only the ports it declares; every other port passes.
//     A firewall whose chain policy drops everything else cannot be said in
//     a policy: Build reports it and imports the ports the rules name.
//   - The evaluation is first match wins, per address family, for new
//     connections from a source to a port. Sets are computed exactly
//     (netipx), so a deny written after an overlapping allow becomes a deny
//     block of only the addresses it really refused.
//   - Whatever cannot be expressed (NAT, marks, rate limits, interfaces
//     other than lo, destinations, stateful exceptions, non-TCP/UDP, other
//     chains) is listed in Import.LeftOut with where it came from. Notes are
//     approximations that do not change which new connections get through.
//   - iptables: a built-in chain other than filter's INPUT is not imported,
//     and its DROP policy is left out (with its file:line) where it can
//     refuse an inbound connection: PREROUTING and INPUT (the packets to
//     this host), OUTPUT and POSTROUTING (its replies) of raw, mangle,
//     security and filter, and nat's PREROUTING and INPUT (a connection's
//     first packet, once connection tracking runs). FORWARD (routed
//     packets only) and nat's OUTPUT and POSTROUTING (no reply is a
//     connection's first packet) say nothing, as does ACCEPT with no rules.
//     Rules in those chains are left out as before (per table, or per
//     chain in filter).
//   - An nftables input chain with no rules and policy accept (iptables-nft
//     leaves them after `iptables -F` or a package's install) decides
//     nothing: it is ignored with a note, whatever its priority. One with a
//     drop policy or any rule is an input chain like any other.
//   - Without a file, nftables is read over netlink (ReadNftablesKernel):
//     the kernel holds expressions, which are decoded back into the JSON
//     statements nft would print for what a policy can say (meta nfproto
//     and l4proto, ip/ip6 saddr as addresses, prefixes, ranges and sets,
//     tcp/udp dport as numbers, ranges and sets, iif lo, ct state,
//     counter, log, accept/drop/reject/jump/goto/return, comments). Any
//     other expression is named by its kind and its rule left out. For
//     --check it also needs the nft binary, to save the ruleset for the
//     sandbox.
//   - firewalld runs no daemon in the sandbox: --check loads an iptables
//     rendering of the zones as read. The other sources are loaded with
//     their own tools (iptables-restore, ipset, nft -j -f).
//   - Build's output is checked offline against the model by Evaluate
//     (tests), and against the kernel by verify.Equivalence (import --check).
package importer
