service "big" {
  protocol = "tcp"
  ports    = [0, 65536, "70000-70001"]
}
