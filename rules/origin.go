package rules

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"time"

	"github.com/portwarden/portwarden/policies"
)

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

// SourceRange is where something is written in a policy file, as the
// JSON outputs spell it.
type SourceRange = policies.SourceRange

// originJSON is Origin as JSON: the range in snake_case rather than
// hcl.Range's Go field names.
type originJSON struct {
	Kind     string       `json:"kind"`
	Comment  string       `json:"comment,omitempty"`
	Prefixes []string     `json:"prefixes"`
	Range    *SourceRange `json:"range,omitempty"`
	Expires  time.Time    `json:"expires,omitzero"`
}

// MarshalJSON writes the range as {"filename", "start": {"line", ...}}.
func (o Origin) MarshalJSON() ([]byte, error) {
	j := originJSON{Kind: o.Kind, Comment: o.Comment, Prefixes: make([]string, 0, len(o.Prefixes)), Expires: o.Expires}
	for _, p := range o.Prefixes {
		j.Prefixes = append(j.Prefixes, p.String())
	}
	if o.Range.Filename != "" || o.Range.Start.Line != 0 {
		r := policies.RangeOf(o.Range)
		j.Range = &r
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads what MarshalJSON writes (saved plans).
func (o *Origin) UnmarshalJSON(data []byte) error {
	var j originJSON
	if err := json.Unmarshal(data, &j); err != nil {
		return err
	}
	*o = Origin{Kind: j.Kind, Comment: j.Comment, Expires: j.Expires}
	for _, s := range j.Prefixes {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return fmt.Errorf("origin prefix: %w", err)
		}
		o.Prefixes = append(o.Prefixes, p)
	}
	if j.Range != nil {
		o.Range = j.Range.HCL()
	}
	return nil
}
