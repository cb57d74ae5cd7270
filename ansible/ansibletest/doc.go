// Package ansibletest runs the Ansible collection in ../ (portwarden.firewall)
// for real: Debian's ansible-playbook, in a controller namespace, reaches
// three server and three peer namespaces on one bridge over real SSH (one
// sshd per namespace) and plays every scenario of the collection: first
// and second run, check and diff mode, a bad policy, a removed source, a
// rule deleted by hand, the peer mesh verification with its JUnit report,
// and a serial rollout that stops and rolls back on a failed check.
//
// It is a kernel test: root only, inside namespaces it creates (pwt-*),
// with addresses from 198.18.0.0/15. Under CI=true a missing tool or
// privilege fails it. Every namespace, sshd and process started inside the
// namespaces is removed on every way out.
package ansibletest
