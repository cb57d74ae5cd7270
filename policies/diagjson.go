package policies

import (
	"github.com/hashicorp/hcl/v2"
)

// JSONDiagnostic is a diagnostic as the JSON outputs carry it, shaped like
// terraform validate -json: severity, summary, detail and the range in
// snake_case.
type JSONDiagnostic struct {
	Severity string       `json:"severity"` // "error" or "warning"
	Summary  string       `json:"summary"`
	Detail   string       `json:"detail"`
	Range    *SourceRange `json:"range,omitempty"`
}

// SourceRange is where something is written in a policy file, as every
// JSON output spells it (snake_case, like terraform validate -json).
type SourceRange struct {
	Filename string    `json:"filename"`
	Start    SourcePos `json:"start"`
	End      SourcePos `json:"end"`
}

// SourcePos is a position: line and column from 1, byte offset from 0.
type SourcePos struct {
	Line   int `json:"line"`
	Column int `json:"column"`
	Byte   int `json:"byte"`
}

// RangeOf converts an hcl.Range.
func RangeOf(r hcl.Range) SourceRange {
	return SourceRange{Filename: r.Filename,
		Start: SourcePos{Line: r.Start.Line, Column: r.Start.Column, Byte: r.Start.Byte},
		End:   SourcePos{Line: r.End.Line, Column: r.End.Column, Byte: r.End.Byte}}
}

// HCL converts back to an hcl.Range.
func (s SourceRange) HCL() hcl.Range {
	return hcl.Range{Filename: s.Filename,
		Start: hcl.Pos{Line: s.Start.Line, Column: s.Start.Column, Byte: s.Start.Byte},
		End:   hcl.Pos{Line: s.End.Line, Column: s.End.Column, Byte: s.End.Byte}}
}

// DiagnosticsJSON converts diagnostics for the JSON outputs; never nil, so
// an empty list prints as [].
func DiagnosticsJSON(diags hcl.Diagnostics) []JSONDiagnostic {
	out := make([]JSONDiagnostic, 0, len(diags))
	for _, d := range diags {
		j := JSONDiagnostic{Severity: "error", Summary: d.Summary, Detail: d.Detail}
		if d.Severity == hcl.DiagWarning {
			j.Severity = "warning"
		}
		if d.Subject != nil {
			r := RangeOf(*d.Subject)
			j.Range = &r
		}
		out = append(out, j)
	}
	return out
}
