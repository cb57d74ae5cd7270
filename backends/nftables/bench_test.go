package nftables

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/portwarden/portwarden/backends"
	"github.com/portwarden/portwarden/internal/netns"
	"github.com/portwarden/portwarden/internal/netns/netnstest"
	"github.com/portwarden/portwarden/rules"
)

// benchRuleset allows n sources that do not merge: every other address,
// half IPv4 (198.18.0.0/15), half IPv6 (2001:2::/48).
func benchRuleset(n int) *rules.Ruleset {
	ps := make([]netip.Prefix, 0, n)
	for i := 0; i < n; i++ {
		if i%2 == 0 {
			k := uint32(i) // every other address from 198.18.0.0
			ps = append(ps, netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18 + byte(k>>16&1), byte(k >> 8), byte(k)}), 32))
		} else {
			var b [16]byte
			copy(b[:], []byte{0x20, 0x01, 0, 2})
			k := uint32(i)
			b[12], b[13], b[14], b[15] = byte(k>>24), byte(k>>16), byte(k>>8), byte(k)
			ps = append(ps, netip.PrefixFrom(netip.AddrFrom16(b), 128))
		}
	}
	rs := &rules.Ruleset{Exposures: []rules.Exposure{{
		Name: "nscp", Protocol: rules.TCP, Ports: []rules.PortRange{{First: 27, Last: 27}},
		Default: rules.Drop, Log: true, Loopback: true, Allow: rules.NewPrefixes(ps...),
	}}}
	rs.Normalize()
	return rs
}

type measure struct{ pw, nft time.Duration }

func median(ds []time.Duration) time.Duration {
	slices.Sort(ds)
	return ds[len(ds)/2]
}

// timeIt runs fn rounds times in fresh state from setup and returns the
// median duration.
func timeIt(b *testing.B, rounds int, setup func() (run func() error, done func())) time.Duration {
	var ds []time.Duration
	for i := 0; i < rounds; i++ {
		run, done := setup()
		start := time.Now()
		err := run()
		ds = append(ds, time.Since(start))
		done() // before any Fatal: the namespace must go on every path out
		if err != nil {
			b.Fatal(err)
		}
	}
	return median(ds)
}

func nftFile(b *testing.B, ns *netns.NS, path string) error {
	out, err := ns.Run(context.Background(), "nft", "-f", path)
	if err != nil {
		b.Logf("%s", out)
	}
	return err
}

