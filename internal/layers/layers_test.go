package layers

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/guix-offload/guix-offload"

// ranks places each library package in the one-way flow of imports that
// docs/ARCHITECTURE.md draws: a package imports only packages of a lower
// rank. A new package goes into this table and into the document.
func ranks() map[string]int {
	return map[string]int{
		"internal/atomicfile":  0,
		"internal/boundedread": 0,
		"internal/hint":        0,
		"internal/tomlconf":    0,
		"internal/worker":      0,
		"scm":                  1,
		"internal/cli":         1,
		"internal/pki":         2,
		"internal/sshconn":     2,
		"internal/nar":         3,
		"discovery":            3,
		"internal/candidates":  4,
		"internal/transport":   4,
		"internal/pairing":     5,
		"agent":                6,
		"hook":                 6,
	}
}

type pkg struct {
	ImportPath string
	Imports    []string // of the non-test files
	Standard   bool
}

func packages(t *testing.T) []pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-json", module+"/...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	var ps []pkg
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		p.ImportPath = strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, module), "/")
		ps = append(ps, p)
	}
	return ps
}

// ours returns the module's packages among imports, relative to the
// module; others, the rest.
func split(imports []string) (ours, others []string) {
	for _, i := range imports {
		if rel, ok := strings.CutPrefix(i, module+"/"); ok {
			ours = append(ours, rel)
		} else {
			others = append(others, i)
		}
	}
	return ours, others
}

func under(p, dir string) bool { return p == dir || strings.HasPrefix(p, dir+"/") }

// isStd reports whether path is a standard-library package (no dot in
// its first element).
func isStd(path string) bool {
	first, _, _ := strings.Cut(path, "/")
	return !strings.Contains(first, ".")
}

func TestImportRules(t *testing.T) {
	rank := ranks()
	all := packages(t)
	stdOnly := make(map[string]bool) // packages that import the standard library only
	for _, p := range all {
		stdOnly[p.ImportPath] = !slices.ContainsFunc(p.Imports, func(i string) bool { return !isStd(i) })
	}
	for _, p := range all {
		ours, others := split(p.Imports)
		isCmd := under(p.ImportPath, "cmd")
		isTest := under(p.ImportPath, "test") || under(p.ImportPath, "bench") || under(p.ImportPath, "internal/testenv") ||
			p.ImportPath == "internal/layers"
		var problems []string
		// Only cmd/ imports cobra (and its flags, pflag).
		for _, i := range others {
			if !isCmd && (under(i, "github.com/spf13/cobra") || under(i, "github.com/spf13/pflag")) {
				problems = append(problems, fmt.Sprintf("imports %s: only cmd/ may", i))
			}
		}
		// scm needs the standard library only: it imports nothing else
		// but helpers of the bottom layer that import nothing else.
		if p.ImportPath == "scm" {
			for _, i := range p.Imports {
				rel, ours := strings.CutPrefix(i, module+"/")
				if !isStd(i) && !(ours && ranks()[rel] == 0 && stdOnly[rel]) {
					problems = append(problems, fmt.Sprintf("imports %s: scm needs the standard library only", i))
				}
			}
		}
		for _, i := range ours {
			switch {
			// Library packages do not import the CLI helpers.
			case under(i, "internal/cli") && !isCmd && !isTest && p.ImportPath != "internal/cli":
				problems = append(problems, fmt.Sprintf("imports %s: only cmd/ may (attach advice with internal/hint)", i))
			// Test helpers stay out of what ships.
			case under(i, "internal/testenv") && !isTest:
				problems = append(problems, fmt.Sprintf("imports %s: only tests may", i))
			// Nothing imports a command, or test code.
			case under(i, "cmd") && !isCmd, (under(i, "test") || under(i, "bench")) && !isTest:
				problems = append(problems, fmt.Sprintf("imports %s", i))
			}
		}
		if !isCmd && !isTest {
			r, ok := rank[p.ImportPath]
			if !ok {
				problems = append(problems, "is not placed in the flow of imports: add it to rank in this test and to docs/ARCHITECTURE.md")
			}
			for _, i := range ours {
				if ri, known := rank[i]; ok && known && ri >= r {
					problems = append(problems, fmt.Sprintf("imports %s, which is not below it in the flow of docs/ARCHITECTURE.md", i))
				}
			}
		}
		for _, pr := range problems {
			t.Errorf("%s %s", p.ImportPath, pr)
		}
	}
}

// The table above and the document name the same packages.
func TestArchitectureNamesEveryPackage(t *testing.T) {
	doc, err := readArchitecture()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range packages(t) {
		if p.ImportPath == "" || p.ImportPath == "internal/layers" {
			continue
		}
		// cmd/, the test helpers, the stand-in, e2e and bench are
		// described as a whole.
		whole := []string{"cmd", "internal/testenv", "test/standin", "test/e2e", "bench"}
		if !strings.Contains(doc, "`"+p.ImportPath+"`") && !slices.ContainsFunc(whole, func(d string) bool { return under(p.ImportPath, d) }) {
			t.Errorf("docs/ARCHITECTURE.md does not name package %s", p.ImportPath)
		}
	}
}
