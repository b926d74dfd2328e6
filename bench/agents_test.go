//go:build bench

package bench

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/guix-offload/guix-offload/internal/pki"
	"github.com/guix-offload/guix-offload/internal/testenv/netns"
)

// agentFiles are the files one agent reads: its SSH host public key and
// its Guix signing key.
type agentFiles struct {
	hostKey, signingKey string
	public              *pki.PublicKey
}

// makeAgentFiles writes a fresh SSH host key and a Guix signing key
// (ECDSA on Ed25519, what `guix archive --generate-key` makes) under dir.
func makeAgentFiles(t *testing.T, dir, name string) agentFiles {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	f := agentFiles{hostKey: filepath.Join(dir, name+"-host.pub"), signingKey: filepath.Join(dir, name+"-signing.sec")}
	if err := os.WriteFile(f.hostKey, ssh.MarshalAuthorizedKey(sshPub), 0o644); err != nil {
		t.Fatal(err)
	}
	key, err := pki.GenerateKey(pki.TypeECDSA, nil)
	if err != nil {
		t.Fatal(err)
	}
	sec, err := key.MarshalSexp()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f.signingKey, sec, 0o600); err != nil {
		t.Fatal(err)
	}
	f.public = key.Public()
	return f
}

// startAgent starts guix-offload-agent on h, announcing instance name,
// signed with files' key, and waits until it advertises.
func startAgent(t *testing.T, h *netns.Host, agent, dir, name string, files agentFiles) *netns.Proc {
	t.Helper()
	conf := filepath.Join(dir, name+".toml")
	if err := os.WriteFile(conf, []byte("# bench: everything on the command line\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return h.Start(t, agent, "--config", conf, "--name", name,
		"--systems", "x86_64-linux,i686-linux", "--parallel-builds", "2", "--user", "offload", "--port", "22",
		"--host-key-file", files.hostKey, "--signing-key", files.signingKey, "--store", dir)
}

// writeACL writes an /etc/guix/acl authorizing keys.
func writeACL(t *testing.T, path string, keys []*pki.PublicKey) {
	t.Helper()
	if err := os.WriteFile(path, pki.NewACL(keys...).MarshalSexp(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// timeListing runs setup (may be nil; it is inside the timed window),
// then starts the command made by newCmd and reads its standard output
// line by line; match returns the instance names a line lists. It stops
// (killing the command's process group) once every name in want was
// listed or limit passed, and otherwise when the command exits. A run that
// misses some logs the command's stderr.
func timeListing(t *testing.T, ctx context.Context, setup func(), newCmd func(ctx context.Context) *exec.Cmd, match func(line string) []string, want map[string]bool, limit time.Duration) Listing {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	t0 := time.Now()
	if setup != nil {
		setup()
	}
	cmd := newCmd(ctx)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<16), 1<<24)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-ctx.Done():
				return
			}
		}
	}()
	var l Listing
	func() {
		for {
			select {
			case line, ok := <-lines:
				if !ok {
					l = Listing{Took: time.Since(t0), Found: len(seen)}
					return
				}
				for _, name := range match(line) {
					if want[name] {
						seen[name] = true
					}
				}
				if len(seen) == len(want) {
					l = Listing{Took: time.Since(t0), Found: len(seen), All: true}
					return
				}
			case <-ctx.Done():
				l = Listing{Took: time.Since(t0), Found: len(seen)}
				return
			}
		}
	}()
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	cancel()
	for range lines {
	}
	_ = cmd.Wait()
	if !l.All {
		t.Logf("%s listed %d of %d; its stderr:\n%s", strings.Join(cmd.Args, " "), l.Found, len(want), stderr.String())
	}
	return l
}

// namesIn returns a matcher for instance names made by benchName.
func namesIn(prefix string) func(string) []string {
	re := regexp.MustCompile(regexp.QuoteMeta(prefix) + `[0-9]+`)
	return func(line string) []string { return re.FindAllString(line, -1) }
}

// resolvedIn matches only avahi-browse -p's resolved lines ("=;…").
func resolvedIn(prefix string) func(string) []string {
	m := namesIn(prefix)
	return func(line string) []string {
		if !strings.HasPrefix(line, "=;") {
			return nil
		}
		return m(line)
	}
}
