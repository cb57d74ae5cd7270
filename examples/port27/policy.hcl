# TCP 27 (remote server management: start, stop and monitor server processes)
# may be reached by the admins, the monitoring hosts and the office range, except
# one office address; everyone else is dropped.
#
# Every address here comes from the benchmarking ranges 198.18.0.0/15 and
# 2001:2::/48 so that `make demo` and the tests can build the same network in
# throwaway namespaces. Replace them with your own.

variable "office" {
  type        = list(string)
  default     = ["198.18.10.0/24"]
  description = "the office range that may manage servers"
}

locals {
  monitoring = ["198.18.20.10", "2001:2:0:20::/64"]
}

address_group "admins" {
  members = ["198.18.1.7", "2001:2:0:1::7"]
}

address_group "operators" {
  members = [address_group.admins, local.monitoring, var.office]
}

service "nscp" {
  protocol = "tcp"
  ports    = [27]
}

expose "nscp" {
  service = service.nscp
  default = "drop"
  log     = true

  allow {
    from    = [address_group.operators]
    comment = "admins, monitoring and the office"
  }

  deny {
    from    = ["198.18.10.66"]
    comment = "the kiosk in the office lobby"
  }
}

test "an admin reaches nscp over IPv4" {
  from   = "198.18.1.7"
  to     = expose.nscp
  expect = "allow"
}

test "an admin reaches nscp over IPv6" {
  from   = "2001:2:0:1::7"
  to     = expose.nscp
  expect = "allow"
}

test "monitoring reaches nscp" {
  from   = "2001:2:0:20::99"
  to     = expose.nscp
  expect = "allow"
}

test "the office reaches nscp" {
  from   = "198.18.10.5"
  to     = expose.nscp
  expect = "allow"
}

test "the lobby kiosk is refused" {
  from   = "198.18.10.66"
  to     = expose.nscp
  expect = "deny"
}

test "a stranger is refused" {
  from   = "198.18.99.1"
  to     = expose.nscp
  expect = "deny"
}

test "a stranger over IPv6 is refused" {
  from   = "2001:2:0:99::1"
  to     = expose.nscp
  expect = "deny"
}
