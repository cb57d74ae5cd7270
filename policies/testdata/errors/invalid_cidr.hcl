address_group "admins" {
  members = ["198.18.0.0/33"]
}
