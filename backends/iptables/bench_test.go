package iptables

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/portwarden/portwarden/backends"
	"github.com/portwarden/portwarden/internal/netns"
	"github.com/portwarden/portwarden/internal/netns/netnstest"
	"github.com/portwarden/portwarden/rules"
)

// benchSizes are the source-list sizes measured. PORTWARDEN_BENCH_SIZES
// (comma-separated) replaces them, e.g. "10,1000" for a quick run.
func benchSizes(b *testing.B) []int {
	env := os.Getenv("PORTWARDEN_BENCH_SIZES")
	if env == "" {
		return []int{10, 1000, 10000, 100000}
	}
	var out []int
	for _, f := range strings.Split(env, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 2 || n > 200000 {
			b.Fatalf("PORTWARDEN_BENCH_SIZES: %q is not a size between 2 and 200000", f)
		}
		out = append(out, n)
	}
	return out
}

// benchRuleset allows n sources, half IPv4 and half IPv6, spaced so that
// normalisation cannot merge them: n rules per family/2.
func benchRuleset(n int, extra bool) *rules.Ruleset {
	var ps []netip.Prefix
	v4 := netnstest.TestRangeV4.Addr()
	v6 := netnstest.TestRangeV6.Addr()
	for i := 0; i < n/2; i++ {
		ps = append(ps, netip.PrefixFrom(v4, 32), netip.PrefixFrom(v6, 128))
		v4, v6 = v4.Next().Next(), v6.Next().Next()
	}
	if extra { // the one-source change
		ps = append(ps, netip.PrefixFrom(v4, 32))
	}
	return &rules.Ruleset{Exposures: []rules.Exposure{{
		Name: "bench", Protocol: rules.TCP,
		Ports:   []rules.PortRange{{First: 27, Last: 27}},
		Default: rules.Drop, Loopback: true,
		Allow: rules.NewPrefixes(ps...),
	}}}
}

type benchRow struct {
	variant        Variant
	sources        int
	op             string
	backend, naive time.Duration
}

// BenchmarkApplyBesideRestore measures the backend's cold apply,
// unchanged re-apply and one-source change beside ipset restore and
// iptables-restore --noflush loading the same content (the whole of it
// each time, as a script would), per variant and size, and prints a table.
func BenchmarkApplyBesideRestore(b *testing.B) {
	netnstest.RequireRoot(b)
	var rows []benchRow
	for i := 0; i < b.N; i++ {
		rows = rows[:0]
		for _, v := range []Variant{NFT, Legacy} {
			if checkBinaries(v) != nil {
				continue
			}
			for _, n := range benchSizes(b) {
				back := benchBackend(b, v, n)
				naive := benchRestore(b, v, n)
				for j, op := range []string{"cold apply", "unchanged re-apply", "one-source change"} {
					rows = append(rows, benchRow{v, n, op, back[j], naive[j]})
				}
			}
		}
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "variant\tsources\toperation\tbackend\tipset+iptables-restore\tbackend/restore\t")
	for _, r := range rows {
		fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\t%.2f\t\n", r.variant, r.sources, r.op,
			r.backend.Round(10*time.Microsecond), r.naive.Round(10*time.Microsecond), float64(r.backend)/float64(r.naive))
	}
	w.Flush()
}

// benchReps repeats small sizes and keeps the median.
func benchReps(n int) int {
	if n <= 1000 {
		return 5
	}
	return 1
}

func median(ds []time.Duration) time.Duration {
	slices.Sort(ds)
	return ds[len(ds)/2]
}

// benchBackend returns the median durations of cold apply, unchanged
// re-apply and one-source change through the backend (Plan + Apply).
func benchBackend(b *testing.B, v Variant, n int) [3]time.Duration {
	ctx := context.Background()
	rs, changed := benchRuleset(n, false), benchRuleset(n, true)
	var times [3][]time.Duration
	for rep := 0; rep < benchReps(n); rep++ {
		ns := benchNS(b)
		be, err := newBackend(ctx, backends.Config{NetNS: ns.Path()}, WithVariant(v))
		if err != nil {
			b.Fatal(err)
		}
		for j, want := range []*rules.Ruleset{rs, rs, changed} {
			start := time.Now()
			p, err := be.Plan(ctx, want)
			if err == nil {
				err = be.Apply(ctx, p)
			}
			times[j] = append(times[j], time.Since(start))
			if err != nil {
				b.Fatal(err)
			}
		}
		if err := ns.Close(); err != nil {
			b.Fatal(err)
		}
	}
	return [3]time.Duration{median(times[0]), median(times[1]), median(times[2])}
}

// benchRestore loads the same content with ipset restore and the
// variant's iptables-restore --noflush: the sets created and the full
// rules cold, then again unchanged, then changed (each set built beside
// the live one and swapped in, as a script would; the rules without the
// jump, which is already in place).
func benchRestore(b *testing.B, v Variant, n int) [3]time.Duration {
	ctx := context.Background()
	texts := func(rs *rules.Ruleset, jump bool) (string, [2]string) {
		var out [2]string
		var sets strings.Builder
		for _, fam := range families {
			fr, err := renderFamily(rs, fam, false)
			if err != nil {
				b.Fatal(err)
			}
			out[fam] = restoreText(fr)
			if !jump {
				out[fam] = strings.Replace(out[fam], insertJump()+"\n", "", 1)
				for i := range fr.sets {
					fr.sets[i].name += tempSuffix
				}
				sets.WriteString(ipsetText(fr))
				for _, s := range fr.sets {
					live := strings.TrimSuffix(s.name, tempSuffix)
					sets.WriteString("swap " + live + " " + s.name + "\ndestroy " + s.name + "\n")
				}
			} else {
				sets.WriteString(ipsetText(fr))
			}
		}
		return sets.String(), out
	}
	var files [3][2]string
	var sets [3]string
	sets[0], files[0] = texts(benchRuleset(n, false), true)
	sets[1], files[1] = texts(benchRuleset(n, false), false)
	sets[2], files[2] = texts(benchRuleset(n, true), false)
	var times [3][]time.Duration
	for rep := 0; rep < benchReps(n); rep++ {
		ns := benchNS(b)
		x := execRunner{variant: v, nsPath: ns.Path()}
		for j, f := range files {
			start := time.Now()
			if err := netns.DoPath(ns.Path(), func() error {
				cmd := exec.Command("ipset", "restore")
				cmd.Stdin = strings.NewReader(sets[j])
				if out, err := cmd.CombinedOutput(); err != nil {
					return fmt.Errorf("ipset restore: %w: %s", err, out)
				}
				return nil
			}); err != nil {
				b.Fatal(err)
			}
			for _, fam := range families {
				if err := x.restore(ctx, fam, f[fam]); err != nil {
					b.Fatal(err)
				}
			}
			times[j] = append(times[j], time.Since(start))
		}
		if err := ns.Close(); err != nil {
			b.Fatal(err)
		}
	}
	return [3]time.Duration{median(times[0]), median(times[1]), median(times[2])}
}

// benchNS is a fresh namespace; the caller closes it (and Cleanup does
// when the benchmark fails first).
func benchNS(b *testing.B) *netns.NS {
	ns, err := netns.New("ipt-bench")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ns.Close() })
	return ns
}
