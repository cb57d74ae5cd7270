// Package backends defines the Backend interface every firewall backend
// implements (nftables, iptables), the Plan a backend applies, and — in
// sub-packages — the implementations, auto-detection (backends/auto) and the
// conformance suite every backend must pass in a real network namespace
// (backends/backendtest).
package backends
