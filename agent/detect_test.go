package agent

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"
)

// fakeRoot makes a file tree under a temporary directory: path → content.
func fakeRoot(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for p, content := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func machine(m string) func() (string, error) { return func() (string, error) { return m, nil } }

func TestSystems(t *testing.T) {
	binfmt := map[string]string{
		"proc/sys/fs/binfmt_misc/qemu-aarch64": "enabled\ninterpreter /gnu/store/…-qemu/bin/qemu-aarch64\nflags: F\n",
		"proc/sys/fs/binfmt_misc/qemu-arm":     "disabled\ninterpreter /x\n",
		"proc/sys/fs/binfmt_misc/qemu-riscv64": "enabled\n",
		"proc/sys/fs/binfmt_misc/qemu-i386":    "enabled\n", // already native on x86_64
		"proc/sys/fs/binfmt_misc/python3.11":   "enabled\n",
		"proc/sys/fs/binfmt_misc/status":       "enabled\n",
		"proc/sys/fs/binfmt_misc/register":     "",
	}
	for _, tc := range []struct {
		name    string
		machine string
		files   map[string]string
		want    []string
	}{
		{"x86_64", "x86_64", nil, []string{"x86_64-linux", "i686-linux"}},
		{"x86_64 with binfmt", "x86_64", binfmt, []string{"x86_64-linux", "i686-linux", "aarch64-linux", "riscv64-linux"}},
		{"aarch64", "aarch64", nil, []string{"aarch64-linux"}},
		{"armv7", "armv7l", nil, []string{"armhf-linux"}},
		{"i686", "i686", nil, []string{"i686-linux"}},
		{"riscv64", "riscv64", nil, []string{"riscv64-linux"}},
		{"ppc64le", "ppc64le", nil, []string{"powerpc64le-linux"}},
		{"aarch64 emulating x86", "aarch64", map[string]string{"proc/sys/fs/binfmt_misc/qemu-x86_64": "enabled\n", "proc/sys/fs/binfmt_misc/qemu-i386": "enabled\n"},
			[]string{"aarch64-linux", "i686-linux", "x86_64-linux"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := &Detector{Root: fakeRoot(t, tc.files), Machine: machine(tc.machine)}
			got, err := d.Systems()
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("Systems() = %q; want %q", got, tc.want)
			}
		})
	}
}

func TestSystemsUnknownMachine(t *testing.T) {
	d := &Detector{Root: t.TempDir(), Machine: machine("vax")}
	// Falls back on the architecture this program was built for.
	got, err := d.Systems()
	if want, ok := goarchSystems[runtimeGOARCH()]; ok {
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("Systems() = %q, %v; want %q", got, err, want)
		}
	}
	d.Machine = func() (string, error) { return "", errors.New("no uname") }
	if _, err := d.Systems(); err == nil {
		t.Error("no error when uname fails")
	}
}

func TestKVM(t *testing.T) {
	d := &Detector{Root: t.TempDir()}
	if d.KVM() || d.Features() != nil {
		t.Error("kvm detected without /dev/kvm")
	}
	d.Root = fakeRoot(t, map[string]string{"dev/kvm": ""})
	if !d.KVM() || !slices.Equal(d.Features(), []string{"kvm"}) {
		t.Errorf("kvm not detected with a usable /dev/kvm: %q", d.Features())
	}
	if os.Geteuid() != 0 { // root opens anything
		os.Chmod(filepath.Join(d.Root, "dev/kvm"), 0o444)
		if d.KVM() {
			t.Error("kvm detected with a read-only /dev/kvm")
		}
	}
}

func TestMaxJobs(t *testing.T) {
	cmdline := func(args ...string) string {
		s := ""
		for _, a := range args {
			s += a + "\x00"
		}
		return s
	}
	for _, tc := range []struct {
		name      string
		files     map[string]string
		want      int
		wantFound bool
	}{
		{"no daemon", map[string]string{"proc/1/cmdline": cmdline("/sbin/init")}, 0, false},
		{"default", map[string]string{"proc/7/cmdline": cmdline("/gnu/store/x-guix/bin/guix-daemon", "--build-users-group=guixbuild")}, 1, true},
		{"equals", map[string]string{"proc/7/cmdline": cmdline("guix-daemon", "--build-users-group=guixbuild", "--max-jobs=6")}, 6, true},
		{"separate", map[string]string{"proc/7/cmdline": cmdline("guix-daemon", "--max-jobs", "3")}, 3, true},
		{"short", map[string]string{"proc/7/cmdline": cmdline("guix-daemon", "-M", "8")}, 8, true},
		{"short joined", map[string]string{"proc/7/cmdline": cmdline("guix-daemon", "-M12")}, 12, true},
		{"last wins", map[string]string{"proc/7/cmdline": cmdline("guix-daemon", "-M2", "--max-jobs=5")}, 5, true},
		{"garbage", map[string]string{"proc/7/cmdline": cmdline("guix-daemon", "--max-jobs=lots")}, 1, true},
		{"not a pid", map[string]string{"proc/self/cmdline": cmdline("guix-daemon", "-M4")}, 0, false},
		{"kernel thread", map[string]string{"proc/2/cmdline": "", "proc/9/cmdline": cmdline("guix-daemon", "-M", "2")}, 2, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := &Detector{Root: fakeRoot(t, tc.files)}
			n, found := d.MaxJobs()
			if n != tc.want || found != tc.wantFound {
				t.Errorf("MaxJobs() = %d, %v; want %d, %v", n, found, tc.want, tc.wantFound)
			}
		})
	}
}

