package importer

import (
	"context"
	"fmt"
	"os/exec"
	"testing"

	"github.com/portwarden/portwarden/internal/netns/netnstest"
)

// TestKernelReaderAgreesWithJSON loads the nftables fixture's ruleset
// with nft -f into a namespace, reads it back over netlink, and requires
// the same exposes (ports, defaults, blocks, groups) and the same number
// of left-out items as the import of its `nft -j list ruleset` output.
func TestKernelReaderAgreesWithJSON(t *testing.T) {
	ns := netnstest.New(t, "nftread")
	if out, err := exec.Command("ip", "netns", "exec", ns.Name, "nft", "-f", "testdata/nftables.rules").CombinedOutput(); err != nil {
		t.Fatalf("nft -f: %v: %s", err, out)
	}
	live, err := ReadNftablesKernel(context.Background(), ns.Fd())
	if err != nil {
		t.Fatal(err)
	}
	saved, err := ParseNftables(readDir(t, "testdata/nftables"))
	if err != nil {
		t.Fatal(err)
	}
	want, got := summary(saved.Plan())+groups(saved), summary(live.Plan())+groups(live)
	if want != got {
		t.Errorf("netlink import differs from the JSON import:\n--- json\n%s\n--- netlink\n%s", want, got)
	}
	t.Logf("netlink import:\n%s", got)
	if len(live.LeftOut) != len(saved.LeftOut) {
		t.Errorf("netlink import left out %d items, the JSON import %d:\n%s\n---\n%s", len(live.LeftOut), len(saved.LeftOut), ReportText(live), ReportText(saved))
	}
}

func groups(im *Import) string {
	var out string
	for _, name := range []string{"admins", "admins6", "blocked"} {
		out += fmt.Sprintf("group %s %v\n", name, setOf(im.Groups[name]...).Prefixes())
	}
	return out
}

func summary(xs []Exposure) string {
	var out string
	for _, x := range xs {
		out += fmt.Sprintf("%s %s %v default=%s loopback=%v\n", x.Name, x.Protocol, x.Ports, x.Default, x.Loopback)
		for _, b := range x.Blocks {
			out += fmt.Sprintf("  %s group=%s %v %q trimmed=%v\n", b.Kind, b.Group, b.Prefixes, b.Comment, b.Trimmed)
		}
	}
	return out
}
