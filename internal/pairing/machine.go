package pairing

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/guix-offload/guix-offload/internal/pki"
	"github.com/guix-offload/guix-offload/internal/transport"
)

// AuthorizedKeyOptions restrict the key a master logs in with to what
// offloading needs (sshd(8), AUTHORIZED_KEYS FILE FORMAT). "restrict"
// turns off pty allocation, agent and X11 forwarding, ~/.ssh/rc, TCP and
// stream-local forwarding (both directions) and whatever a later OpenSSH
// adds. The hook needs none of it: it runs commands over exec channels,
// and its transport reaches the machine's guix-daemon through
// `guix-offload-agent relay` on an exec channel too. Change it here only:
// pairing writes this, and --remove finds its lines by the same text.
const AuthorizedKeyOptions = "restrict"

// keyComment marks the lines pairing adds, naming the master.
const keyComment = "guix-offload-pair:"

// Accounts creates and deletes the login masters use; [SystemAccounts]
// is the real one.
type Accounts interface {
	// Lookup returns the login's home directory, uid and gid, or an
	// error wrapping [user.UnknownUserError] when it does not exist.
	Lookup(name string) (home string, uid, gid int, err error)
	// Create makes a system login with home directory home (not created)
	// and login shell shell.
	Create(ctx context.Context, name, home, shell string) error
	// Delete deletes the login (not its home).
	Delete(ctx context.Context, name string) error
}

// SystemAccounts manages logins with the shadow suite's useradd and
// userdel.
type SystemAccounts struct{}

// Lookup implements [Accounts].
func (SystemAccounts) Lookup(name string) (string, int, int, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return "", 0, 0, err
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err1 != nil || err2 != nil {
		return "", 0, 0, fmt.Errorf("login %s: non-numeric uid or gid", name)
	}
	return u.HomeDir, uid, gid, nil
}

