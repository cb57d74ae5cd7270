expose "a" {
  protocol = "tcp"
  ports = [27]
  allow { from = ["fe80::1%eth0"] }
}
