package verify

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/portwarden/portwarden/backends"
	"github.com/portwarden/portwarden/backends/auto"
	"github.com/portwarden/portwarden/internal/netns"
	"github.com/portwarden/portwarden/policies"
	"github.com/portwarden/portwarden/rules"
)

// SandboxConfig says what the sandbox verifies.
type SandboxConfig struct {
	Policy   *policies.Policy // test blocks become probes; may be nil
	Ruleset  *rules.Ruleset   // loaded into the sandbox and asked for every expectation
	Backend  string           // nftables, iptables or auto
	Timeout  time.Duration    // per probe; DefaultTimeout when zero
	Parallel int              // probes at once; 128 when zero
	Boundary bool             // also probe the boundary addresses of every prefix
	// AfterLoad runs once the rules are loaded, with the server namespace's
	// path: tests use it to damage the loaded rules.
	AfterLoad func(serverNetNS string) error
	// Progress, when set, is called after each probe.
	Progress func(done, total int)
}

// The sandbox's own interface names and fallback server addresses, from
// the benchmarking ranges.
const (
	serverIf = "pwsbx0"
	peerIf   = "pwsbx1"
)

var defaultServers = []netip.Addr{netip.MustParseAddr("198.19.255.1"), netip.MustParseAddr("2001:2:ffff::1")}

// probeTarget is one source to probe from and why.
type probeTarget struct {
	src      netip.Addr
	why      string
	port     uint16 // 0: every probed port of the exposure
	exposure string // "": every exposure
	expect   string // a test block's expect, "" for other sources
}

// Sandbox loads cfg.Ruleset into throwaway namespaces with the real kernel
// and probes it from every test source and boundary address.
func Sandbox(ctx context.Context, cfg SandboxConfig) (rep *Report, err error) {
	start := time.Now()
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Parallel <= 0 {
		cfg.Parallel = 128
	}
	rs := cfg.Ruleset.Clone()
	rs.Normalize()
	rep = &Report{Mode: "sandbox"}

	targets := sandboxTargets(cfg, rs)
	servers := serverAddrs(rs, targets)
	sources, skipped := probeSources(targets, servers)
	rep.Skipped = append(rep.Skipped, skipped...)

	server, err := netns.New("sbx-srv")
	if err != nil {
		return nil, fmt.Errorf("sandbox: %w (the sandbox needs root: CAP_NET_ADMIN and CAP_SYS_ADMIN)", err)
	}
	defer server.Close()
	peer, err := netns.New("sbx-peer")
	if err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	defer peer.Close()
	if err := buildSandbox(ctx, server, peer, servers, sources); err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}

	b, reason, err := auto.Open(cfg.Backend, backends.Config{NetNS: server.Path()})
	if err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	rep.Backend = b.Name() + " (" + reason + ")"
	plan, err := b.Plan(ctx, rs)
	if err != nil {
		return nil, fmt.Errorf("sandbox: plan: %w", err)
	}
	if err := b.Apply(ctx, plan); err != nil {
		return nil, fmt.Errorf("sandbox: load the rules: %w", err)
	}
	if cfg.AfterLoad != nil {
		if err := cfg.AfterLoad(server.Path()); err != nil {
			return nil, fmt.Errorf("sandbox: after load: %w", err)
		}
	}
	stop, err := listenAll(server, rs, targets)
	if err != nil {
		return nil, fmt.Errorf("sandbox: listen: %w", err)
	}
	defer stop()

	var checks []Check
	for _, t := range targets {
		if !slices.Contains(sources, t.src) {
			continue
		}
		for i := range rs.Exposures {
			e := &rs.Exposures[i]
			if t.exposure != "" && t.exposure != e.Name {
				continue
			}
			dst := serverFor(servers, e, t.src)
			if !dst.IsValid() {
				continue
			}
			for _, port := range probedPorts(e, t.port) {
				pkt := rules.Packet{Protocol: e.Protocol, Source: t.src, Destination: dst, Port: port, Interface: serverIf}
				checks = append(checks, Check{
					Probe: ProbeResult{ProbeSpec: ProbeSpec{Protocol: e.Protocol, Target: netip.AddrPortFrom(dst, port), Source: t.src, Timeout: cfg.Timeout}},
					From:  t.src, Exposure: e.Name, Why: t.why, Verdict: rs.Decide(pkt).Verdict, TestExpect: t.expect,
					RejectWith: e.Answer(), listening: true, // listenAll serves every probed port
				})
			}
		}
	}
	runProbes(ctx, peer, checks, cfg.Parallel, cfg.Progress)
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("sandbox interrupted: %w", err)
	}
	for i := range checks {
		checks[i].judge()
	}
	rep.Checks = checks
	rep.Duration = time.Since(start)
	return rep, nil
}

