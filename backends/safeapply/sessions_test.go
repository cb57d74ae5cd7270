package safeapply

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/portwarden/portwarden/internal/netns"
	"github.com/portwarden/portwarden/internal/netns/netnstest"
)

// A namespace's own socket counters tell when there is no TCP socket to
// find, so the walk of the kernel's shared connection table is skipped
// there; a listener or a connection, IPv4 or IPv6, is counted, and the
// sessions are then read from the table as before.
func TestTCPSocketsInUse(t *testing.T) {
	ns := netnstest.New(t, "sockstat")
	if err := ns.LinkUp("lo"); err != nil {
		t.Fatal(err)
	}
	err := ns.Do(func() error {
		if n, ok := tcpSocketsInUse(); !ok || n != 0 {
			t.Errorf("new namespace: %d TCP sockets (ok %v), want 0", n, ok)
		}
		if socks, err := tcpSockets(); err != nil || len(socks) != 0 {
			t.Errorf("new namespace: sockets %v, %v", socks, err)
		}
		l4, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			return err
		}
		defer l4.Close()
		l6, err := net.Listen("tcp6", "[::1]:0")
		if err != nil {
			return err
		}
		defer l6.Close()
		c, err := net.Dial("tcp4", l4.Addr().String())
		if err != nil {
			return err
		}
		defer c.Close()
		s, err := l4.Accept()
		if err != nil {
			return err
		}
		defer s.Close()
		if n, ok := tcpSocketsInUse(); !ok || n != 4 {
			t.Errorf("two listeners and both ends of a connection: %d TCP sockets (ok %v), want 4", n, ok)
		}
		socks, err := tcpSockets()
		if err != nil {
			return err
		}
		server := netip.MustParseAddrPort(s.LocalAddr().String())
		var established int
		for _, so := range socks {
			if so.established && so.local == server {
				established++
			}
		}
		if established != 1 {
			t.Errorf("the accepted connection %v is not in the table read: %+v", server, socks)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A link-local address has a route on every interface, so the route back
// to the client says nothing of where its packets arrive; the kernel binds
// the accepted connection to that interface, and the session is judged on
// it. (The route said pwa1, the first link, for a session on pwa2.)
func TestLinkLocalSessionOnItsInterface(t *testing.T) {
	srv := netnstest.New(t, "ll-srv")
	c1 := netnstest.New(t, "ll-c1")
	c2 := netnstest.New(t, "ll-c2")
	for _, ns := range []*netns.NS{srv, c1, c2} {
		// No duplicate address detection: the addresses are usable at once.
		if err := ns.Sysctl("net.ipv6.conf.default.accept_dad", "0"); err != nil {
			t.Fatal(err)
		}
		if err := ns.LinkUp("lo"); err != nil {
			t.Fatal(err)
		}
	}
	if err := netns.Veth(srv, "pwa1", c1, "pwb1"); err != nil {
		t.Fatal(err)
	}
	if err := netns.Veth(srv, "pwa2", c2, "pwb2"); err != nil {
		t.Fatal(err)
	}
	for _, a := range []struct {
		ns     *netns.NS
		ifname string
		addr   string
	}{{srv, "pwa1", "fe80::a1/64"}, {srv, "pwa2", "fe80::a2/64"}, {c1, "pwb1", "fe80::b1/64"}, {c2, "pwb2", "fe80::b2/64"}} {
		if err := a.ns.AddAddr(a.ifname, netip.MustParsePrefix(a.addr)); err != nil {
			t.Fatal(err)
		}
		if err := a.ns.LinkUp(a.ifname); err != nil {
			t.Fatal(err)
		}
	}
	var l net.Listener
	if err := srv.Do(func() (err error) { l, err = net.Listen("tcp6", "[::]:22"); return err }); err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var c net.Conn
	err := c2.Do(func() (err error) {
		d := net.Dialer{Timeout: 5 * time.Second}
		c, err = d.Dial("tcp6", "[fe80::a2%pwb2]:22")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// sshd names the same session with zones in SSH_CONNECTION: it is the
	// same session, not a second one that no prefix holds.
	for _, environ := range [][]string{nil, {"SSH_CONNECTION=fe80::b2%pwa2 40000 fe80::a2%pwa2 22"}} {
		err = srv.Do(func() error {
			sessions, err := SSHSessions(environ)
			if err != nil {
				return err
			}
			if len(sessions) != 1 || sessions[0].Client != netip.MustParseAddr("fe80::b2") || sessions[0].Interface != "pwa2" {
				t.Errorf("environment %q: sessions %+v, want the one from fe80::b2 on pwa2", environ, sessions)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}
