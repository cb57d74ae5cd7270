package verify

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"net/netip"
	"text/tabwriter"
	"time"

	"github.com/portwarden/portwarden/rules"
)

// Check is one probe compared with what the policy says.
type Check struct {
	Probe ProbeResult `json:"probe"`
	// From is the source address the policy was asked about: the probe's
	// bound source, or the address the kernel picks toward the target.
	From     netip.Addr `json:"from"`
	Exposure string     `json:"exposure"`
	// Why the source was probed, in words: a test block, "edge of a listed
	// range" or "an address no rule lists" in the sandbox; --as, --source or
	// the kernel's choice live.
	Why     string        `json:"why"`
	Verdict rules.Verdict `json:"verdict"` // rules.Decide's answer
	// TestExpect is the test block's expect ("allow" or "deny") when the
	// source came from one: the policy must also give that verdict.
	TestExpect string `json:"test_expect,omitempty"`
	// RejectWith is how the policy answers when Verdict is reject
	// (tcp-reset, icmp-port-unreachable, icmp-admin-prohibited).
	RejectWith rules.RejectWith `json:"reject_with,omitempty"`
	Expected   State            `json:"expected"`
	// AnsweredBy says who answered a closed probe: "firewall" (the
	// policy's reject), "no listener" (the firewall let it through and
	// nothing listens), or "firewall or no listener" when a reset from
	// the firewall and a port with no listener cannot be told apart.
	AnsweredBy string `json:"answered_by,omitempty"`
	Pass       bool   `json:"pass"`
	Hint       string `json:"hint,omitempty"`

	// listening: a listener is known to serve the probed port (the
	// sandbox starts one on every probed port).
	listening bool
}

// Report is the outcome of a verification.
type Report struct {
	Mode     string        `json:"mode"` // "sandbox" or "live"
	Backend  string        `json:"backend,omitempty"`
	Checks   []Check       `json:"checks"`
	Skipped  []string      `json:"skipped,omitempty"` // sources that could not be probed, and why
	Notes    []string      `json:"notes,omitempty"`   // what the reader must know to read the checks
	Duration time.Duration `json:"duration_ns"`
}

// Failed reports whether any check did not pass.
func (r *Report) Failed() bool {
	for _, c := range r.Checks {
		if !c.Pass {
			return true
		}
	}
	return false
}

// Counts returns passed, failed (wrong verdict) and errored checks.
func (r *Report) Counts() (passed, failed, errored int) {
	for _, c := range r.Checks {
		switch {
		case c.Pass:
			passed++
		case c.Probe.State == Error:
			errored++
		default:
			failed++
		}
	}
	return
}

// judge fills Expected, AnsweredBy, Pass and Hint.
func (c *Check) judge() {
	if c.Verdict != rules.Reject {
		c.RejectWith = ""
	}
	c.Expected = ExpectedStateWith(c.Verdict, c.RejectWith)
	c.Pass = c.Probe.State == c.Expected
	c.AnsweredBy = c.answeredBy()
	if c.TestExpect != "" && !rules.Expected(c.TestExpect, c.Verdict) {
		c.Pass = false
		c.Hint = fmt.Sprintf("the test expects %s but the policy gives %s: the policy itself fails this test (see portwarden test)", c.TestExpect, c.Verdict)
		return
	}
	if c.Pass {
		return
	}
	switch {
	case c.Probe.State == Error:
		c.Hint = "the probe could not run: " + c.Probe.Detail
	case c.Probe.IsNetworkUnreachable():
		c.Hint = "the network is unreachable from here: check routing to the target, not the firewall"
	case c.Expected == Open && c.Probe.State == Closed && c.listening:
		c.Hint = "the firewall lets this source through, yet the port answered with a reset although a listener serves it: a foreign rule rejects it; run `portwarden doctor`"
	case c.Expected == Open && c.Probe.State == Closed:
		c.Hint = "the firewall lets this source through but nothing listens on the port: start the service"
	case c.Expected == Open:
		c.Hint = "the firewall refuses an allowed source: run `portwarden plan` for drift and `portwarden doctor` for foreign rules that drop it"
	case c.Probe.State == Open || c.Probe.State == Closed:
		c.Hint = "a refused source gets through: the policy's rules are missing or bypassed; run `portwarden plan`"
	default:
		c.Hint = fmt.Sprintf("refused, but %s instead of %s: the exposure's default (drop or reject) or reject_with differs from the kernel's; run `portwarden plan`", c.Probe.State, c.Expected)
	}
}

