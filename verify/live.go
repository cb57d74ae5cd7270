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
	Target  string     // host name or address of the server the policy is for
	As      netip.Addr // the source address to probe from; zero: the kernel's choice toward Target
	// Bind binds probes to As; without it As only sets the expectation
	// (the address the server sees, e.g. behind NAT).
	Bind     bool
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
	src := cfg.As
	if !src.IsValid() {
		err = netns.DoPath(cfg.NetNS, func() (err error) { src, err = SourceToward(dst); return err })
		if err != nil {
			return nil, err
		}
	}
	rs := cfg.Ruleset.Clone()
	rs.Normalize()
	rep := &Report{Mode: "live"}
	var checks []Check
	for i := range rs.Exposures {
		e := &rs.Exposures[i]
		for _, port := range probedPorts(e, 0) {
			pkt := rules.Packet{Protocol: e.Protocol, Source: src, Destination: dst, Port: port}
			spec := ProbeSpec{Protocol: e.Protocol, Target: netip.AddrPortFrom(dst, port), Timeout: cfg.Timeout}
			if cfg.Bind {
				spec.Source = src
			}
			why := "this host's source toward the target"
			if cfg.As.IsValid() {
				why = "--as"
			}
			checks = append(checks, Check{Probe: ProbeResult{ProbeSpec: spec}, From: src, Exposure: e.Name, Why: why, Verdict: rs.Decide(pkt).Verdict})
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
