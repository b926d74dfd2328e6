package scm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/guix-offload/guix-offload/internal/testenv"
)

var update = flag.Bool("update", false, "rewrite the golden *.err files of testdata/errors")

func corpus(t *testing.T, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", dir, "*.scm"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no corpus in testdata/%s: %v", dir, err)
	}
	return files
}

func jsonOf(t *testing.T, ms []Machine) string {
	t.Helper()
	b, err := json.MarshalIndent(ms, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func sameMachines(t *testing.T, what string, got, want []Machine) {
	t.Helper()
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s differ:\n got %s\nwant %s", what, jsonOf(t, got), jsonOf(t, want))
	}
}

// TestMachinesMatchGuile evaluates every file of the corpus with real
// Guile (through the helper) and with the built-in evaluator, then writes
// the result with WriteMachines and reads it back with both.
func TestMachinesMatchGuile(t *testing.T) {
	guile := testenv.LookPath(t, "guile-3.0", "guile-3.0")
	t.Setenv("GUIX_OFFLOAD_TEST_USER", "builder")
	t.Setenv("HOME", "/home/tester")
	ctx := context.Background()
	for _, f := range append(corpus(t, "machines"), "../examples/machines.scm") {
		t.Run(filepath.Base(f), func(t *testing.T) {
			want, err := EvalWithGuile(ctx, guile, f)
			if err != nil {
				t.Fatalf("guile: %v", err)
			}
			got, err := LoadMachines(f)
			if err != nil {
				t.Fatalf("built-in: %v", err)
			}
			sameMachines(t, "built-in and guile results", got, want)

			var buf bytes.Buffer
			if err := WriteMachines(&buf, got); err != nil {
				t.Fatalf("WriteMachines: %v", err)
			}
			out := filepath.Join(t.TempDir(), "machines.scm")
			if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			back, err := EvalWithGuile(ctx, guile, out)
			if err != nil {
				t.Fatalf("guile on written file: %v\n%s", err, buf.Bytes())
			}
			sameMachines(t, "written file read by guile", back, got)
			back, err = EvalMachines(buf.Bytes(), out)
			if err != nil {
				t.Fatalf("built-in on written file: %v\n%s", err, buf.Bytes())
			}
			sameMachines(t, "written file read by built-in", back, got)
		})
	}
}

func TestDefaults(t *testing.T) {
	t.Setenv("HOME", "/home/h")
	ms, err := LoadMachines("testdata/machines/01-minimal.scm")
	if err != nil {
		t.Fatal(err)
	}
	threshold := 0.8
	want := []Machine{{
		Name: "builder.example.org", Port: 22, Systems: []string{"x86_64-linux"},
		User: "offload", PrivateKey: "/home/h/.ssh/id_rsa",
		HostKey:     "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOlMgjW2DXuzXSDJxTXXLv3SH5aBmgmJEnLhKvOxVn2D root@x86",
		Compression: "zlib@openssh.com,zlib", CompressionLevel: 3,
		DaemonSocket: "/var/guix/daemon-socket/socket", OverloadThreshold: &threshold,
		ParallelBuilds: 1, Speed: 1.0, Features: []string{},
	}}
	sameMachines(t, "defaults", ms, want)
	b, _ := json.Marshal(ms[0])
	for _, key := range []string{`"private-key":`, `"overload-threshold":0.8`, `"features":[]`, `"compression-level":3`} {
		if !strings.Contains(string(b), key) {
			t.Errorf("JSON %s lacks %s", b, key)
		}
	}
}

func TestLoadMissingFile(t *testing.T) {
	ms, err := LoadMachines(filepath.Join(t.TempDir(), "machines.scm"))
	if ms != nil || err != nil {
		t.Fatalf("LoadMachines(missing) = %v, %v; want nil, nil", ms, err)
	}
	ms, err = EvalWithGuile(context.Background(), "guile-does-not-matter", filepath.Join(t.TempDir(), "nope.scm"))
	if ms != nil || err != nil {
		t.Fatalf("EvalWithGuile(missing) = %v, %v; want nil, nil", ms, err)
	}
}

func TestLoadUnreadable(t *testing.T) {
	_, err := LoadMachines(t.TempDir()) // a directory
	if err == nil || !strings.HasPrefix(err.Error(), "read machines file: ") {
		t.Fatalf("error %v", err)
	}
}

// TestErrors checks each bad file of testdata/errors against its golden
// FILE.err, which holds the exact message with line and column.
func TestErrors(t *testing.T) {
	for _, f := range corpus(t, "errors") {
		t.Run(filepath.Base(f), func(t *testing.T) {
			_, err := LoadMachines(f)
			if err == nil {
				t.Fatal("no error")
			}
			var se *Error
			if !errors.As(err, &se) {
				t.Fatalf("error %v is a %T, not *scm.Error", err, err)
			}
			got := err.Error() + "\n"
			if se.Tip != "" {
				got += "hint: " + se.Tip + "\n"
			}
			golden := strings.TrimSuffix(f, ".scm") + ".err"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if got != string(want) {
				t.Errorf("got  %s\nwant %s", got, want)
			}
		})
	}
}

// TestErrorsGuileAgrees checks that real Guile rejects every bad file too.
func TestErrorsGuileAgrees(t *testing.T) {
	guile := testenv.LookPath(t, "guile-3.0", "guile-3.0")
	for _, f := range corpus(t, "errors") {
		if _, err := EvalWithGuile(context.Background(), guile, f); err == nil {
			t.Errorf("%s: guile accepted it", f)
		}
	}
}

func TestEvalLimits(t *testing.T) {
	var shared strings.Builder
	shared.WriteString("(define a0 (list 1))\n")
	for i := 1; i <= 60; i++ {
		fmt.Fprintf(&shared, "(define a%d (list a%d a%d))\n", i, i-1, i-1)
	}
	shared.WriteString("(equal? a60 (list a59 a59))")
	cases := []struct{ name, src, want string }{
		{"exponential equal? over shared structure", shared.String(), "comparison takes more than"},
		{"exponential calls", "(define (f x) (if x (begin (f #f) (f #f) (f #f)) 1)) (define (h n) (begin (f #t) (h n))) (h 1)", "runaway recursion"},
		{"runaway recursion", "(define (f x) (f x)) (f 1)", "runaway recursion"},
		{"string growth", `(define (f s) (f (string-append s s))) (f "xxxxxxxx")`, "longer than"},
		{"deep data", strings.Repeat("(list ", 5000) + strings.Repeat(")", 5000), "nesting deeper"},
	}
	for _, c := range cases {
		_, err := EvalMachines([]byte(c.src), "x.scm")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want it to mention %q", c.name, err, c.want)
		}
	}
}

