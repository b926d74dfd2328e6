// Package atomicfile replaces files so that a reader, or a crash, sees
// either the old or the new contents, never a partial file.
package atomicfile
