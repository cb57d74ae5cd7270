// Command listener accepts TCP connections on the given ports (IPv4 and
// IPv6) and closes them: the demo's stand-in for the managed service.
package main

import (
	"fmt"
	"os"

	"github.com/portwarden/portwarden/internal/listen"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: listener PORT...")
		os.Exit(2)
	}
	if err := listen.Ports(os.Args[1:]...); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	select {}
}
