package nar

import "io"

// Restore restores the one NAR of r at dst (see restore): the single-NAR
// entry point of the tests, which production reaches only through
// [ExportReader.Next].
func Restore(r io.Reader, dst string) error {
	return restore(newWire(r), dst)
}

// Check validates the one NAR of r like [Restore] without writing
// anything.
func Check(r io.Reader) error {
	return restore(newWire(r), "")
}
