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
