package discovery

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/guix-offload/guix-offload/internal/testenv"
	"github.com/guix-offload/guix-offload/scm"
)

// TestBridgeWithGuile evaluates examples/machines-bridge.scm with the
// real Guile, as Guix's offload hook does, with a stand-in guix-offload
// on PATH: it appends what `discover --format=scm` prints to the static
// machines, and falls back to the static machines alone when the command
// fails, is missing or prints garbage.
func TestBridgeWithGuile(t *testing.T) {
	guile := testenv.LookPath(t, "guile", "guile-3.0")
	bridge, err := filepath.Abs("../examples/machines-bridge.scm")
	if err != nil {
		t.Fatal(err)
	}

	// What our own discover prints for one trusted and one untrusted
	// machine.
	good := testAnnouncement(t)
	good.Name = "169.254.1.2"
	good.Trusted = true
	bad := testAnnouncement(t)
	bad.Instance, bad.Name = "rogue", "169.254.6.6"
	var scmOut bytes.Buffer
	if err := Write(&scmOut, "scm", []*Announcement{good, bad}); err != nil {
		t.Fatal(err)
	}

	static := "big-iron.example.org"
	tests := []struct {
		name   string
		script string // the stand-in guix-offload; "" for none on PATH
		want   []string
		stderr string // why the static machines alone, on stderr
	}{
		{"discovered", "cat <<'EOF'\n" + scmOut.String() + "EOF\n", []string{static, "169.254.1.2"}, ""},
		{"none discovered", "echo \"'()\"\n", []string{static}, ""},
		{"command fails", "echo '(list (build-machine (name \"half\")'; echo 'guix-offload: error: boom' >&2; exit 1\n", []string{static},
			"machines.scm: 'guix-offload discover' failed (exit status 1; its error is above); using the static machines only"},
		{"garbage", "echo '(list (build-machine (name'\n", []string{static}, "what 'guix-offload discover' printed cannot be used"},
		{"not a list", "echo '42'\n", []string{static}, "printed 42, not a list of machines"},
		{"nothing", "true\n", []string{static}, "printed nothing"},
		{"missing", "", []string{static}, `cannot run "guix-offload"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bridge := bridge
			dir := t.TempDir()
			argsFile := filepath.Join(dir, "args")
			if tt.script != "" {
				script := "#!/bin/sh\necho \"$@\" > " + argsFile + "\n" + tt.script
				if err := os.WriteFile(filepath.Join(dir, "guix-offload"), []byte(script), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			// Only the stand-in (and sh, cat, echo) on PATH.
			t.Setenv("PATH", dir+":/usr/bin:/bin")
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			ms, err := scm.EvalWithGuile(ctx, guile, bridge)
			if err != nil {
				t.Fatalf("guile: %v", err)
			}
			var names []string
			for _, m := range ms {
				names = append(names, m.Name)
			}
			if strings.Join(names, " ") != strings.Join(tt.want, " ") {
				t.Fatalf("machines %q, want %q", names, tt.want)
			}
			// Why only the static machines: one line on stderr, which
			// reaches guix-daemon's log.
			cmd := exec.CommandContext(ctx, guile, "--no-auto-compile", "-s", "../scm/guile/machines-json.scm", bridge)
			cmd.Env = append(os.Environ(), "GUILE_AUTO_COMPILE=0")
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("guile: %v\n%s", err, stderr.String())
			}
			got := stderr.String()
			if tt.stderr == "" && strings.Contains(got, "machines.scm:") || !strings.Contains(got, tt.stderr) {
				t.Errorf("stderr %q, want %q", got, tt.stderr)
			}
			if strings.Contains(got, "Throw to key") {
				t.Errorf("Guile's internals on stderr: %q", got)
			}
			if tt.name == "discovered" {
				m := ms[1]
				if m.Port != 2222 || m.User != "offload" || m.HostKey != good.HostKey || m.ParallelBuilds != 4 ||
					m.Speed != 2 || strings.Join(m.Systems, ",") != "x86_64-linux,i686-linux" ||
					strings.Join(m.Features, ",") != "kvm,big-parallel" || m.OverloadThreshold == nil || *m.OverloadThreshold != 0.7 {
					t.Errorf("discovered machine as Guile sees it: %+v", m)
				}
			}
			if tt.script != "" {
				args, err := os.ReadFile(argsFile)
				if err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(string(args), "discover --format=scm") {
					t.Errorf("guix-offload called with %q", args)
				}
			}
		})
	}
}

// With %private-key set, the bridge asks discover for entries that name
// it: discovered machines carry none, so Guix would use ~/.ssh/id_rsa.
func TestBridgePrivateKey(t *testing.T) {
	guile := testenv.LookPath(t, "guile", "guile-3.0")
	text, err := os.ReadFile("../examples/machines-bridge.scm")
	if err != nil {
		t.Fatal(err)
	}
	const key = "/root/.ssh/id_ed25519"
	edited := strings.Replace(string(text), "(define %private-key #f)", `(define %private-key "`+key+`")`, 1)
	if edited == string(text) {
		t.Fatalf("examples/machines-bridge.scm has no %q to edit", "(define %private-key #f)")
	}
	dir := t.TempDir()
	bridge := filepath.Join(dir, "machines.scm")
	if err := os.WriteFile(bridge, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	// The stand-in prints what discover --private-key prints.
	good := testAnnouncement(t)
	good.Name, good.Trusted, good.PrivateKey = "169.254.1.2", true, key
	var scmOut bytes.Buffer
	if err := Write(&scmOut, "scm", []*Announcement{good}); err != nil {
		t.Fatal(err)
	}
	script := "#!/bin/sh\necho \"$@\" > " + filepath.Join(dir, "args") + "\ncat <<'EOF'\n" + scmOut.String() + "EOF\n"
	if err := os.WriteFile(filepath.Join(dir, "guix-offload"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+":/usr/bin:/bin")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ms, err := scm.EvalWithGuile(ctx, guile, bridge)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 2 || ms[1].PrivateKey != key {
		t.Fatalf("machines %+v, want the discovered one with private-key %s", ms, key)
	}
	args, _ := os.ReadFile(filepath.Join(dir, "args"))
	if !strings.Contains(string(args), "--private-key="+key) {
		t.Errorf("guix-offload called with %q", args)
	}
}
