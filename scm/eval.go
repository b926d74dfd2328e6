package scm

import (
	"fmt"
	"math"
	"math/big"
	"os"
	"strconv"
	"strings"
)

// Limits that keep hostile or runaway machines.scm files from exhausting
// the stack, the CPU or memory.
const (
	maxEvalDepth  = 10000
	maxEvalSteps  = 1_000_000
	maxStringSize = 1 << 20
)

// Unspecified is the value of forms such as define, which Guile leaves
// unspecified.
type Unspecified struct{ At Pos }

func (v Unspecified) Pos() Pos { return v.At }

// procedure is a closure made by lambda or define.
type procedure struct {
	name   string
	params []string
	rest   string // name of the rest parameter, or ""
	body   []Value
	env    *env
	at     Pos
}

func (p *procedure) Pos() Pos { return p.at }

// builtin is a procedure written in Go.
type builtin struct {
	name     string
	min, max int // max < 0: any number
	fn       func(ev *evaluator, call Pos, args []Value, argAt []Pos) (Value, error)
}

func (b *builtin) Pos() Pos { return Pos{} }

type env struct {
	vars   map[string]Value
	parent *env
}

func (e *env) lookup(name string) (Value, bool) {
	for ; e != nil; e = e.parent {
		if v, ok := e.vars[name]; ok {
			return v, true
		}
	}
	return nil, false
}

// names returns the names bound in e and its parents.
func (e *env) names() []string {
	var out []string
	for ; e != nil; e = e.parent {
		for k := range e.vars {
			out = append(out, k)
		}
	}
	return out
}

func newEnv(parent *env) *env { return &env{vars: map[string]Value{}, parent: parent} }

type evaluator struct {
	global *env
	depth  int
	steps  int
}

func newEvaluator() *evaluator {
	ev := &evaluator{global: newEnv(nil)}
	for _, b := range builtins() {
		ev.global.vars[b.name] = b
	}
	return ev
}

// specialForms are the syntactic keywords the evaluator knows.
var specialForms = map[string]bool{
	"quote": true, "quasiquote": true, "unquote": true, "unquote-splicing": true,
	"lambda": true, "define": true, "let": true, "let*": true, "if": true,
	"begin": true, "and": true, "or": true, "when": true, "unless": true,
	"cond": true, "use-modules": true, "build-machine": true,
}

func (ev *evaluator) eval(x Value, en *env) (Value, error) {
	ev.depth++
	defer func() { ev.depth-- }()
	if ev.depth > maxEvalDepth {
		return nil, errorf(x.Pos(), "evaluation nested deeper than %d levels (runaway recursion?)", maxEvalDepth)
	}
	ev.steps++
	if ev.steps > maxEvalSteps {
		return nil, errorf(x.Pos(), "evaluation takes more than %d steps (runaway recursion?)", maxEvalSteps)
	}
	switch x := x.(type) {
	case Symbol:
		if v, ok := en.lookup(x.Name); ok {
			return v, nil
		}
		if specialForms[x.Name] {
			return nil, errorf(x.At, "%s is syntax, not a value", x.Name)
		}
		e := &Error{At: x.At, Msg: "unbound variable " + x.Name,
			Tip: "the built-in evaluator knows only what machines.scm files commonly use; if " + x.Name + " is a Guile procedure, use --eval=guile"}
		if near := closest(x.Name, en.names()); near != "" {
			e.Tip = "did you mean " + near + "?"
		}
		return nil, e
	case Nil:
		return nil, errorf(x.At, "unquoted empty list; write '()")
	case *Pair:
		return ev.evalPair(x, en)
	case Vector:
		return x, nil
	}
	return x, nil // self-evaluating: strings, numbers, booleans, characters, keywords
}

