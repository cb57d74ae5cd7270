package nftables

import (
	"context"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/portwarden/portwarden/backends/backendtest"
	"github.com/portwarden/portwarden/rules"
)

// TestGrantHandEdits: a grant element re-added by hand with another
// timeout, or one added without a deadline, is drift that apply repairs;
// the deadline the kernel keeps is the one the policy says.
func TestGrantHandEdits(t *testing.T) {
	for _, tc := range []struct{ name, script, drift string }{
		{"timeout moved", "delete element inet portwarden nscp-grant4 { 198.18.0.4 }\nadd element inet portwarden nscp-grant4 { 198.18.0.4 timeout 7200s comment \"%s\" }",
			"does not end at its deadline"},
		{"no deadline", "add element inet portwarden nscp-grant4 { 198.18.0.99 timeout 3600s }", "without a deadline"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := &hooks{stateDir: t.TempDir()}
			l := backendtest.NewLab(t, h)
			until := time.Now().UTC().Truncate(time.Second).Add(time.Hour)
			rs := backendtest.LabRuleset(rules.Drop)
			rs.Exposures[0].Expiring = []rules.Grant{{Source: netip.MustParsePrefix("198.18.0.4/32"), Until: until}}
			rs.Normalize()
			l.Apply(t, rs)
			script := tc.script
			if strings.Contains(script, "%s") {
				script = strings.ReplaceAll(script, "%s", untilComment(until.Unix()))
			}
			nft(t, l.Server.Path(), script)
			ctx := context.Background()
			fresh := h.Open(t, l.Server.Path()) // a new process: the cache must not hide the edit
			p, err := fresh.Plan(ctx, rs)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(strings.Join(p.Current.Drift, "\n"), tc.drift) {
				t.Fatalf("drift %q does not say %q", p.Current.Drift, tc.drift)
			}
			if err := fresh.Apply(ctx, p); err != nil {
				t.Fatal(err)
			}
			st, err := h.Open(t, l.Server.Path()).Current(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if d := rules.Compare(st.Ruleset, rs); !d.Empty() || len(st.Drift) > 0 {
				t.Fatalf("not repaired: %+v %q", d, st.Drift)
			}
			listing := nft(t, l.Server.Path(), "list set inet portwarden nscp-grant4")
			// (nft lists the element's counter before its timeout.)
			if !regexp.MustCompile(`198\.18\.0\.4 (counter packets \d+ bytes \d+ )?timeout (1h|59m)`).MatchString(listing) {
				t.Errorf("repaired element's timeout is not the policy's hour:\n%s", listing)
			}
		})
	}
}
