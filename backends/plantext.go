package backends

import (
	"fmt"
	"io"
	"net/netip"
	"strings"

	"github.com/portwarden/portwarden/rules"
)

// WritePlan prints a plan the way Terraform does: one block per exposure
// with + (create), - (destroy) and ~ (change) marks, element by element,
// then drift and a summary line.
func WritePlan(w io.Writer, p *Plan, color bool) {
	paint := func(code, s string) string {
		if !color {
			return s
		}
		return "\x1b[" + code + "m" + s + "\x1b[0m"
	}
	if p.Empty() {
		fmt.Fprintf(w, "No changes. The %s firewall matches the policy.\n", p.Backend)
		return
	}
	if len(p.Current.Drift) > 0 {
		fmt.Fprintf(w, "Drift: the owned %s objects were changed outside portwarden; apply repairs them:\n", p.Backend)
		for _, d := range p.Current.Drift {
			fmt.Fprintf(w, "  %s %s\n", paint("33", "!"), d)
		}
		fmt.Fprintln(w)
	}
	for _, d := range p.Diff.Exposures {
		mark, colour, verb := "~", "33", "will be updated in place"
		switch d.Action {
		case rules.Create:
			mark, colour, verb = "+", "32", "will be created"
		case rules.Delete:
			mark, colour, verb = "-", "31", "will be destroyed"
		}
		fmt.Fprintf(w, "  # expose %q %s\n", d.Name, verb)
		fmt.Fprintf(w, "  %s expose %q {\n", paint(colour, mark), d.Name)
		e := d.After
		if e == nil {
			e = d.Before
		}
		if d.Action != rules.Update {
			fmt.Fprintf(w, "      protocol = %s, default = %s, log = %t, loopback = %t\n", e.Protocol, e.Default, e.Log, e.Loopback)
			if len(e.Interfaces) > 0 {
				fmt.Fprintf(w, "      interfaces = %s\n", strings.Join(e.Interfaces, ", "))
			}
		}
		for _, a := range d.Attributes {
			fmt.Fprintf(w, "    %s %s: %s -> %s\n", paint("33", "~"), a.Name, orNone(a.Old), orNone(a.New))
		}
		for _, pr := range d.Ports.Removed {
			fmt.Fprintf(w, "    %s port %s\n", paint("31", "-"), pr)
		}
		for _, pr := range d.Ports.Added {
			fmt.Fprintf(w, "    %s port %s\n", paint("32", "+"), pr)
		}
		writePrefixes(w, paint, "destination", d.Destinations)
		writePrefixes(w, paint, "deny", d.Deny)
		writePrefixes(w, paint, "allow", d.Allow)
		fmt.Fprintf(w, "    }\n\n")
	}
	for _, warning := range p.Warnings {
		fmt.Fprintf(w, "Warning: %s\n\n", warning)
	}
	c, u, r := p.Diff.Summary()
	if len(p.Current.Drift) > 0 && c+u+r == 0 {
		fmt.Fprintf(w, "Plan: repair drift; 0 to add, 0 to change, 0 to destroy.\n")
		return
	}
	fmt.Fprintf(w, "Plan: %d to add, %d to change, %d to destroy.\n", c, u, r)
}

// maxListed bounds how many elements a plan prints per list; the rest is
// counted, so a 100,000-source policy gives a readable plan.
const maxListed = 50

func writePrefixes(w io.Writer, paint func(string, string) string, what string, d rules.PrefixDiff) {
	list := func(mark, colour string, ps []netip.Prefix) {
		for i, p := range ps {
			if i == maxListed {
				fmt.Fprintf(w, "    %s ... and %d more %s sources\n", paint(colour, mark), len(ps)-maxListed, what)
				return
			}
			fmt.Fprintf(w, "    %s %s %s\n", paint(colour, mark), what, p)
		}
	}
	list("-", "31", d.Removed)
	list("+", "32", d.Added)
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
