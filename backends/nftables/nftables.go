package nftables

import (
	"fmt"

	"github.com/portwarden/portwarden/backends"
)

// New returns the nftables backend working in cfg.NetNS.
func New(cfg backends.Config) (backends.Backend, error) {
	return nil, fmt.Errorf("nftables backend: %w", backends.ErrUnsupported)
}