func (ev *evaluator) evalPair(x *Pair, en *env) (Value, error) {
	args, ok := List(x.Cdr)
	if !ok {
		return nil, errorf(x.At, "malformed expression: a dotted list")
	}
	if sym, ok := x.Car.(Symbol); ok && specialForms[sym.Name] {
		if _, bound := en.lookup(sym.Name); !bound {
			return ev.special(sym.Name, x, args, en)
		}
	}
	f, err := ev.eval(x.Car, en)
	if err != nil {
		return nil, err
	}
	switch f.(type) {
	case *builtin, *procedure:
	default:
		return nil, errorf(x.At, "cannot call %s: it is not a procedure", describe(f))
	}
	vals := make([]Value, len(args))
	at := make([]Pos, len(args))
	for i, a := range args {
		if vals[i], err = ev.eval(a, en); err != nil {
			return nil, err
		}
		at[i] = a.Pos()
	}
	return ev.apply(f, vals, at, x.At)
}

func (ev *evaluator) apply(f Value, args []Value, argAt []Pos, call Pos) (Value, error) {
	switch f := f.(type) {
	case *builtin:
		if len(args) < f.min || (f.max >= 0 && len(args) > f.max) {
			return nil, errorf(call, "wrong number of arguments to %s: got %d, want %s", f.name, len(args), arity(f.min, f.max))
		}
		return f.fn(ev, call, args, argAt)
	case *procedure:
		if len(args) < len(f.params) || (f.rest == "" && len(args) > len(f.params)) {
			max := len(f.params)
			if f.rest != "" {
				max = -1
			}
			name := f.name
			if name == "" {
				name = "anonymous procedure"
			}
			return nil, errorf(call, "wrong number of arguments to %s: got %d, want %s", name, len(args), arity(len(f.params), max))
		}
		en := newEnv(f.env)
		for i, p := range f.params {
			en.vars[p] = args[i]
		}
		if f.rest != "" {
			en.vars[f.rest] = MakeList(call, args[len(f.params):]...)
		}
		return ev.body(f.body, en)
	}
	return nil, errorf(call, "cannot call %s: it is not a procedure", describe(f))
}

func arity(min, max int) string {
	switch {
	case max < 0:
		return fmt.Sprintf("at least %d", min)
	case min == max:
		return strconv.Itoa(min)
	}
	return fmt.Sprintf("%d to %d", min, max)
}

// body evaluates a sequence of forms in en and returns the last value.
func (ev *evaluator) body(forms []Value, en *env) (Value, error) {
	var v Value
	var err error
	for _, f := range forms {
		if v, err = ev.eval(f, en); err != nil {
			return nil, err
		}
	}
	return v, nil
}

// special evaluates the special form name, whose expression is x and
// whose operands are args, in en.
func (ev *evaluator) special(name string, x *Pair, args []Value, en *env) (Value, error) {
	f := &specialForm{ev: ev, name: name, x: x, args: args, en: en}
	switch name {
	case "quote":
		return f.quote()
	case "quasiquote":
		return f.quasiquote()
	case "unquote", "unquote-splicing":
		return nil, errorf(x.At, "%s outside quasiquote", name)
	case "lambda":
		return f.lambda()
	case "define":
		return f.define()
	case "let", "let*":
		return f.let()
	case "if":
		return f.ifForm()
	case "begin":
		return f.begin()
	case "and", "or":
		return f.andOr()
	case "when", "unless":
		return f.whenUnless()
	case "cond":
		return f.cond()
	case "use-modules":
		// Modules make no difference to the subset evaluated here.
		return f.unspecified(), nil
	case "build-machine":
		return ev.buildMachine(x, args, en)
	}
	return nil, errorf(x.At, "unknown syntax %s", name)
}

// specialForm is one use of a special form: the evaluator, the form's
// name, the whole expression, its operands and the environment. Each
// form is a method.
type specialForm struct {
	ev   *evaluator
	name string
	x    *Pair
	args []Value
	en   *env
}

// need checks that the form has from min to max operands (max -1: no
// upper bound).
func (f *specialForm) need(min, max int) error {
	if len(f.args) < min || (max >= 0 && len(f.args) > max) {
		return errorf(f.x.At, "bad %s form: it takes %s, got %d", f.name, plural(arity(min, max), "operand"), len(f.args))
	}
	return nil
}

func (f *specialForm) unspecified() Value { return Unspecified{At: f.x.At} }

func (f *specialForm) quote() (Value, error) {
	if err := f.need(1, 1); err != nil {
		return nil, err
	}
	return f.args[0], nil
}

