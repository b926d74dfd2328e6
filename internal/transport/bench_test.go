package transport_test

import (
	"bytes"
	"io"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/guix-offload/guix-offload/internal/nar"
	"github.com/guix-offload/guix-offload/internal/transport"
)

// BenchmarkCompress measures the archive pipe on a realistic store item:
// the NAR of Go's own net/http sources (text, like most of a store's
// inputs). It reports the compression ratio next to the speed.
func BenchmarkCompress(b *testing.B) {
	var archive bytes.Buffer
	if err := nar.Dump(&archive, filepath.Join(runtime.GOROOT(), "src", "net", "http")); err != nil {
		b.Skip(err)
	}
	data := archive.Bytes()
	b.SetBytes(int64(len(data)))
	var wire int64
	for b.Loop() {
		_, n, err := transport.Compress(io.Discard, bytes.NewReader(data))
		if err != nil {
			b.Fatal(err)
		}
		wire = n
	}
	b.ReportMetric(float64(len(data))/float64(wire), "ratio")
}

func BenchmarkDecompress(b *testing.B) {
	var archive, compressed bytes.Buffer
	if err := nar.Dump(&archive, filepath.Join(runtime.GOROOT(), "src", "net", "http")); err != nil {
		b.Skip(err)
	}
	if _, _, err := transport.Compress(&compressed, bytes.NewReader(archive.Bytes())); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(archive.Len()))
	for b.Loop() {
		if _, err := transport.Decompress(io.Discard, bytes.NewReader(compressed.Bytes())); err != nil {
			b.Fatal(err)
		}
	}
}
