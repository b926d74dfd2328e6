package scm

import (
	"encoding/base64"
	"encoding/hex"
	"strconv"
	"strings"
)

// ReadGcrypt reads exactly one datum in libgcrypt's S-expression syntax,
// advanced or canonical: lists; tokens such as ecc, Ed25519, sha256 or 42,
// which become [Symbol]; "quoted strings" with C escapes, which become
// [String] holding raw octets; #HEX#, N:octets and |base64|, which become
// [Bytes]. Only white space may follow the datum. Columns count bytes.
//
// Octets 0xA1–0xFF stand unescaped in the quoted strings libgcrypt prints
// (its printer quotes an atom such as a key's secret d whenever every
// octet after the first is printable by its rule, about one Guix key in
// 3,400). Guile turns them into the characters U+00A1–U+00FF, so a file
// Guile wrote under a UTF-8 locale ('guix archive --generate-key',
// --authorize) holds each as two bytes, while one written as ISO-8859-1
// ('guix authenticate' signatures) holds the octets. When every byte of
// data at or above 0x80 belongs to such a two-byte UTF-8 sequence, the
// input is read as UTF-8 text and each sequence in a quoted string is the
// one octet Guix itself reads back under that locale; otherwise octets
// are taken as they stand.
func ReadGcrypt(data []byte, file string) (Value, error) {
	r := newReader(data, file)
	r.bytes = true
	r.latin1UTF8 = latin1AsUTF8(data)
	r.skipGcryptSpace()
	if r.off >= len(r.src) {
		return nil, errorf(r.pos(), "no S-expression in input")
	}
	v, err := r.gcryptDatum()
	if err != nil {
		return nil, err
	}
	r.skipGcryptSpace()
	if r.off < len(r.src) {
		return nil, errorf(r.pos(), "unexpected %q after the S-expression", r.src[r.off])
	}
	return v, nil
}

// GcryptReadsAsUTF8 reports whether [ReadGcrypt] takes data for UTF-8
// text: data has bytes at or above 0x80 and all of them are UTF-8
// encodings of U+00A1–U+00FF, the octets libgcrypt leaves unescaped in
// quoted strings, as Guile writes them in a UTF-8 locale. Raw octets pass
// for that only when every one of them is 0xC2 or 0xC3 followed by
// 0xA1–0xBF; a writer of raw octets checks with this that its output
// reads back as written.
func GcryptReadsAsUTF8(data []byte) bool { return latin1AsUTF8(data) }

func latin1AsUTF8(data []byte) bool {
	seen := false
	for i := 0; i < len(data); i++ {
		c := data[i]
		if c < 0x80 {
			continue
		}
		if i+1 >= len(data) || !utf8Latin1(c, data[i+1]) {
			return false
		}
		seen = true
		i++
	}
	return seen
}

// utf8Latin1 reports whether c1 c2 is the UTF-8 encoding of one of
// U+00A1–U+00FF.
func utf8Latin1(c1, c2 byte) bool {
	return c1 == 0xc2 && c2 >= 0xa1 && c2 <= 0xbf || c1 == 0xc3 && c2 >= 0x80 && c2 <= 0xbf
}

func isGcryptSpace(c rune) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}

func isTokenChar(c rune) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		strings.ContainsRune("-./_:*+=", c)
}

func (r *reader) skipGcryptSpace() {
	for r.off < len(r.src) && isGcryptSpace(rune(r.src[r.off])) {
		r.next()
	}
}

func (r *reader) gcryptDatum() (Value, error) {
	at := r.pos()
	c := r.peekAt(0)
	switch {
	case c == -1:
		return nil, errorf(at, "unexpected end of input")
	case c == '(':
		return r.gcryptList()
	case c == ')':
		return nil, errorf(at, "unexpected \")\"")
	case c == '"':
		return r.gcryptString()
	case c == '#':
		return r.gcryptEncoded('#', "hexadecimal", func(s string) ([]byte, error) {
			if len(s)%2 != 0 {
				return nil, errorf(at, "odd number of hexadecimal digits in #…#")
			}
			return hex.DecodeString(s)
		})
	case c == '|':
		return r.gcryptEncoded('|', "base64", base64.StdEncoding.DecodeString)
	case c >= '0' && c <= '9':
		start := r.off
		for c := r.peekAt(0); c >= '0' && c <= '9'; c = r.peekAt(0) {
			r.next()
		}
		if r.peekAt(0) != ':' {
			for isTokenChar(r.peekAt(0)) {
				r.next()
			}
			return Symbol{Name: string(r.src[start:r.off]), At: at}, nil
		}
		n, err := strconv.Atoi(string(r.src[start:r.off]))
		r.next()
		if err != nil || n > len(r.src)-r.off {
			return nil, errorf(at, "canonical length %s runs past the end of the input", r.src[start:r.off-1])
		}
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.next())
		}
		return Bytes{B: b, At: at}, nil
	case isTokenChar(c):
		start := r.off
		for isTokenChar(r.peekAt(0)) {
			r.next()
		}
		return Symbol{Name: string(r.src[start:r.off]), At: at}, nil
	case c == '[':
		return nil, errorf(at, "display hints [...] are not supported")
	}
	return nil, errorf(at, "unexpected %q in S-expression", c)
}

