package hook

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// RealGuix finds the real guix program for the shim: the first "guix" in
// the PATH list path that is an executable file and not the same file as
// self (this program, found through its link; "" means os.Executable).
func RealGuix(path, self string) (string, error) {
	if self == "" {
		if exe, err := os.Executable(); err == nil {
			self = exe
		}
	}
	selfInfo, _ := os.Stat(self)
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, "guix")
		fi, err := os.Stat(p)
		if err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			continue
		}
		if selfInfo != nil && os.SameFile(fi, selfInfo) {
			continue
		}
		return p, nil
	}
	return "", fmt.Errorf("no guix other than %s on PATH %q", self, path)
}

// LocalGuix is the real guix that the shim and the transport run: realGuix
// (real-guix in the configuration file config) when set, checked to be an
// executable file other than self, else [RealGuix] on path. self is this
// program ("" means os.Executable). The error names real-guix in config.
func LocalGuix(realGuix, config, path, self string) (string, error) {
	if self == "" {
		self, _ = os.Executable()
	}
	if realGuix == "" {
		g, err := RealGuix(path, self)
		if err != nil {
			return "", fmt.Errorf("real-guix in %s is not set and there is %w", config, err)
		}
		return g, nil
	}
	if err := executable(realGuix); err != nil {
		return "", fmt.Errorf("real-guix in %s: %w", config, err)
	}
	a, err1 := os.Stat(self)
	b, err2 := os.Stat(realGuix)
	if err1 == nil && err2 == nil && os.SameFile(a, b) {
		return "", fmt.Errorf("real-guix in %s: %q is guix-offload itself, not the real guix", config, realGuix)
	}
	return realGuix, nil
}

// ErrNotShim says that a program name is not the shim's.
var ErrNotShim = errors.New("not invoked as guix")

// ShimTarget decides what the guix shim does with argv (os.Args): for
// "guix offload ARGS…" it returns offload true and ARGS; otherwise the real
// guix to exec: realGuix when set, else [RealGuix] on path.
func ShimTarget(argv []string, realGuix, path, self string) (offload bool, args []string, target string, err error) {
	if len(argv) == 0 || filepath.Base(argv[0]) != "guix" {
		return false, nil, "", ErrNotShim
	}
	if len(argv) >= 2 && argv[1] == "offload" {
		return true, argv[2:], "", nil
	}
	if realGuix != "" {
		return false, nil, realGuix, nil
	}
	target, err = RealGuix(path, self)
	if err != nil {
		return false, nil, "", fmt.Errorf("find the real guix for 'guix %s': %w", strings.Join(argv[1:], " "), err)
	}
	return false, nil, target, nil
}
