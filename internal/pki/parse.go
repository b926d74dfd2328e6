package pki

import (
	"fmt"

	"github.com/guix-offload/guix-offload/scm"
)

// Parse reads any of the S-expressions this package knows — a public key,
// a private key, an ACL or a signature — and returns a *[PublicKey],
// *[PrivateKey], *[ACL] or *[Signature]. It is for tools that show what a
// file holds.
func Parse(data []byte, file string) (any, error) {
	v, err := scm.ReadGcrypt(data, file)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", file, err)
	}
	switch h := head(v); h {
	case "public-key":
		return publicKeyFrom(v, true)
	case "private-key":
		return privateKeyFrom(v)
	case "acl":
		return ParseACL(data, file)
	case "signature":
		return ParseSignature(data, file)
	default:
		return nil, fmt.Errorf("%s: expected (public-key …), (private-key …), (acl …) or (signature …), found (%s …)", v.Pos(), h)
	}
}
