package discovery

import (
	"testing"
	"time"
)

// BenchmarkACLPolicyJudge measures what judging one received signed
// announcement costs (the signature check dominates): the hook pays it
// once per announcement it has not judged before.
func BenchmarkACLPolicyJudge(b *testing.B) {
	policy := &ACLPolicy{ACL: fixtureACL(b), File: "testdata/acl"}
	a := testAnnouncement(b)
	a.Time = time.Now()
	if err := a.Sign(fixtureKey(b)); err != nil {
		b.Fatal(err)
	}
	r := received(b, a, a.TXT(), "169.254.1.2")
	now := time.Now()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if ok, reason := policy.Judge(r, now); !ok {
			b.Fatal(reason)
		}
	}
}