// sandboxTargets lists test sources, then boundary sources, then one
// address of each family that no prefix mentions.
func sandboxTargets(cfg SandboxConfig, rs *rules.Ruleset) []probeTarget {
	var out []probeTarget
	if cfg.Policy != nil {
		for _, t := range cfg.Policy.Tests {
			pkt, ok := rules.TestPacket(t, rs)
			if !ok {
				continue
			}
			out = append(out, probeTarget{src: t.From, why: "test block " + fmt.Sprintf("%q", t.Name), port: pkt.Port, exposure: t.To, expect: t.Expect})
		}
	}
	if cfg.Boundary {
		for _, a := range rules.BoundarySources(rs) {
			out = append(out, probeTarget{src: a, why: "edge of a listed range"})
		}
		for _, start := range []netip.Addr{netip.MustParseAddr("198.19.254.254"), netip.MustParseAddr("2001:2:fffe::fe")} {
			a := start
			for i := 0; i < 1000 && mentioned(rs, a); i++ {
				a = a.Prev()
			}
			out = append(out, probeTarget{src: a, why: "an address no rule lists"})
		}
	}
	return out
}

func mentioned(rs *rules.Ruleset, a netip.Addr) bool {
	for _, e := range rs.Exposures {
		if e.Allow.Contains(a) || e.Deny.Contains(a) || e.Destinations.Contains(a) {
			return true
		}
	}
	return false
}

// serverAddrs are the addresses the sandbox server holds: every
// exposure's first destination of each family, else a fallback per family.
func serverAddrs(rs *rules.Ruleset, targets []probeTarget) []netip.Addr {
	var out []netip.Addr
	for _, e := range rs.Exposures {
		for _, p := range e.Destinations.All() {
			out = append(out, hostOf(p))
		}
	}
	for _, d := range defaultServers {
		a := d
		for i := 0; i < 1000 && (mentioned(rs, a) || slices.ContainsFunc(targets, func(t probeTarget) bool { return t.src == a })); i++ {
			a = a.Next()
		}
		out = append(out, a)
	}
	slices.SortFunc(out, func(a, b netip.Addr) int { return a.Compare(b) })
	return slices.Compact(out)
}

// hostOf is an address inside a destination prefix a server can hold.
func hostOf(p netip.Prefix) netip.Addr {
	if p.IsSingleIP() || p.Bits() >= p.Addr().BitLen()-1 {
		return p.Addr()
	}
	return p.Masked().Addr().Next()
}

// serverFor picks the server address an exposure is probed at.
func serverFor(servers []netip.Addr, e *rules.Exposure, src netip.Addr) netip.Addr {
	fam := e.Destinations.V4
	if src.Is6() {
		fam = e.Destinations.V6
	}
	if !e.Destinations.Empty() {
		if len(fam) == 0 {
			return netip.Addr{} // the exposure manages no address of this family
		}
		return hostOf(fam[0])
	}
	for _, s := range servers {
		if s.Is4() == src.Is4() {
			return s
		}
	}
	return netip.Addr{}
}

func unusableSource(a netip.Addr, servers []netip.Addr) string {
	switch {
	case !a.IsValid():
		return "no address"
	case a.IsUnspecified(), a.IsLoopback(), a.IsMulticast(), a.IsLinkLocalUnicast(), a.IsLinkLocalMulticast(), a.Is4() && a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return "cannot be a source address"
	case slices.Contains(servers, a):
		return "it is the sandbox server's own address"
	}
	return ""
}

// probedPorts: the test's port, else the first and last port of each range.
func probedPorts(e *rules.Exposure, port uint16) []uint16 {
	if port != 0 {
		return []uint16{port}
	}
	var out []uint16
	for _, r := range e.Ports {
		out = append(out, r.First)
		if r.Last != r.First {
			out = append(out, r.Last)
		}
	}
	return out
}

