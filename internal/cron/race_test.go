//go:build race

package cron

// The race detector slows the brute-force oracle tenfold: fewer cases.
func init() { oracleCases = 80 }
