expose "a" {
  protocol = "tcp"
  ports = [var.nope]
}
