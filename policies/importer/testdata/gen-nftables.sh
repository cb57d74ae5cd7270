#!/usr/bin/env bash
# Regenerates testdata/nftables/ruleset.json with the real tool: loads
# nftables.rules into a throwaway pwt-* namespace with nft -f and saves it
# with nft -j list ruleset. Needs root.
set -euo pipefail
cd "$(dirname "$0")"
ns=pwt-gen-nft-$$
ip netns add "$ns"
trap 'ip netns del "$ns"' EXIT
ip netns exec "$ns" nft -f nftables.rules
# The version in metainfo varies between machines: drop it.
ip netns exec "$ns" nft -j list ruleset | python3 -c 'import json,sys; d=json.load(sys.stdin); d["nftables"]=[o for o in d["nftables"] if "metainfo" not in o]; json.dump(d,sys.stdout,indent=1); print()' > nftables/ruleset.json
