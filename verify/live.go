package verify

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/portwarden/portwarden/internal/netns"
	"github.com/portwarden/portwarden/rules"
)

// LiveConfig says what live verification checks.
type LiveConfig struct {
	Ruleset *rules.Ruleset
	Target  string // host name or address of the server the policy is for
	// As is the source address the policy is asked about: the address the
	// server sees. Zero: the probes' source. When As is an address of this
	// host the probes leave from it (as nc -s does); otherwise they leave
	// from Source or the kernel's choice, and As only sets the expectation
	// (a peer behind NAT), which the report says.
	As netip.Addr
	// Source binds the probes to this address of this host; zero: As when
	// it is local, else the kernel's choice toward Target.
	Source   netip.Addr
	Bind     bool // bind to As even if it does not look local (an error then)
	Timeout  time.Duration
	Parallel int
	// NetNS is a network namespace path to probe from; empty: this
	// process's namespace (which `ip netns exec` sets).
	NetNS string
}

// Live probes every exposed port of a real host from this one and checks
// each result against the verdict the policy gives this host's address.
func Live(ctx context.Context, cfg LiveConfig) (*Report, error) {
	start := time.Now()
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Parallel <= 0 {
		cfg.Parallel = 32
	}
	dst, err := resolve(ctx, cfg.Target)
	if err != nil {
		return nil, err
	}
	rep := &Report{Mode: "live"}
	var local bool
	if cfg.As.IsValid() {
		if err := netns.DoPath(cfg.NetNS, func() error { local = IsLocalAddr(cfg.As); return nil }); err != nil {
			return nil, err
		}
	}
	bind := cfg.Source // where the probes leave from; zero: the kernel's choice
	why := "this host's own address toward the target"
	switch {
	case cfg.Source.IsValid():
		why = "--source"
	case cfg.As.IsValid() && (local || cfg.Bind):
		bind, why = cfg.As, "--as, probed from it"
	case cfg.As.IsValid():
		why = "--as, as the server sees this host"
	}
	src := cfg.As // what the policy is asked about
	if !src.IsValid() {
		src = bind
	}
	if !src.IsValid() {
		err = netns.DoPath(cfg.NetNS, func() (err error) { src, err = SourceToward(dst); return err })
		if err != nil {
			return nil, err
		}
	}
	if cfg.As.IsValid() && !bind.IsValid() {
		var from netip.Addr
		netns.DoPath(cfg.NetNS, func() (err error) { from, err = SourceToward(dst); return err })
		rep.Notes = append(rep.Notes, fmt.Sprintf("%s is not an address of this host: the probes leave from %s, and the policy is asked about %s as the address the server sees (e.g. behind NAT); pass --source to choose the probes' address", cfg.As, from, cfg.As))
	}
	rs := cfg.Ruleset.Clone()
	rs.Normalize()
	var checks []Check
	for i := range rs.Exposures {
		e := &rs.Exposures[i]
		for _, port := range probedPorts(e, 0) {
			pkt := rules.Packet{Protocol: e.Protocol, Source: src, Destination: dst, Port: port}
			spec := ProbeSpec{Protocol: e.Protocol, Target: netip.AddrPortFrom(dst, port), Timeout: cfg.Timeout, Source: bind}
			checks = append(checks, Check{Probe: ProbeResult{ProbeSpec: spec}, From: src, Exposure: e.Name, Why: why, Verdict: rs.Decide(pkt).Verdict, RejectWith: e.Answer()})
		}
	}
	sem := make(chan struct{}, cfg.Parallel)
	done := make(chan struct{})
	for i := range checks {
		go func() {
			sem <- struct{}{}
			err := netns.DoPath(cfg.NetNS, func() error {
				checks[i].Probe = Probe(ctx, checks[i].Probe.ProbeSpec)
				return nil
			})
			if err != nil {
				checks[i].Probe.State, checks[i].Probe.Detail = Error, err.Error()
			}
			<-sem
			done <- struct{}{}
		}()
	}
	for range checks {
		<-done
	}
	for i := range checks {
		checks[i].judge()
	}
	rep.Checks = checks
	rep.Duration = time.Since(start)
	return rep, nil
}

func resolve(ctx context.Context, host string) (netip.Addr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		return a.Unmap(), nil
	}
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil || len(addrs) == 0 {
		return netip.Addr{}, fmt.Errorf("resolve %s: %v: give the target as an address", host, err)
	}
	return addrs[0].Unmap(), nil
}

// SourceToward is the address the kernel uses as source toward dst: a UDP
// connect sends nothing but makes the kernel choose the route and address.
func SourceToward(dst netip.Addr) (netip.Addr, error) {
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(dst, 9)))
	if err != nil {
		return netip.Addr{}, fmt.Errorf("no route to %s from this host: %w", dst, err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Unmap(), nil
}

// IsLocalAddr reports whether a is an address of this host (in the
// caller's network namespace): one a socket can bind to.
func IsLocalAddr(a netip.Addr) bool {
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(a, 0)))
	if err != nil {
		return false
	}
	c.Close()
	return true
}
