package rules

import "fmt"

// Describe names the block in words and where it is written, for messages:
// `allow block at policy.hcl:12,3-8 ("operators")`.
func (o *Origin) Describe() string {
	var s string
	switch o.Kind {
	case OriginAllow:
		s = "allow block"
	case OriginDeny:
		s = "deny block (deny beats allow)"
	case OriginDefault:
		s = "the expose's default (the source is in no allow block)"
	case OriginLoopback:
		s = "loopback traffic is allowed"
	default:
		s = o.Kind
	}
	if o.Range.Filename != "" {
		s += " at " + o.Range.String()
	}
	if o.Comment != "" {
		s += fmt.Sprintf(" (%q)", o.Comment)
	}
	return s
}
