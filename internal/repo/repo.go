// Package repo locates this repository's checkout and the programs hack/tools.sh builds for it, for the
// programs that run from a checkout: tests, the local cluster and `make demo`.
package repo

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// Root is the repository's root directory.
func Root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// Tools returns the directory holding the named program set, building it on first use.
// `make test` passes LLMD_<NAME>_DIR so that parallel packages do not each ask.
func Tools(name string) (string, error) {
	if dir := os.Getenv("LLMD_" + strings.ToUpper(name) + "_DIR"); dir != "" {
		return dir, nil
	}
	out, err := exec.Command(filepath.Join(Root(), "hack", "tools.sh"), name).Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		return "", fmt.Errorf("building %s with hack/tools.sh: %w\n%s", name, err, stderr)
	}
	return strings.TrimSpace(string(out)), nil
}

// ModuleDir is the directory of a module in the module cache, e.g. KEDA's for its CRDs.
func ModuleDir(path string) (string, error) {
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", path)
	cmd.Dir = Root()
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("locating module %s: %w", path, err)
	}
	return strings.TrimSpace(string(out)), nil
}
