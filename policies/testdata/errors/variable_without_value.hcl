variable "office" {
  type = list(string)
}
