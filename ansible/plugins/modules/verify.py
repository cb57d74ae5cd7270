#!/usr/bin/python
# -*- coding: utf-8 -*-

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: verify
short_description: From this host, prove what a server's firewall lets it reach
description:
  - Runs on a peer. Probes every port the policy manages on I(target) with real
    connections (C(portwarden verify --target)) and compares each result with
    the verdict the policy gives this peer's address as the server sees it.
  - Returns every result; fails when any differs.
  - Changes nothing, also outside check mode.
options:
  target:
    description: The server to probe (address or name).
    type: str
    required: true
  policy:
    description: The server's policy (file or directory) on this peer.
    type: path
    required: true
  as_address:
    description:
      - The source address the server sees for this peer (behind NAT);
        default the address this peer's kernel uses toward the target.
    type: str
    aliases: [as]
  timeout:
    description: Per-probe timeout, e.g. C(1s).
    type: str
  vars:
    description: Policy variables, as for portwarden.firewall.policy.
    type: dict
    default: {}
  var_files:
    description: Variable files on this peer.
    type: list
    elements: path
    default: []
  binary:
    description: The portwarden binary on this peer.
    type: path
    default: portwarden
  state_dir:
    description: Unused by verify; accepted so both modules share settings.
    type: path
author: portwarden maintainers
"""

EXAMPLES = r"""
- name: Verify every server from this peer
  portwarden.firewall.verify:
    target: "{{ hostvars[item].ansible_host }}"
    policy: /var/tmp/portwarden/policies/{{ item }}
  loop: "{{ groups.servers }}"
"""

RETURN = r"""
source:
  description: The address the policy was asked about.
  returned: always
  type: str
results:
  description: One per probed port.
  returned: always
  type: list
  elements: dict
  contains:
    source: {description: this peer's address as the policy saw it, type: str}
    target: {description: the server, type: str}
    port: {description: the port probed, type: int}
    protocol: {description: tcp or udp, type: str}
    exposure: {description: the exposure of the port, type: str}
    verdict: {description: what the policy gives this peer, type: str}
    expected: {description: the probe state that verdict means, type: str}
    observed: {description: the probe state seen, type: str}
    pass: {description: observed equals expected, type: bool}
    hint: {description: for a failure, the likely cause, type: str}
    elapsed_ms: {description: probe time, type: float}
passed: {description: checks that passed, returned: always, type: int}
failed: {description: checks that did not, returned: always, type: int}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.portwarden.firewall.plugins.module_utils.portwarden import (
    Portwarden, common_argument_spec)


def main():
    spec = common_argument_spec()
    spec.update(
        policy=dict(type="path", required=True),
        target=dict(type="str", required=True),
        as_address=dict(type="str", aliases=["as"]),
        timeout=dict(type="str"),
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    p = module.params
    pw = Portwarden(module)
    args = ["verify", "--target", p["target"]]
    if p["as_address"]:
        args += ["--as", p["as_address"]]
    if p["timeout"]:
        args += ["--timeout", p["timeout"]]
    rc, rep, _ = pw.run_json(args, ok_codes=(0, 3), what="portwarden verify --target %s failed" % p["target"])
    results = []
    for c in rep.get("checks") or []:
        probe = c.get("probe") or {}
        target = probe.get("target", "")
        host, _, port = target.rpartition(":")
        results.append(dict(
            source=c.get("from"), target=p["target"], address=host.strip("[]"), port=int(port or 0),
            protocol=probe.get("protocol"), exposure=c.get("exposure"), verdict=c.get("verdict"),
            expected=c.get("expected"), observed=probe.get("state"), **{"pass": bool(c.get("pass"))}))
        results[-1]["hint"] = c.get("hint") or ""
        results[-1]["elapsed_ms"] = round((probe.get("elapsed_ns") or 0) / 1e6, 1)
    failed = [r for r in results if not r["pass"]]
    source = results[0]["source"] if results else p["as_address"]
    out = dict(changed=False, source=source, results=results, passed=len(results) - len(failed), failed=len(failed))
    if rc != 0 or failed:
        lines = ["%s -> %s %s/%d: expected %s, observed %s (%s)" % (r["source"], p["target"], r["protocol"], r["port"],
                                                                    r["expected"], r["observed"], r["hint"])
                 for r in failed]
        module.fail_json(msg="%d of %d checks failed from %s to %s:\n%s" % (len(failed), len(results), source,
                                                                            p["target"], "\n".join(lines)), **out)
    module.exit_json(**out)


if __name__ == "__main__":
    main()
