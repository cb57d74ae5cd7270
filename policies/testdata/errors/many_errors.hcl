service "web" {
  protocol = "sctp"
  ports    = ["30-20"]
}

expose "web" {
  service = service.web
  default = "ignore"
  allow {
    from = ["198.18.0.1/8", var.missing]
  }
}

test "x" {
  from   = "198.18.0.1"
  to     = expose.web
  expect = "maybe"
}
