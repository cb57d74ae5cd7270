expose "aÿþ" {
  protocol = "tcp"
}
