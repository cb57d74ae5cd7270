service "nscp" {
  protocol = "tcp"
  ports    = [27]
}

expose "nscp" {
  service  = service.nscp
  protocol = "udp"
  allow {
    from = ["198.18.0.1"]
  }
}
