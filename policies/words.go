package policies

import (
	"fmt"
	"strings"

	"github.com/hashicorp/hcl/v2"
)

// The policy language's words for refusing a source differ from the ones
// users bring from ufw, firewalld and iptables. Where a synonym means one
// thing without doubt it is accepted and read as the canonical word; where
// it does not, the diagnostic names the word to use.

// defaultWords maps what users write for an expose's default to the
// canonical word. ufw's "deny" drops silently, so it is read as "drop".
var defaultWords = map[string]string{
	"drop":   "drop",
	"deny":   "drop",
	"reject": "reject",
}

// expectWords maps what users write for a test's expect to "allow" or
// "deny". A test checks whether a source gets in; how it is refused is the
// expose's default, so "drop" and "reject" both mean "deny".
var expectWords = map[string]string{
	"allow":  "allow",
	"accept": "allow",
	"deny":   "deny",
	"drop":   "deny",
	"reject": "deny",
}

// rejectWithWords are the answers a reject can give, on both backends.
var rejectWithWords = []string{"tcp-reset", "icmp-port-unreachable", "icmp-admin-prohibited"}

func decodeDefault(a *hcl.Attribute, ctx *hcl.EvalContext, out *string) hcl.Diagnostics {
	return decodeWord(a, ctx, defaultWords, out, "Invalid default",
		"default is %q; use \"drop\" (answer nothing; \"deny\" means the same) or \"reject\" (answer at once: a TCP reset, or ICMP port unreachable on UDP; reject_with picks another answer).")
}

func decodeExpect(a *hcl.Attribute, ctx *hcl.EvalContext, out *string) hcl.Diagnostics {
	return decodeWord(a, ctx, expectWords, out, "Invalid expectation",
		"expect is %q; use \"allow\" (the source gets in) or \"deny\" (it is refused; \"drop\" and \"reject\" mean the same here).")
}

// decodeWord reads a string attribute that takes one of words' keys (any
// case) and stores the canonical word; anything else gets summary and
// detail (a format taking the text written).
func decodeWord(a *hcl.Attribute, ctx *hcl.EvalContext, words map[string]string, out *string, summary, detail string) hcl.Diagnostics {
	var s string
	diags := decodeString(a, ctx, &s)
	if diags.HasErrors() {
		return diags
	}
	w, ok := words[strings.ToLower(strings.TrimSpace(s))]
	if !ok {
		return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: summary, Detail: fmt.Sprintf(detail, s), Subject: a.Expr.Range().Ptr()}}
	}
	*out = w
	return diags
}

// decodeRejectWith reads reject_with; Validate-time checks that need the
// protocol and default run in checkRejectWith once the expose is decoded.
func decodeRejectWith(a *hcl.Attribute, ctx *hcl.EvalContext, e *Expose) hcl.Diagnostics {
	var s string
	diags := decodeString(a, ctx, &s)
	if diags.HasErrors() {
		return diags
	}
	e.RejectWithRange = a.Expr.Range()
	w := strings.ToLower(strings.TrimSpace(s))
	switch w {
	case "tcp-rst", "tcp reset":
		w = "tcp-reset"
	case "icmp-admin", "admin-prohibited", "icmp6-adm-prohibited", "icmpx-admin-prohibited":
		w = "icmp-admin-prohibited"
	case "port-unreachable", "icmp6-port-unreachable", "icmpx-port-unreachable":
		w = "icmp-port-unreachable"
	}
	known := false
	for _, k := range rejectWithWords {
		known = known || k == w
	}
	if !known {
		return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Invalid reject_with",
			Detail:  fmt.Sprintf("reject_with is %q; use %q (TCP only: clients read \"Connection refused\"), %q (clients read \"Connection refused\") or %q (clients read \"No route to host\").", s, rejectWithWords[0], rejectWithWords[1], rejectWithWords[2]),
			Subject: a.Expr.Range().Ptr()}}
	}
	e.RejectWith = w
	return diags
}

// checkRejectWith relates reject_with to the expose's protocol and default.
func checkRejectWith(e *Expose) hcl.Diagnostics {
	if e.RejectWith == "" {
		return nil
	}
	if e.RejectWith == "tcp-reset" && e.Protocol != "" && e.Protocol != "tcp" {
		return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Invalid reject_with",
			Detail:  fmt.Sprintf("expose %q is %s, and a TCP reset answers only TCP. Use \"icmp-port-unreachable\" (the default for UDP) or \"icmp-admin-prohibited\".", e.Name, e.Protocol),
			Subject: e.RejectWithRange.Ptr()}}
	}
	if e.Default != "reject" {
		return hcl.Diagnostics{{Severity: hcl.DiagWarning, Summary: "reject_with has no effect",
			Detail:  fmt.Sprintf("expose %q drops refused sources, so reject_with = %q is never used. Set default = \"reject\" or remove reject_with.", e.Name, e.RejectWith),
			Subject: e.RejectWithRange.Ptr()}}
	}
	return nil
}