func TestSSHPort(t *testing.T) {
	for _, tc := range []struct {
		name, config string
		want         int
	}{
		{"none", "", 22},
		{"commented", "#Port 2200\n", 22},
		{"set", "# x\nPort 2222\nPort 2223\n", 2222},
		{"equals", "port=2022\n", 2022},
		{"in match", "Match User bob\n  Port 99\n", 22},
		{"garbage", "Port many\n", 22},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := &Detector{Root: fakeRoot(t, map[string]string{"etc/ssh/sshd_config": tc.config})}
			if got := d.SSHPort(); got != tc.want {
				t.Errorf("SSHPort() = %d; want %d", got, tc.want)
			}
		})
	}
}

func TestHostKeyFile(t *testing.T) {
	d := &Detector{Root: t.TempDir()}
	if _, err := d.HostKeyFile(); err == nil {
		t.Error("no error without host keys")
	}
	d.Root = fakeRoot(t, map[string]string{"etc/ssh/ssh_host_rsa_key.pub": "ssh-rsa AAAA"})
	if p, err := d.HostKeyFile(); err != nil || filepath.Base(p) != "ssh_host_rsa_key.pub" {
		t.Errorf("HostKeyFile() = %q, %v; want the RSA key", p, err)
	}
	d.Root = fakeRoot(t, map[string]string{"etc/ssh/ssh_host_rsa_key.pub": "ssh-rsa AAAA", "etc/ssh/ssh_host_ed25519_key.pub": "ssh-ed25519 AAAA"})
	if p, err := d.HostKeyFile(); err != nil || filepath.Base(p) != "ssh_host_ed25519_key.pub" {
		t.Errorf("HostKeyFile() = %q, %v; want the Ed25519 key", p, err)
	}
}

func TestLoadAndFreeDisk(t *testing.T) {
	d := &Detector{
		Root:   fakeRoot(t, map[string]string{"proc/loadavg": "3.00 2.50 1.00 2/345 6789\n"}),
		NumCPU: func() int { return 4 },
		Statfs: func(p string) (uint64, error) {
			if filepath.Base(p) != "store" {
				return 0, os.ErrNotExist
			}
			return 52341<<20 + 12345, nil
		},
	}
	l, err := d.Load()
	if err != nil || math.Abs(l-0.75) > 1e-9 {
		t.Errorf("Load() = %v, %v; want 0.75", l, err)
	}
	free, err := d.FreeDisk("/gnu/store")
	if err != nil || free != 52341 {
		t.Errorf("FreeDisk() = %v, %v; want 52341", free, err)
	}
	if _, err := d.FreeDisk("/nowhere"); err == nil {
		t.Error("no error for a missing store")
	}
	for _, bad := range []string{"", "x 1 2", "-1 0 0"} {
		d.Root = fakeRoot(t, map[string]string{"proc/loadavg": bad})
		if _, err := d.Load(); err == nil {
			t.Errorf("Load() of %q: no error", bad)
		}
	}
}

func TestFreeDiskReal(t *testing.T) {
	var d Detector
	free, err := d.FreeDisk(t.TempDir())
	if err != nil || free <= 0 {
		t.Errorf("FreeDisk(temp dir) = %d, %v; want a positive size", free, err)
	}
}

func TestUserExists(t *testing.T) {
	d := &Detector{Root: fakeRoot(t, map[string]string{"etc/passwd": "root:x:0:0::/root:/bin/sh\noffload:x:998:998::/home/offload:/bin/sh\n"})}
	if !d.UserExists("offload") || d.UserExists("off") || d.UserExists("bob") {
		t.Error("UserExists wrong")
	}
}

func runtimeGOARCH() string { return runtime.GOARCH }
