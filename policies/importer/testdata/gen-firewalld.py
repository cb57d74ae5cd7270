#!/usr/bin/env python3
"""Regenerates testdata/firewalld with firewalld's own code.

Run gen-firewalld.sh, which unpacks the Debian packages firewalld and
python3-firewall into a temporary root (nothing is installed) and runs this
with that root's python modules. Zones are read from the package's shipped
zones with firewalld's zone_reader, changed as firewall-offline-cmd would,
and written with zone_writer: the XML is
exactly what firewalld writes. No daemon runs; no firewall is touched.
"""
import os, shutil, sys
from firewall.core.io.zone import Zone, zone_reader, zone_writer
from firewall.core import rich

root, out = sys.argv[1], sys.argv[2]
zones = os.path.join(root, "usr/lib/firewalld/zones")

def rules(z, *rs):
    z.rules_str = list(rs)
    z.rules = [rich.Rich_Rule(rule_str=s) for s in rs]

# The default zone: the package's public zone plus the site's ports and
# rich rules.
public = zone_reader("public.xml", zones)
public.ports = [("80", "tcp"), ("443", "tcp"), ("9000-9100", "tcp")]
rules(public,
      'rule family="ipv4" source address="198.18.1.0/24" port port="27" protocol="tcp" accept',
      'rule family="ipv4" source address="198.18.2.0/24" port port="27" protocol="tcp" accept',
      'rule family="ipv6" source address="2001:2:1::/64" port port="27" protocol="tcp" accept',
      'rule family="ipv4" source address="198.18.1.66" port port="27" protocol="tcp" reject',
      'rule family="ipv6" source address="2001:2:1::66" port port="27" protocol="tcp" reject',
      'rule family="ipv4" source address="198.18.30.0/28" port port="161" protocol="udp" accept',
      'rule family="ipv6" source address="2001:2:30::/124" port port="161" protocol="udp" accept',
      'rule family="ipv4" source address="198.18.40.0/24" port port="5432" protocol="tcp" accept limit value="50/s"',
      'rule family="ipv4" source address="198.18.41.0/24" port port="5432" protocol="tcp" accept',
      'rule family="ipv4" source address="198.18.60.0/24" service name="http" reject',
      'rule family="ipv4" source address="198.18.70.0/24" invert="True" port port="9000-9100" protocol="tcp" reject',
      'rule family="ipv4" source address="198.18.50.0/24" port port="6379" protocol="tcp" log prefix="redis " level="info" accept',
      'rule family="ipv4" forward-port port="2222" protocol="tcp" to-port="22"',
      'rule protocol value="icmp" accept')

# Administrators come from their own networks: a source zone.
admins = zone_reader("internal.xml", zones)
admins.name, admins.filename, admins.short = "admins", "admins.xml", "Admins"
admins.description = "Administrator networks: SSH and the management port."
admins.services = ["ssh"]
admins.ports = [("27", "tcp")]
admins.sources = ["198.18.10.0/24", "2001:2:10::/64"]

# Scanners are dropped everywhere: a source zone with target DROP.
blocked = zone_reader("drop.xml", zones)
blocked.name, blocked.filename, blocked.short = "blocked", "blocked.xml", "Blocked"
blocked.sources = ["198.18.99.99", "198.18.99.100"]

for z in (public, admins, blocked):
    zone_writer(z, out)
for f in os.listdir(out):
    if f.endswith(".old"):
        os.remove(os.path.join(out, f))
shutil.copy(os.path.join(root, "etc/firewalld/firewalld.conf"), os.path.join(out, "firewalld.conf"))
