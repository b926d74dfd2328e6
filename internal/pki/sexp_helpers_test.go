package pki

import "github.com/guix-offload/guix-offload/scm"

// toNode converts a value read by scm.ReadGcrypt back into a node.
func toNode(v scm.Value) (node, bool) {
	if b, ok := scm.AtomBytes(v); ok {
		return bytesAtom(b), true
	}
	l, ok := scm.List(v)
	if !ok {
		return node{}, false
	}
	n := node{isList: true}
	for _, c := range l {
		cn, ok := toNode(c)
		if !ok {
			return node{}, false
		}
		n.list = append(n.list, cn)
	}
	return n, true
}

// readGcrypt reads one libgcrypt S-expression.
func readGcrypt(data []byte) (scm.Value, error) { return scm.ReadGcrypt(data, "") }
