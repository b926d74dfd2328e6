package agent

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/guix-offload/guix-offload/scm"
)

// Detector works out what this machine offers. Its zero value looks at
// the running system; tests point Root at a fake file system tree and
// replace the functions.
type Detector struct {
	// Root is prepended to every file the detector reads (/proc, /dev,
	// /etc); empty means the real root.
	Root string
	// Machine returns the machine hardware name (uname -m); nil means
	// uname(2).
	Machine func() (string, error)
	// NumCPU returns the number of usable cores; nil means
	// runtime.NumCPU.
	NumCPU func() int
	// Statfs returns the bytes available to unprivileged users in the
	// file system holding path; nil means statfs(2).
	Statfs func(path string) (uint64, error)
}

func (d *Detector) path(p string) string {
	if d.Root == "" {
		return p
	}
	return filepath.Join(d.Root, p)
}

func (d *Detector) machine() (string, error) {
	if d.Machine != nil {
		return d.Machine()
	}
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "", fmt.Errorf("uname: %w", err)
	}
	return unix.ByteSliceToString(u.Machine[:]), nil
}

// nativeSystems maps uname -m to the Guix system types the machine runs
// natively, its own first.
var nativeSystems = map[string][]string{
	"x86_64":  {"x86_64-linux", "i686-linux"},
	"amd64":   {"x86_64-linux", "i686-linux"},
	"i386":    {"i686-linux"},
	"i486":    {"i686-linux"},
	"i586":    {"i686-linux"},
	"i686":    {"i686-linux"},
	"aarch64": {"aarch64-linux"},
	"arm64":   {"aarch64-linux"},
	"armv7l":  {"armhf-linux"},
	"armv8l":  {"armhf-linux"},
	"riscv64": {"riscv64-linux"},
	"ppc64le": {"powerpc64le-linux"},
	"ppc":     {"powerpc-linux"},
	"mips64":  {"mips64el-linux"}, // Guix supports only the little-endian one
}

// goarchSystems is the fallback when uname says something unknown.
var goarchSystems = map[string][]string{
	"amd64":    {"x86_64-linux", "i686-linux"},
	"386":      {"i686-linux"},
	"arm64":    {"aarch64-linux"},
	"arm":      {"armhf-linux"},
	"riscv64":  {"riscv64-linux"},
	"ppc64le":  {"powerpc64le-linux"},
	"mips64le": {"mips64el-linux"},
}

// binfmtSystems maps the binfmt_misc entry names that Guix's
// qemu-binfmt-service-type and Debian's qemu-user-binfmt register to
// Guix system types.
var binfmtSystems = map[string]string{
	"qemu-x86_64":   "x86_64-linux",
	"qemu-i386":     "i686-linux",
	"qemu-aarch64":  "aarch64-linux",
	"qemu-arm":      "armhf-linux",
	"qemu-riscv64":  "riscv64-linux",
	"qemu-ppc64le":  "powerpc64le-linux",
	"qemu-ppc":      "powerpc-linux",
	"qemu-mips64el": "mips64el-linux",
}

// NativeSystems returns the Guix system types this machine builds
// natively.
func (d *Detector) NativeSystems() ([]string, error) {
	m, err := d.machine()
	if err != nil {
		return nil, err
	}
	if s, ok := nativeSystems[m]; ok {
		return slices.Clone(s), nil
	}
	if s, ok := goarchSystems[runtime.GOARCH]; ok {
		return slices.Clone(s), nil
	}
	return nil, fmt.Errorf("machine type %q has no Guix system type; set systems in the configuration", m)
}

// EmulatedSystems returns the Guix system types this machine runs through
// enabled binfmt_misc QEMU entries, sorted.
func (d *Detector) EmulatedSystems() []string {
	entries, err := os.ReadDir(d.path("/proc/sys/fs/binfmt_misc"))
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		sys, ok := binfmtSystems[e.Name()]
		if !ok {
			continue
		}
		b, err := os.ReadFile(filepath.Join(d.path("/proc/sys/fs/binfmt_misc"), e.Name()))
		if err != nil {
			continue
		}
		first, _, _ := bytes.Cut(b, []byte("\n"))
		if string(bytes.TrimSpace(first)) == "enabled" && !slices.Contains(out, sys) {
			out = append(out, sys)
		}
	}
	slices.Sort(out)
	return out
}

