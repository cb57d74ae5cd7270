expose "a" {
  protocol = "tcp"
  ports = [27]
  allow { from = ["198.18.0.0/33"] }
}
