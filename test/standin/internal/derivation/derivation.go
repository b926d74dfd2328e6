package derivation

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Output is one entry of a derivation's outputs.
type Output struct {
	Name     string
	Path     string
	HashAlgo string // fixed-output derivations only, e.g. "sha256" or "r:sha256"
	Hash     string
}

// Input is an input derivation and the outputs of it that are used.
type Input struct {
	Drv     string
	Outputs []string
}

// Derivation is a parsed `.drv` file.
type Derivation struct {
	Outputs []Output
	Inputs  []Input
	Sources []string
	System  string
	Builder string
	Args    []string
	Env     [][2]string // in file order (sorted by key in real files)
}

// Output returns the output named name.
func (d *Derivation) Output(name string) (Output, bool) {
	for _, o := range d.Outputs {
		if o.Name == name {
			return o, true
		}
	}
	return Output{}, false
}

// Getenv returns the value of key in the derivation's environment.
func (d *Derivation) Getenv(key string) (string, bool) {
	for _, kv := range d.Env {
		if kv[0] == key {
			return kv[1], true
		}
	}
	return "", false
}

// SyntaxError says where a derivation file stopped making sense.
type SyntaxError struct {
	Offset int // byte offset, 0-based
	Msg    string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("offset %d: %s", e.Offset, e.Msg)
}

// Parse reads the text of a derivation file.
func Parse(data []byte) (*Derivation, error) {
	p := &parser{s: data}
	d, err := p.derivation()
	if err != nil {
		return nil, err
	}
	return d, nil
}

type parser struct {
	s   []byte
	pos int
}

func (p *parser) fail(format string, args ...any) error {
	return &SyntaxError{Offset: p.pos, Msg: fmt.Sprintf(format, args...)}
}

func (p *parser) expect(lit string) error {
	if !strings.HasPrefix(string(p.s[p.pos:min(len(p.s), p.pos+len(lit))]), lit) {
		got := "end of file"
		if p.pos < len(p.s) {
			got = fmt.Sprintf("%q", p.s[p.pos])
		}
		return p.fail("expected %q, got %s", lit, got)
	}
	p.pos += len(lit)
	return nil
}

func (p *parser) peek(c byte) bool { return p.pos < len(p.s) && p.s[p.pos] == c }

func (p *parser) str() (string, error) {
	if err := p.expect(`"`); err != nil {
		return "", err
	}
	var b strings.Builder
	for {
		if p.pos >= len(p.s) {
			return "", p.fail("unterminated string")
		}
		c := p.s[p.pos]
		p.pos++
		switch c {
		case '"':
			return b.String(), nil
		case '\\':
			if p.pos >= len(p.s) {
				return "", p.fail("unterminated string")
			}
			e := p.s[p.pos]
			p.pos++
			switch e {
			case 'n':
				b.WriteByte('\n')
			case 'r':
				b.WriteByte('\r')
			case 't':
				b.WriteByte('\t')
			default:
				b.WriteByte(e)
			}
		default:
			b.WriteByte(c)
		}
	}
}

// list parses "[" item ("," item)* "]" (possibly empty).
func (p *parser) list(item func() error) error {
	if err := p.expect("["); err != nil {
		return err
	}
	if p.peek(']') {
		p.pos++
		return nil
	}
	for {
		if err := item(); err != nil {
			return err
		}
		if p.peek(']') {
			p.pos++
			return nil
		}
		if err := p.expect(","); err != nil {
			return err
		}
	}
}

func (p *parser) strings() ([]string, error) {
	var out []string
	err := p.list(func() error {
		s, err := p.str()
		out = append(out, s)
		return err
	})
	return out, err
}

// tuple parses "(" s1 "," s2 … ")" of n strings.
func (p *parser) tuple(n int) ([]string, error) {
	if err := p.expect("("); err != nil {
		return nil, err
	}
	out := make([]string, n)
	for i := range n {
		if i > 0 {
			if err := p.expect(","); err != nil {
				return nil, err
			}
		}
		s, err := p.str()
		if err != nil {
			return nil, err
		}
		out[i] = s
	}
	return out, p.expect(")")
}

