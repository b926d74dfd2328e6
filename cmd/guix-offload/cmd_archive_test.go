package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/guix-offload/guix-offload/internal/cli"
)

// The fixtures made by real Guix, kept by the packages that read them.
const (
	fixtureACL    = "../../internal/nar/testdata/acl"
	fixtureExport = "../../internal/nar/testdata/export-r-ref.txt.bin"
	fixtureSec    = "../../internal/nar/testdata/signing-key.sec"
	fixtureFP     = "6a05:b22d:8adc:2111:d029:6d63:fbf8:2a09"
)

func TestArchiveCheck(t *testing.T) {
	genuine, err := os.ReadFile(fixtureExport)
	if err != nil {
		t.Fatal(err)
	}
	damaged := bytes.Clone(genuine)
	damaged[bytes.Index(damaged, []byte("hello world"))] ^= 1
	emptyACL := t.TempDir() + "/acl"
	os.WriteFile(emptyACL, []byte("(acl)"), 0o644)
	tests := []struct {
		name     string
		acl      string
		stream   []byte
		code     int      // 0: success
		contains []string // in stdout
	}{
		{"genuine", fixtureACL, genuine, 0, []string{
			"/gnu/store/3qfa38x5ns7r5wn2mjnd2vnrsj1wircv-hello.txt\n  references: none\n  deriver: none\n  signer: ecdsa-ed25519 " + fixtureFP + "\n  verdict: ok\n",
			"/gnu/store/8q6kwaijra99ckjgmgb9kdlli3b7g8dw-ref.txt\n  references: /gnu/store/3qfa38x5ns7r5wn2mjnd2vnrsj1wircv-hello.txt\n",
		}},
		{"damaged content", fixtureACL, damaged, 1, []string{"verdict: FAIL: signature is not for this content", "ref.txt\n  references"}},
		{"unknown signer", emptyACL, genuine, 1, []string{"verdict: FAIL: signed by a key that is not authorized"}},
		{"truncated", fixtureACL, genuine[:500], 1, nil},
		{"missing ACL", t.TempDir() + "/none", genuine, 2, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			err := runArchiveCheck(context.Background(), archiveCheckOptions{acl: tt.acl}, "-", bytes.NewReader(tt.stream), &out)
			var exit cli.ExitError
			switch {
			case tt.code == 0 && err != nil:
				t.Fatalf("error %v\n%s", err, out.String())
			case tt.code != 0 && (!errors.As(err, &exit) || exit.Code != tt.code):
				t.Fatalf("error %v, want exit status %d\n%s", err, tt.code, out.String())
			}
			for _, s := range tt.contains {
				if !strings.Contains(out.String(), s) {
					t.Errorf("output lacks %q:\n%s", s, out.String())
				}
			}
		})
	}
	// A file argument works like standard input.
	var out bytes.Buffer
	if err := runArchiveCheck(context.Background(), archiveCheckOptions{acl: fixtureACL}, fixtureExport, nil, &out); err != nil {
		t.Fatal(err)
	}
	if strings.Count(out.String(), "verdict: ok") != 2 {
		t.Errorf("output:\n%s", out.String())
	}
}

func TestKeysShow(t *testing.T) {
	for _, tt := range []struct{ file, want string }{
		{fixtureACL, "ecdsa-ed25519 " + fixtureFP + "\n"},
		{fixtureSec, "ecdsa-ed25519 " + fixtureFP + " (secret key)\n"},
	} {
		var out, errOut bytes.Buffer
		if err := runKeysShow(keysShowOptions{}, tt.file, nil, &out, &errOut); err != nil {
			t.Fatal(err)
		}
		if out.String() != tt.want {
			t.Errorf("keys show %s: %q, want %q", tt.file, out.String(), tt.want)
		}
		if strings.Contains(out.String(), "7A274B0E") {
			t.Errorf("keys show printed the secret")
		}
	}
	var out bytes.Buffer
	err := runKeysShow(keysShowOptions{}, "-", strings.NewReader("(public-key (ecc (curve Ed25519) (q #F7#)))"), &out, &out)
	if err == nil || !strings.Contains(err.Error(), "-:1:34") {
		t.Errorf("bad key: %v, want an error naming -:1:34", err)
	}
}
