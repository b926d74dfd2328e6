package discovery

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// signedNow is the test announcement signed with the fixture key now.
func signedNow(t *testing.T) *Announcement {
	t.Helper()
	a := testAnnouncement(t)
	a.Time = time.Now().Truncate(time.Second)
	if err := a.Sign(fixtureKey(t)); err != nil {
		t.Fatal(err)
	}
	return a
}

// signedReceived is signedNow as a master receives it from its first
// address.
func signedReceived(t *testing.T) *Announcement {
	t.Helper()
	a := signedNow(t)
	return received(t, a, a.TXT(), "169.254.1.2")
}

// forged is a signed announcement whose load was changed after signing:
// its signature does not verify.
func forged(t *testing.T) *Announcement {
	t.Helper()
	a := signedNow(t)
	txt := a.TXT()
	for i, s := range txt {
		if strings.HasPrefix(s, "load=") {
			txt[i] = "load=0.01"
		}
	}
	return received(t, a, txt, "169.254.1.2")
}

func knownGoodEntry(a *Announcement) string {
	id := knownGoodID(sigID{key: a.SigningKey, sig: a.Sig, hash: a.SignedHash()})
	return fmt.Sprintf("%x\n", id)
}

func judgeWith(t *testing.T, kg *KnownGood, a *Announcement) (bool, string) {
	t.Helper()
	p := &ACLPolicy{ACL: fixtureACL(t), File: "testdata/acl", KnownGood: kg}
	return p.Judge(a, time.Now())
}

// TestKnownGoodRoundTrip: a good signature found in one run is saved and
// found again in the next; a bad one is never saved; nothing is written
// when nothing is new.
func TestKnownGoodRoundTrip(t *testing.T) {
	file := filepath.Join(t.TempDir(), "cache", "guix-offload", "good-signatures")
	kg, err := OpenKnownGood(file)
	if err != nil {
		t.Fatal(err)
	}
	good, bad := signedReceived(t), forged(t)
	if ok, why := judgeWith(t, kg, good); !ok {
		t.Fatalf("good announcement refused: %s", why)
	}
	if ok, _ := judgeWith(t, kg, bad); ok {
		t.Fatal("forged announcement accepted")
	}
	if err := kg.Save(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if want := knownGoodMagic + "\n" + knownGoodEntry(good); string(data) != want {
		t.Fatalf("file:\n%s\nwant:\n%s", data, want)
	}
	for path, want := range map[string]os.FileMode{file: 0o600, filepath.Dir(file): 0o700} {
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, %v; want %v", path, fi.Mode().Perm(), err, want)
		}
	}

	again, err := OpenKnownGood(file)
	if err != nil {
		t.Fatal(err)
	}
	if !again.has(sigID{key: good.SigningKey, sig: good.Sig, hash: good.SignedHash()}) {
		t.Fatal("saved signature not found again")
	}
	if ok, why := judgeWith(t, again, signedReceived(t)); !ok {
		t.Fatalf("known-good announcement refused: %s", why)
	}
	before, _ := os.Stat(file)
	time.Sleep(10 * time.Millisecond)
	if err := again.Save(); err != nil {
		t.Fatal(err)
	}
	if after, _ := os.Stat(file); !after.ModTime().Equal(before.ModTime()) {
		t.Error("Save rewrote the file with nothing new")
	}
}

// TestKnownGoodOnlyTheseBytes: an entry is for one signature of one
// record: the same signature over changed bytes is checked again, and
// refused.
func TestKnownGoodOnlyTheseBytes(t *testing.T) {
	file := filepath.Join(t.TempDir(), "good-signatures")
	good := signedReceived(t)
	if err := os.WriteFile(file, []byte(knownGoodMagic+"\n"+knownGoodEntry(good)), 0o600); err != nil {
		t.Fatal(err)
	}
	kg, err := OpenKnownGood(file)
	if err != nil {
		t.Fatal(err)
	}
	bad := forged(t)
	if bad.Sig != good.Sig {
		t.Fatal("the forgery should reuse the good signature")
	}
	if ok, _ := judgeWith(t, kg, bad); ok {
		t.Fatal("changed record accepted on the strength of its original's entry")
	}
}

// TestKnownGoodUnsafe is the attack: whoever may write the file can make
// the policy accept a forged announcement (the first case shows it, with
// a file its owner wrote), so a file or directory that someone else owns
// or may write is not believed.
func TestKnownGoodUnsafe(t *testing.T) {
	bad := forged(t)
	entry := knownGoodMagic + "\n" + knownGoodEntry(bad)

	// The owner's own file is believed: this is what the checks below
	// keep others from doing.
	dir := t.TempDir()
	own := filepath.Join(dir, "good-signatures")
	if err := os.WriteFile(own, []byte(entry), 0o600); err != nil {
		t.Fatal(err)
	}
	kg, err := OpenKnownGood(own)
	if err != nil {
		t.Fatal(err)
	}
	if ok, _ := judgeWith(t, kg, bad); !ok {
		t.Fatal("the owner's entry was not used")
	}

	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, dir, file string)
		want  error
	}{
		{"file writable by its group", func(t *testing.T, dir, file string) {
			chmod(t, file, 0o620)
		}, ErrKnownGoodUnsafe},
		{"file writable by all", func(t *testing.T, dir, file string) {
			chmod(t, file, 0o666)
		}, ErrKnownGoodUnsafe},
		{"directory writable by all", func(t *testing.T, dir, file string) {
			chmod(t, dir, 0o777)
		}, ErrKnownGoodUnsafe},
		{"file owned by someone else", func(t *testing.T, dir, file string) {
			chown(t, file, 4242)
		}, ErrKnownGoodUnsafe},
		{"directory owned by someone else", func(t *testing.T, dir, file string) {
			chown(t, dir, 4242)
		}, ErrKnownGoodUnsafe},
		{"symbolic link", func(t *testing.T, dir, file string) {
			other := filepath.Join(t.TempDir(), "elsewhere")
			if err := os.Rename(file, other); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(other, file); err != nil {
				t.Fatal(err)
			}
		}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "d")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			file := filepath.Join(dir, "good-signatures")
			if err := os.WriteFile(file, []byte(entry), 0o600); err != nil {
				t.Fatal(err)
			}
			tc.setup(t, dir, file)
			kg, err := OpenKnownGood(file)
			if err == nil {
				ok, _ := judgeWith(t, kg, bad)
				t.Fatalf("file believed (forgery accepted: %v)", ok)
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("error %v does not wrap %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), dir) {
				t.Errorf("error %q does not name the file or directory", err)
			}
		})
	}

	// A sticky directory writable by all (/tmp) lets nobody replace our
	// file: the file is believed.
	sticky := filepath.Join(t.TempDir(), "tmp")
	if err := os.Mkdir(sticky, 0o700); err != nil {
		t.Fatal(err)
	}
	chmod(t, sticky, os.ModeSticky|0o777)
	if err := os.WriteFile(filepath.Join(sticky, "g"), []byte(entry), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenKnownGood(filepath.Join(sticky, "g")); err != nil {
		t.Errorf("file in a sticky directory: %v", err)
	}
}

