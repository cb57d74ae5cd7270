package iptables

import (
	"context"
	"github.com/portwarden/portwarden/backends/backendtest"
	"net/netip"
	"strings"
	"testing"

	"github.com/portwarden/portwarden/backends"
	"github.com/portwarden/portwarden/internal/netns"
	"github.com/portwarden/portwarden/internal/netns/netnstest"
	"github.com/portwarden/portwarden/rules"
)

// The lab is the conformance suite's (backendtest.NewLab): a server
// namespace (pw0) and a client namespace (pw1) holding several source
// addresses from the test ranges. These names keep this package's kernel
// tests short.
var (
	serverV4, serverV6           = backendtest.ServerV4, backendtest.ServerV6
	allowedV4, deniedV4, otherV4 = backendtest.AllowedV4, backendtest.DeniedV4, backendtest.OtherV4
	allowedV6, deniedV6, otherV6 = backendtest.AllowedV6, backendtest.DeniedV6, backendtest.OtherV6
	open, rejected, filtered     = backendtest.Open, backendtest.Rejected, backendtest.Filtered
	closed                       = backendtest.Closed
	managedPort, unmanagedPort   = backendtest.ManagedPort, backendtest.UnmanagedPort
)

// variants are the iptables variants installed here; under CI both must be.
func variants(t *testing.T) []Variant {
	var vs []Variant
	for _, v := range []Variant{NFT, Legacy} {
		if err := checkBinaries(v); err != nil {
			t.Logf("iptables-%s not usable: %v", v, err)
			continue
		}
		vs = append(vs, v)
	}
	if len(vs) == 0 {
		t.Fatal("no iptables variant installed")
	}
	return vs
}

// forEachVariant runs a kernel test once per installed variant.
func forEachVariant(t *testing.T, fn func(t *testing.T, v Variant)) {
	netnstest.RequireRoot(t)
	for _, v := range variants(t) {
		t.Run(string(v), func(t *testing.T) { fn(t, v) })
	}
}

type lab struct {
	*backendtest.Lab
	server, client *netns.NS
	b              *Backend
	hooks          *hooks
	variant        Variant
}

func newLab(t *testing.T, v Variant) *lab {
	t.Helper()
	h := &hooks{variant: v}
	bl := backendtest.NewLab(t, h)
	return &lab{Lab: bl, server: bl.Server, client: bl.Client, b: bl.Backend.(*Backend), hooks: h, variant: v}
}

// writes counts the restore commits of the lab's backend.
func (l *lab) writes(t *testing.T) int { return l.hooks.Writes(t) }

func (l *lab) probe(t *testing.T, ns *netns.NS, src, dst netip.Addr, port int) string {
	t.Helper()
	return l.Lab.Probe(t, ns, src, dst, port)
}

// ipt runs the variant's iptables binary inside the server namespace.
func (l *lab) ipt(t *testing.T, fam family, args ...string) string {
	t.Helper()
	bin := "iptables-" + string(l.variant)
	if fam == ipv6 {
		bin = "ip6tables-" + string(l.variant)
	}
	out, err := l.server.Run(context.Background(), bin, args...)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// save is iptables-save of the server's filter table, without counters
// and comment lines.
func (l *lab) save(t *testing.T, fam family) string {
	t.Helper()
	bin := "iptables-" + string(l.variant) + "-save"
	if fam == ipv6 {
		bin = "ip6tables-" + string(l.variant) + "-save"
	}
	out, err := l.server.Run(context.Background(), bin, "-t", "filter")
	if err != nil {
		t.Fatal(err)
	}
	var keep []string
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasPrefix(line, ":") { // chain policy counters move with traffic
			if i := strings.LastIndexByte(line, '['); i > 0 {
				line = line[:i] + "[0:0]"
			}
		}
		keep = append(keep, line)
	}
	return strings.Join(keep, "\n")
}

// apply plans and applies desired, failing the test on error.
func (l *lab) apply(t *testing.T, desired *rules.Ruleset) *backends.Plan {
	t.Helper()
	ctx := context.Background()
	p, err := l.b.Plan(ctx, desired)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.b.Apply(ctx, p); err != nil {
		t.Fatal(err)
	}
	return p
}

// labRuleset is the suite's lab policy: port 27 from allowed, denied
// listed in both (deny wins), everything else gets def.
func labRuleset(def rules.Verdict) *rules.Ruleset { return backendtest.LabRuleset(def) }
