package importer

import (
	"fmt"
	"strings"
)

// ReportText is the import report for people: what was left out, then
// the notes, each with its origin.
func ReportText(im *Import) string {
	var b strings.Builder
	if len(im.LeftOut) == 0 {
		fmt.Fprintf(&b, "import: complete: every rule that decides traffic to this host is in the policy\n")
	} else {
		fmt.Fprintf(&b, "import: %d item(s) left out (not in the policy):\n", len(im.LeftOut))
		for _, it := range im.LeftOut {
			fmt.Fprintf(&b, "  %s\n", indent(it.String()))
		}
	}
	if len(im.Notes) > 0 {
		fmt.Fprintf(&b, "notes (imported; new connections are decided the same):\n")
		for _, it := range im.Notes {
			fmt.Fprintf(&b, "  %s\n", indent(it.String()))
		}
	}
	return b.String()
}

func indent(s string) string { return strings.ReplaceAll(s, "\n", "\n  ") }
