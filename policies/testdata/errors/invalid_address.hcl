address_group "admins" {
  members = ["198.18.0.300", "not-an-address"]
}
