// Package iptables is the iptables backend: it makes the filter tables of
// IPv4 (iptables) and IPv6 (ip6tables) hold a rules.Ruleset, with either
// the nft-based binaries (iptables-nft) or the legacy ones
// (iptables-legacy). github.com/coreos/go-iptables finds and checks the
// binaries; rules are read with iptables-save and written with
// iptables-restore --noflush.
//
// # What it owns
//
// In each family's filter table:
//
//	INPUT          one rule, first:  -m comment --comment "portwarden jump" -j PORTWARDEN
//	PORTWARDEN     per exposure (Name order), per destination × interface × 15 ports:
//	               [-d DST] [-i IF] -p PROTO -m multiport --dports P,Q:R -j PW-<hash>
//	PW-<hash>      one chain per exposure, hash = first 10 hex digits of sha256(name):
//	               -i lo -j ACCEPT                                   (loopback, when allowed)
//	               -m set --match-set PW-<hash>-a4 src -j ACCEPT     (allow minus deny)
//	               -m set --match-set PW-<hash>-d4 src [-j LOG] -j DROP|REJECT
//	               [-j LOG] -j DROP|REJECT                           (the default)
//
// and, in the kernel's ipset subsystem of the namespace, per exposure and
// family (4 or 6) two hash:net sets with per-element counters:
//
//	PW-<hash>-a4   allow minus deny, as hash:net holds it: the allow
//	               prefixes, and the deny prefixes inside them flagged
//	               nomatch (the most specific element holding an address
//	               decides it); the only set that decides whether a source
//	               is accepted
//	PW-<hash>-d4   deny, plus the part of allow that deny overrides, each
//	               element commented "deny", "also allowed" or "deny; also
//	               allowed", so that both lists read back exactly
//
// An exposure whose destinations are all of one family has no match rule
// in the other family's PORTWARDEN, but its chain and sets are written
// there all the same: they carry that family's sources and grants, which
// are part of the model, so the chain is left unused on purpose. It then
// starts with a marker rule without a target (it decides nothing):
//
//	-m comment --comment "portwarden expose=NAME no-destination-in-this-family"
//
// so that the kernel itself says the chain is unused on purpose, and a
// family's match rules deleted by hand are not taken for it.
//
// Deny and the default refuse alike (same verdict, same log), so the deny
// rule only counts and names deny hits apart. /0 is held as two /1 (hash:net
// cannot hold /0).
//
// Every owned rule carries a comment "portwarden expose=NAME KIND" (KIND is
// match, loopback, deny, deny-log, allow, grant, log, default or
// no-destination-in-this-family), which is how
// Current decodes the chains back into the model and Counters names them.
// LOG rules are limited to 10/min and their prefix names the exposure
// (backends.LogPrefix, the same text as nftables writes). REJECT answers as
// the exposure's reject_with says: tcp-reset (the rule then matches -p tcp,
// as iptables requires), icmp-port-unreachable / icmp6-port-unreachable or
// icmp-admin-prohibited / icmp6-adm-prohibited. There is no conntrack shortcut: every packet to a managed port
// walks the chain, so revoking a source cuts its open connections. Every
// other chain and rule (Docker's, firewalld's, an administrator's) is
// never written: a write names only owned chains and the jump.
//
// # Which binaries: nft or legacy
//
// The two variants keep rules in different kernel subsystems; both see
// every packet, so the choice only decides where portwarden's rules live
// (and which tools show them). In order:
//
//  1. WithVariant(NFT|Legacy), then the environment variable
//     PORTWARDEN_IPTABLES=nft|legacy: an explicit choice always wins.
//  2. The variant that already holds portwarden's chains, so a host keeps
//     being managed where it was first set up.
//  3. The only variant that holds any rules (any table, both families), so
//     portwarden sits beside Docker, firewalld or the administrator's rules
//     and shows up in the same iptables-save.
//  4. The variant the system's `iptables` command is (Debian's
//     alternatives, `iptables --version` says "nf_tables" or not).
//  5. nft.
//
// Legacy tables are counted from /proc/net/ip_tables_names inside the
// namespace first, so looking does not create legacy tables where there
// are none. Backend.Reason says which step decided.
//
// # Atomicity: one iptables-restore --noflush per family
//
// Apply writes one iptables-restore --noflush file per family. It names
// only the chains whose rules differ from the wanted ones: declaring an
// existing chain (":PW-X - [0:0]") flushes it, the new rules follow, the
// jump is re-inserted only when it is missing, duplicated or not first, and
// chains no longer wanted are flushed and deleted (-X) after nothing jumps
// to them. The whole file is one commit: iptables-legacy replaces the
// filter table in a single setsockopt, iptables-nft sends one nf_tables
// batch transaction. A packet therefore sees the old chains or the new
// ones, never a half-built chain. This was preferred to building chains
// beside the old ones and switching the INPUT jump with -R because that
// needs three or more separate commits (build, switch, delete), leaves
// garbage behind when interrupted, and makes the chain names unstable; the
// restore file keeps names deterministic and the transition one step.
// IPv4 and IPv6 are two commits; a packet is only ever in one of them.
//
// When the wanted chain differs from the installed one in one contiguous
// run of rules (a source added or removed), the file edits that run in
// place (-D/-I by position) instead of flushing the chain, so the kernel
// changes only those rules and all others keep their counters; a larger
// difference rewrites the chain, and so does iptables-nft for chains over
// 25,000 rules, because iptables-nft-restore reads and translates a whole
// chain to find a position (2.7 s for 50,000 rules, against 1 s to reload
// it). Either way it is the same single commit.
//
// An unchanged re-apply reads both tables and writes nothing. A saved plan
// carries the fingerprint of the owned rules (text and position, not
// counters); Apply re-reads them and refuses with backends.ErrStalePlan
// when they changed, before writing. With iptables-nft the re-read is
// skipped when the nf_tables generation (one netlink request) has not
// moved since the plan's own read, because iptables-nft-save of 100,000
// rules takes more than a second. Both families are read concurrently.
//
// # Drift
//
// Current decodes the owned chains into a rules.Ruleset, so a deleted
// allow or deny rule shows as a difference of the model. What the model
// cannot carry is reported in State.Drift: a missing, duplicated, moved or
// edited INPUT jump; rules in owned chains without portwarden's comment
// (added by hand); owned chains not in the order portwarden writes; unused
// leftover chains. An exposure chain nothing jumps to is drift unless it
// holds the no-destination-in-this-family marker and rendering the decoded
// exposure gives it no match rule in that family (its destinations are all
// of the other family); its rules are then compared with what portwarden
// writes like any other chain's, so the marker in a chain its exposure
// does jump to is drift too. The decoded destinations come only from the
// match rules left, which is why the marker, not the decoded model, says
// whether a chain is unused on purpose: a chain written before the marker
// existed is drift once, and one apply adds it. Any drift
// makes the plan non-empty and Apply rewrites the chains concerned.
//
// # Sets
//
// Sets are written over netlink (vishvananda/netlink for create, swap and
// destroy; element lists of up to 60 KB a message, as ipset restore sends
// them, because the library's one message per element is ten times
// slower), in the namespace of Config.NetNS; no ipset binary is needed.
// Only sets named exactly PW-<10 hex digits>-a4|a6|d4|d6 (and the same with
// a trailing "t", the temporary set of a swap) are read or written; other
// sets are never listed beyond their names.
//
// A source change writes no rule: it edits sets. The kernel applies an
// element list one element at a time, so a change of more than one element
// of an allow set is built in a temporary set (PW-<hash>-a4t) and swapped
// with the live one (one atomic step); a single element is added or
// deleted in place, and unchanged elements keep their counters either way.
// Sets and rules are separate commits, ordered so that a family is never
// more open than before or after each phase (twophase.go): allow sets
// shrink before the chains load and grow after. Sets no longer used are
// destroyed after the rules that named them.
//
// Current reads the sets back: a hand-added or removed element changes the
// model (the plan shows it), a set without counters or with other options
// (swapped in by hand), an element not as portwarden writes it (a nomatch
// the deny list does not give, untagged, not merged) or a leftover set is
// drift; apply repairs all of
// them. Usage reads the allow sets' per-element counters; ipset records no
// time of the last match, so last-seen is not known with this backend.
//
// # Large source lists
//
// The per-packet cost does not grow with the number of sources: hash:net
// looks an address up once per distinct prefix length in the set.
// BenchmarkPerPacketCost measures a TCP connection through 10 and through
// 100,000 sources: within 5% of each other with both variants (nft 0.97,
// legacy 1.05, the noise of the machine). Every exposure uses sets, even
// with one source: one way of writing and reading, and
// BenchmarkApplyBesideRestore shows 10 sources applied and changed in
// about the time of ipset restore plus iptables-restore. A denied address
// inside an allowed prefix is one nomatch element, not the prefix split
// around it (a /64 with one denied address was 64 prefixes; a block list
// of 20,000 IPv6 addresses under an allow of ::/0 was 1.3 million
// elements, 100 MB of kernel memory and 14 s to apply, now 20,002
// elements, 1.3 MB and 0.33 s); the lookup cost follows the number of
// distinct prefix lengths, at most 32 (IPv4) or 128 (IPv6).
//
// Because a nomatch element takes addresses away, adding one shrinks the
// set and deleting one grows it: a transition changes one element in
// place (before the chains load if it shrinks, after if it grows), and
// more by swaps, to have ∩ want first when anything is revoked.
//
// Be aware:
//   - Exposure names are written into comments with bytes other than
//     letters, digits and _ - . : / as %XX, and may be up to 200 bytes so
//     written.
//   - With iptables-nft, the first apply on a host without an "ip filter"
//     (or "ip6 filter") nf_tables table creates it with its base chains at
//     policy ACCEPT, exactly as any iptables command would; destroy leaves
//     that table, which other tools may share.
//   - Both variants see every packet: an ACCEPT in one does not stop a DROP
//     in the other, so rules left in the variant not chosen still apply.
//   - Rules are applied with the binaries run from a thread inside
//     Config.NetNS; the xtables lock (legacy) is a file of the mount
//     namespace and is waited for up to 10 seconds.
//   - A grant (a source allowed until a deadline) is one rule with the time
//     match, not a set element: ipset's element timeouts end after 24.8
//     days at most. A packet no allow set admits walks every grant rule of
//     its exposure, so thousands of grants cost per packet (20,000 made a
//     connection about 20 times dearer in a review); the time match takes
//     deadlines up to 2038-12-31 (validate refuses later ones).
package iptables
