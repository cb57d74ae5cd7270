firewall "x" {
}
