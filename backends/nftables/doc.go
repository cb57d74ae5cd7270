// Package nftables is the nftables backend: it keeps portwarden's rules in
// one table, `inet portwarden`, written and read over netlink with
// github.com/google/nftables (no nft binary at run time).
//
// # What it owns
//
//	table inet portwarden
//	  set portwarden.owner     one element commented "managed by portwarden":
//	                           a same-named table without it is never adopted
//	  set NAME-ports           inet_service, interval   the exposure's ports
//	  set NAME-ifaces          ifname                   its interfaces (when limited)
//	  set NAME-dst4/-dst6      addresses, interval      its destinations (when limited)
//	  set NAME-deny4/-deny6    addresses, interval      deny sources
//	  set NAME-allow4/-allow6  addresses, interval, counter   allow sources,
//	                           each element with its own counter (Usage)
//	  set NAME-grant4/-grant6  addresses, interval, timeout, counter   sources
//	                           allowed until a deadline (element timeouts)
//	  set NAME-seen4/-seen6    addresses, dynamic, timeout 365d, size 65535:
//	                           the sources admitted, refreshed by the packet path
//	  chain input              filter, hook input, priority 0 (filter), policy accept:
//	      [iifname @NAME-ifaces] meta l4proto P th dport @NAME-ports
//	      [ip|ip6 daddr @NAME-dst4|6] counter jump x-NAME      (exposures in name order)
//	  chain x-NAME             the exposure, in rules.Exposure's evaluation order:
//	      iifname "lo" counter accept                          (when loopback)
//	      ip saddr @NAME-deny4 [limit 10/minute counter log prefix "portwarden NAME: "]
//	      ip saddr @NAME-deny4 counter drop | REJECT
//	      (the same for ip6 and NAME-deny6)
//	      [tcp flags & (syn | ack) == syn] ip saddr @NAME-allow4
//	          update @NAME-seen4 { ip saddr } counter accept        ("allow4-new")
//	      ip saddr @NAME-allow4 counter accept                      ("allow4")
//	      (the same for ip6, NAME-allow6 and NAME-seen6; then for
//	      NAME-grant4 and NAME-grant6, "grant4-new", "grant4", ...)
//	      [limit 10/minute counter log prefix "portwarden NAME: "]
//	      counter drop | REJECT
//	  where REJECT is the exposure's reject_with: "meta l4proto tcp reject with
//	  tcp reset", "reject with icmpx port-unreachable" or "reject with icmpx
//	  admin-prohibited"; the jump rule's comment records it ("reject=...").
//	  The log prefix is backends.LogPrefix, the same text as iptables writes.
//
// # What the packet path records
//
// Every element of an allow or grant set carries a counter: the packets and bytes
// the kernel admitted through it (a lookup moves the counter of the
// element it finds). The first rule of each family records the source of
// a new TCP connection (SYN without ACK; every packet for UDP) in the seen
// set, whose element's remaining timeout tells when it was last refreshed:
// last seen = now - (365d - expires). It does not use conntrack (`ct state
// new`): the first ct expression turns connection tracking on for the whole
// namespace, and a full conntrack table drops packets of every connection.
// Recording never changes a verdict: when the seen set is full, the dynset
// expression ends that rule as a non-match and the plain accept rule after
// it admits the packet (counting the SYN twice, the only inexactness). Seen
// sets and counters change with every packet, so they are never drift and
// never part of the model; apply leaves a seen set alone unless its type is
// wrong, so last-seen survives applies. An element deleted and re-added
// (a source range that merges differently) starts counting again from 0.
// A table written before counters (sets without them, no seen sets) is
// drift, and apply recreates those sets: a set's flags cannot change in
// place.
//
// Sources live in interval sets, so the per-packet cost does not grow with
// their number. There is no conntrack shortcut: every packet to a managed
// port walks the chain, so removing a source cuts its open connections. A
// packet the exposure chain accepts is accepted by this table only; other
// tables' input chains still see it (doctor reports those that refuse).
//
// # Reading back
//
// Every rule carries a comment "portwarden NAME KIND" (the jump also its
// attributes: protocol, default, log, loopback, whether interfaces and
// destinations are limited). Current decodes the sets' elements into the
// model and regenerates every rule from it: any rule that differs, is
// missing, or was added by hand, and any leftover chain or set, is drift.
// Drift makes the plan non-empty and apply rebuilds what drifted.
//
// # Writing
//
// Apply queues every change on one netlink batch (batch.go): the kernel
// commits it as one transaction, so a packet sees the old rules or the
// new ones. Sets are edited element by element (an interval is a start and
// an end-plus-one element); chains are rebuilt only when an exposure's
// shape changes. google/nftables encodes tables, sets, chains and rules;
// set elements are encoded straight from the intervals, a message cut
// before its element list reaches the 64 KiB a netlink attribute holds.
// The batch goes in one sendmsg with no acknowledgement asked per message
// (internal/nfgen.SendBatch), as nft sends one: the kernel answers only a
// refusal, which names the message refused. The new generation is asked
// on the same socket, which is closed in the background: releasing an
// nf_tables socket waits until the kernel has freed what the last commit
// replaced, an RCU grace period later.
//
// # Knowing nothing changed
//
// The kernel bumps the nf_tables generation on every committed batch in a
// namespace, whoever sends it. A backend remembers the state it last read
// or wrote with the namespace's cookie and the generation; while both are
// unchanged it answers from memory, because dumping large interval sets is
// slow in the kernel. With Config.StateDir it also keeps that state in a
// file, nftables.cache, in the namespace's state directory (cache.go),
// when that directory exists and may be trusted at that moment (the
// backend never makes it: commands that write state do, through
// safeapply.Open), so a fresh process trusts it while the cookie, the
// generation and the boot are the same, and dumps nothing. Only
// drift-free states are cached; a damaged file (CRC) is ignored. Holds
// answers from the file's header alone, which is how `portwarden plan`
// and `apply` on an unchanged policy and kernel finish in milliseconds. A
// stale plan is refused by comparing fingerprints of the freshly read (or
// provably unchanged) state.
//
// When the generation moved (any program wrote anything), the next command
// reads the owned table once, and the set dumps are the cost: the kernel
// restarts its set walk for every dump message, so a dump of n elements in
// messages of k costs about n²/2k steps. dump.go reads with a 32 KiB
// buffer (internal/nfgen), which makes the kernel fill each message up to
// its maximum instead of one page, and decodes each answer as it arrives,
// keeping only keys. 100,000 sources
// (about 150,000 interval elements) then read in about half a second; a
// million take minutes, for nft list too. Per-element counters make each
// dumped element larger, yet BenchmarkColdRead (100,000 sources) read in
// 0.32-0.55 s without them and 0.37-0.55 s with them on a shared 2-core
// machine: no difference beyond the noise. They cost on writing: a cold
// apply of 100,000 sources took about a quarter longer (the kernel
// allocates a counter per element), re-applies and one-source changes
// did not move. Exact hosts in hash sets (one
// element instead of two) would halve n; that layout is not done yet.
package nftables
