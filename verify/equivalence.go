package verify

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/portwarden/portwarden/backends"
	"github.com/portwarden/portwarden/backends/auto"
	"github.com/portwarden/portwarden/internal/netns"
	"github.com/portwarden/portwarden/rules"
)

// Command is one program run inside the sandbox to load the original
// rules, with its standard input (iptables-restore < rules.v4).
type Command struct {
	Name  string
	Args  []string
	Stdin []byte
}

func (c Command) String() string { return strings.Join(append([]string{c.Name}, c.Args...), " ") }

// EquivalenceConfig says what import --check compares.
type EquivalenceConfig struct {
	// Original loads the rules that were imported, with the real tools.
	Original []Command
	// Ruleset is the imported policy, compiled; loaded with Backend.
	Ruleset *rules.Ruleset
	Backend string
	// Prefixes the original rules mention: their boundaries are probed
	// too, so a range the import lost is sampled.
	Prefixes []netip.Prefix
	Timeout  time.Duration // per probe; DefaultTimeout when zero
	Parallel int           // probes at once per sandbox; 128 when zero
}

// Difference is a probe that saw different things in the two sandboxes.
type Difference struct {
	Source   netip.Addr     `json:"source"`
	Protocol rules.Protocol `json:"protocol"`
	Port     uint16         `json:"port"`
	Exposure string         `json:"exposure"`
	Original State          `json:"original"`
	Imported State          `json:"imported"`
}

func (d Difference) String() string {
	return fmt.Sprintf("%s -> %s/%d (expose %q): original rules %s, imported policy %s", d.Source, d.Protocol, d.Port, d.Exposure, d.Original, d.Imported)
}

// EquivalenceReport is the outcome of an equivalence check.
type EquivalenceReport struct {
	Backend     string        `json:"backend"`
	Probes      int           `json:"probes"` // per sandbox
	Sources     int           `json:"sources"`
	Differences []Difference  `json:"differences"`
	Skipped     []string      `json:"skipped,omitempty"`
	Duration    time.Duration `json:"duration_ns"`
}

// Equivalent reports whether no probe differed.
func (r *EquivalenceReport) Equivalent() bool { return len(r.Differences) == 0 }

