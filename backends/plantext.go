package backends

import (
	"bufio"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"time"

	"github.com/portwarden/portwarden/rules"
)

// WritePlan prints a plan the way Terraform does: first what changed
// outside portwarden (drift), then one block per exposure with + (create),
// - (destroy) and ~ (change) marks, then a summary line. Sources are shown
// as the policy wrote them, each added one with the file:line of its
// block (rules.SourceChanges), not as the merged prefixes the kernel holds.
//
// The plan's text goes out in one write where it fits a buffer: it is a
// few dozen short lines, and a write each cost a hook's apply some forty
// system calls.
func WritePlan(w io.Writer, p *Plan, color bool) {
	bw := bufio.NewWriterSize(w, 16<<10)
	writePlan(bw, p, color)
	bw.Flush()
}

func writePlan(w io.Writer, p *Plan, color bool) {
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
		fmt.Fprintf(w, "Objects have changed outside portwarden: the %s objects portwarden owns were edited since it wrote them; apply puts them back as the policy says:\n", p.Backend)
		for _, d := range p.Current.Drift {
			fmt.Fprintf(w, "  %s %s\n", paint("33", "!"), d)
		}
		fmt.Fprintln(w)
	}
	if len(p.Diff.Exposures) > 0 {
		if p.DriftOnly {
			fmt.Fprintf(w, "Changed outside portwarden: the policy is the one last applied, but the kernel's rules differ from it; apply puts back:\n\n")
		} else {
			fmt.Fprintf(w, "portwarden will make these changes to match the policy:\n\n")
		}
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
		if changes, more, ok := rules.SourceChangesUpTo(d.Before, d.After, maxListed); ok {
			writeSources(w, paint, changes, more)
		} else {
			writePrefixes(w, paint, "deny", d.Deny)
			writePrefixes(w, paint, "allow", d.Allow)
		}
		writeGrants(w, paint, d)
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

// writeSources prints source changes as the policy wrote them: removed
// ones first, then added ones with the block that lists them. more counts
// those left out of changes (rules.SourceChangesUpTo).
func writeSources(w io.Writer, paint func(string, string) string, changes []rules.SourceChange, more map[string][2]int) {
	for dir, added := range []bool{false, true} {
		mark, colour := "-", "31"
		if added {
			mark, colour = "+", "32"
		}
		for _, kind := range []string{rules.OriginDeny, rules.OriginAllow} {
			n := 0
			for _, c := range changes {
				if c.Added != added || c.Kind != kind {
					continue
				}
				n++
				if n > maxListed {
					continue
				}
				line := fmt.Sprintf("    %s %s %s", paint(colour, mark), kind, rules.SourceString(c.Prefix))
				if c.Range != nil {
					line += fmt.Sprintf("  (%s:%d", c.Range.Filename, c.Range.Start.Line)
					if c.Comment != "" {
						line += fmt.Sprintf(", %q", c.Comment)
					}
					line += ")"
				}
				fmt.Fprintln(w, line)
			}
			if n += more[kind][dir]; n > maxListed {
				fmt.Fprintf(w, "    %s ... and %d more %s sources\n", paint(colour, mark), n-maxListed, kind)
			}
		}
	}
}

// writeGrants prints grants that go and come, with their deadlines; an
// added one with the allow block that grants it.
func writeGrants(w io.Writer, paint func(string, string) string, d rules.ExposureDiff) {
	now := time.Now()
	for i, g := range d.Expiring.Removed {
		if i == maxListed {
			fmt.Fprintf(w, "    %s ... and %d more expiring sources\n", paint("31", "-"), len(d.Expiring.Removed)-maxListed)
			break
		}
		note := ""
		if !g.Until.After(now) {
			note = " (expired)"
		}
		fmt.Fprintf(w, "    %s allow %s until %s%s\n", paint("31", "-"), rules.SourceString(g.Source), g.Until.Format(time.RFC3339), note)
	}
	for i, g := range d.Expiring.Added {
		if i == maxListed {
			fmt.Fprintf(w, "    %s ... and %d more expiring sources\n", paint("32", "+"), len(d.Expiring.Added)-maxListed)
			break
		}
		line := fmt.Sprintf("    %s allow %s until %s", paint("32", "+"), rules.SourceString(g.Source), g.Until.Format(time.RFC3339))
		if d.After != nil {
			if o := d.After.AllowOrigin(g.Source.Addr()); o != nil {
				line += fmt.Sprintf("  (%s:%d", o.Range.Filename, o.Range.Start.Line)
				if o.Comment != "" {
					line += fmt.Sprintf(", %q", o.Comment)
				}
				line += ")"
			}
		}
		fmt.Fprintln(w, line)
	}
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