// Systems returns the native systems followed by the emulated ones not
// already among them.
func (d *Detector) Systems() ([]string, error) {
	out, err := d.NativeSystems()
	if err != nil {
		return nil, err
	}
	for _, s := range d.EmulatedSystems() {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out, nil
}

// KVM reports whether /dev/kvm can be opened for reading and writing, as
// builds that use it (the "kvm" feature) need.
func (d *Detector) KVM() bool {
	f, err := os.OpenFile(d.path("/dev/kvm"), os.O_RDWR, 0)
	if err != nil {
		return false
	}
	f.Close()
	return true
}

// Features returns the system features detected ("kvm").
func (d *Detector) Features() []string {
	var out []string
	if d.KVM() {
		out = append(out, "kvm")
	}
	return out
}

// MaxJobs returns guix-daemon's --max-jobs (-M) read from the command
// line of a running guix-daemon, 1 when it runs without one, and
// found=false when no guix-daemon command line could be read.
func (d *Detector) MaxJobs() (n int, found bool) {
	procs, _ := filepath.Glob(d.path("/proc/[0-9]*/cmdline"))
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil || len(b) == 0 {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if filepath.Base(args[0]) != "guix-daemon" {
			continue
		}
		return maxJobs(args[1:]), true
	}
	return 0, false
}

// maxJobs finds --max-jobs=N, --max-jobs N, -M N or -MN in guix-daemon's
// arguments; the last one wins, as with getopt. Guix's default is 1.
func maxJobs(args []string) int {
	n := 1
	set := func(s string) {
		if v, err := strconv.Atoi(s); err == nil && v > 0 {
			n = v
		}
	}
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			return n
		case a == "--max-jobs" || a == "-M":
			if i+1 < len(args) {
				set(args[i+1])
				i++
			}
		case strings.HasPrefix(a, "--max-jobs="):
			set(strings.TrimPrefix(a, "--max-jobs="))
		case strings.HasPrefix(a, "-M"):
			set(a[2:])
		}
	}
	return n
}

// SSHPort returns the first Port in /etc/ssh/sshd_config, or
// [scm.DefaultPort].
func (d *Detector) SSHPort() int {
	f, err := os.Open(d.path("/etc/ssh/sshd_config"))
	if err != nil {
		return scm.DefaultPort
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		if strings.EqualFold(fields[0], "Match") {
			break // what follows applies only to some connections
		}
		kw, val, _ := strings.Cut(fields[0], "=")
		if strings.EqualFold(kw, "Port") {
			if val == "" && len(fields) > 1 {
				val = fields[1]
			}
			if p, err := strconv.Atoi(val); err == nil && p > 0 && p < 65536 {
				return p
			}
		}
	}
	return scm.DefaultPort
}

// HostKeyFile returns the SSH host public key to announce: the Ed25519
// one under /etc/ssh, else the RSA one.
func (d *Detector) HostKeyFile() (string, error) {
	for _, name := range []string{"ssh_host_ed25519_key.pub", "ssh_host_rsa_key.pub"} {
		p := d.path(filepath.Join("/etc/ssh", name))
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New("no /etc/ssh/ssh_host_ed25519_key.pub or ssh_host_rsa_key.pub")
}

// UserExists reports whether /etc/passwd has the user name.
func (d *Detector) UserExists(name string) bool {
	b, err := os.ReadFile(d.path("/etc/passwd"))
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if u, _, ok := strings.Cut(line, ":"); ok && u == name {
			return true
		}
	}
	return false
}

// Load returns the 1-minute load average divided by the number of cores,
// as Guix's offload hook computes it.
func (d *Detector) Load() (float64, error) {
	b, err := os.ReadFile(d.path("/proc/loadavg"))
	if err != nil {
		return 0, fmt.Errorf("read load: %w", err)
	}
	fields := strings.Fields(string(b))
	if len(fields) == 0 {
		return 0, errors.New("read load: empty /proc/loadavg")
	}
	l, err := strconv.ParseFloat(fields[0], 64)
	if err != nil || l < 0 {
		return 0, fmt.Errorf("read load: %q in /proc/loadavg is not a load average", fields[0])
	}
	cores := runtime.NumCPU()
	if d.NumCPU != nil {
		cores = d.NumCPU()
	}
	if cores < 1 {
		cores = 1
	}
	return l / float64(cores), nil
}

// FreeDisk returns the MiB available in the file system holding store.
func (d *Detector) FreeDisk(store string) (int64, error) {
	statfs := d.Statfs
	if statfs == nil {
		statfs = func(p string) (uint64, error) {
			var st unix.Statfs_t
			if err := unix.Statfs(p, &st); err != nil {
				return 0, err
			}
			return st.Bavail * uint64(st.Bsize), nil
		}
	}
	free, err := statfs(d.path(store))
	if err != nil {
		return 0, fmt.Errorf("measure free space of %s: %w", store, err)
	}
	return int64(free >> 20), nil
}
