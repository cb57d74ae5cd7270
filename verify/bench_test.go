package verify

import (
	"context"
	"fmt"
	"net/netip"
	"testing"

	"github.com/portwarden/portwarden/internal/netns/netnstest"
	"github.com/portwarden/portwarden/policies"
	"github.com/portwarden/portwarden/rules"
)

// BenchmarkSandbox1000Probes verifies 1,000 sources in the sandbox, half
// of them dropped (each of those waits the whole probe timeout): the
// figure is the wall time of one whole verification, set-up included.
func BenchmarkSandbox1000Probes(b *testing.B) {
	netnstest.RequireRoot(b)
	rs := &rules.Ruleset{Exposures: []rules.Exposure{{
		Name: "nscp", Protocol: rules.TCP, Ports: []rules.PortRange{{First: 27, Last: 27}}, Default: rules.Drop,
		Allow: rules.NewPrefixes(netip.MustParsePrefix("198.18.0.0/23")),
	}}}
	pol := &policies.Policy{}
	for i := 0; i < 1000; i++ {
		a := netip.AddrFrom4([4]byte{198, 18, byte(i / 250 % 2 * 2), byte(i%250 + 1)}) // 198.18.0.x allowed, 198.18.2.x dropped
		expect := "allow"
		if i/250%2 == 1 {
			expect = "deny"
		}
		pol.Tests = append(pol.Tests, &policies.Test{Name: fmt.Sprintf("t%d", i), From: a, To: "nscp", Expect: expect})
	}
	for b.Loop() {
		rep, err := Sandbox(context.Background(), SandboxConfig{Policy: pol, Ruleset: rs, Backend: "nftables", Parallel: 512})
		if err != nil {
			b.Fatal(err)
		}
		if rep.Failed() || len(rep.Checks) != 1000 {
			b.Fatalf("%d checks, failed %v", len(rep.Checks), rep.Failed())
		}
		b.ReportMetric(rep.Duration.Seconds(), "s/verification")
	}
}
