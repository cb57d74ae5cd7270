// Package netnstest gives kernel tests throwaway namespaces and the fixed
// address plan every kernel test uses.
//
// Kernel tests run only as root and only inside namespaces they create.
// Without root they skip, except under CI=true, where a kernel test that
// cannot run fails: CI must never go green by skipping.
package netnstest

import (
	"fmt"
	"net/netip"
	"os"
	"testing"

	"github.com/portwarden/portwarden/internal/netns"
)

// Address ranges reserved for tests (RFC 2544 and RFC 5180 benchmarking
// ranges). No test uses any other address.
var (
	TestRangeV4 = netip.MustParsePrefix("198.18.0.0/15")
	TestRangeV6 = netip.MustParsePrefix("2001:2::/48")
)

// RequireRoot skips (fails under CI=true) unless the test can manage
// network namespaces and firewalls.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("kernel test needs root (CAP_NET_ADMIN) and CI=true forbids skipping: run as root")
	}
	const why = "kernel test needs root (CAP_NET_ADMIN); skipped outside CI"
	LogSkip(t.Name(), why)
	t.Skip(why)
}

// LogSkip appends a skipped kernel test to the file PORTWARDEN_SKIP_LOG
// names, so that `make test` can say at the end how many were skipped and
// why, instead of a row of "ok" for packages whose kernel tests all
// skipped.
func LogSkip(name, why string) {
	path := os.Getenv("PORTWARDEN_SKIP_LOG")
	if path == "" {
		return
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return
	}
	defer f.Close()
	fmt.Fprintf(f, "%s: %s\n", name, why)
}

// New creates a namespace for the test, deleted when the test ends.
func New(t testing.TB, label string) *netns.NS {
	t.Helper()
	RequireRoot(t)
	netns.CloseAllOnSignal()
	ns, err := netns.New(label)
	if err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	t.Cleanup(func() {
		if err := ns.Close(); err != nil {
			t.Errorf("delete namespace %s: %v", ns.Name, err)
		}
	})
	return ns
}
