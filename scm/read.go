package scm

import (
	"bytes"
	"errors"
	"math/big"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxDepth bounds the nesting of lists, vectors and quotations the readers
// accept, so hostile input cannot exhaust the stack.
const maxDepth = 1000

// errEOF reports a clean end of input between top-level data.
var errEOF = errors.New("end of input")

// reader is a cursor over source text that knows its line and column.
type reader struct {
	src   []byte
	file  string
	off   int
	line  int
	col   int
	depth int
	bytes bool // columns count bytes (libgcrypt), not characters (Guile)
	// latin1UTF8: quoted strings hold UTF-8 encodings of U+00A1…U+00FF,
	// each standing for one octet (see [ReadGcrypt]).
	latin1UTF8 bool
}

func newReader(data []byte, file string) *reader {
	return &reader{src: data, file: file, line: 1, col: 1}
}

func (r *reader) pos() Pos { return Pos{File: r.file, Line: r.line, Col: r.col} }

// peek returns the character at the cursor without consuming it, or -1 at
// the end of the input. Invalid UTF-8 yields utf8.RuneError with size 1.
func (r *reader) peek() (rune, int) {
	if r.off >= len(r.src) {
		return -1, 0
	}
	if r.bytes {
		return rune(r.src[r.off]), 1
	}
	c, n := utf8.DecodeRune(r.src[r.off:])
	return c, n
}

func (r *reader) peekAt(k int) rune {
	if r.off+k >= len(r.src) {
		return -1
	}
	return rune(r.src[r.off+k])
}

// next consumes one character and returns it, or -1 at the end.
func (r *reader) next() rune {
	c, n := r.peek()
	if n == 0 {
		return -1
	}
	r.off += n
	if c == '\n' {
		r.line++
		r.col = 1
	} else {
		r.col++
	}
	return c
}

// Read reads all top-level data of data in Guile's syntax; file names the
// source in positions and errors.
func Read(data []byte, file string) ([]Value, error) {
	r := newReader(data, file)
	if bytes.HasPrefix(data, []byte("\xef\xbb\xbf")) {
		r.off = 3 // Guile skips a UTF-8 byte-order mark
	}
	var out []Value
	for {
		v, err := r.datum()
		if err == errEOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
}

func isGuileSpace(c rune) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v' ||
		(c > 127 && unicode.IsSpace(c))
}

func isDelimiter(c rune) bool {
	return c == -1 || isGuileSpace(c) || c == '(' || c == ')' || c == '[' || c == ']' ||
		c == '"' || c == ';'
}

// skipAtmosphere skips white space and the three kinds of comments. It
// returns errEOF only through the datum comment's datum.
func (r *reader) skipAtmosphere() error {
	for {
		c, n := r.peek()
		switch {
		case n == 0:
			return nil
		case c == utf8.RuneError && n == 1:
			return errorf(r.pos(), "invalid UTF-8 in input")
		case isGuileSpace(c):
			r.next()
		case c == ';':
			for c := r.peekAt(0); c != -1 && c != '\n'; c = r.peekAt(0) {
				r.next()
			}
		case c == '#' && r.peekAt(1) == '|':
			if err := r.blockComment(); err != nil {
				return err
			}
		case c == '#' && r.peekAt(1) == '!':
			if err := r.bangComment(); err != nil {
				return err
			}
		case c == '#' && r.peekAt(1) == ';':
			at := r.pos()
			r.next()
			r.next()
			if _, err := r.datum(); err != nil {
				if err == errEOF {
					return errorf(at, "datum comment #; is not followed by a datum")
				}
				return err
			}
		default:
			return nil
		}
	}
}

// blockComment skips a nested #| … |# comment.
func (r *reader) blockComment() error {
	at := r.pos()
	r.next()
	r.next()
	level := 1
	for level > 0 {
		switch r.next() {
		case -1:
			return errorf(at, "unterminated #| … |# comment")
		case '|':
			if r.peekAt(0) == '#' {
				r.next()
				level--
			}
		case '#':
			if r.peekAt(0) == '|' {
				r.next()
				level++
			}
		}
	}
	return nil
}

// bangComment skips a #! … !# comment (script headers).
func (r *reader) bangComment() error {
	at := r.pos()
	r.next()
	r.next()
	for {
		switch r.next() {
		case -1:
			return errorf(at, "unterminated #! … !# comment")
		case '!':
			if r.peekAt(0) == '#' {
				r.next()
				return nil
			}
		}
	}
}

// datum reads one datum, or returns errEOF at a clean end of input.
func (r *reader) datum() (Value, error) {
	if err := r.skipAtmosphere(); err != nil {
		return nil, err
	}
	at := r.pos()
	c, n := r.peek()
	if n == 0 {
		return nil, errEOF
	}
	switch c {
	case '(', '[':
		return r.list()
	case ')', ']':
		return nil, errorf(at, "unexpected %q", c)
	case '"':
		return r.str()
	case '\'':
		return r.quoted("quote", 1)
	case '`':
		return r.quoted("quasiquote", 1)
	case ',':
		if r.peekAt(1) == '@' {
			return r.quoted("unquote-splicing", 2)
		}
		return r.quoted("unquote", 1)
	case '#':
		return r.hash()
	}
	tok := r.token()
	if tok == "." {
		return nil, errorf(at, "unexpected \".\" outside a list")
	}
	return atom(tok, at)
}

// token consumes characters up to the next delimiter.
func (r *reader) token() string {
	start := r.off
	for {
		c, _ := r.peek()
		if isDelimiter(c) {
			break
		}
		r.next()
	}
	return string(r.src[start:r.off])
}

// atom turns a token into a number, or a symbol when it is not one.
func atom(tok string, at Pos) (Value, error) {
	v, ok, err := parseNumber(tok, at)
	if err != nil {
		return nil, err
	}
	if ok {
		return v, nil
	}
	return Symbol{Name: tok, At: at}, nil
}

func (r *reader) enter(at Pos) error {
	r.depth++
	if r.depth > maxDepth {
		return errorf(at, "nesting deeper than %d levels", maxDepth)
	}
	return nil
}

func (r *reader) quoted(name string, width int) (Value, error) {
	at := r.pos()
	mark := string(r.src[r.off : r.off+width])
	for i := 0; i < width; i++ {
		r.next()
	}
	if err := r.enter(at); err != nil {
		return nil, err
	}
	defer func() { r.depth-- }()
	v, err := r.datum()
	if err == errEOF {
		return nil, errorf(at, "end of input after %s", mark)
	}
	if err != nil {
		return nil, err
	}
	return MakeList(at, Symbol{Name: name, At: at}, v), nil
}

// list reads a list or dotted pair; the cursor is on the open paren.
func (r *reader) list() (Value, error) {
	at := r.pos()
	open := r.next()
	closer := ')'
	if open == '[' {
		closer = ']'
	}
	if err := r.enter(at); err != nil {
		return nil, err
	}
	defer func() { r.depth-- }()
	var items []Value
	var tail Value
	for {
		if err := r.skipAtmosphere(); err != nil {
			return nil, err
		}
		p := r.pos()
		c, n := r.peek()
		if n == 0 {
			return nil, errorf(at, "unbalanced %q: end of input before its %q", open, closer)
		}
		if c == ')' || c == ']' {
			if c != closer {
				return nil, errorf(p, "%q closes %q opened at %d:%d", c, open, at.Line, at.Col)
			}
			r.next()
			if tail == nil {
				tail = Nil{At: p}
			}
			var v = tail
			for i := len(items) - 1; i >= 0; i-- {
				pat := items[i].Pos()
				if i == 0 {
					pat = at
				}
				v = &Pair{Car: items[i], Cdr: v, At: pat}
			}
			if len(items) == 0 {
				return Nil{At: at}, nil
			}
			return v, nil
		}
		if tail != nil {
			return nil, errorf(p, "more than one datum after \".\" in a dotted list")
		}
		if c == '.' && isDelimiter(r.peekAt(1)) {
			r.next()
			if len(items) == 0 {
				return nil, errorf(p, "nothing before \".\" in a dotted list")
			}
			v, err := r.datum()
			if err == errEOF {
				return nil, errorf(at, "unbalanced %q: end of input before its %q", open, closer)
			}
			if err != nil {
				return nil, err
			}
			tail = v
			continue
		}
		v, err := r.datum()
		if err != nil {
			return nil, err
		}
		items = append(items, v)
	}
}

// str reads a Guile string literal; the cursor is on the opening quote.
func (r *reader) str() (Value, error) {
	at := r.pos()
	r.next()
	var b strings.Builder
	for {
		p := r.pos()
		c, n := r.peek()
		if n == 0 {
			return nil, errorf(at, "unterminated string")
		}
		if c == utf8.RuneError && n == 1 {
			return nil, errorf(p, "invalid UTF-8 in string")
		}
		r.next()
		switch c {
		case '"':
			return String{S: b.String(), At: at}, nil
		case '\\':
		default:
			b.WriteRune(c)
			continue
		}
		e := r.next()
		switch e {
		case -1:
			return nil, errorf(at, "unterminated string")
		case '\\', '"', '|':
			b.WriteRune(e)
		case 'a':
			b.WriteByte('\a')
		case 'f':
			b.WriteByte('\f')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case 'v':
			b.WriteByte('\v')
		case 'b':
			b.WriteByte('\b')
		case '0':
			b.WriteByte(0)
		case '\n':
			// A backslash before a newline removes the newline.
		case 'x', 'u', 'U':
			width := map[rune]int{'x': 2, 'u': 4, 'U': 6}[e]
			var code rune
			for i := 0; i < width; i++ {
				d := hexDigit(r.peekAt(0))
				if d < 0 {
					return nil, errorf(p, "\\%c in a string needs %d hexadecimal digits", e, width)
				}
				r.next()
				code = code*16 + rune(d)
			}
			if code > unicode.MaxRune || (code >= 0xd800 && code < 0xe000) {
				return nil, errorf(p, "\\%c escape U+%X is not a character", e, code)
			}
			b.WriteRune(code)
		default:
			return nil, errorf(p, "invalid escape \\%c in string", e)
		}
	}
}

func hexDigit(c rune) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// charNames are Guile's names for characters (#\space…), including the
// ASCII control names.
var charNames = map[string]rune{
	"space": ' ', "newline": '\n', "tab": '\t', "nul": 0, "null": 0,
	"alarm": 7, "backspace": 8, "delete": 127, "del": 127, "escape": 27,
	"esc": 27, "linefeed": '\n', "page": 12, "return": '\r', "vtab": 11,
	"soh": 1, "stx": 2, "etx": 3, "eot": 4, "enq": 5, "ack": 6, "bel": 7,
	"bs": 8, "ht": 9, "lf": 10, "vt": 11, "ff": 12, "cr": 13, "so": 14,
	"si": 15, "dle": 16, "dc1": 17, "dc2": 18, "dc3": 19, "dc4": 20,
	"nak": 21, "syn": 22, "etb": 23, "can": 24, "em": 25, "sub": 26,
	"fs": 28, "gs": 29, "rs": 30, "us": 31, "sp": ' ',
}

// hash reads the syntax that starts with '#' (not comments).
func (r *reader) hash() (Value, error) {
	at := r.pos()
	r.next()
	c, n := r.peek()
	if n == 0 {
		return nil, errorf(at, "end of input after \"#\"")
	}
	switch c {
	case '\\':
		r.next()
		first := r.next()
		if first == -1 {
			return nil, errorf(at, "end of input in character literal")
		}
		if first == utf8.RuneError {
			return nil, errorf(at, "invalid UTF-8 in character literal")
		}
		name := string(first) + r.token()
		if utf8.RuneCountInString(name) == 1 {
			return Char{V: first, At: at}, nil
		}
		if v, ok := charNames[strings.ToLower(name)]; ok {
			return Char{V: v, At: at}, nil
		}
		code, ok := big.NewInt(0), false
		switch {
		case name[0] == 'x' && len(name) > 1:
			_, ok = code.SetString(name[1:], 16)
		case name[0] >= '0' && name[0] <= '7':
			_, ok = code.SetString(name, 8)
		}
		if ok && code.IsInt64() && code.Int64() <= unicode.MaxRune &&
			!(code.Int64() >= 0xd800 && code.Int64() < 0xe000) {
			return Char{V: rune(code.Int64()), At: at}, nil
		}
		return nil, errorf(at, "unknown character name #\\%s", name)
	case ':':
		r.next()
		name := r.token()
		if name == "" {
			return nil, errorf(at, "keyword prefix #: is not followed by a symbol")
		}
		if _, isNum, _ := parseNumber(name, at); isNum {
			return nil, errorf(at, "keyword prefix #: is followed by a number, not a symbol")
		}
		return Keyword{Name: name, At: at}, nil
	case '(':
		if err := r.enter(at); err != nil {
			return nil, err
		}
		defer func() { r.depth-- }()
		l, err := r.list()
		if err != nil {
			return nil, err
		}
		items, ok := List(l)
		if !ok {
			return nil, errorf(at, "a vector cannot be a dotted list")
		}
		return Vector{Items: items, At: at}, nil
	case '{':
		r.next()
		var b strings.Builder
		for {
			c := r.next()
			if c == -1 {
				return nil, errorf(at, "unterminated #{ … }# symbol")
			}
			if c == '}' && r.peekAt(0) == '#' {
				r.next()
				return Symbol{Name: b.String(), At: at}, nil
			}
			if c == '\\' {
				c = r.next()
				if c == -1 {
					return nil, errorf(at, "unterminated #{ … }# symbol")
				}
			}
			b.WriteRune(c)
		}
	}
	word := r.token()
	switch strings.ToLower(word) {
	case "t", "true":
		return Bool{V: true, At: at}, nil
	case "f", "false":
		return Bool{V: false, At: at}, nil
	case "":
		return nil, errorf(at, "bad # syntax")
	}
	switch word[0] {
	case 'x', 'X', 'b', 'B', 'o', 'O', 'd', 'D', 'e', 'E', 'i', 'I':
		v, ok, err := parseNumber("#"+word, at)
		if err != nil {
			return nil, err
		}
		if ok {
			return v, nil
		}
		return nil, errorf(at, "bad number #%s", word)
	}
	return nil, errorf(at, "unknown # syntax #%s", word)
}

// maxNumberLen bounds the characters of a number literal. Guile reads
// numbers of any length, but converting a long one costs time that
// grows faster than its length (a million digits took seconds), and no
// build-machine field takes a number a fraction this long.
const maxNumberLen = 1000

// parseNumber parses tok as a Guile number. It returns ok false (and no
// error) when tok is not a number and so is a symbol; an error when tok is
// a number Guile would reject (such as 1e400), or one longer than
// maxNumberLen characters.
func parseNumber(tok string, at Pos) (v Value, ok bool, err error) {
	if len(tok) > maxNumberLen {
		defer func() {
			if ok {
				v, ok, err = nil, false, errorf(at, "number of %d characters: numbers longer than %d characters are not read (no build-machine field takes one)", len(tok), maxNumberLen)
			}
		}()
		// Only find out whether it is a number, without converting it.
		tok = numberShape(tok)
	}
	orig := tok
	radix, exact, inexact := 10, false, false
	prefixed := false
	for len(tok) >= 2 && tok[0] == '#' {
		prefixed = true
		switch tok[1] {
		case 'x', 'X':
			radix = 16
		case 'b', 'B':
			radix = 2
		case 'o', 'O':
			radix = 8
		case 'd', 'D':
			radix = 10
		case 'e', 'E':
			exact = true
		case 'i', 'I':
			inexact = true
		default:
			return nil, false, nil
		}
		tok = tok[2:]
	}
	if exact && inexact {
		return nil, false, nil
	}
	switch tok {
	case "+inf.0", "-inf.0", "+nan.0", "-nan.0":
		if exact {
			return nil, false, nil
		}
		f, _ := strconv.ParseFloat(tok[:4], 64)
		return Real{V: f, At: at}, true, nil
	}
	body := tok
	if body != "" && (body[0] == '+' || body[0] == '-') {
		body = body[1:]
	}
	digitsOK := func(s string) bool {
		if s == "" {
			return false
		}
		for _, c := range s {
			d := hexDigit(c)
			if d < 0 || d >= radix {
				return false
			}
		}
		return true
	}
	if i := strings.IndexByte(body, '/'); i >= 0 {
		num, den := body[:i], body[i+1:]
		if !digitsOK(num) || !digitsOK(den) {
			return nil, false, nil
		}
		n, _ := new(big.Int).SetString(num, radix)
		d, _ := new(big.Int).SetString(den, radix)
		if d.Sign() == 0 {
			if prefixed {
				return nil, false, errorf(at, "division by zero in number %s", orig)
			}
			return nil, false, nil
		}
		if tok[0] == '-' {
			n.Neg(n)
		}
		q := new(big.Rat).SetFrac(n, d)
		return exactValue(q, inexact, at)
	}
	if digitsOK(body) {
		n, _ := new(big.Int).SetString(body, radix)
		if tok[0] == '-' {
			n.Neg(n)
		}
		if inexact {
			f, _ := new(big.Float).SetInt(n).Float64()
			return Real{V: f, At: at}, true, nil
		}
		return Int{V: n, At: at}, true, nil
	}
	if radix != 10 || !isDecimal(body) {
		return nil, false, nil
	}
	// Guile rejects a written exponent outside [-324, 308], exact or not.
	if i := strings.IndexAny(body, "eE"); i >= 0 {
		e, err := strconv.Atoi(body[i+1:])
		if err != nil || e > 308 || e < -324 {
			return nil, false, errorf(at, "number %s is out of range", orig)
		}
	}
	if exact {
		q, ok := new(big.Rat).SetString(tok)
		if !ok {
			return nil, false, nil
		}
		return exactValue(q, false, at)
	}
	// Beyond the largest double ParseFloat returns ±Inf with ErrRange;
	// Guile reads such numbers as +inf.0 or -inf.0 too.
	f, _ := strconv.ParseFloat(tok, 64)
	return Real{V: f, At: at}, true, nil
}

// numberShape returns a short token that is a number exactly when tok
// is: tok with its runs of digits shortened to one digit, which keeps
// the radix prefix, sign, point, slash and exponent that decide.
func numberShape(tok string) string {
	var b strings.Builder
	prev := false
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		digit := c >= '0' && c <= '9' || c >= 'a' && c <= 'f' && c != 'e' || c >= 'A' && c <= 'F' && c != 'E'
		if i > 0 && tok[i-1] == '#' {
			digit = false // the letter of a prefix such as #b or #d
		}
		if digit && prev {
			continue
		}
		prev = digit
		b.WriteByte(c)
		if b.Len() > maxNumberLen {
			break
		}
	}
	return b.String()
}

func exactValue(q *big.Rat, inexact bool, at Pos) (Value, bool, error) {
	if inexact {
		f, _ := q.Float64()
		return Real{V: f, At: at}, true, nil
	}
	if q.IsInt() {
		return Int{V: new(big.Int).Set(q.Num()), At: at}, true, nil
	}
	return Rational{V: q, At: at}, true, nil
}

// isDecimal reports whether s (without sign) is digits with an optional
// point and exponent, with at least one digit before the exponent.
func isDecimal(s string) bool {
	i, digits := 0, 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
		digits++
	}
	if i < len(s) && s[i] == '.' {
		i++
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
			digits++
		}
	}
	if digits == 0 {
		return false
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		start := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == start {
			return false
		}
	}
	return i == len(s)
}
