// Command listener accepts TCP connections on the given ports (IPv4 and
// IPv6) and closes them: the demo's stand-in for the managed service.
package main

import (
	"fmt"
	"net"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: listener PORT...")
		os.Exit(2)
	}
	for _, port := range os.Args[1:] {
		ln, err := net.Listen("tcp", "[::]:"+port)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
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
	select {}
}
