package hook

import (
	"errors"
	"fmt"
	"os"

	"github.com/guix-offload/guix-offload/internal/pki"
)

// localReady is what an accepted build needs on this machine, checked
// once per hook process before the first accept: the ACL that verifies
// retrieved outputs, the local guix that exports inputs, and the store
// the outputs go to. Finding one missing only after "# accept" would fail
// every accepted build (exit 1) instead of letting the daemon build
// locally.
type localReady struct {
	checked bool
	acl     *pki.ACL
	guix    string
	err     error
	// systems are those the daemon builds itself, see LocalSystems.
	systems []string
}

// ready checks (once) that an accepted build could run here. The error
// names the hook.toml key and the problem, for one line in the daemon's
// log.
func (s *server) ready() error {
	r := &s.local
	if r.checked {
		return r.err
	}
	r.checked = true
	r.acl, r.guix, r.err = checkLocal(s.cfg, s.o)
	return r.err
}

func checkLocal(cfg *Config, o *Options) (*pki.ACL, string, error) {
	acl := o.ACL
	if acl == nil {
		var err error
		if acl, err = pki.ReadACL(cfg.ACL); err != nil {
			return nil, "", fmt.Errorf("acl in hook.toml: %q cannot be read (retrieved outputs could not be verified): %w", cfg.ACL, errors.Unwrap(err))
		}
	}
	guix, err := LocalGuix(cfg.RealGuix, "hook.toml", o.Env("PATH"), "")
	if err != nil {
		return nil, "", fmt.Errorf("%w (inputs could not be exported)", err)
	}
	fi, err := os.Stat(cfg.Store)
	switch {
	case err != nil:
		return nil, "", fmt.Errorf("store in hook.toml: %q: %w", cfg.Store, errors.Unwrap(err))
	case !fi.IsDir():
		return nil, "", fmt.Errorf("store in hook.toml: %q is not a directory", cfg.Store)
	}
	return acl, guix, nil
}

// executable checks that path is an executable file.
func executable(path string) error {
	fi, err := os.Stat(path)
	switch {
	case err != nil:
		return fmt.Errorf("%q: %w", path, errors.Unwrap(err))
	case fi.IsDir():
		return fmt.Errorf("%q is a directory", path)
	case fi.Mode()&0o111 == 0:
		return fmt.Errorf("%q is not executable", path)
	}
	return nil
}