func (f *specialForm) quasiquote() (Value, error) {
	if err := f.need(1, 1); err != nil {
		return nil, err
	}
	return f.ev.quasi(f.args[0], 1, f.en)
}

func (f *specialForm) lambda() (Value, error) {
	if err := f.need(2, -1); err != nil {
		return nil, err
	}
	return f.ev.lambda("", f.args[0], f.args[1:], f.en, f.x.At)
}

// define binds a name, (define NAME VALUE), or a procedure, (define
// (NAME PARAM …) BODY …).
func (f *specialForm) define() (Value, error) {
	if err := f.need(1, -1); err != nil {
		return nil, err
	}
	args, x, en := f.args, f.x, f.en
	switch target := args[0].(type) {
	case Symbol:
		if len(args) != 2 {
			return nil, errorf(x.At, "bad define form: (define %s VALUE) takes one value, got %d", target.Name, len(args)-1)
		}
		v, err := f.ev.eval(args[1], en)
		if err != nil {
			return nil, err
		}
		if p, ok := v.(*procedure); ok && p.name == "" {
			p.name = target.Name
		}
		en.vars[target.Name] = v
	case *Pair:
		fname, ok := target.Car.(Symbol)
		if !ok {
			return nil, errorf(target.At, "bad define form: the procedure name must be a symbol")
		}
		if len(args) < 2 {
			return nil, errorf(x.At, "bad define form: procedure %s has no body", fname.Name)
		}
		p, err := f.ev.lambda(fname.Name, target.Cdr, args[1:], en, x.At)
		if err != nil {
			return nil, err
		}
		en.vars[fname.Name] = p
	default:
		return nil, errorf(args[0].Pos(), "bad define form: cannot define %s", describe(args[0]))
	}
	return f.unspecified(), nil
}

// let is let, named let and let*.
func (f *specialForm) let() (Value, error) {
	if err := f.need(2, -1); err != nil {
		return nil, err
	}
	name, args, en := f.name, f.args, f.en
	if loop, ok := args[0].(Symbol); ok && name == "let" {
		return f.ev.namedLet(loop, args[1:], en, f.x)
	}
	bindings, ok := List(args[0])
	if !ok {
		return nil, errorf(args[0].Pos(), "bad %s form: bindings must be a list", name)
	}
	inner := newEnv(en)
	for _, b := range bindings {
		sym, expr, err := binding(name, b)
		if err != nil {
			return nil, err
		}
		scope := en
		if name == "let*" {
			scope = inner
		}
		v, err := f.ev.eval(expr, scope)
		if err != nil {
			return nil, err
		}
		if name == "let*" {
			inner = newEnv(inner)
		}
		inner.vars[sym] = v
	}
	return f.ev.body(args[1:], newEnv(inner))
}

func (f *specialForm) ifForm() (Value, error) {
	if err := f.need(2, 3); err != nil {
		return nil, err
	}
	c, err := f.ev.eval(f.args[0], f.en)
	if err != nil {
		return nil, err
	}
	if truthy(c) {
		return f.ev.eval(f.args[1], f.en)
	}
	if len(f.args) == 3 {
		return f.ev.eval(f.args[2], f.en)
	}
	return f.unspecified(), nil
}

func (f *specialForm) begin() (Value, error) {
	if len(f.args) == 0 {
		return f.unspecified(), nil
	}
	return f.ev.body(f.args, f.en)
}

// andOr is and and or: the first operand that decides, else the last.
func (f *specialForm) andOr() (Value, error) {
	and := f.name == "and"
	var v Value = Bool{V: and, At: f.x.At}
	for _, a := range f.args {
		var err error
		if v, err = f.ev.eval(a, f.en); err != nil {
			return nil, err
		}
		if truthy(v) != and {
			return v, nil
		}
	}
	return v, nil
}

func (f *specialForm) whenUnless() (Value, error) {
	if err := f.need(1, -1); err != nil {
		return nil, err
	}
	c, err := f.ev.eval(f.args[0], f.en)
	if err != nil {
		return nil, err
	}
	if truthy(c) == (f.name == "when") && len(f.args) > 1 {
		return f.ev.body(f.args[1:], f.en)
	}
	return f.unspecified(), nil
}

