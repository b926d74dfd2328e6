package layers

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// readArchitecture reads docs/ARCHITECTURE.md at the module's root.
func readArchitecture() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", err
	}
	data, err := os.ReadFile(filepath.Join(filepath.Dir(strings.TrimSpace(string(out))), "docs", "ARCHITECTURE.md"))
	return string(data), err
}