// Equivalence loads the original rules into one sandbox (server and peer
// namespaces joined by a veth, as verify --sandbox builds them) and the
// imported policy into another, then probes both from the same sources
// (every boundary of every prefix either side mentions, and an address
// nothing mentions) on every managed port. A firewall's reject (ICMP or
// TCP reset) and an ICMP rejection count as the same refusal: each
// listener is up, so "closed" can only be the firewall's answer.
func Equivalence(ctx context.Context, cfg EquivalenceConfig) (*EquivalenceReport, error) {
	start := time.Now()
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Parallel <= 0 {
		cfg.Parallel = 128
	}
	rs := cfg.Ruleset.Clone()
	rs.Normalize()
	rep := &EquivalenceReport{}

	targets := sandboxTargets(SandboxConfig{Boundary: true}, rs)
	// Each prefix on its own: merged into a set, adjacent prefixes of
	// different rules would lose the boundary between them.
	for _, p := range cfg.Prefixes {
		one := &rules.Ruleset{Exposures: []rules.Exposure{{Allow: rules.NewPrefixes(p)}}}
		for _, a := range rules.BoundarySources(one) {
			targets = append(targets, probeTarget{src: a, why: "boundary of the original rules"})
		}
	}
	servers := serverAddrs(rs, targets)
	sources, skipped := probeSources(targets, servers)
	rep.Skipped = append(rep.Skipped, skipped...)
	rep.Sources = len(sources)

	var specs []Check
	for _, src := range sources {
		for i := range rs.Exposures {
			e := &rs.Exposures[i]
			dst := serverFor(servers, e, src)
			if !dst.IsValid() {
				continue
			}
			for _, port := range probedPorts(e, 0) {
				specs = append(specs, Check{
					Probe: ProbeResult{ProbeSpec: ProbeSpec{Protocol: e.Protocol, Target: netip.AddrPortFrom(dst, port), Source: src, Timeout: cfg.Timeout}},
					From:  src, Exposure: e.Name,
				})
			}
		}
	}
	rep.Probes = len(specs)

	type lab struct {
		server, peer *netns.NS
		checks       []Check
	}
	var labs [2]*lab
	for i, label := range []string{"orig", "imp"} {
		server, err := netns.New("eq" + label + "-srv")
		if err != nil {
			return nil, fmt.Errorf("equivalence check: %w (the check needs root: CAP_NET_ADMIN and CAP_SYS_ADMIN)", err)
		}
		defer server.Close()
		peer, err := netns.New("eq" + label + "-peer")
		if err != nil {
			return nil, fmt.Errorf("equivalence check: %w", err)
		}
		defer peer.Close()
		if err := buildSandbox(ctx, server, peer, servers, sources); err != nil {
			return nil, fmt.Errorf("equivalence check: %w", err)
		}
		stop, err := listenAll(server, rs, nil)
		if err != nil {
			return nil, fmt.Errorf("equivalence check: listen: %w", err)
		}
		defer stop()
		labs[i] = &lab{server: server, peer: peer, checks: slices.Clone(specs)}
	}
	for _, c := range cfg.Original {
		if err := runIn(ctx, labs[0].server, c); err != nil {
			return nil, fmt.Errorf("equivalence check: load the original rules: %w", err)
		}
	}
	b, reason, err := auto.Open(cfg.Backend, backends.Config{NetNS: labs[1].server.Path()})
	if err != nil {
		return nil, fmt.Errorf("equivalence check: %w", err)
	}
	rep.Backend = b.Name() + " (" + reason + ")"
	plan, err := b.Plan(ctx, rs)
	if err != nil {
		return nil, fmt.Errorf("equivalence check: plan: %w", err)
	}
	if err := b.Apply(ctx, plan); err != nil {
		return nil, fmt.Errorf("equivalence check: load the imported policy: %w", err)
	}

	var wg sync.WaitGroup
	for _, l := range labs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runProbes(ctx, l.peer, l.checks, cfg.Parallel, nil)
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("equivalence check interrupted: %w", err)
	}
	// The kernel limits ICMP errors per namespace (icmp_msgs_per_sec,
	// icmp_msgs_burst): in a burst of refused probes a reject can lose
	// its answer and read as filtered. A filtered probe whose twin was
	// refused is asked again, fewer at a time.
	for _, l := range labs {
		var again []Check
		var at []int
		for i := range specs {
			o, m := labs[0].checks[i].Probe.State, labs[1].checks[i].Probe.State
			if refusalClass(o) != refusalClass(m) && l.checks[i].Probe.State == Filtered && (o == Filtered) != (m == Filtered) {
				again = append(again, specs[i])
				at = append(at, i)
			}
		}
		runProbes(ctx, l.peer, again, retryParallel, nil)
		for j, i := range at {
			l.checks[i] = again[j]
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("equivalence check interrupted: %w", err)
	}
	for i := range specs {
		o, m := labs[0].checks[i].Probe, labs[1].checks[i].Probe
		for _, p := range []ProbeResult{o, m} {
			if p.State == Error {
				return nil, fmt.Errorf("equivalence check: probe %s -> %s/%s could not run: %s", p.Source, p.Protocol, p.Target, p.Detail)
			}
		}
		if refusalClass(o.State) != refusalClass(m.State) {
			rep.Differences = append(rep.Differences, Difference{
				Source: specs[i].From, Protocol: o.Protocol, Port: o.Target.Port(), Exposure: specs[i].Exposure,
				Original: o.State, Imported: m.State,
			})
		}
	}
	rep.Duration = time.Since(start)
	return rep, nil
}

// retryParallel keeps a retry's ICMP errors within the kernel's burst.
const retryParallel = 16

// refusalClass folds the firewall's answers that both say "refused".
func refusalClass(s State) State {
	if s == Closed {
		return Rejected
	}
	return s
}

func runIn(ctx context.Context, ns *netns.NS, c Command) error {
	return ns.Do(func() error {
		cmd := exec.CommandContext(ctx, c.Name, c.Args...)
		cmd.Stdin = bytes.NewReader(c.Stdin)
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s: %w: %s", c, err, bytes.TrimSpace(out))
		}
		return nil
	})
}
