package rules

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Lockout tells whether rs would refuse the SSH session described by an
// SSH_CONNECTION value ("client_ip client_port server_ip server_port").
// It returns the refusing decision, or nil when the session survives.
func Lockout(rs *Ruleset, sshConnection string) (*Decision, Packet, error) {
	f := strings.Fields(sshConnection)
	if len(f) != 4 {
		return nil, Packet{}, fmt.Errorf("SSH_CONNECTION %q is not \"client_ip client_port server_ip server_port\"", sshConnection)
	}
	client, err1 := netip.ParseAddr(f[0])
	server, err2 := netip.ParseAddr(f[2])
	port, err3 := strconv.ParseUint(f[3], 10, 16)
	if err1 != nil || err2 != nil || err3 != nil {
		return nil, Packet{}, fmt.Errorf("SSH_CONNECTION %q is not \"client_ip client_port server_ip server_port\"", sshConnection)
	}
	pkt := Packet{Protocol: TCP, Source: client.Unmap(), Destination: server.Unmap(), Port: uint16(port)}
	d := rs.Decide(pkt)
	if d.Verdict == Drop || d.Verdict == Reject {
		return &d, pkt, nil
	}
	return nil, pkt, nil
}
