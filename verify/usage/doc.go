// Package usage maps what the kernel recorded about admitted sources
// (backends.Usage: per-element counters and last-seen records) onto the
// policy: per exposure and allow block, each source entry as written, its
// packets, when it was last seen, and whether it is unused.
//
// Nothing here talks to the kernel; the command reads a backends.Usage and
// the policy, and Build maps one onto the other, so the mapping is tested
// with a fake usage.
//
// Be aware:
//   - The kernel counts per set element, and an element is allow minus
//     deny, merged: one element may cover several entries (touching
//     ranges, the same source in two blocks). Its packets go to the one
//     entry that covers it when only one does; else to the covering
//     entries that were seen (the others sent no new connection, so the
//     packets are not theirs): exact when one was. When several (or none)
//     remain, the packets are shared: each of them shows the element's
//     whole count and says so (PacketsShared), and adding those up counts
//     packets twice. Blocks get the same treatment
//     one level up, so a block's packets are exact when no other block
//     covers the same elements.
//   - Last seen is the latest seen address within the entry: for TCP, a
//     new connection (SYN); for UDP, any packet. The kernel forgets a
//     source it has not seen for 365 days.
//   - Unused with last-seen known: not seen within UnusedSince; 0 means
//     never seen since the rules went in. Where the backend cannot know
//     last-seen (iptables), an entry is unused when it counted no packet,
//     and the report says why last-seen is unknown instead of guessing.
//   - An element deleted and re-added by an apply (a range that merges
//     differently) counts again from 0; the seen records survive applies.
package usage
