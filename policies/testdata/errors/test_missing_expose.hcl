test "admins" {
  from   = "198.18.0.1"
  to     = expose.nscp
  expect = "allow"
}
