package scm

import (
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
)

// Pos is where a datum starts: file name, 1-based line and 1-based column.
// Columns count characters in Guile syntax and bytes in libgcrypt syntax.
type Pos struct {
	File      string
	Line, Col int
}

// String returns "FILE:LINE:COL", or "LINE:COL" when File is empty.
func (p Pos) String() string {
	if p.File == "" {
		return fmt.Sprintf("%d:%d", p.Line, p.Col)
	}
	return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col)
}

// Value is a datum read by [Read] or [ReadGcrypt], or a value computed by
// the machines.scm evaluator. The reader produces *[Pair], [Nil], [Symbol],
// [String], [Bytes], [Int], [Rational], [Real], [Bool], [Char], [Keyword]
// and [Vector].
type Value interface {
	Pos() Pos
}

// Pair is a cons cell. A list is a chain of pairs ending in [Nil].
type Pair struct {
	Car, Cdr Value
	At       Pos
}

// Nil is the empty list.
type Nil struct{ At Pos }

// Symbol is a symbol; Name is its UTF-8 name.
type Symbol struct {
	Name string
	At   Pos
}

// String is a string. In Guile syntax S holds the characters as UTF-8; in
// libgcrypt syntax (a "quoted string") it holds the raw octets.
type String struct {
	S  string
	At Pos
}

// Bytes is a libgcrypt octet string written as #HEX#, in canonical form
// (N:…) or as |base64|.
type Bytes struct {
	B  []byte
	At Pos
}

// Int is an exact integer.
type Int struct {
	V  *big.Int
	At Pos
}

// Rational is an exact non-integer rational such as 3/2.
type Rational struct {
	V  *big.Rat
	At Pos
}

// Real is an inexact real number such as 2., .5 or 1e3.
type Real struct {
	V  float64
	At Pos
}

// Bool is #t or #f.
type Bool struct {
	V  bool
	At Pos
}

// Char is a character such as #\a or #\space.
type Char struct {
	V  rune
	At Pos
}

// Keyword is a keyword such as #:foo; Name is "foo".
type Keyword struct {
	Name string
	At   Pos
}

// Vector is a vector such as #(1 2 3).
type Vector struct {
	Items []Value
	At    Pos
}

func (v *Pair) Pos() Pos    { return v.At }
func (v Nil) Pos() Pos      { return v.At }
func (v Symbol) Pos() Pos   { return v.At }
func (v String) Pos() Pos   { return v.At }
func (v Bytes) Pos() Pos    { return v.At }
func (v Int) Pos() Pos      { return v.At }
func (v Rational) Pos() Pos { return v.At }
func (v Real) Pos() Pos     { return v.At }
func (v Bool) Pos() Pos     { return v.At }
func (v Char) Pos() Pos     { return v.At }
func (v Keyword) Pos() Pos  { return v.At }
func (v Vector) Pos() Pos   { return v.At }

// Error is a problem with the input at a position: a syntax error, or an
// error found while evaluating machines.scm.
type Error struct {
	At  Pos
	Msg string
	Tip string // advice for the user, or ""
}

func (e *Error) Error() string { return e.At.String() + ": " + e.Msg }

// Hint returns advice on fixing the error, or "".
func (e *Error) Hint() string { return e.Tip }

func errorf(at Pos, format string, args ...any) *Error {
	return &Error{At: at, Msg: fmt.Sprintf(format, args...)}
}

// List returns the elements of v when v is a proper list (possibly empty).
func List(v Value) ([]Value, bool) {
	var out []Value
	for {
		switch x := v.(type) {
		case Nil:
			return out, true
		case *Pair:
			out = append(out, x.Car)
			v = x.Cdr
		default:
			return nil, false
		}
	}
}

// AtomBytes returns the octets of a [Symbol], [String] or [Bytes].
func AtomBytes(v Value) ([]byte, bool) {
	switch x := v.(type) {
	case Symbol:
		return []byte(x.Name), true
	case String:
		return []byte(x.S), true
	case Bytes:
		return x.B, true
	}
	return nil, false
}

// MakeList returns a proper list of items whose pairs are all at pos.
func MakeList(pos Pos, items ...Value) Value {
	var v Value = Nil{At: pos}
	for i := len(items) - 1; i >= 0; i-- {
		v = &Pair{Car: items[i], Cdr: v, At: pos}
	}
	return v
}

// formatReal writes f the way Guile's number->string does: the shortest
// digits that read back to f, always with a point or an exponent (2.0,
// 0.5, 1.0e7, 1.5e-4), and +inf.0, -inf.0, +nan.0 for the special values.
func formatReal(f float64) string {
	switch {
	case math.IsNaN(f):
		return "+nan.0"
	case math.IsInf(f, 1):
		return "+inf.0"
	case math.IsInf(f, -1):
		return "-inf.0"
	}
	sign := ""
	if math.Signbit(f) {
		sign = "-"
	}
	if f == 0 {
		return sign + "0.0"
	}
	e := strconv.FormatFloat(math.Abs(f), 'e', -1, 64) // d.ddde±XX
	mant, exp, _ := strings.Cut(e, "e")
	digits := strings.Replace(mant, ".", "", 1)
	x, _ := strconv.Atoi(exp)
	point := x + 1 // digits before the decimal point
	n := len(digits)
	if (point > 7 && point-n > 3) || point < -2 {
		frac := digits[1:]
		if frac == "" {
			frac = "0"
		}
		return sign + digits[:1] + "." + frac + "e" + strconv.Itoa(point-1)
	}
	switch {
	case point <= 0:
		return sign + "0." + strings.Repeat("0", -point) + digits
	case point >= n:
		return sign + digits + strings.Repeat("0", point-n) + ".0"
	}
	return sign + digits[:point] + "." + digits[point:]
}
