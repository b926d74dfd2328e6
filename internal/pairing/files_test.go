package pairing

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"testing"

	"github.com/guix-offload/guix-offload/internal/pki"
)

// fakeAccounts keeps logins in memory.
type fakeAccounts struct{ homes map[string]string }

func (f *fakeAccounts) Lookup(name string) (string, int, int, error) {
	h, ok := f.homes[name]
	if !ok {
		return "", 0, 0, user.UnknownUserError(name)
	}
	return h, os.Getuid(), os.Getgid(), nil
}

func (f *fakeAccounts) Create(_ context.Context, name, home, _ string) error {
	f.homes[name] = home
	return nil
}

func (f *fakeAccounts) Delete(_ context.Context, name string) error {
	delete(f.homes, name)
	return nil
}

// snapshot is every file and directory under root with its content and
// mode; backups (names ending in ~) are left out when noBackups.
func snapshot(t *testing.T, root string, noBackups bool) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if noBackups && strings.HasSuffix(p, BackupSuffix) {
			return nil
		}
		st, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if d.Type()&fs.ModeSymlink != 0 {
			target, err := os.Readlink(p)
			out[rel] = "symlink " + target
			return err
		}
		if d.IsDir() {
			out[rel] = "dir " + st.Mode().String()
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		out[rel] = st.Mode().String() + "\n" + string(data)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sameFiles(t *testing.T, what string, got, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %s is %q, want %q", what, k, got[k], v)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%s: %s left behind", what, k)
		}
	}
}

type machineEnv struct {
	root     string
	machine  *Machine
	accounts *fakeAccounts
	own      *pki.PublicKey
}

