#!/usr/bin/python
# -*- coding: utf-8 -*-

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: policy
short_description: Make a host's firewall match a portwarden policy
description:
  - Plans the policy against the kernel with C(portwarden plan), and applies
    exactly that saved plan when it is not empty. A plan that went stale in
    between (someone changed the firewall) is refused, not re-planned.
  - Changed only when the plan is not empty (a rule deleted by hand counts).
  - In check mode, returns the plan and writes nothing.
  - In diff mode, returns the owned rules before and after, one line per
    source, so a reviewer sees the sources added and removed per exposure.
  - An invalid policy fails with portwarden's diagnostics (file:line:col) in msg.
  - Reads the JSON contract of portwarden (format_version 1, docs/json.md).
options:
  policy:
    description: Policy file or directory on the target. Required with state=present.
    type: path
  state:
    description: C(present) applies the policy; C(absent) removes every rule portwarden owns.
    type: str
    choices: [present, absent]
    default: present
  backend:
    description: Firewall backend.
    type: str
    choices: [auto, nftables, iptables]
    default: auto
  vars:
    description: Policy variables (strings as they are; lists, numbers and booleans as HCL values).
    type: dict
    default: {}
  var_files:
    description: Variable files on the target (.hcl or .hcl.json).
    type: list
    elements: path
    default: []
  confirm_timeout:
    description:
      - Apply with C(--confirm-timeout), e.g. C(120s). The change rolls back
        at the deadline unless C(portwarden confirm) runs on the host before it
        (do so after verifying, see the rollout pattern in the README). The
        module returns once the rollback watchdog is armed, with
        C(pending_confirmation).
    type: str
  verify:
    description: Apply with C(--verify) (the policy's test blocks, probed against the rules read back from the kernel); a failure restores the previous rules and fails the task.
    type: bool
    default: false
  force:
    description: Apply even if the new rules would cut the SSH session portwarden runs in.
    type: bool
    default: false
  binary:
    description: The portwarden binary (a path, or a name looked up on PATH and in /usr/local/sbin).
    type: path
    default: portwarden
  state_dir:
    description: portwarden's state directory (PORTWARDEN_STATE_DIR); default /var/lib/portwarden.
    type: path
author: portwarden maintainers
"""

EXAMPLES = r"""
- name: Only operators reach TCP 27
  portwarden.firewall.policy:
    policy: /etc/portwarden/policy
    vars:
      office: ["198.51.100.0/24"]

- name: Apply with a rollback deadline, confirm later
  portwarden.firewall.policy:
    policy: /etc/portwarden/policy
    confirm_timeout: 120s
  register: applied
"""

RETURN = r"""
plan:
  description: The plan shown and applied (exposures that change, with sources added and removed).
  returned: state=present
  type: dict
fingerprint:
  description: Fingerprint of the rules the kernel holds afterwards (in check mode, of the desired rules).
  returned: always
  type: str
pending_confirmation:
  description: With confirm_timeout, the deadline of the rollback unless confirmed.
  returned: when a change awaits confirmation
  type: str
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.portwarden.firewall.plugins.module_utils.portwarden import (
    Portwarden, check_format, common_argument_spec, render_ruleset, summarize_diff)

def main():
    spec = common_argument_spec()
    spec.update(
        state=dict(type="str", default="present", choices=["present", "absent"]),
        backend=dict(type="str", default="auto", choices=["auto", "nftables", "iptables"]),
        confirm_timeout=dict(type="str"),
        verify=dict(type="bool", default=False),
        force=dict(type="bool", default=False),
    )
    module = AnsibleModule(argument_spec=spec, required_if=[("state", "present", ["policy"])],
                           supports_check_mode=True)
    binary = module.params["binary"]
    if module.check_mode and os.path.isabs(binary) and not os.path.exists(binary):
        # A check run before the first real one: the role's copy of the
        # binary did not happen, so nothing can be planned yet.
        module.exit_json(changed=module.params["state"] == "present",
                         msg="%s is not installed yet: a real run installs it and applies the policy" % binary)
    pw = Portwarden(module)
    if module.params["state"] == "absent":
        absent(module, pw)
    present(module, pw)


def present(module, pw):
    p = module.params
    if not os.path.exists(p["policy"]):
        module.fail_json(msg="policy %s does not exist on this host" % p["policy"])
    planfile = os.path.join(module.tmpdir, "plan.json")
    _, plan, _ = pw.run_json(["plan", "--out", planfile], what="portwarden plan failed for %s" % p["policy"])
    current = plan.get("current") or {}
    result = dict(
        changed=not plan["empty"],
        backend=plan["backend"],
        plan=dict(empty=plan["empty"], drift=current.get("drift") or [],
                  exposures=summarize_diff(plan.get("diff")), warnings=plan.get("warnings") or []),
        fingerprint=current.get("fingerprint"),
    )
    if module._diff:
        result["diff"] = dict(before=render_ruleset(current.get("ruleset"), current.get("drift")),
                              after=render_ruleset(plan.get("desired")),
                              before_header="%s (kernel)" % plan["backend"],
                              after_header=p["policy"])
    if plan["empty"] or module.check_mode:
        module.exit_json(**result)

    args = ["apply", planfile]
    if p["verify"]:
        args.append("--verify")
    if p["force"]:
        args.append("--force")
    if p["confirm_timeout"]:
        result["pending_confirmation"] = apply_pending(module, pw, args + ["--confirm-timeout", p["confirm_timeout"]])
    else:
        rc, out, err = pw.run(args + ["--json"])
        if rc == 3:
            pw.fail("verification after apply failed on %s: portwarden restored the previous rules" % p["policy"],
                    rc, out, err, plan=result["plan"])
        if rc != 0:
            pw.fail("portwarden apply failed", rc, out, err, plan=result["plan"])
    _, st, _ = pw.run_json(["status"])
    result["fingerprint"] = st.get("fingerprint")
    module.exit_json(**result)


def apply_pending(module, pw, args):
    """Runs apply --confirm-timeout --no-wait, which exits once the change
    is in the kernel and its rollback watchdog is armed: the detached
    watchdog keeps the deadline, and `portwarden confirm` (a later task)
    keeps the change. (Ending a waiting apply with SIGTERM would roll the
    change back: a signal is a no.)"""
    rc, out, err = pw.run(args + ["--no-wait", "--json"])
    if rc != 0:
        pw.fail("portwarden apply --confirm-timeout failed", rc, out, err)
    _, st, _ = pw.run_json(["status"])
    pending = st.get("pending_confirmation")
    if not pending:
        module.fail_json(msg="portwarden apply --confirm-timeout left no change awaiting confirmation")
    return pending.get("deadline")


def absent(module, pw):
    _, st, _ = pw.run_json(["status"])
    result = dict(changed=bool(st.get("installed")), backend=st.get("backend"), fingerprint=st.get("fingerprint"))
    if module._diff:
        before = ""
        if st.get("installed"):
            before = "%d exposures installed (fingerprint %s)\n" % (st.get("exposures", 0), st.get("fingerprint"))
        result["diff"] = dict(before=before, after="")
    if not result["changed"] or module.check_mode:
        module.exit_json(**result)
    rc, out, err = pw.run(["destroy", "--auto-approve"])
    if rc != 0:
        pw.fail("portwarden destroy failed", rc, out, err)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
