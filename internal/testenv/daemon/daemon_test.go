package daemon_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/guix-offload/guix-offload/internal/testenv/daemon"
)

// A hook written in sh shows what the driver gives it and how it reads
// the exit status.
const script = `#!/bin/sh
echo "args: $*"
echo "cwd: $(pwd)"
[ "$(readlink /proc/$$/fd/1)" = "$(readlink /proc/$$/fd/2)" ] && echo "stdout=stderr"
[ "$(readlink /proc/$$/fd/3)" = /dev/null ] && echo "fd3=null"
[ "$(ps -o sid= -p $$ | tr -d ' ')" = "$$" ] && echo "session leader"
echo "guix=$GUIX"
IFS= read -r req
echo "req=[$req]" >&2
echo "# decline"
IFS= read -r req
echo "# accept"
IFS= read -r inputs
IFS= read -r outputs
echo "inputs=[$inputs] outputs=[$outputs]"
echo "building" >&4
[ -n "$MAKE" ] && touch $MAKE
exit $CODE
`

func TestDriver(t *testing.T) {
	dir := t.TempDir()
	prog := filepath.Join(dir, "guix")
	if err := os.WriteFile(prog, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	tests := []struct {
		name string
		env  []string
		want daemon.Outcome
	}{
		{"success", []string{"CODE=0", "MAKE=" + out}, daemon.Succeeded},
		{"missing output", []string{"CODE=0", "MAKE="}, daemon.HookFailed},
		{"permanent", []string{"CODE=100"}, daemon.Failed},
		{"timeout", []string{"CODE=101"}, daemon.TimedOut},
		{"transient", []string{"CODE=1"}, daemon.HookFailed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			os.Remove(out)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			h := daemon.Start(t, daemon.Options{Program: prog, System: "x86_64-linux", MaxSilentTime: 77,
				PrintBuildTrace: true, BuildTimeout: 88, Env: append(os.Environ(), tc.env...)})
			r, err := h.Request(ctx, daemon.Req{Willing: true, System: "x86_64-linux", Drv: "/gnu/store/a-t.drv"})
			if err != nil {
				t.Fatal(err)
			}
			want := []string{"args: offload x86_64-linux 77 1 88", "cwd: /", "stdout=stderr", "fd3=null",
				"session leader", "guix=" + prog, "req=[1 x86_64-linux /gnu/store/a-t.drv ]"}
			if r.Answer != daemon.Decline || strings.Join(r.Chatter, "\n") != strings.Join(want, "\n") {
				t.Fatalf("reply %q, chatter %q", r.Answer, r.Chatter)
			}
			r, err = h.Request(ctx, daemon.Req{System: "x86_64-linux", Drv: "/gnu/store/b-t.drv", Features: []string{"kvm", "big"}})
			if err != nil || r.Answer != daemon.Accept {
				t.Fatalf("reply %+v, %v", r, err)
			}
			res, err := h.Accept(ctx, []string{"/gnu/store/b-t.drv", "/gnu/store/c"}, []string{out})
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(res.Messages, "\n"); got != "inputs=[/gnu/store/b-t.drv /gnu/store/c ] outputs=["+out+" ]" {
				t.Errorf("messages %q", got)
			}
			if string(res.Log) != "building\n" {
				t.Errorf("log %q", res.Log)
			}
			if res.Outcome != tc.want {
				t.Errorf("outcome %v (%s), want %v", res.Outcome, res.Reason, tc.want)
			}
		})
	}
}

func TestDriverErrors(t *testing.T) {
	dir := t.TempDir()
	prog := filepath.Join(dir, "guix")
	os.WriteFile(prog, []byte("#!/bin/sh\nread l\necho '# maybe'\nread l\nexit 0\n"), 0o755)
	ctx := context.Background()
	h := daemon.Start(t, daemon.Options{Program: prog, System: "x86_64-linux"})
	if _, err := h.Request(ctx, daemon.Req{Willing: true, System: "x86_64-linux", Drv: "/gnu/store/a.drv"}); err == nil || !strings.Contains(err.Error(), "bad hook reply") {
		t.Fatalf("err %v", err)
	}
	if _, err := h.Request(ctx, daemon.Req{Willing: true, System: "x86_64-linux", Drv: "/gnu/store/a.drv"}); err != daemon.ErrEOF {
		t.Fatalf("err %v", err)
	}
}
