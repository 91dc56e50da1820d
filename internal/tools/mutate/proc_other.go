//go:build !unix

package main

import "os/exec"

// ownGroup: without process groups, cancellation kills go test itself
// (exec's default); its test binaries end when their pipes close.
func ownGroup(cmd *exec.Cmd) {}