// BenchmarkApplyVsNft prints, for 10, 1,000 and 100,000 sources, the
// median time of portwarden's cold apply, unchanged re-apply and
// one-source change beside `nft -f` of the equivalent script (the same
// table with a set), measured in one run, each in a fresh namespace.
func BenchmarkApplyVsNft(b *testing.B) {
	netnstest.RequireRoot(b)
	ctx := context.Background()
	type row struct {
		n                  int
		cold, reapply, one measure
		oneElementNft      time.Duration
	}
	var rows []row
	for b.Loop() {
		rows = rows[:0]
		for _, n := range []int{10, 1000, 100000} {
			rounds := 5
			if n == 100000 {
				rounds = 3
			}
			rs := benchRuleset(n)
			changed := rs.Clone()
			changed.Exposures[0].Allow = rules.NewPrefixes(append(changed.Exposures[0].Allow.All(), netip.MustParsePrefix("198.19.255.254/32"))...)
			script, _ := Render(rs)
			changedScript, _ := Render(changed)
			dir := b.TempDir()
			scriptPath, changedPath, onePath := dir+"/a.nft", dir+"/b.nft", dir+"/one.nft"
			os.WriteFile(scriptPath, []byte(script), 0o644)
			os.WriteFile(changedPath, []byte(changedScript), 0o644)
			os.WriteFile(onePath, []byte("add element inet portwarden nscp-allow4 { 198.19.255.254 }\n"), 0o644)

			fresh := func(load bool) (*netns.NS, backends.Backend) {
				ns, err := netns.New("bench")
				if err != nil {
					b.Fatal(err)
				}
				be, _ := New(backends.Config{NetNS: ns.Path()})
				if load {
					p, err := be.Plan(ctx, rs)
					if err == nil {
						err = be.Apply(ctx, p)
					}
					if err != nil {
						ns.Close()
						b.Fatal(err)
					}
				}
				return ns, be
			}
			apply := func(be backends.Backend, want *rules.Ruleset) func() error {
				return func() error {
					p, err := be.Plan(ctx, want)
					if err != nil {
						return err
					}
					return be.Apply(ctx, p)
				}
			}
			var r row
			r.n = n
			r.cold.pw = timeIt(b, rounds, func() (func() error, func()) {
				ns, be := fresh(false)
				return apply(be, rs), func() { ns.Close() }
			})
			r.cold.nft = timeIt(b, rounds, func() (func() error, func()) {
				ns, _ := fresh(false)
				return func() error { return nftFile(b, ns, scriptPath) }, func() { ns.Close() }
			})
			r.reapply.pw = timeIt(b, rounds, func() (func() error, func()) {
				ns, be := fresh(true)
				return apply(be, rs), func() { ns.Close() }
			})
			r.reapply.nft = timeIt(b, rounds, func() (func() error, func()) {
				ns, _ := fresh(true)
				return func() error { return nftFile(b, ns, scriptPath) }, func() { ns.Close() }
			})
			r.one.pw = timeIt(b, rounds, func() (func() error, func()) {
				ns, be := fresh(true)
				return apply(be, changed), func() { ns.Close() }
			})
			r.one.nft = timeIt(b, rounds, func() (func() error, func()) {
				ns, _ := fresh(true)
				return func() error { return nftFile(b, ns, changedPath) }, func() { ns.Close() }
			})
			r.oneElementNft = timeIt(b, rounds, func() (func() error, func()) {
				ns, _ := fresh(true)
				return func() error { return nftFile(b, ns, onePath) }, func() { ns.Close() }
			})
			rows = append(rows, r)
		}
	}
	var out strings.Builder
	tw := tabwriter.NewWriter(&out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "sources\tcold pw\tcold nft -f\tratio\tre-apply pw\tre-apply nft -f\tratio\tone-source pw\tone-source nft -f\tratio\tnft add element\tpw re-apply/cold\tpw one-source/cold\t")
	ms := func(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d.Microseconds())/1000) }
	ratio := func(m measure) string { return fmt.Sprintf("%.2fx", float64(m.pw)/float64(m.nft)) }
	for _, r := range rows {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%.3f\t%.3f\t\n", r.n,
			ms(r.cold.pw), ms(r.cold.nft), ratio(r.cold),
			ms(r.reapply.pw), ms(r.reapply.nft), ratio(r.reapply),
			ms(r.one.pw), ms(r.one.nft), ratio(r.one), ms(r.oneElementNft),
			float64(r.reapply.pw)/float64(r.cold.pw), float64(r.one.pw)/float64(r.cold.pw))
	}
	tw.Flush()
	fmt.Print("\nnftables backend beside nft -f (median of several runs, fresh namespace each)\n" + out.String())
}

// BenchmarkColdRead is a fresh backend (a new process without a state
// directory) reading 100,000 installed sources: the set dumps the kernel
// answers when the generation moved. It is the path per-element counters
// could slow down, since the kernel dumps every element's counter too.
func BenchmarkColdRead(b *testing.B) {
	ctx := context.Background()
	ns, _ := installed(b, 100000)
	for b.Loop() {
		fresh, _ := New(backends.Config{NetNS: ns.Path()})
		st, err := fresh.Current(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if len(st.Drift) > 0 {
			b.Fatalf("drift after apply: %v", st.Drift)
		}
	}
}

// BenchmarkUsage is `portwarden usage` against 100,000 installed sources:
// the allow sets dumped with their counters, and the seen sets.
func BenchmarkUsage(b *testing.B) {
	ctx := context.Background()
	_, be := installed(b, 100000)
	for b.Loop() {
		u, err := be.(backends.UsageReader).Usage(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if len(u.Elements) != 100000 {
			b.Fatalf("%d elements, want 100000", len(u.Elements))
		}
	}
}

// installed is a namespace whose kernel holds n sources, applied by the
// backend returned; the namespace goes when the benchmark ends.
func installed(b *testing.B, n int) (*netns.NS, backends.Backend) {
	netnstest.RequireRoot(b)
	ns, err := netns.New("bench")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ns.Close() })
	be, _ := New(backends.Config{NetNS: ns.Path()})
	p, err := be.Plan(context.Background(), benchRuleset(n))
	if err == nil {
		err = be.Apply(context.Background(), p)
	}
	if err != nil {
		b.Fatal(err)
	}
	return ns, be
}
