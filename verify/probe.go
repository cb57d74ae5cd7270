package verify

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"time"

	"github.com/portwarden/portwarden/rules"
)

// State is what a probe observed.
type State string

const (
	Open State = "open" // handshake completed (TCP) or answer received (UDP)
	// Closed: a TCP reset or ICMP port unreachable ("Connection
	// refused"): nothing listens, or a reject answered as ufw's does.
	Closed   State = "closed"
	Filtered State = "filtered" // no answer before the timeout
	Rejected State = "rejected" // ICMP administratively prohibited or unreachable ("No route to host")
	Error    State = "error"    // the probe could not run
)

// ParseState reads a state name, for --expect.
func ParseState(s string) (State, bool) {
	switch st := State(s); st {
	case Open, Closed, Filtered, Rejected:
		return st, true
	}
	return "", false
}

// ExpectedState is the state a probe sees for a verdict, a reject
// answered as rules.DefaultRejectWith(TCP) says.
func ExpectedState(v rules.Verdict) State { return ExpectedStateWith(v, "") }

// ExpectedStateWith is the state a probe sees for a verdict and, for a
// reject, its answer: a TCP reset and ICMP port unreachable both read as
// closed, admin-prohibited as rejected.
func ExpectedStateWith(v rules.Verdict, answer rules.RejectWith) State {
	switch v {
	case rules.Drop:
		return Filtered
	case rules.Reject:
		if answer == rules.ICMPAdminProhibited {
			return Rejected
		}
		return Closed
	}
	return Open
}

// ProbeSpec says what to probe.
type ProbeSpec struct {
	Protocol rules.Protocol `json:"protocol"`
	Target   netip.AddrPort `json:"target"`
	Source   netip.Addr     `json:"source,omitzero"` // zero: the kernel chooses
	Timeout  time.Duration  `json:"-"`
}

// ProbeResult is one probe's outcome.
type ProbeResult struct {
	ProbeSpec
	State   State         `json:"state"`
	Elapsed time.Duration `json:"elapsed_ns"`
	// Detail is the error behind closed, rejected and error states, e.g.
	// "network is unreachable".
	Detail string `json:"detail,omitempty"`
}

// DefaultTimeout waits past the first SYN retransmission (see doc.go).
const DefaultTimeout = 1500 * time.Millisecond

// Probe runs one probe from the calling thread's network namespace.
func Probe(ctx context.Context, spec ProbeSpec) ProbeResult {
	if spec.Timeout <= 0 {
		spec.Timeout = DefaultTimeout
	}
	start := time.Now()
	var state State
	var err error
	if spec.Protocol == rules.UDP {
		state, err = probeUDP(ctx, spec)
	} else {
		state, err = probeTCP(ctx, spec)
	}
	r := ProbeResult{ProbeSpec: spec, State: state, Elapsed: time.Since(start)}
	if err != nil {
		r.Detail = err.Error()
	}
	return r
}

func dialer(spec ProbeSpec, network string) *net.Dialer {
	d := &net.Dialer{Timeout: spec.Timeout}
	if spec.Source.IsValid() {
		ip := spec.Source.AsSlice()
		if network == "udp" {
			d.LocalAddr = &net.UDPAddr{IP: ip}
		} else {
			d.LocalAddr = &net.TCPAddr{IP: ip}
		}
	}
	return d
}

func probeTCP(ctx context.Context, spec ProbeSpec) (State, error) {
	conn, err := dialer(spec, "tcp").DialContext(ctx, "tcp", spec.Target.String())
	if err == nil {
		conn.Close()
		return Open, nil
	}
	return classify(err), err
}

// probeUDP sends a datagram and waits for any answer.
func probeUDP(ctx context.Context, spec ProbeSpec) (State, error) {
	conn, err := dialer(spec, "udp").DialContext(ctx, "udp", spec.Target.String())
	if err != nil {
		return classify(err), err
	}
	defer conn.Close()
	deadline := time.Now().Add(spec.Timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	conn.SetDeadline(deadline)
	buf := make([]byte, 64)
	// Two datagrams: ICMP errors for the first arrive as an error on the
	// next socket call.
	for i := 0; i < 2; i++ {
		if _, err := conn.Write([]byte("portwarden probe")); err != nil {
			return classify(err), err
		}
		conn.SetReadDeadline(time.Now().Add(spec.Timeout / 2))
		if _, err := conn.Read(buf); err == nil {
			return Open, nil
		} else if st := classify(err); st != Filtered {
			return st, err
		} else if time.Now().After(deadline) {
			return Filtered, err
		}
	}
	return Filtered, errors.New("no answer")
}

func classify(err error) State {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return Closed
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH),
		errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM), errors.Is(err, syscall.EHOSTDOWN):
		return Rejected
	case errors.As(err, &ne) && ne.Timeout(), errors.Is(err, context.DeadlineExceeded):
		return Filtered
	}
	return Error
}

// IsNetworkUnreachable tells a local routing failure from a refusal.
func (r ProbeResult) IsNetworkUnreachable() bool {
	return r.State == Rejected && strings.Contains(r.Detail, "network is unreachable")
}
