#!/usr/bin/env bash
# Regenerates testdata/iptables with the real tools: the rules below are
# loaded into a throwaway pwt-* namespace and saved with iptables-save,
# ip6tables-save and ipset save. Needs root. Addresses are from the
# benchmarking ranges only.
set -euo pipefail
cd "$(dirname "$0")"
ns=pwt-gen-ipt-$$
ip netns add "$ns"
trap 'ip netns del "$ns"' EXIT
x() { ip netns exec "$ns" "$@"; }

x ipset create nscp-peers hash:net family inet
x ipset add nscp-peers 198.18.2.0/24
x ipset add nscp-peers 198.18.3.5
x ipset add nscp-peers 198.18.1.64/28

x iptables -P INPUT DROP
x iptables -N ADMIN
x iptables -A INPUT -i lo -j ACCEPT
x iptables -A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
x iptables -A INPUT -m conntrack --ctstate INVALID -j DROP
x iptables -A INPUT -p icmp -j ACCEPT
x iptables -A INPUT -s 198.18.99.99 -m comment --comment "blocked scanner" -j DROP
x iptables -A INPUT -p tcp --dport 22 -j ADMIN
x iptables -A ADMIN -s 198.18.10.0/24 -m comment --comment "admin lan" -j ACCEPT
x iptables -A ADMIN -s 198.18.20.7 -m comment --comment "jump host" -j ACCEPT
x iptables -A ADMIN -j LOG --log-prefix "ssh refused: "
x iptables -A ADMIN -j DROP
x iptables -A INPUT -p tcp -s 198.18.1.66 --dport 27 -m comment --comment "revoked contractor" -j DROP
x iptables -A INPUT -p tcp --dport 27 -m set --match-set nscp-peers src -m comment --comment "nscp peers" -j ACCEPT
x iptables -A INPUT -p tcp --dport 27 -s 198.18.4.0/22 -m conntrack --ctstate NEW -j ACCEPT
x iptables -A INPUT -p tcp --dport 27 -j DROP
x iptables -A INPUT -p tcp -m multiport --dports 80,443 -j ACCEPT
x iptables -A INPUT -p udp --dport 161 -s 198.18.30.0/28 -m comment --comment snmp -j ACCEPT
x iptables -A INPUT -p udp --dport 161 -j REJECT
x iptables -A INPUT -p tcp --dport 5432 -s 198.18.40.0/24 -m limit --limit 50/s -j ACCEPT
x iptables -A INPUT -p tcp --dport 5432 -s 198.18.41.0/24 -m comment --comment "app servers" -j ACCEPT
x iptables -A INPUT -p tcp --dport 8080 -s 198.18.60.10 -j ACCEPT
x iptables -A INPUT -p tcp --dport 8080 -s 198.18.60.0/24 -j DROP
x iptables -A INPUT -p tcp --dport 8080 -j ACCEPT
x iptables -A INPUT -p tcp --dport 9000:9100 ! -s 198.18.70.0/24 -j DROP
x iptables -t nat -A PREROUTING -p tcp --dport 2222 -j REDIRECT --to-ports 22

x ip6tables -P INPUT DROP
x ip6tables -A INPUT -i lo -j ACCEPT
x ip6tables -A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
x ip6tables -A INPUT -p ipv6-icmp -j ACCEPT
x ip6tables -A INPUT -p tcp --dport 22 -s 2001:2:10::/64 -m comment --comment "admin lan" -j ACCEPT
x ip6tables -A INPUT -p tcp --dport 22 -j DROP
x ip6tables -A INPUT -p tcp --dport 27 -s 2001:2:1::66 -m comment --comment "revoked contractor" -j DROP
x ip6tables -A INPUT -p tcp --dport 27 -s 2001:2:1::/64 -m comment --comment "nscp peers" -j ACCEPT
x ip6tables -A INPUT -p tcp -m multiport --dports 80,443 -j ACCEPT
x ip6tables -A INPUT -p udp --dport 161 -s 2001:2:30::/124 -m comment --comment snmp -j ACCEPT
x ip6tables -A INPUT -p tcp --dport 8080 -j ACCEPT

# Dates and versions vary from run to run: strip the header comments.
x iptables-save | grep -v '^#' > iptables/rules.v4
x ip6tables-save | grep -v '^#' > iptables/rules.v6
x ipset save | sed "s/ initval 0x[0-9a-f]*//" > iptables/ipsets
