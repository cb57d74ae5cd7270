expose "closed" {
  protocol = "tcp"
  ports    = [27]
}
