package iptables

import (
	"fmt"

	"github.com/portwarden/portwarden/backends"
)

// New returns the iptables backend working in cfg.NetNS.
func New(cfg backends.Config) (backends.Backend, error) {
	return nil, fmt.Errorf("iptables backend: %w", backends.ErrUnsupported)
}