func (r *reader) gcryptList() (Value, error) {
	at := r.pos()
	r.next()
	if err := r.enter(at); err != nil {
		return nil, err
	}
	defer func() { r.depth-- }()
	var items []Value
	for {
		r.skipGcryptSpace()
		p := r.pos()
		switch r.peekAt(0) {
		case -1:
			return nil, errorf(at, "unbalanced \"(\": end of input before its \")\"")
		case ')':
			r.next()
			if len(items) == 0 {
				return Nil{At: at}, nil
			}
			var v Value = Nil{At: p}
			for i := len(items) - 1; i >= 0; i-- {
				pat := items[i].Pos()
				if i == 0 {
					pat = at
				}
				v = &Pair{Car: items[i], Cdr: v, At: pat}
			}
			return v, nil
		}
		v, err := r.gcryptDatum()
		if err != nil {
			return nil, err
		}
		items = append(items, v)
	}
}

// gcryptEncoded reads #hex# or |base64|, ignoring white space inside.
func (r *reader) gcryptEncoded(delim rune, what string, decode func(string) ([]byte, error)) (Value, error) {
	at := r.pos()
	r.next()
	var b strings.Builder
	for {
		c := r.next()
		switch {
		case c == -1:
			return nil, errorf(at, "unterminated %s string %c…%c", what, delim, delim)
		case c == delim:
			out, err := decode(b.String())
			if err != nil {
				if e, ok := err.(*Error); ok {
					return nil, e
				}
				return nil, errorf(at, "bad %s string: %v", what, err)
			}
			return Bytes{B: out, At: at}, nil
		case isGcryptSpace(c):
		default:
			b.WriteByte(byte(c))
		}
	}
}

// gcryptString reads a "quoted string" with libgcrypt's C-style escapes.
func (r *reader) gcryptString() (Value, error) {
	at := r.pos()
	r.next()
	var b []byte
	for {
		p := r.pos()
		c := r.next()
		switch c {
		case -1:
			return nil, errorf(at, "unterminated string")
		case '"':
			return String{S: string(b), At: at}, nil
		case '\\':
		default:
			if r.latin1UTF8 && c >= 0x80 {
				// Checked by latin1AsUTF8: a two-byte sequence.
				c = (c&0x1f)<<6 | (r.next() & 0x3f)
			}
			b = append(b, byte(c))
			continue
		}
		e := r.next()
		switch e {
		case -1:
			return nil, errorf(at, "unterminated string")
		case 'b':
			b = append(b, '\b')
		case 't':
			b = append(b, '\t')
		case 'v':
			b = append(b, '\v')
		case 'n':
			b = append(b, '\n')
		case 'f':
			b = append(b, '\f')
		case 'r':
			b = append(b, '\r')
		case '"', '\'', '\\':
			b = append(b, byte(e))
		case '\n':
			if r.peekAt(0) == '\r' {
				r.next()
			}
		case '\r':
			if r.peekAt(0) == '\n' {
				r.next()
			}
		case 'x':
			h1, h2 := hexDigit(r.peekAt(0)), hexDigit(r.peekAt(1))
			if h1 < 0 || h2 < 0 {
				return nil, errorf(p, "\\x in a string needs 2 hexadecimal digits")
			}
			r.next()
			r.next()
			b = append(b, byte(h1*16+h2))
		case '0', '1', '2', '3', '4', '5', '6', '7':
			o1, o2 := r.peekAt(0), r.peekAt(1)
			if o1 < '0' || o1 > '7' || o2 < '0' || o2 > '7' {
				return nil, errorf(p, "octal escape in a string needs 3 digits")
			}
			r.next()
			r.next()
			v := (e-'0')*64 + (o1-'0')*8 + (o2 - '0')
			if v > 255 {
				return nil, errorf(p, "octal escape \\%c%c%c is larger than a byte", e, o1, o2)
			}
			b = append(b, byte(v))
		default:
			return nil, errorf(p, "invalid escape \\%c in string", e)
		}
	}
}
