#!/usr/bin/env bash
# portwarden demo: a server and three peers in throwaway network namespaces.
# Applies examples/port27 on the server, shows the plan, the apply, a second
# plan with no changes, and verification from an allowed and two refused
# peers; then removes everything. Needs root; touches nothing outside the
# pwt-demo-* namespaces it creates. Addresses: 198.18.0.0/15, 2001:2::/48.
set -euo pipefail
cd "$(dirname "$0")/../.."

if [ "$(id -u)" != 0 ]; then
  echo "The demo creates network namespaces: run it as root (make demo as root, or sudo make demo)." >&2
  exit 1
fi

# Build into a temporary directory, not bin/: a demo run as root must not
# leave root-owned files in the user's tree.
BUILD=$(mktemp -d)
PW=$BUILD/portwarden
LISTENER=$BUILD/demo-listener
GO=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
POLICY=examples/port27
SUFFIX=$$
SRV=pwt-demo-srv-$SUFFIX
PEERS=(admin kiosk stranger)
declare -A V4=([admin]=198.18.1.7 [kiosk]=198.18.10.66 [stranger]=198.18.99.1)
declare -A V6=([admin]=2001:2:0:1::7 [kiosk]=2001:2:0:10::66 [stranger]=2001:2:0:99::1)
LISTENER_PID=

cleanup() {
  [ -n "$LISTENER_PID" ] && kill "$LISTENER_PID" 2>/dev/null || true
  for p in "${PEERS[@]}"; do ip netns del "pwt-demo-$p-$SUFFIX" 2>/dev/null || true; done
  ip netns del "$SRV" 2>/dev/null || true
  rm -rf "$BUILD"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Bold headings on a terminal only: no raw escape codes into a pipe or a log.
if [ -t 1 ] && [ -z "${NO_COLOR:-}" ]; then
  step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
else
  step() { printf '\n== %s\n' "$*"; }
fi
run() { printf '$ %s\n' "$*"; "$@"; }

"$GO" build -o "$PW" ./cmd/portwarden
"$GO" build -o "$LISTENER" ./examples/demo/listener

step "Building the lab: server $SRV and peers ${PEERS[*]}"
ip netns add "$SRV"
ip -n "$SRV" link set lo up
ip -n "$SRV" link add br0 type bridge
ip -n "$SRV" link set br0 up
ip -n "$SRV" addr add 198.18.0.1/15 dev br0
ip -n "$SRV" addr add 2001:2::1/48 dev br0 nodad
for p in "${PEERS[@]}"; do
  ns=pwt-demo-$p-$SUFFIX
  ip netns add "$ns"
  ip -n "$ns" link set lo up
  ip -n "$SRV" link add "d-$p" type veth peer name eth0 netns "$ns"
  ip -n "$SRV" link set "d-$p" master br0 up
  ip -n "$ns" addr add "${V4[$p]}/15" dev eth0
  ip -n "$ns" addr add "${V6[$p]}/48" dev eth0 nodad
  ip -n "$ns" link set eth0 up
  echo "  $p: ${V4[$p]}, ${V6[$p]}"
done
ip netns exec "$SRV" "$LISTENER" 27 28 &
LISTENER_PID=$!
sleep 0.3

step "The policy: validate and test it offline"
run "$PW" --policy "$POLICY" validate
run "$PW" --policy "$POLICY" test

step "Plan on the server"
run ip netns exec "$SRV" "$PW" --policy "$POLICY" plan || true

step "Apply"
run ip netns exec "$SRV" "$PW" --policy "$POLICY" apply --auto-approve

step "Plan again: nothing to do"
run ip netns exec "$SRV" "$PW" --policy "$POLICY" plan --detailed-exitcode

for p in "${PEERS[@]}"; do
  for target in 198.18.0.1 2001:2::1; do
    step "Verify from $p toward $target"
    run ip netns exec "pwt-demo-$p-$SUFFIX" "$PW" --policy "$POLICY" verify --target "$target" || true
  done
done

step "Probe an unmanaged port from the stranger: it passes untouched"
run ip netns exec "pwt-demo-stranger-$SUFFIX" "$PW" probe 198.18.0.1:28 --expect open

step "Destroy, then tear the lab down"
run ip netns exec "$SRV" "$PW" destroy --auto-approve