func (f *specialForm) cond() (Value, error) {
	for _, clause := range f.args {
		parts, ok := List(clause)
		if !ok || len(parts) == 0 {
			return nil, errorf(clause.Pos(), "bad cond clause: expected (TEST EXPR …)")
		}
		var c Value = Bool{V: true}
		if s, ok := parts[0].(Symbol); !ok || s.Name != "else" {
			var err error
			if c, err = f.ev.eval(parts[0], f.en); err != nil {
				return nil, err
			}
		}
		if truthy(c) {
			if len(parts) == 1 {
				return c, nil
			}
			return f.ev.body(parts[1:], f.en)
		}
	}
	return f.unspecified(), nil
}

func plural(n, word string) string {
	if n == "1" {
		return n + " " + word
	}
	return n + " " + word + "s"
}

func binding(form string, b Value) (string, Value, error) {
	parts, ok := List(b)
	if !ok || len(parts) != 2 {
		return "", nil, errorf(b.Pos(), "bad %s binding: expected (NAME VALUE)", form)
	}
	sym, ok := parts[0].(Symbol)
	if !ok {
		return "", nil, errorf(parts[0].Pos(), "bad %s binding: %s is not a name", form, describe(parts[0]))
	}
	return sym.Name, parts[1], nil
}

func (ev *evaluator) namedLet(loop Symbol, args []Value, en *env, x *Pair) (Value, error) {
	if len(args) < 2 {
		return nil, errorf(x.At, "bad let form: named let %s has no body", loop.Name)
	}
	bindings, ok := List(args[0])
	if !ok {
		return nil, errorf(args[0].Pos(), "bad let form: bindings must be a list")
	}
	p := &procedure{name: loop.Name, body: args[1:], at: x.At}
	vals := make([]Value, len(bindings))
	at := make([]Pos, len(bindings))
	for i, b := range bindings {
		sym, expr, err := binding("let", b)
		if err != nil {
			return nil, err
		}
		p.params = append(p.params, sym)
		if vals[i], err = ev.eval(expr, en); err != nil {
			return nil, err
		}
		at[i] = expr.Pos()
	}
	p.env = newEnv(en)
	p.env.vars[loop.Name] = p
	return ev.apply(p, vals, at, x.At)
}

func (ev *evaluator) lambda(name string, formals Value, body []Value, en *env, at Pos) (*procedure, error) {
	p := &procedure{name: name, body: body, env: en, at: at}
	seen := map[string]bool{}
	for {
		switch f := formals.(type) {
		case Nil:
			return p, nil
		case Symbol:
			p.rest = f.Name
			return p, nil
		case *Pair:
			sym, ok := f.Car.(Symbol)
			if !ok {
				return nil, errorf(f.Car.Pos(), "bad lambda form: parameter %s is not a name", describe(f.Car))
			}
			if seen[sym.Name] {
				return nil, errorf(sym.At, "bad lambda form: parameter %s appears twice", sym.Name)
			}
			seen[sym.Name] = true
			p.params = append(p.params, sym.Name)
			formals = f.Cdr
		default:
			return nil, errorf(formals.Pos(), "bad lambda form: parameters must be names")
		}
	}
}

