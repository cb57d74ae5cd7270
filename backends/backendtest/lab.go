package backendtest

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/portwarden/portwarden/backends"
	"github.com/portwarden/portwarden/internal/netns"
	"github.com/portwarden/portwarden/internal/netns/netnstest"
	"github.com/portwarden/portwarden/rules"
)

// Hooks are a backend's side of the suite.
type Hooks interface {
	// Open returns the backend working in the namespace at nsPath.
	Open(t *testing.T, nsPath string) backends.Backend
	// Writes counts the kernel writes made so far by backends this Hooks
	// opened (or, where the kernel counts them, in the namespace): only
	// differences are compared.
	Writes(t *testing.T) int
	// InstallForeign adds objects shaped like Docker's and firewalld's,
	// with the backend's own tools, inside the namespace.
	InstallForeign(t *testing.T, nsPath string)
	// Foreign is the text of everything the backend does not own, without
	// counters; apply and destroy must leave it byte for byte.
	Foreign(t *testing.T, nsPath string) string
	// DamageKinds lists what Damage can do; Damage does it to the owned
	// objects of exposure, as a person editing by hand would.
	DamageKinds() []string
	Damage(t *testing.T, nsPath, kind, exposure string)
}

// Lab addresses, all from the test ranges.
var (
	ServerV4 = netip.MustParseAddr("198.18.0.1")
	ServerV6 = netip.MustParseAddr("2001:2::1")
	// allowed, denied (listed in both allow and deny) and unlisted peers.
	AllowedV4, DeniedV4, OtherV4 = netip.MustParseAddr("198.18.0.2"), netip.MustParseAddr("198.18.0.3"), netip.MustParseAddr("198.18.0.4")
	AllowedV6, DeniedV6, OtherV6 = netip.MustParseAddr("2001:2::2"), netip.MustParseAddr("2001:2::3"), netip.MustParseAddr("2001:2::4")
)

const (
	ManagedPort   = 27
	UnmanagedPort = 28
	// probeTimeout exceeds the first SYN retransmission (1s): the kernel
	// turns an ICMPv6 administratively-prohibited answer to a SYN into a
	// connect error only when the SYN is retransmitted.
	probeTimeout = 1500 * time.Millisecond
)

// Probe results.
const (
	Open     = "open"
	Rejected = "rejected" // an ICMP error came back at once
	Filtered = "filtered" // nothing came back
	Closed   = "closed"   // RST: nothing listens
)

// Lab is a server and a client namespace joined by a veth, with the
// backend under test opened in the server namespace.
type Lab struct {
	Server, Client *netns.NS
	Backend        backends.Backend
	hooks          Hooks
}

// NewLab builds the lab and checks it works before any rule exists.
func NewLab(t *testing.T, h Hooks) *Lab {
	t.Helper()
	server := netnstest.New(t, "srv")
	client := netnstest.New(t, "cli")
	if err := netns.Veth(server, "pw0", client, "pw1"); err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(server.AddAddr("pw0", netip.PrefixFrom(ServerV4, 24)))
	must(server.AddAddr("pw0", netip.PrefixFrom(ServerV6, 64)))
	for _, a := range []netip.Addr{AllowedV4, DeniedV4, OtherV4} {
		must(client.AddAddr("pw1", netip.PrefixFrom(a, 24)))
	}
	for _, a := range []netip.Addr{AllowedV6, DeniedV6, OtherV6} {
		must(client.AddAddr("pw1", netip.PrefixFrom(a, 64)))
	}
	// The kernel limits ICMP errors per destination; lifted in the server
	// namespace so rejected probes stay fast.
	for _, key := range []string{"net.ipv4.icmp_ratelimit", "net.ipv6.icmp.ratelimit"} {
		if err := server.Sysctl(key, "0"); err != nil {
			t.Fatal(err)
		}
	}
	l := &Lab{Server: server, Client: client, hooks: h}
	l.Backend = h.Open(t, server.Path())
	for _, port := range []int{ManagedPort, UnmanagedPort} {
		l.Listen(t, "tcp4", ServerV4, port)
		l.Listen(t, "tcp6", ServerV6, port)
	}
	for _, src := range []netip.Addr{AllowedV4, DeniedV4, OtherV4, AllowedV6, DeniedV6, OtherV6} {
		if got := l.Probe(t, l.Client, src, serverFor(src), UnmanagedPort); got != Open {
			t.Fatalf("lab set-up: %s cannot reach port %d before any rule (%s)", src, UnmanagedPort, got)
		}
	}
	return l
}

func serverFor(src netip.Addr) netip.Addr {
	if src.Is6() {
		return ServerV6
	}
	return ServerV4
}

// Listen accepts connections in the server namespace until the test ends,
// echoing what it reads so a test can tell a connection still works.
func (l *Lab) Listen(t *testing.T, network string, addr netip.Addr, port int) {
	t.Helper()
	var ln net.Listener
	err := l.Server.Do(func() error {
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
			go func() {
				defer c.Close()
				buf := make([]byte, 64)
				for {
					n, err := c.Read(buf)
					if err != nil {
						return
					}
					if _, err := c.Write(buf[:n]); err != nil {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() { ln.Close() })
}

// Probe connects from src (unset: the kernel's choice) inside ns to
// dst:port and classifies the outcome.
func (l *Lab) Probe(t *testing.T, ns *netns.NS, src, dst netip.Addr, port int) string {
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
		return Open
	}
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		return Filtered
	case errors.Is(err, syscall.ECONNREFUSED):
		return Closed
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.EACCES), errors.Is(err, syscall.ENETUNREACH):
		return Rejected
	}
	t.Fatalf("probe %s -> %s:%d: unexpected error %v", src, dst, port, err)
	return ""
}

// Apply plans and applies desired, failing the test on error.
func (l *Lab) Apply(t *testing.T, desired *rules.Ruleset) *backends.Plan {
	t.Helper()
	ctx := context.Background()
	p, err := l.Backend.Plan(ctx, desired)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Backend.Apply(ctx, p); err != nil {
		t.Fatal(err)
	}
	return p
}

// Expected is the probe result rules.Decide predicts.
func Expected(rs *rules.Ruleset, src, dst netip.Addr, port int) string {
	d := rs.Decide(rules.Packet{Protocol: rules.TCP, Source: src, Destination: dst, Port: uint16(port), Interface: "pw0"})
	if d.Verdict == rules.Reject {
		// A reset and ICMP port unreachable both read as "connection
		// refused"; only admin-prohibited reads as a routing error.
		if e := rs.Exposure(d.Exposure); e != nil && e.Answer() == rules.ICMPAdminProhibited {
			return Rejected
		}
		return Closed
	}
	return map[rules.Verdict]string{rules.Accept: Open, rules.Pass: Open, rules.Drop: Filtered}[d.Verdict]
}

// LabRuleset is the lab's policy: port 27 from allowed, denied listed in
// both allow and deny (deny wins), everything else gets def.
func LabRuleset(def rules.Verdict) *rules.Ruleset {
	rs := &rules.Ruleset{Exposures: []rules.Exposure{{
		Name: "nscp", Protocol: rules.TCP,
		Ports:   []rules.PortRange{{First: ManagedPort, Last: ManagedPort}},
		Default: def, Log: true, Loopback: true,
		Deny:  rules.NewPrefixes(netip.PrefixFrom(DeniedV4, 32), netip.PrefixFrom(DeniedV6, 128)),
		Allow: rules.NewPrefixes(netip.MustParsePrefix("198.18.0.2/31"), netip.MustParsePrefix("2001:2::2/127")),
	}}}
	rs.Normalize()
	return rs
}