func buildSandbox(ctx context.Context, server, peer *netns.NS, servers, sources []netip.Addr) error {
	if err := netns.Veth(server, serverIf, peer, peerIf); err != nil {
		return err
	}
	for _, a := range servers {
		if err := server.AddAddr(serverIf, netip.PrefixFrom(a, a.BitLen())); err != nil {
			return err
		}
	}
	for _, a := range sources {
		if err := peer.AddAddr(peerIf, netip.PrefixFrom(a, a.BitLen())); err != nil {
			return err
		}
	}
	// Everything is on-link through the veth, in both directions.
	for _, dst := range []string{"0.0.0.0/0", "::/0"} {
		p := netip.MustParsePrefix(dst)
		if err := server.AddRoute(serverIf, p); err != nil {
			return err
		}
		if err := peer.AddRoute(peerIf, p); err != nil {
			return err
		}
	}
	// ICMP errors are rate-limited per destination by default; a sandbox
	// full of rejected probes needs them all.
	for _, key := range []string{"net.ipv4.icmp_ratelimit", "net.ipv6.icmp.ratelimit"} {
		if err := server.Sysctl(key, "0"); err != nil {
			return err
		}
	}
	return nil
}

// listenAll serves every probed port of every exposure on the server:
// TCP accepts and closes, UDP echoes.
func listenAll(server *netns.NS, rs *rules.Ruleset, targets []probeTarget) (stop func(), err error) {
	var closers []func()
	stop = func() {
		for _, c := range closers {
			c()
		}
	}
	seen := map[string]bool{}
	for i := range rs.Exposures {
		e := &rs.Exposures[i]
		ports := probedPorts(e, 0)
		for _, t := range targets {
			if t.port != 0 && (t.exposure == "" || t.exposure == e.Name) {
				ports = append(ports, t.port)
			}
		}
		for _, port := range ports {
			key := fmt.Sprintf("%s/%d", e.Protocol, port)
			if seen[key] {
				continue
			}
			seen[key] = true
			err := server.Do(func() error {
				addr := fmt.Sprintf("[::]:%d", port)
				if e.Protocol == rules.UDP {
					pc, err := net.ListenPacket("udp", addr)
					if err != nil {
						return err
					}
					closers = append(closers, func() { pc.Close() })
					go echoUDP(pc)
					return nil
				}
				ln, err := net.Listen("tcp", addr)
				if err != nil {
					return err
				}
				closers = append(closers, func() { ln.Close() })
				go acceptAndClose(ln)
				return nil
			})
			if err != nil {
				stop()
				return nil, err
			}
		}
	}
	return stop, nil
}

func acceptAndClose(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		c.Close()
	}
}

func echoUDP(pc net.PacketConn) {
	buf := make([]byte, 512)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		pc.WriteTo(buf[:n], from)
	}
}

// runProbes runs the checks' probes from inside ns, parallel workers each
// on a thread in the namespace.
func runProbes(ctx context.Context, ns *netns.NS, checks []Check, parallel int, progress func(done, total int)) {
	work := make(chan int)
	var wg sync.WaitGroup
	var mu sync.Mutex
	done := 0
	for w := 0; w < min(parallel, len(checks)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ns.Do(func() error {
				for i := range work {
					checks[i].Probe = Probe(ctx, checks[i].Probe.ProbeSpec)
					if progress != nil {
						mu.Lock()
						done++
						progress(done, len(checks))
						mu.Unlock()
					}
				}
				return nil
			})
		}()
	}
	for i := range checks {
		select {
		case work <- i:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	close(work)
	wg.Wait()
}

// probeSources is the sorted, unique sources of targets that a sandbox can
// probe from, and a sentence for each it cannot.
func probeSources(targets []probeTarget, servers []netip.Addr) (sources []netip.Addr, skipped []string) {
	for _, t := range targets {
		if reason := unusableSource(t.src, servers); reason != "" {
			skipped = append(skipped, fmt.Sprintf("%s (%s): %s", t.src, t.why, reason))
			continue
		}
		sources = append(sources, t.src)
	}
	slices.SortFunc(sources, func(a, b netip.Addr) int { return a.Compare(b) })
	return slices.Compact(sources), skipped
}
