package scm

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/guix-offload/guix-offload/internal/testenv"
)

// TestWriteMachinesTricky writes machines whose strings hold every kind of
// character and whose numbers are unusual, and reads them back with the
// built-in evaluator and with real Guile.
func TestWriteMachinesTricky(t *testing.T) {
	guile := testenv.LookPath(t, "guile-3.0", "guile-3.0")
	t.Setenv("HOME", "/home/w")
	half := 0.5
	m := DefaultMachine()
	m.Name = "a\"b\\c\nd\te\r\x01\x1f\x7f é λ 😀 \u2028 ;#|"
	m.User = ""
	m.HostKey = "ssh-ed25519 AAAA) (list"
	m.Systems = []string{"x86_64-linux", "", "\"quoted\""}
	m.Features = []string{"kvm", "#:kw", "'q"}
	m.Port = 65535
	m.Speed = 1e-7
	m.OverloadThreshold = &half
	m.ParallelBuilds = 0
	m.CompressionLevel = 9
	m.PrivateKey = ""
	other := DefaultMachine()
	other.Name, other.User, other.HostKey = "plain", "u", "k"
	other.Systems = []string{"aarch64-linux"}
	other.OverloadThreshold = nil
	other.Speed = 123456789.5
	ms := []Machine{m, other}

	var buf bytes.Buffer
	if err := WriteMachines(&buf, ms); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "machines.scm")
	if err := os.WriteFile(file, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	back, err := EvalMachines(buf.Bytes(), file)
	if err != nil {
		t.Fatalf("built-in: %v\n%s", err, buf.Bytes())
	}
	sameMachines(t, "built-in read back", back, ms)
	back, err = EvalWithGuile(context.Background(), guile, file)
	if err != nil {
		t.Fatalf("guile: %v\n%s", err, buf.Bytes())
	}
	sameMachines(t, "guile read back", back, ms)
}

func TestWriteMachinesEmpty(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteMachines(&buf, nil); err != nil {
		t.Fatal(err)
	}
	ms, err := EvalMachines(buf.Bytes(), "empty.scm")
	if err != nil || len(ms) != 0 {
		t.Fatalf("EvalMachines(%q) = %v, %v", buf.String(), ms, err)
	}
}

func TestWriteMachinesRejects(t *testing.T) {
	bad := DefaultMachine()
	bad.Name = "\xff"
	if err := WriteMachines(&bytes.Buffer{}, []Machine{bad}); err == nil || !strings.Contains(err.Error(), "not valid UTF-8") {
		t.Errorf("invalid UTF-8: %v", err)
	}
	inf := DefaultMachine()
	inf.Speed = inf.Speed / 0
	if err := WriteMachines(&bytes.Buffer{}, []Machine{inf}); err == nil {
		t.Error("infinite speed accepted")
	}
}

func TestWriteFormats(t *testing.T) {
	m := DefaultMachine()
	m.Name, m.User, m.HostKey = "h", "u", "k\nline2"
	m.Systems = []string{"x86_64-linux"}
	m.OverloadThreshold = nil
	var rec, table bytes.Buffer
	if err := WriteFormat(&rec, "recutils", []Machine{m, m}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(rec.String(), "host-key: k\n+ line2\n") ||
		!strings.Contains(rec.String(), "overload-threshold: #f\n") ||
		!strings.Contains(rec.String(), "features:\n\nname: h\n") {
		t.Errorf("recutils:\n%s", rec.String())
	}
	if err := WriteFormat(&table, "table", []Machine{m}); err != nil {
		t.Fatal(err)
	}
	want := "NAME  SYSTEMS       USER  SPEED  JOBS  MAXLOAD  FEATURES\nh     x86_64-linux  u     1      1     -        -\n"
	if table.String() != want {
		t.Errorf("table:\n%q\nwant\n%q", table.String(), want)
	}
	if err := WriteFormat(&table, "yaml", nil); err == nil {
		t.Error("unknown format accepted")
	}
}
