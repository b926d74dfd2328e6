package transport_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/guix-offload/guix-offload/internal/transport"
)

// fakeGuix writes a guix whose `archive --export ITEMS` prints the items
// and a long tail, and whose `archive --import` saves its stdin to
// imported and exits with status code.
func fakeGuix(t *testing.T, code string) (guix, imported string) {
	t.Helper()
	dir := t.TempDir()
	guix = filepath.Join(dir, "guix")
	imported = filepath.Join(dir, "imported")
	script := `#!/bin/sh
case "$2" in
--export) shift 2; for p in "$@"; do echo "item $p"; done; seq -f "line %g of the archive" 1 20000 ;;
--import) cat > ` + imported + `; echo "import done" >&2; exit ` + code + ` ;;
esac
`
	if err := os.WriteFile(guix, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return guix, imported
}

func TestStreamCommandRoundTrip(t *testing.T) {
	guix, imported := fakeGuix(t, "0")
	ctx := context.Background()
	var compressed, stderr bytes.Buffer
	code, err := transport.StreamCommand(ctx, guix, "export", []string{"/gnu/store/a", "/gnu/store/b"}, nil, &compressed, &stderr)
	if err != nil || code != 0 {
		t.Fatalf("export: %d, %v: %s", code, err, stderr.String())
	}
	code, err = transport.StreamCommand(ctx, guix, "import", nil, &compressed, &bytes.Buffer{}, &stderr)
	if err != nil || code != 0 {
		t.Fatalf("import: %d, %v: %s", code, err, stderr.String())
	}
	got, err := os.ReadFile(imported)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(got), "item /gnu/store/a\nitem /gnu/store/b\nline 1 of the archive\n") || !strings.HasSuffix(string(got), "\nline 20000 of the archive\n") {
		t.Errorf("imported %d bytes starting %q", len(got), got[:min(40, len(got))])
	}
	if compressed.Len() >= len(got)/2 {
		t.Errorf("%d bytes compressed to %d", len(got), compressed.Len())
	}
}

func TestStreamCommandErrors(t *testing.T) {
	guix, _ := fakeGuix(t, "3")
	ctx := context.Background()
	var compressed bytes.Buffer
	if _, _, err := transport.Compress(&compressed, strings.NewReader("archive")); err != nil {
		t.Fatal(err)
	}
	// Guix's own status comes through.
	if code, err := transport.StreamCommand(ctx, guix, "import", nil, &compressed, &bytes.Buffer{}, &bytes.Buffer{}); err != nil || code != 3 {
		t.Errorf("import with guix failing: %d, %v; want 3, nil", code, err)
	}
	// Garbage instead of zstd: an error, even though guix was happy.
	guix0, _ := fakeGuix(t, "0")
	if code, err := transport.StreamCommand(ctx, guix0, "import", nil, strings.NewReader("not zstd"), &bytes.Buffer{}, &bytes.Buffer{}); err == nil || code == 0 {
		t.Errorf("import of garbage: %d, %v; want an error", code, err)
	}
	if _, err := transport.StreamCommand(ctx, guix0, "import", []string{"x"}, nil, nil, nil); err == nil {
		t.Error("import with arguments accepted")
	}
	if _, err := transport.StreamCommand(ctx, guix0, "frobnicate", nil, nil, nil, nil); err == nil {
		t.Error("unknown operation accepted")
	}
	if code, err := transport.StreamCommand(ctx, "/nonexistent/guix", "export", []string{"/gnu/store/a"}, nil, &bytes.Buffer{}, &bytes.Buffer{}); err == nil || code == 0 {
		t.Errorf("missing guix: %d, %v", code, err)
	}
}
