service "web" {
  protocol = "sctp"
  ports    = [80]
}
