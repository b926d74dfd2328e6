package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/guix-offload/guix-offload/internal/testenv"
	"github.com/guix-offload/guix-offload/scm"
)

// TestMachinesCommand runs the README's main command on the bundled example
// in every format.
func TestMachinesCommand(t *testing.T) {
	for _, format := range scm.Formats {
		t.Run(format, func(t *testing.T) {
			var out, errOut bytes.Buffer
			opts := machinesOptions{file: "../../examples/machines.scm", format: format, eval: "builtin"}
			if err := runMachines(context.Background(), opts, &out, &errOut); err != nil {
				t.Fatalf("runMachines: %v", err)
			}
			s := out.String()
			for _, name := range []string{"hydra.lan", "tower.lan", "rockpro64.lan"} {
				if !strings.Contains(s, name) {
					t.Errorf("output lacks %s:\n%s", name, s)
				}
			}
			switch format {
			case "table":
				for _, line := range strings.Split(s, "\n") {
					if n := len([]rune(line)); n > 80 {
						t.Errorf("table line of %d columns: %q", n, line)
					}
				}
			case "json":
				var ms []map[string]any
				if err := json.Unmarshal(out.Bytes(), &ms); err != nil {
					t.Fatal(err)
				}
				if len(ms) != 4 || ms[2]["overload-threshold"] != nil || ms[0]["compression"] != "zlib@openssh.com,zlib" {
					t.Errorf("json: %s", s)
				}
			case "recutils":
				if strings.Count(s, "\nname: ") != 3 || !strings.Contains(s, "\n\nname: tower.lan\n") {
					t.Errorf("recutils: %s", s)
				}
			case "scm":
				ms, err := scm.EvalMachines(out.Bytes(), "out.scm")
				if err != nil || len(ms) != 4 {
					t.Errorf("scm output reads back as %d machines, %v", len(ms), err)
				}
			}
		})
	}
}

func TestMachinesCommandGuile(t *testing.T) {
	guile := testenv.LookPath(t, "guile-3.0", "guile-3.0")
	var builtin, exact bytes.Buffer
	opts := machinesOptions{file: "../../examples/machines.scm", format: "json", eval: "builtin"}
	if err := runMachines(context.Background(), opts, &builtin, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	opts.eval, opts.guile = "guile", guile
	if err := runMachines(context.Background(), opts, &exact, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	if builtin.String() != exact.String() {
		t.Errorf("--eval=guile printed\n%s\nbuilt-in printed\n%s", exact.String(), builtin.String())
	}
}

func TestMachinesCommandErrors(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "machines.scm")
	if err := os.WriteFile(bad, []byte("(list\n  (build-machine (name \"a\") (port \"22\")))\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	root := newRootCommand()
	root.SetArgs([]string{"machines", "--file", bad})
	root.SetOut(&bytes.Buffer{})
	root.SetErr(&stderr)
	err := root.ExecuteContext(context.Background())
	if err == nil || !strings.HasPrefix(err.Error(), bad+":2:35: build-machine: field port must be") {
		t.Fatalf("error %v", err)
	}
	if stderr.Len() != 0 {
		t.Errorf("usage or noise on stderr: %s", stderr.String())
	}
	for _, args := range [][]string{{"--format", "yaml"}, {"--eval", "chez"}} {
		opts := machinesOptions{file: bad, format: "table", eval: "builtin"}
		if args[0] == "--format" {
			opts.format = args[1]
		} else {
			opts.eval = args[1]
		}
		if err := runMachines(context.Background(), opts, &bytes.Buffer{}, &bytes.Buffer{}); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
	var out, note bytes.Buffer
	opts := machinesOptions{file: filepath.Join(t.TempDir(), "none.scm"), format: "json", eval: "builtin"}
	if err := runMachines(context.Background(), opts, &out, &note); err != nil || out.String() != "[]\n" || !strings.Contains(note.String(), "no static machines") {
		t.Errorf("missing file: %v, out %q, stderr %q", err, out.String(), note.String())
	}
}
