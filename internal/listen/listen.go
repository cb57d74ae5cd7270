// Package listen stands in for a managed service in the demo and the CLI
// tests: it accepts TCP connections on ports (IPv4 and IPv6) and closes
// them, so a probe of an allowed source reads "open".
package listen

import "net"

// Ports listens on every port given and serves in the background, until
// the process exits.
func Ports(ports ...string) error {
	for _, port := range ports {
		ln, err := net.Listen("tcp", "[::]:"+port)
		if err != nil {
			return err
		}
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
	}
	return nil
}
