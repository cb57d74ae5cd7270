//go:build !linux

package hugepages

func advise(b []byte) {}
