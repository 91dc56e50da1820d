// Package faults is Pluto's fault-injection suite: real server and worker
// processes (the binary built by TestMain) are SIGKILLed, SIGSTOPped,
// restarted and cut off from each other by a partitioning TCP proxy, their
// store is restarted (PostgreSQL) or runs out of disk (SQLite on a small
// tmpfs), and a worker's commands print binary garbage, while clients
// submit. Every scenario counts the runs acknowledged to a client
// that never succeeded (lost), the runs with two accepted terminal
// statuses and the attempts executed twice (duplicates), and how long the
// system took to recover, logs one summary line, and fails on any loss or
// duplicate. Run it with make test-faults; docs/faults.md lists the
// scenarios and the numbers measured.
package faults
