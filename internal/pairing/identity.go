package pairing

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"

	"golang.org/x/crypto/ssh"

	"github.com/guix-offload/guix-offload/internal/pki"
)

// Roles of an [Identity].
const (
	RoleMaster  = "master"
	RoleMachine = "machine"
)

// Identity is what one side shows of itself: every key pairing may write
// on the other side is here, and the code is derived from these exact
// bytes.
type Identity struct {
	// Role is [RoleMaster] or [RoleMachine].
	Role string `json:"role"`
	// Name is the host's name; it names the pairing record on the other
	// side.
	Name string `json:"name"`
	// SigningKey is the Guix signing public key, an S-expression as in
	// /etc/guix/signing-key.pub.
	SigningKey string `json:"signing-key"`
	// SSHKey is an OpenSSH public key ("ssh-ed25519 AAAA…"): the key the
	// master's root logs in with, or the machine's SSH host key.
	SSHKey string `json:"ssh-key"`
	// User is the machine's login for masters (machine only).
	User string `json:"user,omitempty"`
	// Port is the machine's SSH port (machine only).
	Port int `json:"port,omitempty"`
}

var (
	nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)
	userRE = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)
)

// Guix returns the parsed signing key.
func (id *Identity) Guix() (*pki.PublicKey, error) {
	k, err := pki.ParsePublicKey([]byte(id.SigningKey), id.Role+" "+id.Name+" signing key")
	if err != nil {
		return nil, fmt.Errorf("%s %q: %w", id.Role, id.Name, err)
	}
	return k, nil
}

// SSH returns the parsed SSH public key.
func (id *Identity) SSH() (ssh.PublicKey, error) {
	k, _, _, rest, err := ssh.ParseAuthorizedKey([]byte(id.SSHKey))
	if err != nil {
		return nil, fmt.Errorf("%s %q: ssh key: %w", id.Role, id.Name, err)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("%s %q: ssh key: more than one key", id.Role, id.Name)
	}
	return k, nil
}

// Validate checks every field: a name safe as a file name, keys that
// parse, a plausible login and port for a machine.
func (id *Identity) Validate() error {
	if id.Role != RoleMaster && id.Role != RoleMachine {
		return fmt.Errorf("identity: role %q is neither %q nor %q", printable(id.Role), RoleMaster, RoleMachine)
	}
	if !nameRE.MatchString(id.Name) {
		return fmt.Errorf("%s name %q: use letters, digits, '.', '_' and '-' (at most 63)", id.Role, printable(id.Name))
	}
	if _, err := id.Guix(); err != nil {
		return err
	}
	k, err := id.SSH()
	if err != nil {
		return err
	}
	if got := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k))); got != id.SSHKey {
		return fmt.Errorf("%s %q: ssh key must be \"TYPE BASE64\" without comment or options", id.Role, id.Name)
	}
	switch id.Role {
	case RoleMachine:
		if !userRE.MatchString(id.User) {
			return fmt.Errorf("machine %q: login %q is not a valid user name", id.Name, printable(id.User))
		}
		if id.Port < 1 || id.Port > 65535 {
			return fmt.Errorf("machine %q: SSH port %d out of range", id.Name, id.Port)
		}
	case RoleMaster:
		if id.User != "" || id.Port != 0 {
			return fmt.Errorf("master %q: user and port are for machines", id.Name)
		}
	}
	return nil
}

// NormalizeSSHKey returns an OpenSSH public key line as "TYPE BASE64",
// without options or comment, as an [Identity] carries it.
func NormalizeSSHKey(line string) (string, error) {
	k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line))
	if err != nil {
		return "", fmt.Errorf("parse ssh key: %w", err)
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k))), nil
}

func (id *Identity) encode() ([]byte, error) {
	if err := id.Validate(); err != nil {
		return nil, err
	}
	return json.Marshal(id)
}

func decodeIdentity(b []byte, role string) (*Identity, error) {
	var id Identity
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&id); err != nil {
		return nil, fmt.Errorf("the %s's identity: %v: %w", role, err, ErrTampered)
	}
	if id.Role != role {
		return nil, fmt.Errorf("the %s's identity says role %q: %w", role, printable(id.Role), ErrTampered)
	}
	if err := id.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", err, ErrTampered)
	}
	return &id, nil
}

// Describe is one line naming the identity and its keys' fingerprints,
// as shown to an operator before the code.
func (id *Identity) Describe() string {
	g, gerr := id.Guix()
	s, serr := id.SSH()
	if gerr != nil || serr != nil {
		return id.Role + " " + id.Name
	}
	what := "SSH key"
	if id.Role == RoleMachine {
		what = "SSH host key"
	}
	return fmt.Sprintf("%s %s: Guix key %s, %s %s", id.Role, id.Name, g.Fingerprint(), what, ssh.FingerprintSHA256(s))
}
