expose "a" {
  protocol = "tcp"
  ports    = [0]
  allow { from = ["198.18.0.1"] }
}
