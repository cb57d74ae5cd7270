package iptables

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/portwarden/portwarden/backends"
	"github.com/portwarden/portwarden/internal/netns"
	"github.com/portwarden/portwarden/internal/netns/netnstest"
	"github.com/portwarden/portwarden/rules"
)

// BenchmarkPerPacketCost shows what the number of sources does to every
// packet: a client among n allowed sources (in the allow set, looked up
// by hash) opens and closes TCP connections to a managed port; the table
// gives the time per connection beside the same with no rules and with
// 10 sources (the goal: 100,000 sources within 10% of 10).
func BenchmarkPerPacketCost(b *testing.B) {
	netnstest.RequireRoot(b)
	const connects = 2000
	server := netip.MustParseAddr("2001:2::ffff:1")
	client := netip.MustParseAddr("2001:2::ffff:2")
	type row struct {
		variant Variant
		sources int
		per     time.Duration
	}
	var rows []row
	for i := 0; i < b.N; i++ {
		rows = rows[:0]
		for _, v := range []Variant{NFT, Legacy} {
			if checkBinaries(v) != nil {
				continue
			}
			for _, n := range append([]int{0}, benchSizes(b)...) {
				srv, cli := benchNS(b), benchNS(b)
				if err := netns.Veth(srv, "pw0", cli, "pw1"); err != nil {
					b.Fatal(err)
				}
				if err := srv.AddAddr("pw0", netip.PrefixFrom(server, 64)); err != nil {
					b.Fatal(err)
				}
				if err := cli.AddAddr("pw1", netip.PrefixFrom(client, 64)); err != nil {
					b.Fatal(err)
				}
				var ln net.Listener
				if err := srv.Do(func() (err error) {
					ln, err = net.Listen("tcp6", netip.AddrPortFrom(server, 27).String())
					return err
				}); err != nil {
					b.Fatal(err)
				}
				go func() {
					for {
						c, err := ln.Accept()
						if err != nil {
							return
						}
						c.Close()
					}
				}()
				if n > 0 {
					be, err := newBackend(context.Background(), backends.Config{NetNS: srv.Path()}, WithVariant(v))
					if err != nil {
						b.Fatal(err)
					}
					p, err := be.Plan(context.Background(), packetCostRuleset(n, client))
					if err == nil {
						err = be.Apply(context.Background(), p)
					}
					if err != nil {
						b.Fatal(err)
					}
				}
				var per time.Duration
				err := cli.Do(func() error {
					d := net.Dialer{Timeout: 2 * time.Second}
					for range 20 { // warm up: neighbour discovery, caches
						c, err := d.Dial("tcp6", netip.AddrPortFrom(server, 27).String())
						if err != nil {
							return err
						}
						c.Close()
					}
					start := time.Now()
					for range connects {
						c, err := d.Dial("tcp6", netip.AddrPortFrom(server, 27).String())
						if err != nil {
							return err
						}
						c.Close()
					}
					per = time.Since(start) / connects
					return nil
				})
				ln.Close()
				if err != nil {
					b.Fatalf("%s, %d sources: %v", v, n, err)
				}
				rows = append(rows, row{v, n, per})
				srv.Close()
				cli.Close()
			}
		}
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "variant\tallowed sources\ttime per TCP connection\tvs no rules\tvs 10 sources\t")
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
		vsTen := "-"
		if ten[r.variant] > 0 {
			vsTen = fmt.Sprintf("%.3f", float64(r.per)/float64(ten[r.variant]))
		}
		fmt.Fprintf(w, "%s\t%d\t%s\t%.2f\t%s\t\n", r.variant, r.sources, r.per.Round(time.Microsecond), float64(r.per)/float64(base[r.variant]), vsTen)
	}
	w.Flush()
}

// packetCostRuleset allows n IPv6 sources; the client's own prefix sorts
// after all n-1 others.
func packetCostRuleset(n int, client netip.Addr) *rules.Ruleset {
	ps := []netip.Prefix{netip.PrefixFrom(client, 128)}
	a := netip.MustParseAddr("2001:2::1:0")
	for i := 0; i < n-1; i++ {
		ps = append(ps, netip.PrefixFrom(a, 128))
		a = a.Next().Next()
	}
	return &rules.Ruleset{Exposures: []rules.Exposure{{
		Name: "cost", Protocol: rules.TCP,
		Ports:   []rules.PortRange{{First: 27, Last: 27}},
		Default: rules.Reject, Allow: rules.NewPrefixes(ps...),
	}}}
}
