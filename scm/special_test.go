package scm

import (
	"strings"
	"testing"
)

// Each special form alone: its value, described as in error messages,
// or the error it gives for a malformed use.
func TestSpecialForms(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{`(quote x)`, "the symbol x"},
		{`(quote)`, "bad quote form: it takes 1 operand, got 0"},
		{"`(a ,(string-append \"b\" \"c\"))", "a list"},
		{`(unquote x)`, "unquote outside quasiquote"},
		{`((lambda (a) a) 1)`, "the integer 1"},
		{`(lambda (a))`, "bad lambda form: it takes at least 2 operands, got 1"},
		{`(begin (define x 2) x)`, "the integer 2"},
		{`(begin (define (f a) a) (f 3))`, "the integer 3"},
		{`(define x 1 2)`, "bad define form: (define x VALUE) takes one value, got 2"},
		{`(define (f a))`, "bad define form: procedure f has no body"},
		{`(let ((a 1) (b 2)) b)`, "the integer 2"},
		{`(let* ((a 1) (b a)) b)`, "the integer 1"},
		{`(let loop ((l '(1 2 3))) (if (null? (cdr l)) (car l) (loop (cdr l))))`, "the integer 3"},
		{`(let (a) 1)`, "bad let binding: expected (NAME VALUE)"},
		{`(if #f 1 2)`, "the integer 2"},
		{`(if #t)`, "bad if form: it takes 2 to 3 operands, got 1"},
		{`(and 1 #f 3)`, "#f"},
		{`(or #f 2)`, "the integer 2"},
		{`(and)`, "#t"},
		{`(when #t 1 2)`, "the integer 2"},
		{`(unless #t 1)`, "no value"},
		{`(cond (#f 1) (else 2))`, "the integer 2"},
		{`(cond (5))`, "the integer 5"},
		{`(cond ())`, "bad cond clause: expected (TEST EXPR …)"},
	} {
		t.Run(tc.src, func(t *testing.T) {
			forms, err := Read([]byte(tc.src), "t.scm")
			if err != nil {
				t.Fatal(err)
			}
			ev := newEvaluator()
			v, err := ev.eval(forms[0], ev.global)
			got := ""
			if err != nil {
				got = err.Error()
			} else {
				got = describe(v)
			}
			if !strings.Contains(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}
