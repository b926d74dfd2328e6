package agent

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/guix-offload/guix-offload/internal/tomlconf"
)

func TestParseTSIGKey(t *testing.T) {
	k, err := ReadTSIGKey("testdata/builders.key")
	if err != nil {
		t.Fatal(err)
	}
	if k.Name != "builders.example." || k.Algorithm != dns.HmacSHA256 || k.Secret != "445AkRDrSVrn5xdodNK0RJ7WMy1bZYJRuZDaFKU2PG4=" {
		t.Errorf("got %+v", k)
	}
	k, err = ParseTSIGKey("f", []byte("# made by hand\n/* a\n comment */ key Up.Example { // x\n algorithm HMAC-SHA512.; secret \"YWJj\"; };\n"))
	if err != nil {
		t.Fatal(err)
	}
	if k.Name != "up.example." || k.Algorithm != dns.HmacSHA512 || k.Secret != "YWJj" {
		t.Errorf("got %+v", k)
	}
}

func TestParseTSIGKeyErrors(t *testing.T) {
	for _, tc := range []struct{ text, want string }{
		{"", "f:1: key: no key statement"},
		{"zone \"x\" {};", "f:1: key: \"zone\" where a key statement"},
		{"key \"k\" {\n algorithm hmac-sha256;\n secret \"YWJj\";\n}", "f:4: key: file ends where \";\" is expected"},
		{"key \"k\" {\n algorithm hmac-foo;\n secret \"YWJj\";\n};", "f:2: algorithm: unknown algorithm \"hmac-foo\""},
		{"key \"k\" {\n algorithm hmac-sha256;\n secret \"not base64!\";\n};", "f:3: secret: not base64"},
		{"key \"k\" {\n algorithm hmac-sha256;\n};", "f:3: secret: missing"},
		{"key \"k\" {\n secret \"YWJj\";\n};", "f:3: algorithm: missing"},
		{"key \"k\" {\n algorithm hmac-sha256\n secret \"YWJj\";\n};", "f:3: algorithm: \"secret\" where \";\" is expected"},
		{"key \"k\" {\n algorithm hmac-sha256;\n secret \"YWJj\";\n owner x;\n};", "f:4: key: unknown field \"owner\""},
		{"key \"k\" { algorithm hmac-sha256; secret \"YWJj\"; };\nkey \"j\" {};", "f:2: key: more than one statement"},
		{"key \"k\" { secret \"YWJj;\n};\n", "f:1: quoted string is never closed"},
		{"/* key", "f:1: comment /* is never closed"},
		{"key \"a..b\" { };", "f:1: key: \"a..b\" is not a key name"},
	} {
		_, err := ParseTSIGKey("f", []byte(tc.text))
		var ce *tomlconf.Error
		if err == nil || !errors.As(err, &ce) || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("ParseTSIGKey(%q) = %v; want %q…", tc.text, err, tc.want)
		}
	}
}

// TestParseTSIGKeyKeygen: what BIND's own tsig-keygen writes parses.
func TestParseTSIGKeyKeygen(t *testing.T) {
	if _, err := exec.LookPath("tsig-keygen"); err != nil {
		t.Skip("tsig-keygen (bind9-utils) not installed")
	}
	for _, alg := range []string{"hmac-sha256", "hmac-sha512", "hmac-sha1"} {
		out, err := exec.Command("tsig-keygen", "-a", alg, "agent-key").Output()
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), "k")
		if err := os.WriteFile(path, out, 0o600); err != nil {
			t.Fatal(err)
		}
		k, err := ReadTSIGKey(path)
		if err != nil {
			t.Fatalf("%s: %v\n%s", alg, err, out)
		}
		if k.Name != "agent-key." || k.Algorithm != alg+"." || !strings.Contains(string(out), k.Secret) {
			t.Errorf("%s: got %+v from\n%s", alg, k, out)
		}
	}
}

// FuzzParseTSIGKey: arbitrary input never panics, and a key that
// parses round-trips through the format tsig-keygen writes.
func FuzzParseTSIGKey(f *testing.F) {
	f.Add([]byte("key \"k\" { algorithm hmac-sha256; secret \"YWJj\"; };"))
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := ParseTSIGKey("f", data)
		if err != nil {
			return
		}
		text := "key \"" + k.Name + "\" {\n\talgorithm " + k.Algorithm + ";\n\tsecret \"" + k.Secret + "\";\n};\n"
		k2, err := ParseTSIGKey("f", []byte(text))
		if err != nil || *k2 != *k {
			t.Fatalf("round trip of %+v: %+v, %v", k, k2, err)
		}
	})
}
