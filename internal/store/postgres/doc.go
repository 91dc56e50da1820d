// Package postgres is Pluto's PostgreSQL storage backend, for clusters:
// any number of pluto servers share one database (and schema). It
// implements store.Store and passes the shared conformance suite in
// internal/store/storetest.
//
// Design notes are being written; see the comments on each statement.
package postgres