// answeredBy tells a reset or port-unreachable from the firewall from a
// port where nothing listens: both read as "closed" on the wire. The policy
// says which one to expect; a listener known to serve the port rules out
// the second.
func (c *Check) answeredBy() string {
	if c.Probe.State != Closed {
		return ""
	}
	switch {
	case c.Verdict == rules.Reject && c.listening:
		return "firewall"
	case c.Verdict == rules.Reject:
		return "firewall or no listener"
	case c.listening:
		return "firewall" // something other than the policy refused it
	}
	return "no listener"
}

// observed is the OBSERVED column: the state, and who answered a closed
// probe.
func (c *Check) observed() string {
	if c.AnsweredBy == "" {
		return string(c.Probe.State)
	}
	return fmt.Sprintf("%s (%s)", c.Probe.State, c.AnsweredBy)
}

// WriteText prints a table: source, port, expected, observed, time, result.
func (r *Report) WriteText(w io.Writer, color bool) {
	paint := func(code, s string) string {
		if !color {
			return s
		}
		return "\x1b[" + code + "m" + s + "\x1b[0m"
	}
	if r.Backend != "" {
		fmt.Fprintf(w, "Backend: %s\n\n", r.Backend)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SOURCE\tPORT\tEXPOSE\tEXPECTED\tOBSERVED\tTIME\tRESULT\tWHY")
	for _, c := range r.Checks {
		result := paint("32", "ok")
		if !c.Pass {
			result = paint("31", "FAIL")
		}
		src := c.From.String()
		fmt.Fprintf(tw, "%s\t%s/%d\t%s\t%s\t%s\t%s\t%s\t%s\n", src, c.Probe.Protocol, c.Probe.Target.Port(), c.Exposure,
			c.Expected, c.observed(), c.Probe.Elapsed.Round(time.Millisecond), result, c.Why)
	}
	tw.Flush()
	for _, c := range r.Checks {
		if !c.Pass {
			fmt.Fprintf(w, "\n%s %s -> %s: expected %s, observed %s.\n  hint: %s\n", paint("31", "FAIL"), c.From, c.Probe.Target, c.Expected, c.observed(), c.Hint)
		}
	}
	for _, s := range r.Skipped {
		fmt.Fprintf(w, "skipped: %s\n", s)
	}
	for _, s := range r.Notes {
		fmt.Fprintf(w, "\nnote: %s\n", s)
	}
	p, f, e := r.Counts()
	fmt.Fprintf(w, "\n%d passed, %d failed, %d errors in %s (%s)\n", p, f, e, r.Duration.Round(time.Millisecond), r.Mode)
}

// WriteJSON prints the report as JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

type junitSuite struct {
	XMLName  xml.Name    `xml:"testsuite"`
	Name     string      `xml:"name,attr"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Errors   int         `xml:"errors,attr"`
	Time     float64     `xml:"time,attr"`
	Cases    []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	ClassName string        `xml:"classname,attr"`
	Time      float64       `xml:"time,attr"`
	Failure   *junitProblem `xml:"failure,omitempty"`
	Error     *junitProblem `xml:"error,omitempty"`
}

type junitProblem struct {
	Message string `xml:"message,attr"`
	Text    string `xml:",chardata"`
}

// WriteJUnit writes one testcase per probe: a wrong verdict is a failure,
// a probe that could not run an error.
func (r *Report) WriteJUnit(w io.Writer) error {
	_, failed, errored := r.Counts()
	s := junitSuite{Name: "portwarden verify " + r.Mode, Tests: len(r.Checks), Failures: failed, Errors: errored, Time: r.Duration.Seconds()}
	for _, c := range r.Checks {
		name := fmt.Sprintf("%s -> %s/%s", c.From, c.Probe.Protocol, c.Probe.Target)
		if c.Why != "" {
			name += " (" + c.Why + ")"
		}
		jc := junitCase{Name: name, ClassName: "expose." + c.Exposure, Time: c.Probe.Elapsed.Seconds()}
		msg := fmt.Sprintf("expected %s, observed %s", c.Expected, c.Probe.State)
		switch {
		case c.Pass:
		case c.Probe.State == Error:
			jc.Error = &junitProblem{Message: msg, Text: c.Hint}
		default:
			jc.Failure = &junitProblem{Message: msg, Text: c.Hint}
		}
		s.Cases = append(s.Cases, jc)
	}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(s); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}
