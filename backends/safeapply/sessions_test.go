package safeapply

import (
	"net"
	"net/netip"
	"testing"

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
