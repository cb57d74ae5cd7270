package iptables

import (
	"testing"

	"github.com/portwarden/portwarden/backends/backendtest"
	"github.com/portwarden/portwarden/internal/netns/netnstest"
)

// TestConformance runs the shared suite once per installed variant
// (iptables-nft and iptables-legacy).
func TestConformance(t *testing.T) {
	netnstest.RequireRoot(t)
	for _, v := range variants(t) {
		t.Run(string(v), func(t *testing.T) { backendtest.Run(t, &hooks{variant: v}) })
	}
}