func newMachineEnv(t *testing.T, withACL bool) *machineEnv {
	root := t.TempDir()
	for _, d := range []string{"etc/guix", "home"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	own := testKey(t, 50)
	acl := filepath.Join(root, "etc/guix/acl")
	if withACL {
		data, err := os.ReadFile("../../agent/testdata/acl")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(acl, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	fa := &fakeAccounts{homes: map[string]string{}}
	return &machineEnv{root: root, accounts: fa, own: own, machine: &Machine{
		ACL: acl, OwnKey: own, Records: filepath.Join(root, "etc/guix-offload/pairing/masters"),
		User: "offload", HomeBase: filepath.Join(root, "home"), Shell: "/bin/bash",
		Guix: "/var/guix/profiles/per-user/root/current-guix/bin/guix", Agent: "/opt/guix offload/bin/guix-offload-agent", Accounts: fa,
	}}
}

func testKey(t *testing.T, seed uint64) *pki.PublicKey {
	k, err := pki.GenerateKey(pki.TypeECDSA, seeded(seed))
	if err != nil {
		t.Fatal(err)
	}
	return k.Public()
}

func TestMachineApplyAndUndo(t *testing.T) {
	for _, withACL := range []bool{true, false} {
		e := newMachineEnv(t, withACL)
		before := snapshot(t, e.root, false)
		master := testIdentity(t, RoleMaster, "master1", 1)
		undo, err := e.machine.Apply(t.Context(), &master)
		if err != nil {
			t.Fatal(err)
		}
		acl, err := pki.ReadACL(e.machine.ACL)
		if err != nil {
			t.Fatal(err)
		}
		gk, _ := master.Guix()
		if !acl.Authorizes(gk) {
			t.Errorf("ACL lacks the master's key")
		}
		if !withACL && !acl.Authorizes(e.own) {
			t.Errorf("a created ACL lacks the machine's own key")
		}
		ak, err := os.ReadFile(filepath.Join(e.root, "home/offload/.ssh/authorized_keys"))
		if err != nil {
			t.Fatal(err)
		}
		want := AuthorizedKeyOptions + " " + master.SSHKey + " guix-offload-pair:master1\n"
		if string(ak) != want {
			t.Errorf("authorized_keys is %q, want %q", ak, want)
		}
		rc, _ := os.ReadFile(filepath.Join(e.root, "home/offload/.bashrc"))
		if !strings.Contains(string(rc), "export PATH=/var/guix/profiles/per-user/root/current-guix/bin:'/opt/guix offload/bin':\"$PATH\"") {
			t.Errorf(".bashrc is %q", rc)
		}
		if _, ok := e.accounts.homes["offload"]; !ok {
			t.Errorf("login not created")
		}
		recs, err := List(e.machine.Records)
		if err != nil || len(recs) != 1 || recs[0].Peer != master {
			t.Errorf("records %v, %v", recs, err)
		}
		if err := undo(); err != nil {
			t.Fatal(err)
		}
		sameFiles(t, "after undo", snapshot(t, e.root, false), before)
		if len(e.accounts.homes) != 0 {
			t.Errorf("login left after undo")
		}
	}
}

// The ACL text is only extended: every byte of the original stays, and
// removal gives the original back even with another entry added since.
func TestMachineRemove(t *testing.T) {
	e := newMachineEnv(t, true)
	before := snapshot(t, e.root, true)
	origACL, _ := os.ReadFile(e.machine.ACL)
	m1 := testIdentity(t, RoleMaster, "master1", 1)
	m2 := testIdentity(t, RoleMaster, "master2", 2)
	if _, err := e.machine.Apply(t.Context(), &m1); err != nil {
		t.Fatal(err)
	}
	cur, _ := os.ReadFile(e.machine.ACL)
	if !bytes.HasPrefix(cur, bytes.TrimRight(origACL, ")\n ")) {
		t.Errorf("the ACL's original text was changed:\n%s", cur)
	}
	if b, _ := os.ReadFile(e.machine.ACL + BackupSuffix); !bytes.Equal(b, origACL) {
		t.Errorf("the previous ACL was not kept")
	}
	// Pairing again is refused, and adds nothing.
	if _, err := e.machine.Apply(t.Context(), &m1); err == nil || !strings.Contains(err.Error(), "already paired") {
		t.Errorf("second pairing: %v", err)
	}
	if again, _ := os.ReadFile(e.machine.ACL); !bytes.Equal(again, cur) {
		t.Errorf("second pairing changed the ACL")
	}
	if _, err := e.machine.Apply(t.Context(), &m2); err != nil {
		t.Fatal(err)
	}
	// Someone authorizes another key by hand.
	other := testKey(t, 77)
	if _, err := authorize(nil, e.machine.ACL, other, nil); err != nil {
		t.Fatal(err)
	}
	withOther, _ := os.ReadFile(e.machine.ACL)
	if err := e.machine.Remove(t.Context(), "master1"); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.accounts.homes["offload"]; !ok {
		t.Errorf("login deleted while master2 still uses it")
	}
	ak, _ := os.ReadFile(filepath.Join(e.root, "home/offload/.ssh/authorized_keys"))
	if strings.Contains(string(ak), "master1") || !strings.Contains(string(ak), "master2") {
		t.Errorf("authorized_keys after removing master1: %q", ak)
	}
	if err := e.machine.Remove(t.Context(), "master2"); err != nil {
		t.Fatal(err)
	}
	if err := e.machine.Remove(t.Context(), "master2"); err == nil {
		t.Errorf("removing twice succeeded")
	}
	acl, _ := os.ReadFile(e.machine.ACL)
	want, _ := insertEntry(origACL, aclEntry(other))
	if !bytes.Equal(acl, want) {
		t.Errorf("ACL after removal:\n%s\nwant the original plus the other key:\n%s\n(with it: %s)", acl, want, withOther)
	}
	// Without the other key, everything is as before (backups aside).
	if err := os.WriteFile(e.machine.ACL, origACL, 0o644); err != nil {
		t.Fatal(err)
	}
	sameFiles(t, "after removal", snapshot(t, e.root, true), before)
	if len(e.accounts.homes) != 0 {
		t.Errorf("login left after the last removal")
	}
}

func TestMachineRemoveCreatedACL(t *testing.T) {
	e := newMachineEnv(t, false)
	before := snapshot(t, e.root, true)
	m1 := testIdentity(t, RoleMaster, "master1", 1)
	if _, err := e.machine.Apply(t.Context(), &m1); err != nil {
		t.Fatal(err)
	}
	if err := e.machine.Remove(t.Context(), "master1"); err != nil {
		t.Fatal(err)
	}
	sameFiles(t, "after removal", snapshot(t, e.root, true), before)
}

// A key already authorized is not added twice, and removal leaves it.
func TestMachineKeyAlreadyAuthorized(t *testing.T) {
	e := newMachineEnv(t, true)
	m1 := testIdentity(t, RoleMaster, "master1", 1)
	gk, _ := m1.Guix()
	if _, err := authorize(nil, e.machine.ACL, gk, nil); err != nil {
		t.Fatal(err)
	}
	// The login exists, with the key already in authorized_keys.
	home := filepath.Join(e.root, "home/offload")
	e.accounts.homes["offload"] = home
	if err := os.MkdirAll(filepath.Join(home, ".ssh"), 0o700); err != nil {
		t.Fatal(err)
	}
	line := AuthorizedKeyOptions + " " + m1.SSHKey + " guix-offload-pair:master1"
	if err := os.WriteFile(filepath.Join(home, ".ssh/authorized_keys"), []byte("ssh-rsa AAAA other\n"+line+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, e.root, true)
	if _, err := e.machine.Apply(t.Context(), &m1); err != nil {
		t.Fatal(err)
	}
	acl, _ := pki.ReadACL(e.machine.ACL)
	if n := len(acl.Keys()); n != 2 {
		t.Errorf("ACL has %d keys, want 2 (no duplicate)", n)
	}
	if err := e.machine.Remove(t.Context(), "master1"); err != nil {
		t.Fatal(err)
	}
	sameFiles(t, "after removal", snapshot(t, e.root, true), before)
	if _, ok := e.accounts.homes["offload"]; !ok {
		t.Errorf("a login pairing did not create was deleted")
	}
}

func TestMasterApplyRemove(t *testing.T) {
	root := t.TempDir()
	m := &Master{ACL: filepath.Join(root, "etc/guix/acl"), OwnKey: testKey(t, 60),
		Records: filepath.Join(root, "etc/guix-offload/pairing/machines"), SSHKey: filepath.Join(root, "root/.ssh/id_ed25519")}
	for _, d := range []string{"etc/guix"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	before := snapshot(t, root, true)
	pub, undo, err := m.EnsureSSHKey()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(pub, "ssh-ed25519 ") {
		t.Errorf("made key %q, want ed25519", pub)
	}
	if err := undo(); err != nil {
		t.Fatal(err)
	}
	sameFiles(t, "after a refused pairing", snapshot(t, root, false), before)

	pub, _, err = m.EnsureSSHKey()
	if err != nil {
		t.Fatal(err)
	}
	if again, _, err := m.EnsureSSHKey(); err != nil || again != pub {
		t.Errorf("second EnsureSSHKey: %q, %v; want the same key", again, err)
	}
	b1 := testIdentity(t, RoleMachine, "builder1", 2)
	if _, err := m.Apply(t.Context(), &b1); err != nil {
		t.Fatal(err)
	}
	acl, err := pki.ReadACL(m.ACL)
	gk, _ := b1.Guix()
	if err != nil || !acl.Authorizes(gk) || !acl.Authorizes(m.OwnKey) {
		t.Errorf("ACL after pairing: %v", err)
	}
	if err := m.Remove("builder1"); err != nil {
		t.Fatal(err)
	}
	sameFiles(t, "after removal", snapshot(t, root, true), before)
}

// A login that points its ~/.ssh at another account's (root's) does not
// get root to write there.
func TestAuthorizedKeysElsewhere(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to own files as another uid")
	}
	e := newMachineEnv(t, true)
	home := filepath.Join(e.root, "home/offload")
	victim := filepath.Join(e.root, "root/.ssh")
	for _, d := range []string{home, victim} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(victim, filepath.Join(home, ".ssh")); err != nil {
		t.Fatal(err)
	}
	acct := &otherUID{fakeAccounts: e.accounts, uid: 4242}
	acct.homes["offload"] = home
	e.machine.Accounts = acct
	before := snapshot(t, e.root, false)
	m1 := testIdentity(t, RoleMaster, "master1", 1)
	if _, err := e.machine.Apply(t.Context(), &m1); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("Apply: %v, want a refusal naming the owner", err)
	}
	sameFiles(t, "after a refused write", snapshot(t, e.root, false), before)
}

// otherUID is a login with another uid than this process's.
type otherUID struct {
	*fakeAccounts
	uid int
}

func (o *otherUID) Lookup(name string) (string, int, int, error) {
	h, _, _, err := o.fakeAccounts.Lookup(name)
	return h, o.uid, o.uid, err
}
