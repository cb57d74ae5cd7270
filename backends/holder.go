package backends

// Holder is implemented by backends that can prove, without reading the
// kernel's objects, that the kernel holds exactly a Ruleset with the given
// fingerprint (rules.Ruleset.Fingerprint), with no drift: the nftables
// backend remembers what it last read or wrote at an nf_tables generation,
// and an unchanged generation proves nobody wrote since. False means only
// "cannot tell without reading".
type Holder interface {
	Holds(fingerprint string) bool
}
