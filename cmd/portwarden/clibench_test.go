package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/portwarden/portwarden/internal/netns"
	"github.com/portwarden/portwarden/internal/netns/netnstest"
	"github.com/portwarden/portwarden/internal/nfgen"
)

// BenchmarkCLI times the built binary as hooks and administrators run it:
// a fresh process per command, beside the kernel's own tool doing the same
// job in the same run (interleaved, median of several rounds, each command
// in a namespace of its own):
//
//	cold apply          portwarden apply   vs  nft -f of `portwarden compile`
//	unchanged re-apply  portwarden apply   vs  nft -f of the same script
//	one source changed  portwarden apply   vs  nft -f of the changed script
//	plan, unchanged     portwarden plan    vs  nft list table inet portwarden
//	after a foreign     portwarden apply   vs  nft -f, after another program
//	write, re-apply                            wrote to nf_tables
//
// with 1,000, 100,000 and 1,000,000 sources in a list file (the two cases
// that dump the sets only up to 100,000), and first the floor under every
// command: starting the process (portwarden --version vs nft --version).
// It prints the medians, the ratios and portwarden's peak RSS, and fails
// if an unchanged re-apply or plan moved the namespace's nf_tables
// generation (wrote anything). Run it with `make bench`
// (root). PORTWARDEN_BIN picks a built binary (default: built here);
// PORTWARDEN_BENCH_SIZES picks sizes (e.g. "1000,100000").
func BenchmarkCLI(b *testing.B) {
	netnstest.RequireRoot(b)
	for _, tool := range []string{"nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			b.Fatalf("%s is needed beside portwarden: %v", tool, err)
		}
	}
	bin := cliBinary(b)
	runCLIBench(b, []int{1000, 100_000, 1_000_000}, func(n int) []cliRow {
		if n == 0 {
			return []cliRow{startRow(b, bin)}
		}
		return benchCLISize(b, bin, n)
	},
		"portwarden as a fresh process per command beside the kernel's own tools (median of the rounds)")
}

// runCLIBench runs one CLI benchmark at the sizes PORTWARDEN_BENCH_SIZES
// names (else defaults) and prints its table under title. size(0), asked
// first, gives rows that do not depend on the size (none, if it has none).
func runCLIBench(b *testing.B, defaults []int, size func(n int) []cliRow, title string) {
	sizes := defaults
	if s := os.Getenv("PORTWARDEN_BENCH_SIZES"); s != "" {
		sizes = nil
		for _, f := range strings.Split(s, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil {
				b.Fatalf("PORTWARDEN_BENCH_SIZES: %v", err)
			}
			sizes = append(sizes, n)
		}
	}
	var rows []cliRow
	for b.Loop() {
		rows = size(0)
		for _, n := range sizes {
			rows = append(rows, size(n)...)
		}
	}
	var out strings.Builder
	tw := tabwriter.NewWriter(&out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "sources\tcase\tportwarden\tbeside\tratio\tportwarden peak RSS\t")
	for _, r := range rows {
		sources := "-" // a row that does not depend on the size
		if r.n != 0 {
			sources = strconv.Itoa(r.n)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s (%s)\t%.2fx\t%d MiB\t\n", sources, r.name, seconds(r.pw), seconds(r.other), r.otherName,
			float64(r.pw)/float64(r.other), r.rss>>20)
	}
	tw.Flush()
	fmt.Print("\n" + title + "\n" + out.String())
}

type cliRow struct {
	n               int
	name, otherName string
	pw, other       time.Duration // medians
	rss             int64         // portwarden's largest peak RSS
	pwRuns, oRuns   []time.Duration
	pwRSS           []int64
}

// finished is r with its medians and largest peak RSS.
func (r cliRow) finished() cliRow {
	r.pw, r.other, r.rss = median(r.pwRuns), median(r.oRuns), slices.Max(r.pwRSS)
	return r
}

func seconds(d time.Duration) string { return fmt.Sprintf("%.3fs", d.Seconds()) }

