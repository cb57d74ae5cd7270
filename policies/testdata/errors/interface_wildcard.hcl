expose "ssh" {
  protocol   = "tcp"
  ports      = [22]
  interfaces = ["eth+", "wg*", "eth0"]
  default    = "drop"
  allow {
    from = ["198.18.5.0/24"]
  }
}
