expose "nscp" {
  protocol = "tcp"
  ports    = [27]
  colour   = "blue"
  allow {
    from = ["198.18.0.1"]
  }
}
