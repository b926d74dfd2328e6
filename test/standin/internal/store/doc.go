// Package store is the Guix stand-in's store: a directory of items (the
// store, /gnu/store in the tests' mount namespaces) and a small database
// of what the real daemon keeps in its SQLite file: each item's
// references and deriver. An item is valid when it exists in the store
// directory. It belongs to the stand-in used by tests and is never
// shipped.
package store
