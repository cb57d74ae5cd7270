package iptables

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/portwarden/portwarden/backends"
	"github.com/portwarden/portwarden/internal/netns"
	"github.com/portwarden/portwarden/internal/netns/netnstest"
	"github.com/portwarden/portwarden/rules"
)

// BenchmarkPerPacketCost shows what the number of sources does to every
// packet: a client allowed on every managed port opens and closes TCP
// connections to ports whose exposures allow 10, 1,000, ... sources (each
// exposure its own set, looked up by hash), and to a port no rule
// manages; the table gives the time per connection beside the same to 10
// sources (the goal: 100,000 sources within 10% of 10) and to the
// unmanaged port. All ports are served by the one pair of namespaces and
// dialled in turn, one connection each (the order rotating), so that
// neither the machine's drifting speed nor anything of one namespace falls
// on one size more than another; each figure is the median of that port's
// connections. The larger sets' exposures come later in the chain, so the
// rules before them count against them.
func BenchmarkPerPacketCost(b *testing.B) {
	netnstest.RequireRoot(b)
	const connects = 3000 // per port
	type row struct {
		variant Variant
		sources int // 0: the unmanaged port
		per     time.Duration
	}
	var rows []row
	for i := 0; i < b.N; i++ {
		rows = rows[:0]
		for _, v := range []Variant{NFT, Legacy} {
			if checkBinaries(v) != nil {
				continue
			}
			sizes := append([]int{0}, benchSizes(b)...)
			c := newCostClient(b, v, sizes)
			runs := make([][]time.Duration, len(sizes))
			err := c.cli.Do(func() error {
				for r := range connects {
					for k := range sizes {
						j := (r + k) % len(sizes)
						start := time.Now()
						conn, err := c.dialer.Dial("tcp6", netip.AddrPortFrom(c.server, costPort(j)).String())
						if err != nil {
							return fmt.Errorf("%d sources: %w", sizes[j], err)
						}
						conn.Close()
						runs[j] = append(runs[j], time.Since(start))
					}
				}
				return nil
			})
			c.close()
			if err != nil {
				b.Fatalf("%s: %v", v, err)
			}
			for j, n := range sizes {
				slices.Sort(runs[j])
				rows = append(rows, row{v, n, runs[j][len(runs[j])/2]})
			}
		}
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(w, "variant\tallowed sources\ttime per TCP connection (median of %d)\tvs an unmanaged port\tvs 10 sources\t\n", connects)
	base, ten := map[Variant]time.Duration{}, map[Variant]time.Duration{}
	for _, r := range rows {
		switch r.sources {
		case 0:
			base[r.variant] = r.per
		case 10:
			ten[r.variant] = r.per
		}
	}
	for _, r := range rows {
		vsTen, sources := "-", strconv.Itoa(r.sources)
		if ten[r.variant] > 0 {
			vsTen = fmt.Sprintf("%.3f", float64(r.per)/float64(ten[r.variant]))
		}
		if r.sources == 0 {
			sources = "unmanaged port"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%.2f\t%s\t\n", r.variant, sources, r.per.Round(time.Microsecond), float64(r.per)/float64(base[r.variant]), vsTen)
	}
	w.Flush()
}

// costPort is the port of sizes[j]: 26 for the unmanaged one, then 27,
// 28, ... in the order of the sizes.
func costPort(j int) uint16 { return uint16(26 + j) }

// costClient is a client namespace wired to a server namespace that
// accepts on every port costPort gives, through the variant's rules.
type costClient struct {
	srv, cli  *netns.NS
	listeners []net.Listener
	server    netip.Addr
	dialer    net.Dialer // from the allowed client's address
}

// newCostClient sets up the namespaces for sizes (sizes[0], the
// unmanaged port, is not an exposure) and applies the ruleset.
func newCostClient(b *testing.B, v Variant, sizes []int) *costClient {
	server := netip.MustParseAddr("2001:2::ffff:1")
	client := netip.MustParseAddr("2001:2::ffff:2")
	c := &costClient{srv: benchNS(b), cli: benchNS(b), server: server,
		dialer: net.Dialer{Timeout: 2 * time.Second, LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(client, 0))}}
	if err := netns.Veth(c.srv, "pw0", c.cli, "pw1"); err != nil {
		b.Fatal(err)
	}
	if err := c.srv.AddAddr("pw0", netip.PrefixFrom(server, 64)); err != nil {
		b.Fatal(err)
	}
	if err := c.cli.AddAddr("pw1", netip.PrefixFrom(client, 64)); err != nil {
		b.Fatal(err)
	}
	for j := range sizes {
		var ln net.Listener
		if err := c.srv.Do(func() (err error) {
			ln, err = net.Listen("tcp6", netip.AddrPortFrom(server, costPort(j)).String())
			return err
		}); err != nil {
			b.Fatal(err)
		}
		c.listeners = append(c.listeners, ln)
		go func() {
			for {
				conn, err := ln.Accept()
				if err != nil {
					return
				}
				conn.Close()
			}
		}()
	}
	be, err := newBackend(context.Background(), backends.Config{NetNS: c.srv.Path()}, WithVariant(v))
	if err != nil {
		b.Fatal(err)
	}
	p, err := be.Plan(context.Background(), packetCostRuleset(sizes[1:], client))
	if err == nil {
		err = be.Apply(context.Background(), p)
	}
	if err != nil {
		b.Fatal(err)
	}
	// Warm up: neighbour discovery, caches.
	for j := range sizes {
		if _, err := c.dial(costPort(j), 20); err != nil {
			b.Fatalf("%s, port %d: %v", v, costPort(j), err)
		}
	}
	// The rules are in the path: a source none of the sets holds is
	// refused on every managed port.
	stranger := netip.MustParseAddr("2001:2::ffff:3")
	if err := c.cli.AddAddr("pw1", netip.PrefixFrom(stranger, 64)); err != nil {
		b.Fatal(err)
	}
	for j := 1; j < len(sizes); j++ {
		err := c.cli.Do(func() error {
			d := net.Dialer{Timeout: 2 * time.Second, LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(stranger, 0))}
			conn, err := d.Dial("tcp6", netip.AddrPortFrom(server, costPort(j)).String())
			if err == nil {
				conn.Close()
			}
			return err
		})
		if err == nil {
			b.Fatalf("%s, %d sources: a source outside the set got in", v, sizes[j])
		}
	}
	return c
}

