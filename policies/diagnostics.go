package policies

import (
	"bytes"
	"fmt"
	"io"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/portwarden/portwarden/internal/hclwrite"
)

// WriteDiagnostics prints diagnostics for people: severity, summary,
// file:line:col, the source line with the offending part marked (at most
// maxSnippet characters of it), and the detail.
func WriteDiagnostics(w io.Writer, files map[string]*hcl.File, diags hcl.Diagnostics, color bool) error {
	for _, d := range diags {
		fs := files
		if d.Subject != nil {
			if f, cd := clipDiagnostic(files[d.Subject.Filename], d); cd != d {
				fs, d = map[string]*hcl.File{d.Subject.Filename: f}, cd
			}
		}
		var b bytes.Buffer
		if err := hcl.NewDiagnosticTextWriter(&b, fs, 88, color).WriteDiagnostic(d); err != nil {
			return err
		}
		text := b.String()
		if r := d.Subject; r != nil {
			// HCL says "on FILE line N"; file:line:col is what editors and
			// terminals open at the column.
			text = strings.Replace(text, fmt.Sprintf("on %s line %d", r.Filename, r.Start.Line),
				fmt.Sprintf("on %s:%d:%d", r.Filename, r.Start.Line, r.Start.Column), 1)
		}
		if _, err := io.WriteString(w, text); err != nil {
			return err
		}
	}
	return nil
}

// FormatDiagnostic is one diagnostic on one line, in the form
// "file:line,col-col: Summary; Detail", for golden files and logs.
func FormatDiagnostic(d *hcl.Diagnostic) string {
	var b strings.Builder
	if d.Severity == hcl.DiagWarning {
		b.WriteString("warning: ")
	}
	if d.Subject != nil {
		fmt.Fprintf(&b, "%s: ", d.Subject)
	}
	b.WriteString(d.Summary)
	if d.Detail != "" {
		b.WriteString("; " + d.Detail)
	}
	return b.String()
}

// Format returns the canonical formatting of a native-syntax policy file.
// JSON files are returned unchanged. Syntax errors come back as diagnostics
// and the source unchanged.
func Format(src []byte, filename string) ([]byte, hcl.Diagnostics) {
	if strings.HasSuffix(filename, ".json") {
		return src, nil
	}
	if _, diags := hclsyntax.ParseConfig(src, filename, hcl.InitialPos); diags.HasErrors() {
		return src, diags
	}
	return hclwrite.Format(src), nil
}
