package backends

import "unicode/utf8"

// MaxLogPrefix is the longest log prefix both backends can carry: the
// iptables LOG target takes 29 bytes (nftables would take 127).
const MaxLogPrefix = 29

// LogPrefix is the text before every kernel log line of a refused packet,
// the same on every backend so that one grep ("portwarden NAME: ") finds
// them whichever backend wrote the rules. Long exposure names are cut, at a
// character boundary, to fit MaxLogPrefix.
func LogPrefix(exposure string) string {
	const head, tail = "portwarden ", ": "
	name := exposure
	for len(head)+len(name)+len(tail) > MaxLogPrefix {
		_, size := utf8.DecodeLastRuneInString(name)
		name = name[:len(name)-size]
	}
	return head + name + tail
}
