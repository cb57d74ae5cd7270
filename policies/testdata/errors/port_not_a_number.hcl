expose "a" {
  protocol = "tcp"
  ports    = ["abc"]
  allow { from = ["198.18.0.1"] }
}
