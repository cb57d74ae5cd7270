expose "nscp" {
  protocol = "tcp"
  ports    = [27]
  allow {
    from = [address_group.nobody]
  }
}
