package pki

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"

	"github.com/guix-offload/guix-offload/scm"
)

// node is an S-expression to print: an atom (octets) or a list.
type node struct {
	atom   []byte
	list   []node
	isList bool
}

func atom(s string) node         { return node{atom: []byte(s)} }
func bytesAtom(b []byte) node    { return node{atom: b} }
func list(items ...node) node    { return node{list: items, isList: true} }
func (n node) canonical() []byte { var b bytes.Buffer; n.writeCanonical(&b); return b.Bytes() }

// writeCanonical writes n in canonical form: (3:ecc…).
func (n node) writeCanonical(b *bytes.Buffer) {
	if !n.isList {
		b.WriteString(strconv.Itoa(len(n.atom)))
		b.WriteByte(':')
		b.Write(n.atom)
		return
	}
	b.WriteByte('(')
	for _, c := range n.list {
		c.writeCanonical(b)
	}
	b.WriteByte(')')
}

// advanced returns n in libgcrypt's advanced form, byte for byte what
// gcry_sexp_sprint(GCRYSEXP_FMT_ADVANCED) writes and hence what Guix
// writes in key files, the ACL and signatures: every list but the first
// opens on a new line indented by its depth, an atom is followed by a space
// unless a ")" follows, a ")" followed by an atom or another ")" starts a
// new line, and the output ends with a newline.
//
// Quoted atoms hold octets 0xA1–0xFF raw, as libgcrypt prints them. In
// the rare output whose raw octets all look like UTF-8 pairs, which
// [scm.ReadGcrypt] would read as UTF-8 text (as Guile would in a UTF-8
// locale), atoms with such octets are written #HEX# instead, so what we
// write reads back as written everywhere.
func (n node) advanced() []byte {
	out := n.print(false)
	if scm.GcryptReadsAsUTF8(out) {
		out = n.print(true)
	}
	return out
}

func (n node) print(hexHigh bool) []byte {
	type tok struct {
		kind byte // '(' ')' or 'a'
		atom []byte
	}
	var toks []tok
	var flatten func(node)
	flatten = func(n node) {
		if !n.isList {
			toks = append(toks, tok{kind: 'a', atom: n.atom})
			return
		}
		toks = append(toks, tok{kind: '('})
		for _, c := range n.list {
			flatten(c)
		}
		toks = append(toks, tok{kind: ')'})
	}
	flatten(n)
	var b bytes.Buffer
	indent := 0
	for i, t := range toks {
		next := byte(0)
		if i+1 < len(toks) {
			next = toks[i+1].kind
		}
		switch t.kind {
		case '(':
			if indent > 0 {
				b.WriteByte('\n')
				b.WriteString(strings.Repeat(" ", indent))
			}
			b.WriteByte('(')
			indent++
		case ')':
			b.WriteByte(')')
			indent--
			if next != '(' && next != 0 {
				b.WriteByte('\n')
				b.WriteString(strings.Repeat(" ", indent))
			}
		default:
			writeAdvancedAtom(&b, t.atom, hexHigh)
			if next != ')' {
				b.WriteByte(' ')
			}
		}
	}
	b.WriteByte('\n')
	return b.Bytes()
}

// writeAdvancedAtom writes an atom as a token, a "quoted string" or #HEX#,
// choosing as libgcrypt's suitable_encoding does; with hexHigh, a string
// with octets 0x80 or above as #HEX#.
func writeAdvancedAtom(b *bytes.Buffer, a []byte, hexHigh bool) {
	enc := atomEncoding(a)
	if enc == encString && hexHigh && bytes.ContainsFunc(a, func(r rune) bool { return r >= 0x80 }) {
		enc = encHex
	}
	switch enc {
	case encToken:
		b.Write(a)
	case encString:
		b.WriteByte('"')
		for _, c := range a {
			switch c {
			case '\b':
				b.WriteString(`\b`)
			case '\t':
				b.WriteString(`\t`)
			case '\v':
				b.WriteString(`\v`)
			case '\n':
				b.WriteString(`\n`)
			case '\f':
				b.WriteString(`\f`)
			case '\r':
				b.WriteString(`\r`)
			case '"':
				b.WriteString(`\"`)
			case '\'':
				b.WriteString(`\'`)
			case '\\':
				b.WriteString(`\\`)
			default:
				if c < 0x20 || (c >= 0x7f && c <= 0xa0) {
					fmt.Fprintf(b, `\x%02x`, c)
				} else {
					b.WriteByte(c)
				}
			}
		}
		b.WriteByte('"')
	default:
		fmt.Fprintf(b, "#%X#", a)
	}
}

const (
	encHex = iota
	encString
	encToken
)

func atomEncoding(a []byte) int {
	if len(a) == 0 {
		return encString
	}
	if a[0]&0x80 != 0 || a[0] == 0 {
		return encHex
	}
	token := true
	for _, c := range a {
		// libgcrypt tests escapability with strchr, which also finds the
		// terminating NUL: a zero octet after the first is printed \x00.
		if (c < 0x20 || (c >= 0x7f && c <= 0xa0)) && c != 0 && !strings.ContainsRune("\b\t\v\n\f\r\"'\\", rune(c)) {
			return encHex
		}
		if token && !isTokenByte(c) {
			token = false
		}
	}
	if token && !(a[0] >= '0' && a[0] <= '9') {
		return encToken
	}
	return encString
}

func isTokenByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		strings.IndexByte("-./_:*+=", c) >= 0
}

// Helpers over scm values, as libgcrypt's accessors see them.

// items returns the elements of a list, or nil when v is not a list.
func items(v scm.Value) []scm.Value {
	l, ok := scm.List(v)
	if !ok {
		return nil
	}
	return l
}

// head returns the first element of list v as a string, or "".
func head(v scm.Value) string {
	l := items(v)
	if len(l) == 0 {
		return ""
	}
	b, ok := scm.AtomBytes(l[0])
	if !ok {
		return ""
	}
	return string(b)
}

// findToken returns the first list, depth first, whose first element is
// the atom name — libgcrypt's gcry_sexp_find_token, which Guix uses to pick
// the parts of a signature.
func findToken(v scm.Value, name string) scm.Value {
	l := items(v)
	if len(l) == 0 {
		return nil
	}
	if head(v) == name {
		return v
	}
	for _, c := range l[1:] {
		if f := findToken(c, name); f != nil {
			return f
		}
	}
	return nil
}

// param returns the atom that follows name in the first (name ATOM)
// element of list v, or nil when there is none.
func param(v scm.Value, name string) (scm.Value, []byte) {
	for _, c := range items(v) {
		l := items(c)
		if len(l) >= 2 && head(c) == name {
			b, ok := scm.AtomBytes(l[1])
			if ok {
				return c, b
			}
		}
	}
	return nil, nil
}
