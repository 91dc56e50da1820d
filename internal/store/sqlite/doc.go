// Package sqlite is Pluto's embedded storage backend: one SQLite database
// file, written through modernc.org/sqlite (pure Go, no cgo).
//
// Design notes are filled in below as the backend settles.
package sqlite