// quasi evaluates the quasiquoted template x at nesting level depth.
func (ev *evaluator) quasi(x Value, depth int, en *env) (Value, error) {
	ev.depth++
	defer func() { ev.depth-- }()
	if ev.depth > maxEvalDepth {
		return nil, errorf(x.Pos(), "quasiquote nested deeper than %d levels", maxEvalDepth)
	}
	switch t := x.(type) {
	case Vector:
		l, err := ev.quasi(MakeList(t.At, t.Items...), depth, en)
		if err != nil {
			return nil, err
		}
		items, _ := List(l)
		return Vector{Items: items, At: t.At}, nil
	case *Pair:
		if sym, ok := t.Car.(Symbol); ok {
			if arg, ok := oneArg(t); ok {
				switch sym.Name {
				case "unquote":
					if depth == 1 {
						return ev.eval(arg, en)
					}
					v, err := ev.quasi(arg, depth-1, en)
					if err != nil {
						return nil, err
					}
					return MakeList(t.At, sym, v), nil
				case "quasiquote":
					v, err := ev.quasi(arg, depth+1, en)
					if err != nil {
						return nil, err
					}
					return MakeList(t.At, sym, v), nil
				case "unquote-splicing":
					if depth == 1 {
						return nil, errorf(t.At, "unquote-splicing ,@ is only allowed inside a list")
					}
				}
			}
		}
		// Splice (unquote-splicing E) elements at level 1.
		if head, ok := t.Car.(*Pair); ok && depth == 1 {
			if sym, ok := head.Car.(Symbol); ok && sym.Name == "unquote-splicing" {
				if arg, ok := oneArg(head); ok {
					v, err := ev.eval(arg, en)
					if err != nil {
						return nil, err
					}
					items, ok := List(v)
					if !ok {
						return nil, errorf(head.At, ",@ needs a list, got %s", describe(v))
					}
					rest, err := ev.quasi(t.Cdr, depth, en)
					if err != nil {
						return nil, err
					}
					ev.steps += len(items)
					for i := len(items) - 1; i >= 0; i-- {
						rest = &Pair{Car: items[i], Cdr: rest, At: t.At}
					}
					return rest, nil
				}
			}
		}
		car, err := ev.quasi(t.Car, depth, en)
		if err != nil {
			return nil, err
		}
		cdr, err := ev.quasi(t.Cdr, depth, en)
		if err != nil {
			return nil, err
		}
		return &Pair{Car: car, Cdr: cdr, At: t.At}, nil
	}
	return x, nil
}

// oneArg returns A when p is the two-element list (HEAD A).
func oneArg(p *Pair) (Value, bool) {
	rest, ok := p.Cdr.(*Pair)
	if !ok {
		return nil, false
	}
	if _, ok := rest.Cdr.(Nil); !ok {
		return nil, false
	}
	return rest.Car, true
}

func truthy(v Value) bool {
	b, ok := v.(Bool)
	return !ok || b.V
}

// describe names a value for error messages.
func describe(v Value) string {
	switch x := v.(type) {
	case String:
		s := strconv.Quote(x.S)
		if len(s) > 40 {
			s = s[:37] + "…\""
		}
		return "the string " + s
	case Int:
		return "the integer " + x.V.String()
	case Rational:
		return "the number " + x.V.RatString()
	case Real:
		return "the number " + formatReal(x.V)
	case Bool:
		if x.V {
			return "#t"
		}
		return "#f"
	case Symbol:
		return "the symbol " + x.Name
	case Keyword:
		return "the keyword #:" + x.Name
	case Char:
		return fmt.Sprintf("the character %q", x.V)
	case Nil:
		return "the empty list"
	case *Pair:
		if _, ok := List(x); ok {
			return "a list"
		}
		return "a pair"
	case Vector:
		return "a vector"
	case *procedure, *builtin:
		return "a procedure"
	case *machineVal:
		return "a build-machine"
	case Unspecified:
		return "no value (as define returns)"
	}
	return fmt.Sprintf("a %T", v)
}

func exactInt(v Value) (int, bool) {
	n, ok := v.(Int)
	if !ok || !n.V.IsInt64() || n.V.Int64() > math.MaxInt32 || n.V.Int64() < math.MinInt32 {
		return 0, false
	}
	return int(n.V.Int64()), true
}

func finiteReal(v Value) (float64, bool) {
	var f float64
	switch x := v.(type) {
	case Int:
		f, _ = new(big.Float).SetInt(x.V).Float64()
	case Rational:
		f, _ = x.V.Float64()
	case Real:
		f = x.V
	default:
		return 0, false
	}
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, false
	}
	return f, true
}