func chmod(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func chown(t *testing.T, path string, uid int) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to give a file away")
	}
	if err := os.Chown(path, uid, -1); err != nil {
		t.Fatal(err)
	}
}

// TestKnownGoodDamaged: a damaged file is an error naming the file and
// line, and a missing one is empty.
func TestKnownGoodDamaged(t *testing.T) {
	dir := t.TempDir()
	if kg, err := OpenKnownGood(filepath.Join(dir, "missing")); err != nil || len(kg.old) != 0 {
		t.Fatalf("missing file: %v, %v", kg, err)
	}
	for _, tc := range []struct{ data, want string }{
		{"", ":1: not a known-good signatures file"},
		{"something else\n", ":1: not a known-good signatures file"},
		{knownGoodMagic + "\n" + strings.Repeat("0", 64) + "\nxyz\n", ":3: not a signature digest"},
		{knownGoodMagic + "\n" + strings.Repeat("g", 64) + "\n", ":2: not a signature digest"},
	} {
		file := filepath.Join(dir, "g")
		if err := os.WriteFile(file, []byte(tc.data), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := OpenKnownGood(file)
		if err == nil || !strings.Contains(err.Error(), file+tc.want) {
			t.Errorf("%q: error %v, want %q", tc.data, err, file+tc.want)
		}
	}
}

// TestKnownGoodBounded: the file keeps this run's signatures first and
// at most maxKnownGood in all; a larger file is read up to the bound.
func TestKnownGoodBounded(t *testing.T) {
	file := filepath.Join(t.TempDir(), "g")
	var b bytes.Buffer
	b.WriteString(knownGoodMagic + "\n")
	for i := range maxKnownGood + 10 {
		fmt.Fprintf(&b, "%064x\n", i)
	}
	if err := os.WriteFile(file, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	kg, err := OpenKnownGood(file)
	if err != nil {
		t.Fatal(err)
	}
	if len(kg.old) != maxKnownGood {
		t.Fatalf("read %d entries, want %d", len(kg.old), maxKnownGood)
	}
	good := signedReceived(t)
	if ok, why := judgeWith(t, kg, good); !ok {
		t.Fatal(why)
	}
	if err := kg.Save(); err != nil {
		t.Fatal(err)
	}
	again, err := OpenKnownGood(file)
	if err != nil {
		t.Fatal(err)
	}
	if len(again.old) != maxKnownGood || !again.has(sigID{key: good.SigningKey, sig: good.Sig, hash: good.SignedHash()}) {
		t.Fatalf("after Save: %d entries (want %d), this run's kept: %v", len(again.old), maxKnownGood,
			again.has(sigID{key: good.SigningKey, sig: good.Sig, hash: good.SignedHash()}))
	}
}

func TestDefaultKnownGoodFile(t *testing.T) {
	for _, tc := range []struct{ xdg, home, want string }{
		{"/x/cache", "/home/u", "/x/cache/guix-offload/good-signatures"},
		{"", "/home/u", "/home/u/.cache/guix-offload/good-signatures"},
		{"relative", "/home/u", "/home/u/.cache/guix-offload/good-signatures"},
		{"", "", ""},
	} {
		env := map[string]string{"XDG_CACHE_HOME": tc.xdg, "HOME": tc.home}
		if got := DefaultKnownGoodFile(func(k string) string { return env[k] }); got != tc.want {
			t.Errorf("XDG_CACHE_HOME=%q HOME=%q: %q, want %q", tc.xdg, tc.home, got, tc.want)
		}
	}
}

// TestKnownGoodBoundedInMemory: a long-running watcher adding signature
// after signature keeps at most twice the file's bound in memory, the
// newest ones.
func TestKnownGoodBoundedInMemory(t *testing.T) {
	kg := NewKnownGood(filepath.Join(t.TempDir(), "g"))
	var last sigID
	for i := range 3*maxKnownGood + 5 {
		last = sigID{key: "k", sig: fmt.Sprint(i)}
		kg.add(last)
	}
	if n := len(kg.old) + len(kg.now); n > 2*maxKnownGood {
		t.Fatalf("%d entries in memory, want at most %d", n, 2*maxKnownGood)
	}
	if !kg.has(last) || kg.has(sigID{key: "k", sig: "0"}) {
		t.Error("kept the oldest instead of the newest")
	}
}
