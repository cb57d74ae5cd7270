address_group "a" {
  members = [address_group.b]
}

address_group "b" {
  members = [address_group.c, "198.18.0.1"]
}

address_group "c" {
  members = [address_group.a]
}