// dial opens and closes count connections to port and returns the time
// of one.
func (c *costClient) dial(port uint16, count int) (time.Duration, error) {
	var per time.Duration
	addr := netip.AddrPortFrom(c.server, port).String()
	err := c.cli.Do(func() error {
		start := time.Now()
		for range count {
			conn, err := c.dialer.Dial("tcp6", addr)
			if err != nil {
				return err
			}
			conn.Close()
		}
		per = time.Since(start) / time.Duration(count)
		return nil
	})
	return per, err
}

func (c *costClient) close() {
	for _, ln := range c.listeners {
		ln.Close()
	}
	c.srv.Close()
	c.cli.Close()
}

// packetCostRuleset has one exposure per size, on costPort(1), (2), ...,
// named so that they come in the order of the sizes, each allowing that
// many IPv6 sources; the client's own prefix sorts after all the others.
func packetCostRuleset(sizes []int, client netip.Addr) *rules.Ruleset {
	rs := &rules.Ruleset{}
	for i, n := range sizes {
		ps := []netip.Prefix{netip.PrefixFrom(client, 128)}
		a := netip.MustParseAddr("2001:2::1:0")
		for range n - 1 {
			ps = append(ps, netip.PrefixFrom(a, 128))
			a = a.Next().Next()
		}
		port := costPort(i + 1)
		rs.Exposures = append(rs.Exposures, rules.Exposure{
			Name: fmt.Sprintf("cost%02d", i+1), Protocol: rules.TCP,
			Ports:   []rules.PortRange{{First: port, Last: port}},
			Default: rules.Reject, Allow: rules.NewPrefixes(ps...),
		})
	}
	return rs
}
