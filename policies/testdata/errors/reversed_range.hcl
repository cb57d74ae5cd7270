service "web" {
  protocol = "tcp"
  ports    = ["30-20"]
}
