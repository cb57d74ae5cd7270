package rules

import (
	"net/netip"
	"testing"
)

func TestLockout(t *testing.T) {
	rs := &Ruleset{Exposures: []Exposure{{Name: "ssh", Protocol: TCP, Ports: []PortRange{{22, 22}}, Default: Drop,
		Allow: NewPrefixes(netip.MustParsePrefix("198.18.1.0/24"))}}}
	if d, _, err := Lockout(rs, "198.18.1.5 50000 198.18.0.1 22"); err != nil || d != nil {
		t.Errorf("allowed client: %v %v", d, err)
	}
	d, pkt, err := Lockout(rs, "198.18.9.5 50000 198.18.0.1 22")
	if err != nil || d == nil || d.Exposure != "ssh" || pkt.Port != 22 {
		t.Errorf("refused client: %+v %v", d, err)
	}
	if d, _, _ := Lockout(rs, "198.18.9.5 50000 198.18.0.1 2222"); d != nil {
		t.Errorf("unmanaged port refused: %+v", d)
	}
	if _, _, err := Lockout(rs, "garbage"); err == nil {
		t.Error("malformed SSH_CONNECTION accepted")
	}
}
