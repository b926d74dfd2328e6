package transport_test

import (
	"bytes"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/guix-offload/guix-offload/internal/nar"
	"github.com/guix-offload/guix-offload/internal/transport"
)

// BenchmarkCompress measures the archive pipe on a realistic store item:
// the NAR of Go's own net/http sources (text, like most of a store's
// inputs). It reports the compression ratio next to the speed.
func BenchmarkCompress(b *testing.B) {
	var archive bytes.Buffer
	if err := nar.Dump(&archive, filepath.Join(goroot(b), "src", "net", "http")); err != nil {
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
	if err := nar.Dump(&archive, filepath.Join(goroot(b), "src", "net", "http")); err != nil {
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

// goroot is the Go installation that runs the benchmarks ("go env
// GOROOT"), whose sources make a realistic store input.
func goroot(b *testing.B) string {
	out, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		b.Skipf("go env GOROOT: %v", err)
	}
	return strings.TrimSpace(string(out))
}
