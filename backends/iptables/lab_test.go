package iptables

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/portwarden/portwarden/backends"
	"github.com/portwarden/portwarden/internal/netns"
	"github.com/portwarden/portwarden/internal/netns/netnstest"
	"github.com/portwarden/portwarden/rules"
)

// The lab: a server namespace (pw0) and a client namespace (pw1) joined by
// a veth. The client holds several source addresses; all addresses come
// from the test ranges in netnstest.
var (
	serverV4 = netip.MustParseAddr("198.18.0.1")
	serverV6 = netip.MustParseAddr("2001:2::1")
	// allowed, denied (listed in both allow and deny) and unlisted peers.
	allowedV4, deniedV4, otherV4 = netip.MustParseAddr("198.18.0.2"), netip.MustParseAddr("198.18.0.3"), netip.MustParseAddr("198.18.0.4")
	allowedV6, deniedV6, otherV6 = netip.MustParseAddr("2001:2::2"), netip.MustParseAddr("2001:2::3"), netip.MustParseAddr("2001:2::4")
)

const (
	managedPort   = 27
	unmanagedPort = 28
	// probeTimeout exceeds the first SYN retransmission (1s): this kernel
	// turns an ICMPv6 administratively-prohibited answer to a SYN into a
	// connect error only when the SYN is retransmitted.
	probeTimeout = 1500 * time.Millisecond
)

// countingRunner counts restore calls: the backend's only writes.
type countingRunner struct {
	runner
	mu     sync.Mutex
	writes int
}

func (c *countingRunner) restore(ctx context.Context, fam family, text string) error {
	c.mu.Lock()
	c.writes++
	c.mu.Unlock()
	return c.runner.restore(ctx, fam, text)
}

func (c *countingRunner) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.writes
}

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
	server, client *netns.NS
	b              *Backend
	writes         *countingRunner
	variant        Variant
}

func newLab(t *testing.T, v Variant) *lab {
	t.Helper()
	server := netnstest.New(t, "ipt-srv")
	client := netnstest.New(t, "ipt-cli")
	if err := netns.Veth(server, "pw0", client, "pw1"); err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(server.AddAddr("pw0", netip.PrefixFrom(serverV4, 24)))
	must(server.AddAddr("pw0", netip.PrefixFrom(serverV6, 64)))
	for _, a := range []netip.Addr{allowedV4, deniedV4, otherV4} {
		must(client.AddAddr("pw1", netip.PrefixFrom(a, 24)))
	}
	for _, a := range []netip.Addr{allowedV6, deniedV6, otherV6} {
		must(client.AddAddr("pw1", netip.PrefixFrom(a, 64)))
	}
	// The kernel limits ICMP errors per destination (1/s after a burst);
	// without lifting that in the server namespace, rejected probes turn
	// slow and get fewer.
	for _, key := range []string{"net.ipv4.icmp_ratelimit", "net.ipv6.icmp.ratelimit"} {
		if err := server.Sysctl(key, "0"); err != nil {
			t.Fatal(err)
		}
	}
	l := &lab{server: server, client: client, variant: v}
	b, err := newBackend(context.Background(), backends.Config{NetNS: server.Path()}, WithVariant(v),
		withRunner(func(r runner) runner { l.writes = &countingRunner{runner: r}; return l.writes }))
	if err != nil {
		t.Fatal(err)
	}
	l.b = b
	for _, port := range []int{managedPort, unmanagedPort} {
		l.listen(t, "tcp4", serverV4, port)
		l.listen(t, "tcp6", serverV6, port)
	}
	// Every peer reaches the unmanaged port before any rule exists: the
	// lab itself works, so later failures are the firewall's.
	for _, src := range []netip.Addr{allowedV4, deniedV4, otherV4, allowedV6, deniedV6, otherV6} {
		dst := serverV4
		if src.Is6() {
			dst = serverV6
		}
		if got := l.probe(t, client, src, dst, unmanagedPort); got != open {
			t.Fatalf("lab set-up: %s cannot reach %s:%d before any rule (%s)", src, dst, unmanagedPort, got)
		}
	}
	return l
}

// listen accepts connections in the server namespace until the test ends.
func (l *lab) listen(t *testing.T, network string, addr netip.Addr, port int) {
	t.Helper()
	var ln net.Listener
	err := l.server.Do(func() error {
		var err error
		ln, err = net.Listen(network, netip.AddrPortFrom(addr, uint16(port)).String())
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { // hold the connection open until the peer closes it
				buf := make([]byte, 64)
				for {
					n, err := c.Read(buf)
					if err != nil {
						c.Close()
						return
					}
					c.Write(buf[:n])
				}
			}()
		}
	}()
	t.Cleanup(func() { ln.Close() })
}

// Probe results.
const (
	open     = "open"
	rejected = "rejected" // an ICMP error or RST came back at once
	filtered = "filtered" // nothing came back
)

// probe connects from src (in the client namespace, or the server's own
// namespace when fromServer) to dst:port.
func (l *lab) probe(t *testing.T, ns *netns.NS, src, dst netip.Addr, port int) string {
	t.Helper()
	var conn net.Conn
	err := ns.Do(func() error {
		d := net.Dialer{Timeout: probeTimeout}
		if src.IsValid() {
			d.LocalAddr = &net.TCPAddr{IP: src.AsSlice()}
		}
		var err error
		conn, err = d.Dial("tcp", netip.AddrPortFrom(dst, uint16(port)).String())
		return err
	})
	if err == nil {
		conn.Close()
		return open
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return filtered
	}
	if errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENETUNREACH) {
		return rejected
	}
	t.Fatalf("probe %s -> %s:%d: unexpected error %v", src, dst, port, err)
	return ""
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

// labRuleset is the lab's policy: port 27 from allowed, denied listed in
// both (deny wins), everything else gets def.
func labRuleset(def rules.Verdict) *rules.Ruleset {
	return &rules.Ruleset{Exposures: []rules.Exposure{{
		Name: "nscp", Protocol: rules.TCP,
		Ports:   []rules.PortRange{{First: managedPort, Last: managedPort}},
		Default: def, Log: true, Loopback: true,
		Deny:  pfx(deniedV4.String()+"/32", deniedV6.String()+"/128"),
		Allow: pfx("198.18.0.2/31", "2001:2::2/127"),
	}}}
}