// cliBinary is PORTWARDEN_BIN, or this package built into a temporary
// directory the way make build builds it (static, and with the heap
// settings internal/prefault counts on), so that what is measured is
// what users run.
func cliBinary(b *testing.B) string {
	if p := os.Getenv("PORTWARDEN_BIN"); p != "" {
		abs, err := filepath.Abs(p)
		if err != nil {
			b.Fatal(err)
		}
		return abs
	}
	bin := filepath.Join(b.TempDir(), "portwarden")
	if out, err := exec.Command("make", "-s", "-C", "../..", "build", "BIN="+bin).CombinedOutput(); err != nil {
		b.Fatalf("make build: %v\n%s", err, out)
	}
	return bin
}

// cliFixture is a policy with n sources in a list file, the same policy
// with one source changed, and the nft scripts of both.
type cliFixture struct {
	dir, policy, changed, script, changedScript string
}

// writeList writes n distinct sources that do not merge: every other IPv4
// address of 198.18.0.0/15, odd IPv6 addresses of 2001:2::/48 beside them,
// then even ones. changed replaces the first source.
func writeList(path string, n int, changed bool) error {
	var buf bytes.Buffer
	buf.WriteString("# benchmark sources\n")
	for i := range n {
		switch {
		case i == 0 && changed:
			buf.WriteString("2001:2:0:ffff::1\n")
		case i%2 == 0 && i < 1<<17:
			fmt.Fprintf(&buf, "198.%d.%d.%d\n", 18+i>>16, i>>8&255, i&255)
		case i < 1<<17:
			fmt.Fprintf(&buf, "2001:2::%x:%x\n", i>>16, i&0xffff)
		default: // every other address, so nothing merges
			fmt.Fprintf(&buf, "2001:2::%x:%x\n", 2*i>>16, 2*i&0xffff)
		}
	}
	return os.WriteFile(path, buf.Bytes(), 0o644)
}

const cliPolicy = `address_group "customers" {
  members_file = "customers.txt"
}

expose "nscp" {
  protocol = "tcp"
  ports    = [27]
  log      = true
  allow {
    from = [address_group.customers]
  }
}
`

