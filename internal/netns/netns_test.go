package netns_test

import (
	"context"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/portwarden/portwarden/internal/netns"
	"github.com/portwarden/portwarden/internal/netns/netnstest"
)

func TestVethConnectsTwoNamespaces(t *testing.T) {
	a := netnstest.New(t, "a")
	b := netnstest.New(t, "b")
	if err := netns.Veth(a, "va", b, "vb"); err != nil {
		t.Fatal(err)
	}
	for _, step := range []struct {
		ns  *netns.NS
		dev string
		p   string
	}{{a, "va", "198.18.0.1/24"}, {b, "vb", "198.18.0.2/24"}, {a, "va", "2001:2::1/64"}, {b, "vb", "2001:2::2/64"}} {
		if err := step.ns.AddAddr(step.dev, netip.MustParsePrefix(step.p)); err != nil {
			t.Fatal(err)
		}
	}
	var ln net.Listener
	if err := b.Do(func() (err error) { ln, err = net.Listen("tcp", "[::]:2727"); return err }); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	for _, target := range []string{"198.18.0.2:2727", "[2001:2::2]:2727"} {
		err := a.Do(func() error {
			c, err := net.DialTimeout("tcp", target, 2*time.Second)
			if err == nil {
				c.Close()
			}
			return err
		})
		if err != nil {
			t.Errorf("dial %s from %s: %v", target, a.Name, err)
		}
	}
	out, err := a.Run(context.Background(), "ip", "-br", "addr", "show", "va")
	if err != nil || !strings.Contains(string(out), "198.18.0.1/24") {
		t.Errorf("ip addr in namespace: %v %s", err, out)
	}
	// The host namespace must not have gained the veth.
	if _, err := net.InterfaceByName("va"); err == nil {
		t.Error("veth va appeared in the host namespace")
	}
}

func TestSysctlStaysInTheNamespace(t *testing.T) {
	ns := netnstest.New(t, "sysctl")
	host, err := os.ReadFile("/proc/sys/net/ipv4/icmp_ratelimit")
	if err != nil {
		t.Fatal(err)
	}
	want := "0"
	if strings.TrimSpace(string(host)) == "0" {
		want = "500"
	}
	if err := ns.Sysctl("net.ipv4.icmp_ratelimit", want); err != nil {
		t.Fatal(err)
	}
	out, err := ns.Run(context.Background(), "cat", "/proc/sys/net/ipv4/icmp_ratelimit")
	if err != nil || strings.TrimSpace(string(out)) != want {
		t.Errorf("inside: %q %v, want %s", out, err, want)
	}
	after, _ := os.ReadFile("/proc/sys/net/ipv4/icmp_ratelimit")
	if string(after) != string(host) {
		t.Errorf("the host's sysctl changed: %q -> %q", host, after)
	}
}
