package pairing

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/guix-offload/guix-offload/internal/pki"
)

// DefaultMasterRecords is where a master keeps its pairing records.
const DefaultMasterRecords = "/etc/guix-offload/pairing/machines"

// Master is the master's side of pairing: it authorizes the machine's
// Guix key and makes sure root has the SSH key the hook logs in with.
type Master struct {
	// ACL is the Guix ACL (/etc/guix/acl).
	ACL string
	// OwnKey is this master's Guix public key, put in an ACL that is
	// created (as Guix does); nil for none.
	OwnKey *pki.PublicKey
	// Records is the directory of pairing records
	// (/etc/guix-offload/pairing/machines).
	Records string
	// SSHKey is the private key the hook and `test` log in with (the
	// hook's private-key, else root's ~/.ssh/id_rsa).
	SSHKey string
	// Now is the clock; nil is time.Now.
	Now func() time.Time
}

func (m *Master) keyFile() string { return filepath.Join(m.Records, "..", "ssh-key.json") }

// EnsureSSHKey returns the public half of the hook's SSH key, creating
// the key when there is none (recorded, so that removing the last paired
// machine deletes it again). An Ed25519 key is made, RSA-3072 when the
// file is named id_rsa (what Guix and the hook default to). The Undo
// removes a key just made, for a pairing that did not complete.
func (m *Master) EnsureSSHKey() (pub string, undo Undo, err error) {
	j := newJournal()
	pub, _, err = m.ensureSSHKey(j)
	if err != nil {
		return "", nil, errors.Join(err, j.rollback())
	}
	return pub, j.rollback, nil
}

// SSHPublicKey reads the public half of the hook's SSH key without
// creating one; it returns an error wrapping fs.ErrNotExist when there
// is none.
func (m *Master) SSHPublicKey() (string, error) {
	data, err := os.ReadFile(m.SSHKey)
	if err != nil {
		return "", fmt.Errorf("read SSH key: %w", err)
	}
	s, err := ssh.ParsePrivateKey(data)
	if err != nil {
		return "", fmt.Errorf("SSH key %s: %w (the hook needs a key without passphrase)", m.SSHKey, err)
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(s.PublicKey()))), nil
}

func (m *Master) ensureSSHKey(j *journal) (string, bool, error) {
	pub, err := m.SSHPublicKey()
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return pub, false, err
	}
	var key any
	if strings.Contains(filepath.Base(m.SSHKey), "rsa") {
		key, err = rsa.GenerateKey(rand.Reader, 3072)
	} else {
		_, key, err = ed25519.GenerateKey(rand.Reader)
	}
	if err != nil {
		return "", false, fmt.Errorf("make SSH key: %w", err)
	}
	block, err := ssh.MarshalPrivateKey(key, "root@guix-offload-pair")
	if err != nil {
		return "", false, fmt.Errorf("make SSH key: %w", err)
	}
	made := len(j.made)
	if err := j.mkdirAll(filepath.Dir(m.SSHKey), 0o700); err != nil {
		return "", false, fmt.Errorf("make SSH key: %w", err)
	}
	dirs := append([]string(nil), j.made[made:]...)
	if err := writeFile(j, m.SSHKey, pem.EncodeToMemory(block), 0o600, -1, -1); err != nil {
		return "", false, err
	}
	pub, err = m.SSHPublicKey()
	if err != nil {
		return "", false, err
	}
	if err := writeFile(j, m.SSHKey+".pub", []byte(pub+" root@guix-offload-pair\n"), 0o644, -1, -1); err != nil {
		return "", false, err
	}
	if err := ensureArea(j, m.Records); err != nil {
		return "", false, err
	}
	if err := writeShared(j, m.keyFile(), &shared{Created: true, What: m.SSHKey, Dirs: dirs}); err != nil {
		return "", false, err
	}
	return pub, true, nil
}

// Apply makes the master's changes for machine: its Guix key in the ACL
// and a record (the SSH key was made by [Master.EnsureSSHKey] before the
// exchange, since its public half is part of the code). On error nothing
// is left changed.
func (m *Master) Apply(_ context.Context, machine *Identity) (Undo, error) {
	j := newJournal()
	if err := m.apply(j, machine); err != nil {
		return nil, errors.Join(err, j.rollback())
	}
	return j.rollback, nil
}

func (m *Master) apply(j *journal, machine *Identity) error {
	if machine.Role != RoleMachine {
		return fmt.Errorf("apply: peer is a %s, not a machine", machine.Role)
	}
	if err := machine.Validate(); err != nil {
		return err
	}
	p, err := recordPath(m.Records, machine.Name)
	if err != nil {
		return err
	}
	if _, err := os.Stat(p); err == nil {
		return fmt.Errorf("machine %s is already paired; remove it first with 'guix-offload pair --remove %s'", machine.Name, machine.Name)
	}
	gk, err := machine.Guix()
	if err != nil {
		return err
	}
	now := time.Now
	if m.Now != nil {
		now = m.Now
	}
	rec := &Record{Peer: *machine, Paired: now().UTC()}
	if err := ensureArea(j, m.Records); err != nil {
		return err
	}
	if rec.ACL, err = authorize(j, m.ACL, gk, m.OwnKey); err != nil {
		return err
	}
	return writeRecord(j, m.Records, rec)
}

// Remove undoes what pairing with machine added: its key in the ACL and,
// with the last machine gone, the SSH key pairing created. Entries added
// since by other means stay.
func (m *Master) Remove(machine string) error {
	p, err := recordPath(m.Records, machine)
	if err != nil {
		return err
	}
	rec, err := readRecord(p)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("machine %s: %w", machine, ErrNotPaired)
	}
	if err != nil {
		return err
	}
	j := newJournal()
	if err := m.remove(j, p, rec); err != nil {
		return errors.Join(err, j.rollback())
	}
	return nil
}

func (m *Master) remove(j *journal, p string, rec *Record) error {
	if err := rec.ACL.undo(j); err != nil {
		return err
	}
	k, last, err := removePeer(j, m.Records, p, m.keyFile())
	if err != nil || !last {
		return err
	}
	if k != nil && k.Created && k.What == m.SSHKey {
		for _, f := range []string{m.SSHKey, m.SSHKey + ".pub"} {
			if err := removeFile(j, f); err != nil {
				return err
			}
		}
		// The backups removeFile kept are of a key pairing made: with the
		// key gone for good, they go too, and so do directories made for it.
		os.Remove(m.SSHKey + BackupSuffix)
		os.Remove(m.SSHKey + ".pub" + BackupSuffix)
		removeDirs(k.Dirs...)
	}
	return cleanArea(j, m.Records)
}

func marshalSSH(k ssh.PublicKey) []byte { return ssh.MarshalAuthorizedKey(k) }
