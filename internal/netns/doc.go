// Package netns creates throwaway network namespaces and veth pairs for the
// sandbox lab and the kernel tests, and runs code or commands inside them.
//
// Be aware:
//   - Namespaces are named "pwt-*" (PORTWARDEN_NETNS_PREFIX sets another
//     prefix, so two tools or CI jobs on one host keep apart). Close kills
//     the processes left inside and deletes the namespace; callers must call
//     it on every path out (netnstest does it through t.Cleanup, and on
//     SIGINT/SIGTERM through CloseAllOnSignal).
//   - Nothing here touches the namespace of the calling process: links are
//     created directly inside the target namespaces through netlink handles,
//     and code runs in a namespace on a locked OS thread that is discarded
//     afterwards, never returned to the Go scheduler in the wrong namespace.
//   - Tests use addresses from 198.18.0.0/15 and 2001:2::/48 only (see
//     netnstest for the fixed plan).
package netns
