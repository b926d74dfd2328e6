package candidates

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/guix-offload/guix-offload/discovery"
	"github.com/guix-offload/guix-offload/internal/atomicfile"
	"github.com/guix-offload/guix-offload/internal/pki"
	"github.com/guix-offload/guix-offload/scm"
)

// trustedOf returns the machines of the snapshot snap (the discovery
// snapshot file, or this hook's own browse) that the hook may use, and why it
// leaves out others the snapshot's writer trusted.
//
// Under trust "acl" the hook judges every machine itself, with its own
// ACL and [discovery.ACLPolicy], over the TXT record the snapshot keeps
// as received: the signature must verify with a key in the ACL, and the
// address the hook will connect to must be among the signed addresses.
// So a `discover --watch` run with a looser policy, an older ACL, or an
// edited snapshot file cannot widen what the hook uses. The signature's
// time is judged at each decision instead ([freshDiscovered]): the result
// of this function is kept while the snapshot is unchanged.
//
// A signature check costs about a tenth of a millisecond, and the watcher
// rewrites the snapshot on every announcement that changes; so judgments
// are kept in the kept file "judgments" ([keptFile]) by a digest of everything they depend
// on (ACL, instance, port, record, addresses), and a new snapshot costs
// only the checks of the announcements that changed.
//
// Under other policies the writer's judgment stands.
func (l *Loader) trustedOf(o *Options, snap *discovery.Snapshot) (kept []*discovery.Announcement, dropped []string) {
	if o.Trust != "acl" {
		return snap.Trusted(), nil
	}
	var policy *discovery.ACLPolicy
	aclID, _ := statID(o.ACL)
	store := keptFile(o, "judgments")
	old := readJudgments(store)
	now := make(map[string]judgment, len(snap.Machines))
	changed := false
	for _, a := range snap.Machines {
		if a.Ignored != "" {
			continue
		}
		// Only disagreements with the writer are news: the machines it
		// did not trust were reported by it already.
		drop := func(why string) {
			if a.Trusted {
				dropped = append(dropped, fmt.Sprintf("ignoring '%s': %s", a.Instance, why))
			}
		}
		switch {
		case a.Record() == nil:
			drop(fmt.Sprintf("the snapshot does not carry its signed TXT record, so its signature cannot be checked (trust is \"acl\"); restart 'guix-offload discover --watch --cache %s' with this version", o.Snapshot))
			continue
		case a.Sig == "":
			drop("unsigned, and trust is \"acl\"")
			continue
		}
		if a.Name == "" && len(a.Addresses) > 0 {
			a.Name = a.Addresses[0].String() // as AsMachine connects
		}
		key := judgmentKey(o.ACL, aclID, a)
		v, ok := old[key]
		if !ok {
			if policy == nil {
				acl, err := pki.ReadACL(o.ACL)
				if err != nil {
					return nil, append(dropped, fmt.Sprintf("ignoring every discovered machine: %v", err))
				}
				policy = &discovery.ACLPolicy{ACL: acl, File: o.ACL}
			}
			v.ok, v.reason = policy.JudgeSigned(a)
			changed = true
		}
		now[key] = v
		if !v.ok {
			drop(v.reason)
			continue
		}
		kept = append(kept, a)
	}
	if changed || len(now) != len(old) {
		_ = atomicfile.Write(store, encodeJudgments(now), atomicfile.Private)
	}
	return kept, dropped
}

// freshDiscovered returns ms without the discovered machines whose
// signature is too old or too new at now (under trust "acl"), and why
// each was left out. It does not modify ms.
func freshDiscovered(ms []*scm.Machine, o *Options, now time.Time) ([]*scm.Machine, []string) {
	if o.Trust != "acl" {
		return ms, nil
	}
	var out []*scm.Machine
	var notes []string
	for i, m := range ms {
		var st scm.Status
		if m.Status != nil {
			st = *m.Status
		}
		ok, why := discovery.CheckTime(st.Signed, now)
		if ok {
			if out != nil {
				out = append(out, m)
			}
			continue
		}
		if out == nil {
			out = append(make([]*scm.Machine, 0, len(ms)), ms[:i]...)
		}
		notes = append(notes, note("warning: ignoring discovered machine '%s': %s", st.Instance, why))
	}
	if out == nil {
		return ms, nil
	}
	return out, notes
}

type judgment struct {
	ok     bool
	reason string
}

func judgmentKey(aclFile string, aclID fileID, a *discovery.Announcement) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%v\x00%s\x00%d\x00%s\x00", aclFile, aclID, a.Instance, a.Port, a.Name)
	for _, ad := range a.Addresses {
		fmt.Fprintf(h, "%s,", ad)
	}
	for _, s := range a.Record() {
		// A parsed record has no control characters: \x00 separates.
		fmt.Fprintf(h, "\x00%s", s)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// The judgments file: a header line, then one line per judgment: the key,
// 1 or 0, the reason quoted.
const judgmentsMagic = "guix-offload-judgments 1"

func encodeJudgments(vs map[string]judgment) []byte {
	var b strings.Builder
	b.WriteString(judgmentsMagic + "\n")
	for k, v := range vs {
		ok := "0"
		if v.ok {
			ok = "1"
		}
		b.WriteString(k + "\t" + ok + "\t" + strconv.Quote(v.reason) + "\n")
	}
	return []byte(b.String())
}

// readJudgments reads the judgments file; a missing or damaged one is
// empty (every machine is then judged again).
func readJudgments(path string) map[string]judgment {
	out := make(map[string]judgment)
	data, err := os.ReadFile(path)
	if err != nil {
		return out
	}
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	if lines[0] != judgmentsMagic {
		return out
	}
	for _, line := range lines[1:] {
		f := strings.SplitN(line, "\t", 3)
		if len(f) != 3 || len(f[0]) != 64 || (f[1] != "0" && f[1] != "1") {
			return make(map[string]judgment)
		}
		reason, err := strconv.Unquote(f[2])
		if err != nil {
			return make(map[string]judgment)
		}
		out[f[0]] = judgment{ok: f[1] == "1", reason: reason}
	}
	return out
}