func newCLIFixture(b *testing.B, bin string, n int) cliFixture {
	dir := b.TempDir()
	f := cliFixture{dir: dir, policy: filepath.Join(dir, "policy"), changed: filepath.Join(dir, "changed"),
		script: filepath.Join(dir, "policy.nft"), changedScript: filepath.Join(dir, "changed.nft")}
	for _, p := range []struct {
		dir, script string
		changed     bool
	}{{f.policy, f.script, false}, {f.changed, f.changedScript, true}} {
		if err := os.MkdirAll(p.dir, 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(p.dir, "policy.hcl"), []byte(cliPolicy), 0o644); err != nil {
			b.Fatal(err)
		}
		if err := writeList(filepath.Join(p.dir, "customers.txt"), n, p.changed); err != nil {
			b.Fatal(err)
		}
		script, err := exec.Command(bin, "--policy", p.dir, "compile").Output()
		if err != nil {
			b.Fatalf("compile: %v", err)
		}
		if err := os.WriteFile(p.script, script, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	return f
}

// timeBin is GNU time, which measures a command's own peak RSS; empty
// when it is not installed (Debian's time package).
var timeBin, _ = exec.LookPath("/usr/bin/time")

const rssMarker = "portwarden-bench-peak-rss-kib "

// cliRun runs one command inside ns and returns its wall time and peak
// RSS. state is the portwarden state directory.
func cliRun(b *testing.B, ns *netns.NS, state string, name string, args ...string) (time.Duration, int64) {
	var d time.Duration
	var rss int64
	err := ns.Do(func() error {
		argv := append([]string{name}, args...)
		if timeBin != "" {
			// GNU time forks the command from a small process: the peak RSS
			// a child of this (large) benchmark process reports from wait4
			// starts at the benchmark's own, as exec records the address
			// space it leaves. time's own start costs both sides alike.
			argv = append([]string{timeBin, "-f", rssMarker + "%M"}, argv...)
		}
		cmd := exec.CommandContext(context.Background(), argv[0], argv[1:]...)
		cmd.Env = append(os.Environ(), "PORTWARDEN_STATE_DIR="+state)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		start := time.Now()
		err := cmd.Run()
		d = time.Since(start)
		if i := bytes.LastIndex(out.Bytes(), []byte(rssMarker)); timeBin != "" && i >= 0 {
			kib, _ := strconv.ParseInt(strings.TrimSpace(string(out.Bytes()[i+len(rssMarker):])), 10, 64)
			rss = kib << 10
		} else if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			rss = ru.Maxrss << 10 // an upper bound: see above
		}
		if err != nil {
			return fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, out.Bytes())
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return d, rss
}

// benchCLISize measures every case at n sources.
func benchCLISize(b *testing.B, bin string, n int) []cliRow {
	f := newCLIFixture(b, bin, n)
	// Small cases take tens of milliseconds, where a shared machine's
	// noise is largest: more rounds for their medians.
	rounds := 5
	switch {
	case n >= 1_000_000:
		rounds = 3
	case n <= 10_000:
		rounds = 15
	}
	// Above 100,000 sources the cases that dump the sets (nft list table,
	// and portwarden's one read after a foreign write) are left out: the
	// kernel restarts its set walk for every 32 KiB of answer, so a dump
	// of a million elements takes minutes, whoever asks.
	dumps := n <= 100_000
	state := filepath.Join(f.dir, "state")
	pw := func(ns *netns.NS, policy string, args ...string) (time.Duration, int64) {
		return cliRun(b, ns, state, bin, append([]string{"--policy", policy}, args...)...)
	}
	nftFile := func(ns *netns.NS, script string) time.Duration {
		d, _ := cliRun(b, ns, state, "nft", "-f", script)
		return d
	}
	// Namespaces: one for portwarden, one for nft, kept while a case's
	// state carries over between rounds, new where a round needs a fresh
	// kernel. Every one is deleted before the next is made.
	newNS, closeAll := benchNamespaces(b)
	defer closeAll()

	measure := func(name, otherName string, round func(r *cliRow)) cliRow {
		r := cliRow{n: n, name: name, otherName: otherName}
		for range rounds {
			round(&r)
			closeAll()
		}
		return r.finished()
	}
	var rows []cliRow
	rows = append(rows, measure("cold apply", "nft -f", func(r *cliRow) {
		d, rss := pw(newNS(), f.policy, "apply", "--auto-approve")
		r.pwRuns, r.pwRSS = append(r.pwRuns, d), append(r.pwRSS, rss)
		r.oRuns = append(r.oRuns, nftFile(newNS(), f.script))
	}))
	// Unchanged re-apply and plan: the state carries over, so one pair of
	// namespaces serves every round.
	{
		pwNS, nftNS := newNS(), newNS()
		pw(pwNS, f.policy, "apply", "--auto-approve")
		nftFile(nftNS, f.script)
		re := cliRow{n: n, name: "unchanged re-apply", otherName: "nft -f"}
		plan := cliRow{n: n, name: "plan, kernel unchanged", otherName: "nft list table"}
		for range rounds {
			before := generation(b, pwNS)
			d, rss := pw(pwNS, f.policy, "apply", "--auto-approve")
			re.pwRuns, re.pwRSS = append(re.pwRuns, d), append(re.pwRSS, rss)
			re.oRuns = append(re.oRuns, nftFile(nftNS, f.script))
			if !dumps {
				requireNoWrite(b, pwNS, before, "an unchanged re-apply")
				continue
			}
			d, rss = pw(pwNS, f.policy, "plan")
			plan.pwRuns, plan.pwRSS = append(plan.pwRuns, d), append(plan.pwRSS, rss)
			d, _ = cliRun(b, nftNS, state, "nft", "list", "table", "inet", "portwarden")
			plan.oRuns = append(plan.oRuns, d)
			requireNoWrite(b, pwNS, before, "an unchanged re-apply and a plan")
		}
		rows = append(rows, re.finished())
		if dumps {
			rows = append(rows, plan.finished(), foreignWrite(b, pwNS, nftNS, rounds, n, pw, f, nftFile))
		}
		closeAll()
	}
	rows = append(rows, measure("one source changed", "nft -f", func(r *cliRow) {
		pwNS, nftNS := newNS(), newNS()
		pw(pwNS, f.policy, "apply", "--auto-approve")
		nftFile(nftNS, f.script)
		d, rss := pw(pwNS, f.changed, "apply", "--auto-approve")
		r.pwRuns, r.pwRSS = append(r.pwRuns, d), append(r.pwRSS, rss)
		r.oRuns = append(r.oRuns, nftFile(nftNS, f.changedScript))
	}))
	return rows
}

// startRow times starting each binary, which every command pays: a
// fresh namespace, portwarden --version beside nft --version.
func startRow(b *testing.B, bin string) cliRow {
	newNS, closeAll := benchNamespaces(b)
	defer closeAll()
	ns := newNS()
	r := cliRow{name: "process start (--version)", otherName: "nft --version"}
	for range 11 {
		d, rss := cliRun(b, ns, "", bin, "--version")
		r.pwRuns, r.pwRSS = append(r.pwRuns, d), append(r.pwRSS, rss)
		d, _ = cliRun(b, ns, "", "nft", "--version")
		r.oRuns = append(r.oRuns, d)
	}
	return r.finished()
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// foreignWrite measures an unchanged re-apply after another program wrote
// to nf_tables: portwarden must read the kernel once before it can trust
// it again.
func foreignWrite(b *testing.B, pwNS, nftNS *netns.NS, rounds, n int,
	pw func(*netns.NS, string, ...string) (time.Duration, int64), f cliFixture, nftFile func(*netns.NS, string) time.Duration) cliRow {
	foreign := cliRow{n: n, name: "re-apply after a foreign write", otherName: "nft -f"}
	for i := range rounds {
		if _, err := pwNS.Run(context.Background(), "nft", "add", "table", "inet", fmt.Sprintf("foreign%d", i)); err != nil {
			b.Fatal(err)
		}
		d, rss := pw(pwNS, f.policy, "apply", "--auto-approve")
		foreign.pwRuns, foreign.pwRSS = append(foreign.pwRuns, d), append(foreign.pwRSS, rss)
		foreign.oRuns = append(foreign.oRuns, nftFile(nftNS, f.script))
	}
	return foreign.finished()
}

// benchNamespaces makes namespaces for one benchmark size: newNS a new
// one, closeAll deletes every one made so far.
// generation is the nf_tables generation in ns.
func generation(b *testing.B, ns *netns.NS) uint32 {
	g, err := nfgen.Generation(ns.Path())
	if err != nil {
		b.Fatal(err)
	}
	return g
}

// requireNoWrite fails the benchmark when what ran since the generation
// was before wrote to nf_tables: an unchanged re-apply must write nothing.
func requireNoWrite(b *testing.B, ns *netns.NS, before uint32, what string) {
	if after := generation(b, ns); after != before {
		b.Fatalf("%s wrote to nf_tables (generation %d, then %d)", what, before, after)
	}
}

func benchNamespaces(b *testing.B) (newNS func() *netns.NS, closeAll func()) {
	var open []*netns.NS
	newNS = func() *netns.NS {
		ns, err := netns.New("clibench")
		if err != nil {
			b.Fatal(err)
		}
		open = append(open, ns)
		return ns
	}
	closeAll = func() {
		for _, ns := range open {
			ns.Close()
		}
		open = open[:0]
	}
	return newNS, closeAll
}
