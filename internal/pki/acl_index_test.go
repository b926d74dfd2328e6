package pki

import "testing"

// TestACLIndex: an ACL parsed from its file or made with NewACL, and a
// zero one, authorize exactly their keys.
func TestACLIndex(t *testing.T) {
	var keys []*PublicKey
	for range 3 {
		k, err := GenerateKey(TypeECDSA, nil)
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k.Public())
	}
	made := NewACL(keys[:2]...)
	parsed, err := ParseACL(made.MarshalSexp(), "acl")
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []*ACL{made, parsed} {
		if !a.Authorizes(keys[0]) || !a.Authorizes(keys[1]) || a.Authorizes(keys[2]) {
			t.Errorf("ACL of %d keys authorizes wrongly", len(a.Keys()))
		}
	}
	if (&ACL{}).Authorizes(keys[0]) || (*ACL)(nil).Authorizes(keys[0]) {
		t.Error("an empty ACL authorizes")
	}
}

func BenchmarkACLAuthorizes(b *testing.B) {
	var keys []*PublicKey
	for range 1000 {
		k, err := GenerateKey(TypeECDSA, nil)
		if err != nil {
			b.Fatal(err)
		}
		keys = append(keys, k.Public())
	}
	a := NewACL(keys...)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if !a.Authorizes(keys[i%len(keys)]) {
			b.Fatal("not authorized")
		}
	}
}
