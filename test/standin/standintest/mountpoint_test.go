package standintest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/guix-offload/guix-offload/internal/testenv"
)

// TestMountPoint: a mount point the tests had to make goes with the last
// test that uses it, not while another test (or a mount in another
// namespace) still does; one that existed before is left alone.
func TestMountPoint(t *testing.T) {
	top := filepath.Join(t.TempDir(), "gnu")
	store := filepath.Join(top, "store")
	t.Run("made, then removed by the last user", func(t *testing.T) {
		t.Run("two users", func(t *testing.T) {
			t.Run("first", func(t *testing.T) { MountPoint(t, store) })
			// The second outlives the first.
			MountPoint(t, store)
			if _, err := os.Stat(store); err != nil {
				t.Fatalf("removed while in use: %v", err)
			}
		})
		if _, err := os.Stat(top); !os.IsNotExist(err) {
			t.Fatalf("%s still there after the last user (%v)", top, err)
		}
	})
	t.Run("kept while mounted in another namespace", func(t *testing.T) {
		testenv.NeedRoot(t)
		unshare := testenv.LookPath(t, "unshare", "util-linux")
		t.Run("user", func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			var cmd *exec.Cmd
			// Registered first, so it runs after MountPoint's cleanup:
			// check, then end the mount.
			t.Cleanup(func() {
				if _, err := os.Stat(store); err != nil {
					t.Errorf("removed while mounted elsewhere: %v", err)
				}
				cancel()
				if cmd != nil {
					_ = cmd.Wait()
				}
			})
			MountPoint(t, store)
			cmd = exec.CommandContext(ctx, unshare, "-m", "--propagation", "private", "sh", "-c",
				`mount --bind "$1" "$2" && echo mounted && exec sleep 30`, "x", t.TempDir(), store)
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 8)
			if n, _ := out.Read(buf); string(buf[:n]) != "mounted\n" {
				t.Fatalf("mount failed: %q", buf[:n])
			}
		})
		// A later run adopts it and removes it.
		t.Run("next run", func(t *testing.T) { MountPoint(t, store) })
		deadline := time.Now().Add(5 * time.Second)
		for {
			if _, err := os.Stat(top); os.IsNotExist(err) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s still there", top)
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
	t.Run("existing directory left alone", func(t *testing.T) {
		if err := os.MkdirAll(store, 0o755); err != nil {
			t.Fatal(err)
		}
		t.Run("user", func(t *testing.T) { MountPoint(t, store) })
		if _, err := os.Stat(store); err != nil {
			t.Fatalf("an existing directory was removed: %v", err)
		}
	})
}
