package main

import (
	"encoding/xml"
	"fmt"
	"io"
	"os"

	"github.com/portwarden/portwarden/rules"
	"github.com/spf13/cobra"
)

func newTestCmd(g *globals) *cobra.Command {
	var junit string
	cmd := &cobra.Command{
		Use:   "test",
		Short: "Run the policy's test blocks against the model, offline (exit 3 when one fails)",
		Example: `  portwarden --policy /etc/portwarden test
  portwarden --policy /etc/portwarden test --junit test-results.xml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			pol, rs, err := g.loadPolicy(cmd)
			if err != nil {
				return err
			}
			results := rules.RunTests(pol, rs)
			failed := 0
			for _, r := range results {
				if !r.Pass {
					failed++
				}
			}
			if junit != "" {
				if err := writeTestJUnit(junit, results); err != nil {
					return withCode(exitError1, err)
				}
			}
			out := cmd.OutOrStdout()
			if g.json {
				if err := printJSON(out, map[string]any{"passed": len(results) - failed, "failed": failed, "tests": testJSON(results)}); err != nil {
					return err
				}
			} else {
				for _, r := range results {
					fmt.Fprintln(out, testLine(r))
				}
				fmt.Fprintf(out, "\n%d passed, %d failed\n", len(results)-failed, failed)
			}
			if failed > 0 {
				return silentExit(exitFailed)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&junit, "junit", "", "also write a JUnit XML report to this file")
	return cmd
}

func testLine(r rules.TestResult) string {
	status := "PASS"
	if !r.Pass {
		status = "FAIL"
	}
	where := r.Test.DeclRange.String()
	if r.Problem != "" {
		return fmt.Sprintf("%s  %s (%s): %s", status, r.Name, where, r.Problem)
	}
	line := fmt.Sprintf("%s  %s (%s): %s -> %s/%d: %s, expected %s", status, r.Name, where,
		r.Packet.Source, r.Packet.Protocol, r.Packet.Port, r.Decision.Verdict, r.Expect)
	if o := r.Decision.Origin; o != nil {
		line += fmt.Sprintf(", decided by the %s rule of expose %q at %s", o.Kind, r.Decision.Exposure, o.Range)
	}
	return line
}

type testResultJSON struct {
	Name     string         `json:"name"`
	Location string         `json:"location"`
	Source   string         `json:"source"`
	Port     uint16         `json:"port"`
	Protocol rules.Protocol `json:"protocol"`
	Expect   string         `json:"expect"`
	Verdict  rules.Verdict  `json:"verdict"`
	Decided  string         `json:"decided_by,omitempty"`
	Pass     bool           `json:"pass"`
	Problem  string         `json:"problem,omitempty"`
}

func testJSON(results []rules.TestResult) []testResultJSON {
	out := make([]testResultJSON, 0, len(results))
	for _, r := range results {
		j := testResultJSON{Name: r.Name, Location: r.Test.DeclRange.String(), Source: r.Test.From.String(),
			Port: r.Packet.Port, Protocol: r.Packet.Protocol, Expect: r.Expect, Verdict: r.Decision.Verdict, Pass: r.Pass, Problem: r.Problem}
		if o := r.Decision.Origin; o != nil {
			j.Decided = o.Kind + " at " + o.Range.String()
		}
		out = append(out, j)
	}
	return out
}

type junitSuite struct {
	XMLName  xml.Name    `xml:"testsuite"`
	Name     string      `xml:"name,attr"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Cases    []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	ClassName string        `xml:"classname,attr"`
	Failure   *junitFailure `xml:"failure,omitempty"`
}

type junitFailure struct {
	Message string `xml:"message,attr"`
	Text    string `xml:",chardata"`
}

func writeTestJUnit(path string, results []rules.TestResult) error {
	s := junitSuite{Name: "portwarden test", Tests: len(results)}
	for _, r := range results {
		c := junitCase{Name: r.Name, ClassName: "policy"}
		if !r.Pass {
			s.Failures++
			c.Failure = &junitFailure{Message: "expected " + r.Expect + ", got " + string(r.Decision.Verdict), Text: testLine(r)}
		}
		s.Cases = append(s.Cases, c)
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("junit report: %w", err)
	}
	defer f.Close()
	io.WriteString(f, xml.Header)
	enc := xml.NewEncoder(f)
	enc.Indent("", "  ")
	if err := enc.Encode(s); err != nil {
		return err
	}
	_, err = io.WriteString(f, "\n")
	return err
}
