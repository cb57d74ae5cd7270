#!/usr/bin/env bash
# See gen-firewalld.py. Needs apt-get download (network) and dpkg.
set -euo pipefail
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && apt-get download firewalld python3-firewall >/dev/null 2>&1 && for d in *.deb; do dpkg -x "$d" root; done)
rm -f firewalld/*.xml
PYTHONPATH=$tmp/root/usr/lib/python3/dist-packages python3 gen-firewalld.py "$tmp/root" "$PWD/firewalld"
