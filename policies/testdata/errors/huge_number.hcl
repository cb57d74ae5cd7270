expose "a" {
  protocol = "tcp"
  ports = [99999999999999999999999999999999999]
}