func builtins() []*builtin {
	str := func(name string, args []Value, argAt []Pos, i int) (string, error) {
		s, ok := args[i].(String)
		if !ok {
			return "", errorf(argAt[i], "%s: argument %d must be a string, got %s", name, i+1, describe(args[i]))
		}
		return s.S, nil
	}
	return []*builtin{
		{name: "list", min: 0, max: -1, fn: func(ev *evaluator, call Pos, args []Value, _ []Pos) (Value, error) {
			return MakeList(call, args...), nil
		}},
		{name: "cons", min: 2, max: 2, fn: func(ev *evaluator, call Pos, args []Value, _ []Pos) (Value, error) {
			return &Pair{Car: args[0], Cdr: args[1], At: call}, nil
		}},
		{name: "car", min: 1, max: 1, fn: func(ev *evaluator, call Pos, args []Value, argAt []Pos) (Value, error) {
			p, ok := args[0].(*Pair)
			if !ok {
				return nil, errorf(argAt[0], "car: argument must be a pair, got %s", describe(args[0]))
			}
			return p.Car, nil
		}},
		{name: "cdr", min: 1, max: 1, fn: func(ev *evaluator, call Pos, args []Value, argAt []Pos) (Value, error) {
			p, ok := args[0].(*Pair)
			if !ok {
				return nil, errorf(argAt[0], "cdr: argument must be a pair, got %s", describe(args[0]))
			}
			return p.Cdr, nil
		}},
		{name: "null?", min: 1, max: 1, fn: func(ev *evaluator, call Pos, args []Value, _ []Pos) (Value, error) {
			_, ok := args[0].(Nil)
			return Bool{V: ok, At: call}, nil
		}},
		{name: "not", min: 1, max: 1, fn: func(ev *evaluator, call Pos, args []Value, _ []Pos) (Value, error) {
			return Bool{V: !truthy(args[0]), At: call}, nil
		}},
		{name: "append", min: 0, max: -1, fn: func(ev *evaluator, call Pos, args []Value, argAt []Pos) (Value, error) {
			if len(args) == 0 {
				return Nil{At: call}, nil
			}
			out := args[len(args)-1]
			for i := len(args) - 2; i >= 0; i-- {
				items, ok := List(args[i])
				if !ok {
					return nil, errorf(argAt[i], "append: argument %d must be a list, got %s", i+1, describe(args[i]))
				}
				ev.steps += len(items)
				if ev.steps > maxEvalSteps {
					return nil, errorf(call, "evaluation takes more than %d steps", maxEvalSteps)
				}
				for j := len(items) - 1; j >= 0; j-- {
					out = &Pair{Car: items[j], Cdr: out, At: call}
				}
			}
			return out, nil
		}},
		{name: "map", min: 2, max: -1, fn: func(ev *evaluator, call Pos, args []Value, argAt []Pos) (Value, error) {
			if len(args) > 2 {
				return nil, &Error{At: call, Msg: "map over several lists is not supported by the built-in evaluator",
					Tip: "map over one list, or use --eval=guile"}
			}
			items, ok := List(args[1])
			if !ok {
				return nil, errorf(argAt[1], "map: argument 2 must be a list, got %s", describe(args[1]))
			}
			out := make([]Value, len(items))
			for i, it := range items {
				v, err := ev.apply(args[0], []Value{it}, []Pos{argAt[1]}, call)
				if err != nil {
					return nil, err
				}
				out[i] = v
			}
			return MakeList(call, out...), nil
		}},
		{name: "string-append", min: 0, max: -1, fn: func(ev *evaluator, call Pos, args []Value, argAt []Pos) (Value, error) {
			var b strings.Builder
			for i := range args {
				s, err := str("string-append", args, argAt, i)
				if err != nil {
					return nil, err
				}
				if b.Len()+len(s) > maxStringSize {
					return nil, errorf(call, "string-append: result longer than %d bytes", maxStringSize)
				}
				b.WriteString(s)
			}
			// Copying costs a step per 64 bytes, so that building many
			// large strings stays within the step budget.
			ev.steps += b.Len() / 64
			if ev.steps > maxEvalSteps {
				return nil, errorf(call, "evaluation takes more than %d steps", maxEvalSteps)
			}
			return String{S: b.String(), At: call}, nil
		}},
		{name: "string=?", min: 0, max: -1, fn: func(ev *evaluator, call Pos, args []Value, argAt []Pos) (Value, error) {
			eq := true
			for i := range args {
				s, err := str("string=?", args, argAt, i)
				if err != nil {
					return nil, err
				}
				if i > 0 && s != args[0].(String).S {
					eq = false
				}
			}
			return Bool{V: eq, At: call}, nil
		}},
		{name: "equal?", min: 0, max: -1, fn: func(ev *evaluator, call Pos, args []Value, _ []Pos) (Value, error) {
			for i := 1; i < len(args); i++ {
				eq, err := ev.equal(args[0], args[i], 0)
				if err != nil {
					return nil, errorf(call, "equal?: %v", err)
				}
				if !eq {
					return Bool{V: false, At: call}, nil
				}
			}
			return Bool{V: true, At: call}, nil
		}},
		{name: "getenv", min: 1, max: 1, fn: func(ev *evaluator, call Pos, args []Value, argAt []Pos) (Value, error) {
			name, err := str("getenv", args, argAt, 0)
			if err != nil {
				return nil, err
			}
			if v, ok := os.LookupEnv(name); ok {
				return String{S: v, At: call}, nil
			}
			return Bool{V: false, At: call}, nil
		}},
		{name: "number->string", min: 1, max: 2, fn: func(ev *evaluator, call Pos, args []Value, argAt []Pos) (Value, error) {
			radix := 10
			if len(args) == 2 {
				r, ok := exactInt(args[1])
				if !ok || (r != 2 && r != 8 && r != 10 && r != 16) {
					return nil, errorf(argAt[1], "number->string: radix must be 2, 8, 10 or 16, got %s", describe(args[1]))
				}
				radix = r
			}
			var s string
			switch n := args[0].(type) {
			case Int:
				s = n.V.Text(radix)
			case Rational:
				s = n.V.Num().Text(radix) + "/" + n.V.Denom().Text(radix)
			case Real:
				if radix != 10 {
					return nil, errorf(argAt[1], "number->string: the built-in evaluator writes inexact numbers only in radix 10")
				}
				s = formatReal(n.V)
			default:
				return nil, errorf(argAt[0], "number->string: argument 1 must be a number, got %s", describe(args[0]))
			}
			return String{S: s, At: call}, nil
		}},
	}
}