func TestFormatReal(t *testing.T) {
	for f, want := range map[float64]string{
		1e21: "1.0e21", 1e7: "1.0e7", 1e6: "1000000.0", 12345000: "12345000.0",
		1.2345e8: "1.2345e8", 0.001: "0.001", 1.5e-4: "1.5e-4", 5e-4: "5.0e-4",
		0.1: "0.1", 2: "2.0", 123456789.5: "123456789.5", -0.5: "-0.5",
	} {
		if got := formatReal(f); got != want {
			t.Errorf("formatReal(%v) = %s, want %s", f, got, want)
		}
	}
}

func FuzzEvalMachines(f *testing.F) {
	files, _ := filepath.Glob("testdata/machines/*.scm")
	for _, file := range files[:5] {
		data, _ := os.ReadFile(file)
		f.Add(data)
	}
	f.Add([]byte("(define (f x) (f x)) (f 1)"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ms, err := EvalMachines(data, "fuzz.scm")
		if err != nil {
			var se *Error
			if !errors.As(err, &se) {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		var buf bytes.Buffer
		if err := WriteMachines(&buf, ms); err != nil {
			return
		}
		back, err := EvalMachines(buf.Bytes(), "written.scm")
		if err != nil {
			t.Fatalf("written file does not evaluate: %v\n%s", err, buf.Bytes())
		}
		if len(ms) > 0 && !reflect.DeepEqual(back, ms) {
			t.Fatalf("round trip changed the machines:\n%s", buf.Bytes())
		}
	})
}

func TestClosestSuggestsOnlyTypos(t *testing.T) {
	names := []string{"not", "name", "systems", "i", "list"}
	for s, want := range map[string]string{
		"nam": "name", "sytems": "systems", "lst": "list",
		"foo": "", "+": "", "x": "", "completely-different": "",
	} {
		if got := closest(s, names); got != want {
			t.Errorf("closest(%q) = %q, want %q", s, got, want)
		}
	}
}
