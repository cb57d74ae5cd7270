expose "nscp" {
  protocol = "tcp"
  ports = [27
}
