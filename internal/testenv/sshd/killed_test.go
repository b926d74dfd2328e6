package sshd_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/guix-offload/guix-offload/internal/testenv"
	"github.com/guix-offload/guix-offload/internal/testenv/sshd"
)

// killedEnv marks the child run of TestKilledTestBinary.
const killedEnv = "GUIX_OFFLOAD_TEST_KILLED"

// TestKilledTestBinary: sshd goes with the test binary even when that is
// killed (its -timeout) before any cleanup can run.
func TestKilledTestBinary(t *testing.T) {
	testenv.NeedRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestStartAndHang$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), killedEnv+"=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	pid := 0
	for sc.Scan() {
		if _, v, ok := strings.Cut(sc.Text(), "sshd pid "); ok {
			pid, _ = strconv.Atoi(strings.TrimSpace(v))
			break
		}
	}
	if pid == 0 {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatal("the child did not start sshd")
	}
	_ = cmd.Process.Kill() // SIGKILL: no cleanup runs
	_ = cmd.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("sshd (pid %d) outlived the killed test binary", pid)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestStartAndHang is the child of TestKilledTestBinary: it starts sshd,
// says its pid and waits to be killed.
func TestStartAndHang(t *testing.T) {
	if os.Getenv(killedEnv) == "" {
		return // only as TestKilledTestBinary's child
	}
	s := sshd.Start(t, sshd.Options{})
	fmt.Printf("sshd pid %d\n", s.Pid())
	time.Sleep(time.Minute)
}