// Create implements [Accounts].
func (SystemAccounts) Create(ctx context.Context, name, home, shell string) error {
	// Password "*": no password login, but not "locked" ("!"), which
	// sshd without PAM takes as a reason to refuse keys too.
	cmd := exec.CommandContext(ctx, "useradd", "--system", "--user-group", "--no-create-home",
		"--home-dir", home, "--shell", shell, "--password", "*",
		"--comment", "Guix build offloading (guix-offload pair)", name)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("create login %s: useradd: %v: %s", name, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Delete implements [Accounts].
func (SystemAccounts) Delete(ctx context.Context, name string) error {
	cmd := exec.CommandContext(ctx, "userdel", name)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("delete login %s: userdel: %v: %s", name, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Machine is the build machine's side of pairing: it authorizes the
// master's Guix key, makes sure the login for masters exists with guix
// on its PATH, and lets the master's SSH key in.
type Machine struct {
	// ACL is the Guix ACL (/etc/guix/acl).
	ACL string
	// OwnKey is this machine's Guix public key, put in an ACL that is
	// created (as Guix does); nil for none.
	OwnKey *pki.PublicKey
	// Records is the directory of pairing records
	// (/etc/guix-offload/pairing/masters).
	Records string
	// User is the login for masters.
	User string
	// HomeBase is where a created login's home goes (/home).
	HomeBase string
	// Shell is a created login's shell (/bin/bash: sshd runs commands
	// through it, and bash reads ~/.bashrc then).
	Shell string
	// Guix is the guix program masters must find on the login's PATH;
	// a created login's ~/.bashrc puts its directory first.
	Guix string
	// Agent is the guix-offload-agent program masters run there as the
	// relay to the daemon; a created login's ~/.bashrc puts its
	// directory on PATH too.
	Agent string
	// Accounts creates the login when missing.
	Accounts Accounts
	// Now is the clock; nil is time.Now.
	Now func() time.Time
}

// DefaultMachineRecords is where a build machine keeps its pairing
// records.
const DefaultMachineRecords = "/etc/guix-offload/pairing/masters"

func (m *Machine) accountFile() string { return filepath.Join(m.Records, "..", "login.json") }

func (m *Machine) now() time.Time {
	if m.Now != nil {
		return m.Now()
	}
	return time.Now()
}

// Apply makes the machine's changes for master: its Guix key in the ACL,
// the login (created when missing), its SSH key in the login's
// authorized_keys with [AuthorizedKeyOptions], and a record. On error
// nothing is left changed. The returned Undo puts every byte back, for a
// pairing the master did not complete.
func (m *Machine) Apply(ctx context.Context, master *Identity) (Undo, error) {
	j := newJournal()
	if err := m.apply(ctx, j, master); err != nil {
		return nil, errors.Join(err, j.rollback())
	}
	return j.rollback, nil
}

func (m *Machine) apply(ctx context.Context, j *journal, master *Identity) error {
	if master.Role != RoleMaster {
		return fmt.Errorf("apply: peer is a %s, not a master", master.Role)
	}
	if err := master.Validate(); err != nil {
		return err
	}
	recPath, err := recordPath(m.Records, master.Name)
	if err != nil {
		return err
	}
	if _, err := os.Stat(recPath); err == nil {
		return fmt.Errorf("master %s is already paired; remove it first with 'guix-offload-agent pair --remove %s'", master.Name, master.Name)
	}
	gk, err := master.Guix()
	if err != nil {
		return err
	}
	sk, err := master.SSH()
	if err != nil {
		return err
	}
	rec := &Record{Peer: *master, Paired: m.now().UTC()}
	if err := ensureArea(j, m.Records); err != nil {
		return err
	}
	if rec.ACL, err = authorize(j, m.ACL, gk, m.OwnKey); err != nil {
		return err
	}
	home, uid, gid, err := m.login(ctx, j)
	if err != nil {
		return err
	}
	line := AuthorizedKeyOptions + " " + strings.TrimSpace(string(marshalSSH(sk))) + " " + keyComment + master.Name
	if rec.AuthorizedKeys, err = addKeyLine(j, filepath.Join(home, ".ssh", "authorized_keys"), line, uid, gid); err != nil {
		return err
	}
	return writeRecord(j, m.Records, rec)
}

// login returns the login's home, uid and gid, creating the login (and
// recording that pairing did) when missing.
func (m *Machine) login(ctx context.Context, j *journal) (string, int, int, error) {
	home, uid, gid, err := m.Accounts.Lookup(m.User)
	if err == nil {
		return home, uid, gid, nil
	}
	var unknown user.UnknownUserError
	if !errors.As(err, &unknown) {
		return "", 0, 0, fmt.Errorf("look up login %s: %w", m.User, err)
	}
	home = filepath.Join(m.HomeBase, m.User)
	if _, err := os.Lstat(home); err == nil {
		return "", 0, 0, fmt.Errorf("create login %s: %s already exists; create the login by hand or set another user in the agent's configuration", m.User, home)
	}
	if err := m.Accounts.Create(ctx, m.User, home, m.Shell); err != nil {
		return "", 0, 0, err
	}
	j.do(func() error { return m.Accounts.Delete(context.WithoutCancel(ctx), m.User) })
	home, uid, gid, err = m.Accounts.Lookup(m.User)
	if err != nil {
		return "", 0, 0, fmt.Errorf("look up login %s after creating it: %w", m.User, err)
	}
	made := len(j.made)
	if err := j.mkdirAll(filepath.Dir(home), 0o755); err != nil {
		return "", 0, 0, err
	}
	dirs := append([]string(nil), j.made[made:]...)
	if err := j.mkdir(home, 0o750, uid, gid); err != nil {
		return "", 0, 0, fmt.Errorf("create %s: %w", home, err)
	}
	var path []string
	for _, p := range []string{m.Guix, m.Agent} {
		if p != "" && !slices.Contains(path, transport.Quote(filepath.Dir(p))) {
			path = append(path, transport.Quote(filepath.Dir(p)))
		}
	}
	if len(path) > 0 {
		rc := filepath.Join(home, ".bashrc")
		text := "# Written by guix-offload pair: masters run guix and guix-offload-agent over SSH.\nexport PATH=" + strings.Join(path, ":") + `:"$PATH"` + "\n"
		if err := writeFile(j, rc, []byte(text), 0o644, uid, gid); err != nil {
			return "", 0, 0, err
		}
	}
	if err := writeShared(j, m.accountFile(), &shared{Created: true, What: m.User, Home: home, Dirs: dirs}); err != nil {
		return "", 0, 0, err
	}
	return home, uid, gid, nil
}

// Remove undoes what pairing with master added: its key in the ACL and
// in authorized_keys, and, with the last master gone, the login pairing
// created. Entries added since by other means stay.
func (m *Machine) Remove(ctx context.Context, master string) error {
	p, err := recordPath(m.Records, master)
	if err != nil {
		return err
	}
	rec, err := readRecord(p)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("master %s: %w", master, ErrNotPaired)
	}
	if err != nil {
		return err
	}
	j := newJournal()
	err = m.remove(ctx, j, p, rec)
	if err != nil {
		return errors.Join(err, j.rollback())
	}
	return nil
}

func (m *Machine) remove(ctx context.Context, j *journal, p string, rec *Record) error {
	if err := rec.ACL.undo(j); err != nil {
		return err
	}
	if err := rec.AuthorizedKeys.undo(j); err != nil {
		return err
	}
	acct, last, err := removePeer(j, m.Records, p, m.accountFile())
	if err != nil || !last {
		return err
	}
	if acct != nil && acct.Created {
		// The login and its home were pairing's; delete both last, as
		// nothing after this can be rolled back.
		if err := m.Accounts.Delete(ctx, acct.What); err != nil {
			return err
		}
		if acct.Home != "" && filepath.IsAbs(acct.Home) && filepath.Clean(acct.Home) != "/" {
			if err := os.RemoveAll(acct.Home); err != nil {
				return fmt.Errorf("remove %s: %w", acct.Home, err)
			}
		}
		removeDirs(acct.Dirs...)
	}
	return cleanArea(j, m.Records)
}
