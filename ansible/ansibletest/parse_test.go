package ansibletest

import "testing"

func TestParseOutput(t *testing.T) {
	out := `
PLAY [Apply the portwarden policy] *********************************************

TASK [portwarden.firewall.server : Lay down the policy and its list files] *****
changed: [srv1]
ok: [srv2]

TASK [portwarden.firewall.server : Apply the policy] ***************************
--- before: nftables (kernel)
+++ after: /x/policy
@@ -1 +1 @@
-  allow 198.18.0.25/32
changed: [srv1]
ok: [srv2]
fatal: [srv3]: FAILED! => {"changed": false}

PLAY RECAP *********************************************************************
srv1                       : ok=5    changed=2    unreachable=0    failed=0    skipped=4    rescued=0    ignored=0   
srv2                       : ok=5    changed=0    unreachable=0    failed=0    skipped=4    rescued=0    ignored=0   
`
	got := taskResults(out, "Apply the policy")
	if got["srv1"] != "changed" || got["srv2"] != "ok" || got["srv3"] != "fatal" || len(got) != 3 {
		t.Errorf("taskResults: %v", got)
	}
	recap := parseRecap(t, out)
	if recap["srv1"]["changed"] != 2 || recap["srv2"]["changed"] != 0 || recap["srv1"]["skipped"] != 4 {
		t.Errorf("parseRecap: %v", recap)
	}
}
