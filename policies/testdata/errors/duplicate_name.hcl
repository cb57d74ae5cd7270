service "nscp" {
  protocol = "tcp"
  ports    = [27]
}

service "nscp" {
  protocol = "tcp"
  ports    = [28]
}
