package nftables

import (
	"context"
	"os/exec"
	"strings"

	"github.com/portwarden/portwarden/internal/netns"
)

// runIn runs fn inside the namespace at nsPath.
func runIn(nsPath string, fn func(ctx context.Context) error) error {
	return netns.DoPath(nsPath, func() error { return fn(context.Background()) })
}

// nftCommand feeds a script (or one command) to the nft binary: tests use
// it to act as a person would, never the backend itself.
func nftCommand(ctx context.Context, script string) ([]byte, error) {
	if !strings.Contains(script, "\n") {
		return exec.CommandContext(ctx, "nft", strings.Fields(script)...).CombinedOutput()
	}
	cmd := exec.CommandContext(ctx, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	return cmd.CombinedOutput()
}
