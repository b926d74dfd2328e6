package hook

import (
	"runtime"
	"slices"

	"golang.org/x/sys/unix"
)

// LocalSystems are the systems the daemon builds itself when the hook
// declines: its own system (the hook's SYSTEM argument) and what this
// machine runs natively besides, as guix-daemon's canBuildLocally allows:
// i686-linux on x86_64-linux, and armhf-linux on aarch64-linux when the
// CPU and kernel run 32-bit ARM programs. It stays conservative: a
// system missing here only costs a postponement, a wrong one a failed
// build.
func LocalSystems(system string) []string {
	out := []string{system}
	switch system {
	case "x86_64-linux":
		out = append(out, "i686-linux")
	case "aarch64-linux":
		if runtime.GOARCH == "arm64" && runs32BitARM() {
			out = append(out, "armhf-linux")
		}
	}
	return out
}

// runs32BitARM reports whether this arm64 kernel runs AArch32 programs:
// it refuses the PER_LINUX32 personality (EINVAL) when the CPU has no
// 32-bit EL0. The personality is per thread and restored at once.
func runs32BitARM() bool {
	const perLinux32 = 0x0008 // PER_LINUX32, <linux/personality.h>
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	old, _, errno := unix.RawSyscall(unix.SYS_PERSONALITY, 0xffffffff, 0, 0)
	if errno != 0 {
		return false
	}
	if _, _, errno := unix.RawSyscall(unix.SYS_PERSONALITY, perLinux32, 0, 0); errno != 0 {
		return false
	}
	unix.RawSyscall(unix.SYS_PERSONALITY, old, 0, 0)
	return true
}

// buildsLocally reports whether the daemon builds system itself.
func buildsLocally(local []string, system string) bool { return slices.Contains(local, system) }
