expose "a" {
  protocol = "tcp"
  ports    = [65536]
  allow { from = ["198.18.0.1"] }
}
