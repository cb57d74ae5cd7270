address_group "office" {
  members = ["198.18.10.5/24", "2001:2::1/64"]
}
