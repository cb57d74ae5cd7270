package policies

import (
	"fmt"
	"strings"
	"testing"
	"testing/fstest"
)

// TestLongLineQuotedInPart: a 2 MB one-line JSON policy with an error at
// its end is quoted around the error, not whole.
func TestLongLineQuotedInPart(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"expose": {"nscp": {"protocol": "tcp", "ports": [27], "allow": {"from": [`)
	for i := 0; b.Len() < 2<<20; i++ {
		fmt.Fprintf(&b, `"198.18.%d.%d", `, i/250%250, i%250+1)
	}
	b.WriteString(`"198.18.300.1"]}}}}`)
	pol, diags := LoadFS(fstest.MapFS{"p.hcl.json": {Data: []byte(b.String())}}, "p.hcl.json", Options{})
	if !diags.HasErrors() {
		t.Fatal("no error")
	}
	var out strings.Builder
	if err := WriteDiagnostics(&out, pol.Files, diags, false); err != nil {
		t.Fatal(err)
	}
	if out.Len() > 1000 || !strings.Contains(out.String(), "1: …") || !strings.Contains(out.String(), `"198.18.300.1"`) {
		t.Fatalf("diagnostic of %d bytes:\n%.2000s", out.Len(), out.String())
	}
}
