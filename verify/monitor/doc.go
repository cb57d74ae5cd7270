// Package monitor turns what the kernel holds into what monitoring reads:
// the Prometheus text exposition format (for node_exporter's textfile
// collector) and a Nagios/Icinga plugin result (one status line,
// performance data after '|', exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN).
//
// Both are computed from one Snapshot, which Take reads from a backend
// (Current, Counters) and the state directory (the last apply, the change
// awaiting confirmation, the history); status prints the same snapshot,
// its sources grouped by the policy's blocks (SourceGroups). Only Take
// talks to the kernel, through a backends.Backend, so the rest is tested
// without one.
//
// A PolicyView is what status, usage, metrics and check compare the
// kernel with: the policy named with --policy, else the one last applied,
// loaded with the variables the command was given (PolicyViewConfig: the
// command passes what its flags say). It says whether the kernel holds
// that policy (Match), how the kernel differs from the last apply rebuilt
// from its policy (DriftSinceApply), and what check's --policy and
// --verify find (CheckPolicy).
//
// Be aware:
//   - Counters are summed per exposure and rule name: nftables keeps one
//     jump rule per address family and destination, iptables one rule per
//     source, and Prometheus wants each label set once.
//   - Drift is what differs from what portwarden wrote: owned objects
//     changed by hand (the backend's word), and what the command finds
//     changed since the last apply (ChangedSinceApply: access opened or
//     closed outside portwarden, ports, exposures), which
//     PolicyView.DriftSinceApply compares with the ruleset of that apply,
//     rebuilt from its policy. Access that expired as applied is no drift.
//   - Allowed packets (check's allowed_packets) are those counted by every
//     rule that admits (Accepts): the allow rules and the grant rules of
//     sources allowed until a deadline.
//   - Refused packets are those counted by deny rules and by the default
//     rule of an exposure whose default refuses (drop or reject); the log
//     rules count the same packets again and are left out.
package monitor