func (p *parser) derivation() (*Derivation, error) {
	d := &Derivation{}
	if err := p.expect("Derive("); err != nil {
		return nil, err
	}
	err := p.list(func() error {
		t, err := p.tuple(4)
		if err != nil {
			return err
		}
		d.Outputs = append(d.Outputs, Output{Name: t[0], Path: t[1], HashAlgo: t[2], Hash: t[3]})
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := p.expect(","); err != nil {
		return nil, err
	}
	err = p.list(func() error {
		if err := p.expect("("); err != nil {
			return err
		}
		drv, err := p.str()
		if err != nil {
			return err
		}
		if err := p.expect(","); err != nil {
			return err
		}
		outs, err := p.strings()
		if err != nil {
			return err
		}
		d.Inputs = append(d.Inputs, Input{Drv: drv, Outputs: outs})
		return p.expect(")")
	})
	if err != nil {
		return nil, err
	}
	if err := p.expect(","); err != nil {
		return nil, err
	}
	if d.Sources, err = p.strings(); err != nil {
		return nil, err
	}
	if err := p.expect(","); err != nil {
		return nil, err
	}
	if d.System, err = p.str(); err != nil {
		return nil, err
	}
	if err := p.expect(","); err != nil {
		return nil, err
	}
	if d.Builder, err = p.str(); err != nil {
		return nil, err
	}
	if err := p.expect(","); err != nil {
		return nil, err
	}
	if d.Args, err = p.strings(); err != nil {
		return nil, err
	}
	if err := p.expect(","); err != nil {
		return nil, err
	}
	err = p.list(func() error {
		t, err := p.tuple(2)
		if err != nil {
			return err
		}
		d.Env = append(d.Env, [2]string{t[0], t[1]})
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := p.expect(")"); err != nil {
		return nil, err
	}
	// A trailing newline is tolerated; anything else is not.
	if p.pos < len(p.s) && !(p.pos == len(p.s)-1 && p.s[p.pos] == '\n') {
		return nil, p.fail("trailing data after derivation")
	}
	if len(d.Outputs) == 0 {
		return nil, errors.New("derivation has no outputs")
	}
	return d, nil
}

func quote(b *strings.Builder, s string) {
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '"', '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
}

func quoteList(b *strings.Builder, l []string) {
	b.WriteByte('[')
	for i, s := range l {
		if i > 0 {
			b.WriteByte(',')
		}
		quote(b, s)
	}
	b.WriteByte(']')
}

// String returns the derivation in the daemon's exact textual form (no
// trailing newline, as Guix writes it).
func (d *Derivation) String() string {
	var b strings.Builder
	b.WriteString("Derive([")
	for i, o := range d.Outputs {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('(')
		quote(&b, o.Name)
		b.WriteByte(',')
		quote(&b, o.Path)
		b.WriteByte(',')
		quote(&b, o.HashAlgo)
		b.WriteByte(',')
		quote(&b, o.Hash)
		b.WriteByte(')')
	}
	b.WriteString("],[")
	for i, in := range d.Inputs {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('(')
		quote(&b, in.Drv)
		b.WriteByte(',')
		quoteList(&b, in.Outputs)
		b.WriteByte(')')
	}
	b.WriteString("],")
	quoteList(&b, d.Sources)
	b.WriteByte(',')
	quote(&b, d.System)
	b.WriteByte(',')
	quote(&b, d.Builder)
	b.WriteByte(',')
	quoteList(&b, d.Args)
	b.WriteString(",[")
	for i, kv := range d.Env {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('(')
		quote(&b, kv[0])
		b.WriteByte(',')
		quote(&b, kv[1])
		b.WriteByte(')')
	}
	b.WriteString("])")
	return b.String()
}

// Sort puts outputs, inputs, sources and environment in the order Guix
// writes them (by name, path and key).
func (d *Derivation) Sort() {
	sort.Slice(d.Outputs, func(i, j int) bool { return d.Outputs[i].Name < d.Outputs[j].Name })
	sort.Slice(d.Inputs, func(i, j int) bool { return d.Inputs[i].Drv < d.Inputs[j].Drv })
	sort.Strings(d.Sources)
	sort.Slice(d.Env, func(i, j int) bool { return d.Env[i][0] < d.Env[j][0] })
}
