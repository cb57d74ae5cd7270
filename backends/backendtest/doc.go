// Package backendtest is the conformance suite every backend passes in a
// real network namespace: the same scenarios, the same lab, the same
// expectations (taken from rules.Decide), for nftables and iptables alike.
//
// A backend's _test.go calls Run with its Hooks: how to open the backend in
// a namespace, how to count its kernel writes, how to install foreign rules
// shaped like Docker's and firewalld's and read them back, and how a person
// would damage owned objects by hand.
//
// The lab: a server namespace (interface pw0, 198.18.0.1/24 and 2001:2::1/64)
// listening on a managed port (27) and an unmanaged one (28), and a client
// namespace (pw1) holding several source addresses. All addresses come from
// netnstest's test ranges. Every loop is bounded in count and time.
package backendtest