// equal implements Guile's equal? on the values the evaluator makes. Each
// node compared costs a step, since shared structure can make a value's
// tree far larger than its memory.
func (ev *evaluator) equal(a, b Value, depth int) (bool, error) {
	if depth > maxEvalDepth {
		return false, fmt.Errorf("values nested deeper than %d levels", maxEvalDepth)
	}
	ev.steps++
	if ev.steps > maxEvalSteps {
		return false, fmt.Errorf("comparison takes more than %d steps", maxEvalSteps)
	}
	switch x := a.(type) {
	case *Pair:
		y, ok := b.(*Pair)
		if !ok {
			return false, nil
		}
		if eq, err := ev.equal(x.Car, y.Car, depth+1); !eq || err != nil {
			return false, err
		}
		return ev.equal(x.Cdr, y.Cdr, depth+1)
	case Vector:
		y, ok := b.(Vector)
		if !ok || len(x.Items) != len(y.Items) {
			return false, nil
		}
		for i := range x.Items {
			if eq, err := ev.equal(x.Items[i], y.Items[i], depth+1); !eq || err != nil {
				return false, err
			}
		}
		return true, nil
	case Nil:
		_, ok := b.(Nil)
		return ok, nil
	case Symbol:
		y, ok := b.(Symbol)
		return ok && x.Name == y.Name, nil
	case Keyword:
		y, ok := b.(Keyword)
		return ok && x.Name == y.Name, nil
	case String:
		y, ok := b.(String)
		return ok && x.S == y.S, nil
	case Bool:
		y, ok := b.(Bool)
		return ok && x.V == y.V, nil
	case Char:
		y, ok := b.(Char)
		return ok && x.V == y.V, nil
	case Int:
		y, ok := b.(Int)
		return ok && x.V.Cmp(y.V) == 0, nil
	case Rational:
		y, ok := b.(Rational)
		return ok && x.V.Cmp(y.V) == 0, nil
	case Real:
		y, ok := b.(Real)
		return ok && (x.V == y.V && math.Signbit(x.V) == math.Signbit(y.V) || x.V != x.V && y.V != y.V), nil
	case Unspecified:
		_, ok := b.(Unspecified)
		return ok, nil
	}
	return a == b, nil
}
