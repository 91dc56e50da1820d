// Package e2e holds end-to-end tests that build the real pluto binary and
// run servers and workers as separate processes, killing them for real.
package e2e
