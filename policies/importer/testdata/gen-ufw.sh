#!/usr/bin/env bash
# Regenerates testdata/ufw with the real ufw: the Debian package is
# unpacked into a temporary root (apt-get download, dpkg -x; nothing is
# installed), its templates are copied into etc/ufw as the package's
# postinst does, and ufw --rootdir writes user.rules and user6.rules there.
# ufw stays disabled (ENABLED=no), so it never touches a firewall; it runs
# inside a throwaway pwt-* namespace all the same. Needs root.
set -euo pipefail
cd "$(dirname "$0")"
out=$PWD/ufw
tmp=$(mktemp -d)
ns=pwt-gen-ufw-$$
ip netns add "$ns"
trap 'ip netns del "$ns"; rm -rf "$tmp"' EXIT
(cd "$tmp" && apt-get download ufw >/dev/null 2>&1 && dpkg -x ufw_*.deb root)
root=$tmp/root
cp "$root"/usr/share/ufw/iptables/*.rules "$root"/etc/ufw/
cp "$root"/usr/share/ufw/ufw.conf "$root"/etc/ufw/
chmod 755 "$tmp"
ufw() { PYTHONPATH=$root/usr/lib/python3/dist-packages ip netns exec "$ns" python3 "$root"/usr/sbin/ufw --rootdir="$root" --datadir="$root" "$@" >/dev/null 2>&1; }

ufw default deny incoming
ufw allow from 198.18.10.0/24 to any port 22 proto tcp comment 'admin lan'
ufw allow from 2001:2:10::/64 to any port 22 proto tcp comment 'admin lan'
ufw limit from 198.18.20.7 to any port 22 proto tcp comment 'jump host'
ufw insert 1 deny from 198.18.99.99 comment 'blocked scanner'
ufw deny from 198.18.1.66 to any port 27 proto tcp comment 'revoked contractor'
ufw deny from 2001:2:1::66 to any port 27 proto tcp comment 'revoked contractor'
ufw allow from 198.18.1.0/24 to any port 27 proto tcp comment 'nscp peers'
ufw allow from 198.18.2.0/24 to any port 27 proto tcp comment 'nscp peers'
ufw allow from 2001:2:1::/64 to any port 27 proto tcp comment 'nscp peers'
ufw allow 80,443/tcp comment 'web'
ufw allow from 198.18.30.0/28 to any port 161 proto udp comment 'snmp'
ufw allow from 2001:2:30::/124 to any port 161 proto udp comment 'snmp'
ufw reject 23/tcp comment 'telnet is gone'
ufw allow from 198.18.41.0/24 to any port 5432 proto tcp comment 'app servers'
ufw allow 6000:6007/tcp comment 'x11'
ufw allow in on eth0 to any port 8080 proto tcp comment 'proxy on eth0'
ufw route allow in on eth0 out on eth1 to 198.18.80.0/24 port 80 proto tcp
ufw allow out 53/udp
ufw deny from 2001:2:99::/64 to any port 9000:9100 proto tcp
ufw allow from 198.18.0.0/15 to any port 9000:9100 proto tcp comment 'metrics'
ufw allow from 2001:2::/48 to any port 9000:9100 proto tcp comment 'metrics'

cp "$root"/etc/ufw/user.rules "$root"/etc/ufw/user6.rules "$out"/
cp "$root"/etc/default/ufw "$out"/ufw
